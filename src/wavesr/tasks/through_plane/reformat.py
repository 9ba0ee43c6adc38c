"""Through-plane geometry for thick-slice scans: the thick axis, the factor, reformats, affine.

A thick-slice volume (e.g. 1 x 1 x 5 mm) is super-resolved along its thick axis only, with a 2-D
model that upsamples the ROWS of a slice: the slices taken are those that contain the thick axis
(reformats), with that axis on the rows. There are two such orthogonal stacks, the thick axis
paired with each of the other two axes; SMORE (Zhao et al. 2021) averages them.

Voxel placement, the same everywhere here (and in `degrade`'s ``slice-axis`` degradation): a
voxel covers its cell, so LR voxel i along the axis covers HR voxels i*s .. i*s+s-1, and
resampling n voxels to m keeps the outer edges (PyTorch's ``align_corners=False``). Output i sits
at input index (i + 0.5) * n / m - 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wavesr.errors import ConfigError, InputError
from wavesr.model.degrade import upsample_rows

SUPPORTED_FACTORS = (2, 4, 8)
THICK_TOLERANCE = 0.10  # an axis is thick when >= 10 % larger than the finest spacing

# Upsamples the rows of (N, H, W) float32 slices: returns (N, H * s, W).
RowUpsample = Callable[[np.ndarray], np.ndarray]


def thick_axis(
    spacing: Sequence[float], axis: int | None = None, *, path: str | Path | None = None
) -> int:
    """The voxel axis with the largest voxel size (the first of equals), or `axis` if given.

    Raises InputError when no axis is at least 10 % larger than the finest one and `axis` is
    None, and ConfigError for an `axis` outside 0..2.
    """
    if axis is not None:
        if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not 0 <= axis <= 2:
            raise ConfigError(f"--axis must be a voxel axis 0, 1 or 2, got {axis!r}")
        return int(axis)
    sizes = [float(v) for v in spacing]
    thick = int(np.argmax(sizes))
    if sizes[thick] < (1 + THICK_TOLERANCE) * min(sizes):
        shown = " x ".join(f"{v:.4g}" for v in sizes)
        raise InputError(
            f"no thick axis: voxel sizes {shown} mm are within 10 %; pass --axis", path
        )
    return thick


@dataclass(frozen=True)
class AxisFactor:
    """How a thick axis is super-resolved: by the model's factor, then resampled if needed."""

    model: int  # rows are upsampled by this (the model's factor)
    thick: float  # input voxel size along the axis (mm)
    fine: float  # target voxel size: the mean of the two in-plane sizes (mm)

    @property
    def ratio(self) -> float:
        return self.thick / self.fine

    def output_length(self, n: int) -> int:
        """Output voxels along the axis for `n` input voxels: the extent over `fine`, rounded."""
        return max(1, round(n * self.ratio))

    def output_spacing(self, n: int) -> float:
        """The exact output voxel size: the input's extent over `output_length(n)`."""
        return n * self.thick / self.output_length(n)


def through_plane_factor(
    spacing: Sequence[float],
    axis: int,
    scale: int | None = None,
    supported: Sequence[int] = SUPPORTED_FACTORS,
) -> AxisFactor:
    """The model factor and the exact target for super-resolving `axis`.

    The target voxel size along the axis is the fine in-plane one (the mean of the other two
    axes' sizes). The model factor is `scale` if given, else the `supported` factor nearest to
    thick / fine on a log scale (ties: the larger, so the last step shrinks rather than
    enlarges). A ratio that is not the model factor (5 mm / 1 mm with a x4 model) is handled by
    super-resolving n slices to n * factor, then resampling along the axis to
    m = round(n * thick / fine) voxels over the same physical extent; the output voxel size is
    that extent over m (the fine size exactly when the extent is a multiple of it).
    """
    sizes = [float(v) for v in spacing]
    if len(sizes) != 3 or not all(v > 0 and math.isfinite(v) for v in sizes):
        raise ValueError(f"expected three positive voxel sizes, got {spacing!r}")
    fine = float(np.mean([v for a, v in enumerate(sizes) if a != axis]))
    thick = sizes[axis]
    if scale is None:
        ratio = thick / fine
        scale = min(supported, key=lambda s: (abs(math.log(s / ratio)), -s))
    return AxisFactor(model=int(scale), thick=thick, fine=fine)


def partner_axes(axis: int, stacks: int = 2) -> list[int]:
    """The in-plane axes paired with `axis` to make the reformats: the first `stacks` of the
    other two, in order."""
    if stacks not in (1, 2):
        raise ConfigError(f"--stacks must be 1 or 2, got {stacks!r}")
    return [a for a in range(3) if a != axis][:stacks]


