"""Synthetic degradations HR -> LR: bicubic (antialiased, MATLAB-imresize-like), k-space
truncation or a thick-slice acquisition along one axis ("slice-axis"), optionally with Rician
noise. Deterministic given a seed or generator."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from wavesr.errors import ConfigError, InputError

KINDS = ("bicubic", "kspace", "slice-axis")
SCALES = (2, 4, 8)
SLICE_PROFILES = ("gaussian", "box")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...: a Gaussian's FWHM / sigma


@dataclass(frozen=True)
class Degradation:
    kind: str = "bicubic"  # "bicubic" | "kspace" | "slice-axis"
    scale: int = 4  # 2, 4, 8
    noise_sigma: float = 0.0  # Rician noise sigma as a fraction of the [0, 1] range; 0 = off
    # slice-axis only (ignored by the other kinds): the slice profile along the thick axis and
    # the gap between slices as a fraction of the slice spacing (the profile is 1 - gap as wide).
    profile: str = "gaussian"  # "gaussian" (FWHM = the profile width) | "box"
    gap: float = 0.0  # in [0, 1)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown degradation {self.kind!r} (choose from {', '.join(KINDS)})")
        if isinstance(self.scale, bool) or self.scale not in SCALES:
            raise ConfigError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if not (math.isfinite(self.noise_sigma) and self.noise_sigma >= 0):
            raise ConfigError(f"noise_sigma must be >= 0, got {self.noise_sigma!r}")
        _check_profile(self.profile, self.gap)

    @property
    def label(self) -> str:
        """Short name, e.g. "bicubic-x4", "kspace-x4+rician0.02" or "slice-axis-x4-box-gap0.2"
        (slice-axis with the default Gaussian profile and no gap: "slice-axis-x4")."""
        base = f"{self.kind}-x{self.scale}"
        if self.kind == "slice-axis":
            base += "" if self.profile == "gaussian" else f"-{self.profile}"
            base += f"-gap{self.gap:g}" if self.gap > 0 else ""
        return f"{base}+rician{self.noise_sigma:g}" if self.noise_sigma > 0 else base


def _check_profile(profile: str, gap: float) -> None:
    if profile not in SLICE_PROFILES:
        raise ConfigError(
            f"unknown slice profile {profile!r} (choose from {', '.join(SLICE_PROFILES)})"
        )
    if isinstance(gap, bool) or not isinstance(gap, int | float) or not 0.0 <= gap < 1.0:
        raise ConfigError(f"slice gap must lie in [0, 1), got {gap!r}")


def _check(x: Tensor, scale: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")


def downsample(hr: Tensor, scale: int) -> Tensor:
    """Antialiased bicubic downsampling by `scale` (like MATLAB imresize), clamped to [0, 1]."""
    _check(hr, scale)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise InputError(f"image size {h}x{w} is not divisible by the scale {scale} (pad it first)")
    lr = F.interpolate(
        hr, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=True
    )
    return lr.clamp(0.0, 1.0)


def upsample(lr: Tensor, scale: int) -> Tensor:
    """Bicubic upsampling by `scale` (align_corners=False), clamped to [0, 1]."""
    _check(lr, scale)
    h, w = lr.shape[-2:]
    up = F.interpolate(lr, size=(h * scale, w * scale), mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- slice-axis
#
# A thick-slice acquisition along the rows axis (H, dim -2) of a (B, C, H, W) batch: LR row i
# is the HR column profile weighted by the slice profile centred on the middle of HR rows
# [s*i, s*i + s), i.e. at HR coordinate c_i = s*i + (s - 1)/2 (a half-integer for even s). That
# is where bicubic interpolation with align_corners=False (`upsample`, `slice_upsample`) puts LR
# row i, so the degradation and the interpolation back agree: a constant comes back exactly, a
# linear ramp away from the borders. Blur and sampling are one strided 1-D convolution whose
# taps sit at offsets j - (L - 1)/2 from c_i (L has the parity of s), over the reflect-padded
# rows. The columns (W) are untouched.


def slice_kernel(
    scale: int, profile: str = "gaussian", gap: float = 0.0, *, dtype=torch.float32
) -> Tensor:
    """The normalised 1-D slice profile (L,) at tap offsets ``j - (L - 1)/2``, j = 0..L-1.

    The profile is ``width = scale * (1 - gap)`` HR pixels wide: a Gaussian of FWHM ``width``
    (sigma = width / 2.3548, sampled at the tap offsets, cut beyond 3 sigma) or a box of
    ``width`` (each tap weighted by the part of its pixel [d - 1/2, d + 1/2] inside the box).
    L has the parity of ``scale`` and is at least ``scale``.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    _check_profile(profile, gap)
    width = scale * (1.0 - float(gap))
    if profile == "gaussian":
        sigma = width / FWHM_PER_SIGMA
        reach = 3.0 * sigma
    else:
        reach = width / 2.0 + 0.5
    # Taps at offsets (parity of scale): integers for odd scale, half-integers for even.
    half = math.ceil(reach) if scale % 2 else math.ceil(reach - 0.5) + 0.5
    length = max(int(round(2 * half + 1)), scale)
    offsets = torch.arange(length, dtype=torch.float64) - (length - 1) / 2.0
    if profile == "gaussian":
        d2 = offsets**2
        weights = torch.exp(-(d2 - d2.min()) / (2.0 * sigma * sigma))  # no underflow to all-0
    else:
        lo = torch.clamp(offsets - 0.5, min=-width / 2.0)
        hi = torch.clamp(offsets + 0.5, max=width / 2.0)
        weights = (hi - lo).clamp(min=0.0)
        while len(weights) > scale + 1 and weights[0] == 0 and weights[-1] == 0:
            weights = weights[1:-1]  # taps whose pixel lies outside the box
    return (weights / weights.sum()).to(dtype)


