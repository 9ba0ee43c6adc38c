"""Output writers: NIfTI volumes with a super-resolved affine, and PNG slices."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from wavesr.data.types import SliceStack
from wavesr.errors import OutputError
from wavesr.io_atomic import atomic_write

_SOURCE_SUFFIXES = (".nii.gz", ".nii", ".hdf5", ".h5", ".npy", ".dcm", ".png", ".jpeg", ".jpg")
_SOURCE_SUFFIXES += (".tiff", ".tif")


def write_nifti(
    volume: np.ndarray, affine: np.ndarray, path: Path, *, overwrite: bool = False
) -> None:
    """Write a float32 NIfTI-1 volume (qform and sform set to `affine`, scanner space, mm)."""
    import nibabel as nib

    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise OutputError("NIfTI output must end in .nii or .nii.gz", path)
    img = nifti_image(volume, affine)
    atomic_write(path, lambda tmp: nib.save(img, str(tmp)), overwrite=overwrite)


def nifti_image(volume: np.ndarray, affine: np.ndarray):
    """The float32 NIfTI-1 image `write_nifti` writes (qform and sform set to `affine`,
    scanner space, mm)."""
    import nibabel as nib

    data = np.asarray(volume, dtype=np.float32)
    if data.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D or 3-D volume, got shape {data.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"expected a 4x4 affine, got shape {affine.shape}")
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def sr_affine(affine: np.ndarray, slice_axis: int, scale: int) -> np.ndarray:
    """Affine of the volume whose in-plane voxels are `scale` times smaller, same field of view.

    For each in-plane axis a: column a is divided by `scale`, and the origin moves so the first
    new voxel centre sits half a new voxel inside the old first voxel's edge.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    out = np.array(affine, dtype=np.float64, copy=True)
    for a in range(3):
        if a == slice_axis % 3:
            continue
        col = out[:3, a].copy()
        out[:3, 3] += col * (-0.5 + 0.5 / scale)
        out[:3, a] = col / scale
    return out


def voxel_sizes(affine: np.ndarray | None) -> np.ndarray | None:
    """Voxel edge lengths (mm) along the three voxel axes, from the affine's columns."""
    return None if affine is None else np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


def stack_to_volume(slices: np.ndarray, slice_axis: int) -> np.ndarray:
    """(N, h, w) slices -> a volume with the slices along `slice_axis` (inverse of slicing)."""
    return np.moveaxis(np.asarray(slices), 0, slice_axis)


def assemble_volume(
    stack: SliceStack, sr_slices: np.ndarray, scale: int, *, fill: float = 0.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Put super-resolved slices back into a volume of the source's shape (in-plane x scale).

    Slices skipped as near-empty are filled with `fill`. Returns (volume, affine), the affine
    being `sr_affine` of the source's (None if the source has none).
    """
    if stack.slice_axis is None or stack.volume_shape is None:
        raise ValueError("the source is not a volume (no slice axis)")
    axis = stack.slice_axis
    shape = list(stack.volume_shape)
    for a in range(len(shape)):
        if a != axis:
            shape[a] *= scale
    n, h, w = (int(v) for v in np.shape(sr_slices))
    expected = tuple(s for a, s in enumerate(shape) if a != axis)
    if n != len(stack.indices) or (h, w) != expected:
        raise ValueError(f"expected {len(stack.indices)} slices of {expected}, got {(n, h, w)}")
    full = np.full((shape[axis], *expected), fill, dtype=np.float32)
    full[stack.indices] = sr_slices
    affine = None if stack.affine is None else sr_affine(stack.affine, axis, scale)
    return stack_to_volume(full, axis), affine


def png_name(name: str) -> str:
    """File name for a slice display name: "a.nii.gz:z=45" -> "a_z45.png", "7.jpg" -> "7.png"."""
    parts = []
    for part in name.split(":"):
        lower = part.lower()
        for suffix in _SOURCE_SUFFIXES:
            if lower.endswith(suffix) and len(part) > len(suffix):
                part = part[: -len(suffix)]
                break
        parts.append(part.replace("=", ""))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts)).strip("._") or "slice"
    return f"{stem}.png"


def write_png_slices(
    slices: np.ndarray,
    folder: Path,
    names: list[str],
    *,
    overwrite: bool = False,
    bits: int = 8,
) -> list[Path]:
    """Write each [0, 1] slice as an 8- or 16-bit grey PNG in `folder`; returns the paths."""
    from PIL import Image

    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    data = np.asarray(slices, dtype=np.float32)
    if data.ndim != 3 or len(names) != data.shape[0]:
        raise ValueError(f"expected (N, H, W) slices and N names, got {data.shape}, {len(names)}")
    folder = Path(folder)
    paths = [folder / png_name(n) for n in names]
    if len(set(paths)) != len(paths):
        raise OutputError("slice names map to duplicate PNG file names", folder)
    if not overwrite:
        for path in paths:
            if path.exists():
                raise OutputError("output exists (use --overwrite to replace it)", path)
    peak = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    for path, sl in zip(paths, data):
        pixels = np.round(np.clip(np.nan_to_num(sl), 0.0, 1.0) * peak).astype(dtype)
        img = Image.fromarray(pixels)
        atomic_write(path, lambda tmp, img=img: img.save(tmp, format="PNG"), overwrite=overwrite)
    return paths