def reformat(volume: np.ndarray, axis: int, partner: int) -> np.ndarray:
    """The 2-D slices of `volume` that contain `axis` and `partner`: (N, n_axis, n_partner),
    the thick axis on the rows, one slice per index of the third axis."""
    third = 3 - axis - partner
    return np.moveaxis(volume, (third, axis, partner), (0, 1, 2))


def unformat(slices: np.ndarray, axis: int, partner: int) -> np.ndarray:
    """Inverse of `reformat`: (N, rows, cols) slices back into a volume."""
    third = 3 - axis - partner
    return np.moveaxis(slices, (0, 1, 2), (third, axis, partner))


def upsample_through_plane(
    volume: np.ndarray, axis: int, factor: int, upsample_rows: RowUpsample, stacks: int = 2
) -> np.ndarray:
    """`volume` with `axis` `factor` times longer: `upsample_rows` run on each reformat stack
    (see `partner_axes`), the stacks put back into volumes and averaged (float32)."""
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {volume.shape}")
    total = None
    partners = partner_axes(axis, stacks)
    for partner in partners:
        slices = np.ascontiguousarray(reformat(volume, axis, partner))
        n, h, w = slices.shape
        up = np.asarray(upsample_rows(slices), dtype=np.float32)
        if up.shape != (n, h * factor, w):
            raise ValueError(f"the upsampler gave {up.shape} for {slices.shape} x{factor} rows")
        part = unformat(up, axis, partner)
        total = part.copy() if total is None else total + part
    return total / np.float32(len(partners))


def through_plane_affine(affine: np.ndarray, axis: int, n_in: int, n_out: int) -> np.ndarray:
    """The affine of `n_out` voxels along `axis` over the extent of the `n_in` voxels of
    `affine`: column `axis` times n_in / n_out and the origin moved along it, so the outer voxel
    edges (and every direction cosine, also for oblique affines) stay where they were."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"voxel counts must be >= 1, got {n_in}, {n_out}")
    out = np.array(affine, dtype=np.float64, copy=True)
    step = n_in / n_out  # new voxel size in old voxels
    col = out[:3, axis].copy()
    out[:3, 3] += col * (step - 1) / 2  # first new centre: half a new voxel inside the old edge
    out[:3, axis] = col * step
    return out


def resample_along_axis(
    volume: np.ndarray, axis: int, size: int, mode: str = "cubic"
) -> np.ndarray:
    """`volume` resampled to `size` voxels along `axis` ("cubic" or "linear"), same extent;
    antialiased when shrinking. Values are not clamped."""
    if mode not in ("cubic", "linear"):
        raise ValueError(f"mode must be 'cubic' or 'linear', got {mode!r}")
    data = np.moveaxis(np.asarray(volume, dtype=np.float32), axis, 0)
    n, rest = data.shape[0], data.shape[1:]
    if size == n:
        return np.asarray(volume, dtype=np.float32).copy()
    x = torch.from_numpy(np.ascontiguousarray(data.reshape(1, 1, n, -1)))
    # A 2-D resize that keeps the width is the identity along it: one axis is resampled.
    out = F.interpolate(
        x,
        size=(size, x.shape[-1]),
        mode="bicubic" if mode == "cubic" else "bilinear",
        align_corners=False,
        antialias=size < n,
    )
    return np.moveaxis(out.reshape(size, *rest).numpy(), 0, axis)


def bicubic_along_axis(volume: np.ndarray, axis: int, factor: float) -> np.ndarray:
    """The cubic baseline: `volume` resampled to round(n * factor) voxels along `axis`."""
    n = np.shape(volume)[axis]
    return resample_along_axis(volume, axis, max(1, round(n * factor)), "cubic")


def trilinear_along_axis(volume: np.ndarray, axis: int, factor: float) -> np.ndarray:
    """The trilinear baseline (linear along `axis`, the only axis resized): round(n * factor)
    voxels along `axis`."""
    n = np.shape(volume)[axis]
    return resample_along_axis(volume, axis, max(1, round(n * factor)), "linear")


def cubic_rows(factor: int) -> RowUpsample:
    """A `RowUpsample` that interpolates the rows (cubic), the model-free baseline."""

    def run(slices: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32)).unsqueeze(1)
        return upsample_rows(x, factor)[:, 0].numpy()

    return run


def super_resolve_volume(
    volume: np.ndarray,
    affine: np.ndarray,
    axis: int,
    factor: AxisFactor,
    upsample: RowUpsample,
    stacks: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """(isotropic volume, its affine): `upsample` by `factor.model` along `axis` on the
    reformats, then cubic resampling to `factor.output_length` voxels if that differs."""
    n = int(volume.shape[axis])
    sr = upsample_through_plane(volume, axis, factor.model, upsample, stacks)
    size = factor.output_length(n)
    if size != sr.shape[axis]:
        sr = resample_along_axis(sr, axis, size, "cubic")
    return sr, through_plane_affine(affine, axis, n, size)