def slice_downsample(hr: Tensor, scale: int, profile: str = "gaussian", gap: float = 0.0) -> Tensor:
    """Thick slices along the rows: (B, C, H, W) -> (B, C, H/scale, W), clamped to [0, 1].

    LR row i = sum_j k_j * HR[c_i + j - (L - 1)/2] with c_i = scale*i + (scale - 1)/2 and k the
    `slice_kernel`; reflect padding at the top and bottom (edge replication if too small).
    """
    _check(hr, scale)
    h, w = hr.shape[-2:]
    if h % scale:
        raise InputError(f"image height {h} is not divisible by the scale {scale} (pad it first)")
    x = hr.to(_real_dtype(hr))
    kernel = slice_kernel(scale, profile, gap, dtype=x.dtype).to(x.device)
    pad = (len(kernel) - scale) // 2
    b, c = x.shape[:2]
    x = x.reshape(b * c, 1, h, w)
    if pad:
        x = F.pad(x, (0, 0, pad, pad), mode="reflect" if pad < h else "replicate")
    lr = F.conv2d(x, kernel.view(1, 1, -1, 1), stride=(scale, 1))
    return lr.reshape(b, c, h // scale, w).clamp(0.0, 1.0).to(hr.dtype)


def upsample_rows(x: Tensor, factor: int) -> Tensor:
    """Bicubic upsampling of the rows only (align_corners=False), not clamped (any intensity
    range): (B, C, h, W) -> (B, C, h*factor, W). The columns are left as they are (cubic
    weights at integer positions are exactly 0/1)."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * factor, w), mode="bicubic", align_corners=False)


def slice_upsample(lr: Tensor, scale: int) -> Tensor:
    """`upsample_rows` of an LR slice in [0, 1], clamped to [0, 1]: slice-axis lr -> lr_up."""
    _check(lr, scale)
    return upsample_rows(lr, scale).clamp(0.0, 1.0)


def upsample_for(lr: Tensor, deg: Degradation) -> Tensor:
    """An LR image onto the HR grid the way `degrade` makes lr_up from lr: bicubic along both
    axes, or along the rows only for slice-axis (for k-space: bicubic, as the magnitude LR has
    lost the phase that the zero-filled inverse FFT needs)."""
    if deg.kind == "slice-axis":
        return slice_upsample(lr, deg.scale)
    return upsample(lr, deg.scale)


def _centre(size: int, keep: int) -> slice:
    # After fftshift the DC bin sits at size // 2; this keeps it at keep // 2 in the crop.
    start = size // 2 - keep // 2
    return slice(start, start + keep)


def kspace_truncate(hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """Keep the central 1/scale of k-space in each dimension; complex results, no magnitude.

    Returns (lr, lr_up): lr on the (H/s, W/s) grid, divided by s^2 so intensities keep their
    mean, and lr_up the zero-filled inverse FFT on the HR grid.
    """
    _check(hr, scale)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise InputError(f"image size {h}x{w} is not divisible by the scale {scale} (pad it first)")
    k = torch.fft.fftshift(torch.fft.fft2(hr.to(_real_dtype(hr))), dim=(-2, -1))
    rows, cols = _centre(h, h // scale), _centre(w, w // scale)
    cropped = k[..., rows, cols]
    lr = torch.fft.ifft2(torch.fft.ifftshift(cropped, dim=(-2, -1))) / (scale * scale)
    return lr, _zero_fill(cropped, (h, w))


def _zero_fill(cropped: Tensor, size: tuple[int, int]) -> Tensor:
    """Inverse FFT on a larger grid of centred k-space `cropped` (zero-filled outside)."""
    h, w = size
    full = torch.zeros((*cropped.shape[:-2], h, w), dtype=cropped.dtype, device=cropped.device)
    full[..., _centre(h, cropped.shape[-2]), _centre(w, cropped.shape[-1])] = cropped
    return torch.fft.ifft2(torch.fft.ifftshift(full, dim=(-2, -1)))


def _real_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _noise(
    shape: torch.Size, sigma: float, like: Tensor, generator: torch.Generator | None
) -> Tensor:
    # Drawn on the CPU so a seed gives the same noise on every device.
    n = torch.randn(shape, generator=generator, dtype=torch.float32)
    return (n * sigma).to(device=like.device, dtype=_real_dtype(like))


def degrade(
    hr: Tensor,
    deg: Degradation,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Return (lr, lr_up): the LR image and its upsampling onto the HR grid, both in [0, 1].

    Rician noise sqrt((x + n1)^2 + n2^2), n ~ N(0, sigma), is applied to lr; lr_up is then
    computed from the noisy lr (bicubic, slice-axis) or the noisy complex LR image (k-space).
    For slice-axis only the rows are degraded: lr is (B, C, H/scale, W) (`slice_downsample`).
    """
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    sigma = float(deg.noise_sigma)
    if deg.kind in ("bicubic", "slice-axis"):
        if deg.kind == "bicubic":
            lr = downsample(hr, deg.scale)
        else:
            lr = slice_downsample(hr, deg.scale, deg.profile, deg.gap)
        if sigma > 0:
            n1 = _noise(lr.shape, sigma, lr, generator)
            n2 = _noise(lr.shape, sigma, lr, generator)
            lr = torch.sqrt((lr + n1) ** 2 + n2**2).clamp(0.0, 1.0)
        return lr, upsample_for(lr, deg)
    lr_c, up_c = kspace_truncate(hr, deg.scale)
    if sigma > 0:
        noise = torch.complex(
            _noise(lr_c.shape, sigma, hr, generator), _noise(lr_c.shape, sigma, hr, generator)
        )
        lr_c = lr_c + noise  # |x + n1 + i n2| with real x is the Rician formula
        k = torch.fft.fftshift(torch.fft.fft2(lr_c), dim=(-2, -1)) * deg.scale**2
        up_c = _zero_fill(k, tuple(hr.shape[-2:]))
    lr = lr_c.abs().clamp(0.0, 1.0).to(hr.dtype)
    return lr, up_c.abs().clamp(0.0, 1.0).to(hr.dtype)


def back_project(sr: Tensor, lr_up: Tensor, deg: Degradation, iterations: int) -> Tensor:
    """Iterative back-projection (Irani & Peleg, 1991): make SR consistent with its LR input.

    Each iteration adds ``lr_up - D(sr)``, where ``D`` degrades noise-free and brings the result
    back onto the HR grid the way ``lr_up`` was made. For k-space truncation this replaces the
    SR's central k-space with the measured one (exactly so in one iteration where the images
    are real and positive; the magnitude makes it approximate elsewhere); for bicubic and
    slice-axis (with the degradation's own slice profile and gap, along the rows only) it
    converges towards an SR whose downsampling is the LR.
    """
    clean = replace(deg, noise_sigma=0.0)
    for _ in range(iterations):
        _, sr_up = degrade(sr, clean)
        sr = (sr + lr_up - sr_up).clamp(0.0, 1.0)
    return sr


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right so H and W are multiples of `multiple`; returns (x, (H, W)).

    Falls back to edge replication when the image is too small for reflection.
    """
    if x.ndim < 2:
        raise ValueError(f"expected at least 2-D, got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    batched = x.reshape(-1, 1, h, w)
    padded = F.pad(batched, (0, pw, 0, ph), mode=mode)
    return padded.reshape(*x.shape[:-2], h + ph, w + pw), (h, w)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop the bottom/right padding off: keep x[..., :H, :W]."""
    return x[..., : size[0], : size[1]]
