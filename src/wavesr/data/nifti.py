"""NIfTI volumes (nibabel): read a 3-D volume and its affine; pick slicing axes by orientation."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from wavesr.data.types import (
    MAX_DEFLATE_RATIO,
    check_finite,
    check_voxel_count,
    require_file,
)
from wavesr.errors import ConfigError, InputError

# World axis letters (nibabel RAS codes) that define each anatomical slicing plane.
PLANE_CODES = {"axial": ("S", "I"), "coronal": ("A", "P"), "sagittal": ("L", "R")}


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (3-D float32 volume, 4x4 affine) of a NIfTI file, validating it on the way.

    A 2-D image becomes one slice (H, W, 1); a 4-D image with one volume is squeezed.
    """
    import nibabel as nib

    require_file(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise InputError(f"not a readable NIfTI file ({_why(exc)})", path) from exc
    shape = tuple(int(n) for n in img.shape)
    check_voxel_count(shape, path)
    _check_gzip_capacity(img, shape, path)
    return image_volume(img, path, zooms=_raw_zooms(path, img, min(len(img.shape), 3)))


def image_volume(
    img, path: Path | None = None, *, zooms: tuple[float, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(3-D float32 volume, 4x4 affine) of a nibabel image, checked as `read_nifti` checks a
    file; `path` names it in errors, `zooms` are the voxel sizes (default: the header's)."""
    shape = tuple(int(n) for n in img.shape)
    check_voxel_count(shape, path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise InputError(f"expected a 3-D volume, got shape {tuple(img.shape)}", path)
    if zooms is None:
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    if any(not np.isfinite(z) or z <= 0 for z in zooms):
        raise InputError(f"voxel sizes must be positive, header says {zooms}", path)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32).reshape(shape)
    except Exception as exc:
        raise InputError(f"not a readable NIfTI file ({_why(exc)})", path) from exc
    check_finite(data, path)
    if img.affine is None:
        raise InputError("the image has no affine (voxel-to-world matrix)", path)
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError("affine is singular or holds NaN/infinite values", path)
    return data, affine


def _check_gzip_capacity(img, shape: tuple[int, ...], path: Path) -> None:
    """A .nii.gz whose header promises more data than the file can hold is refused before
    nibabel allocates the promised array (it allocates first, then finds the data short).
    Uncompressed files need no check: nibabel maps them, and a short file fails unallocated."""
    if not path.name.lower().endswith(".gz"):
        return
    promised = math.prod(shape) * img.header.get_data_dtype().itemsize
    size = path.stat().st_size
    if promised > size * MAX_DEFLATE_RATIO:
        raise InputError(
            f"not a readable NIfTI file (the file is truncated: its header promises "
            f"{promised:,} bytes of data, more than a {size:,}-byte gzip file can hold)",
            path,
        )


def _why(exc: Exception) -> str:
    """A short reason for a failed NIfTI read (the library's messages are long or cryptic)."""
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncat" in text or "buffer is smaller" in text:
        return "the file is truncated"
    if isinstance(exc, gzip.BadGzipFile) or "not a gzip" in text:
        return "not gzip-compressed data, though named .gz"
    if "cannot work out file type" in text:
        return "no NIfTI header found: wrong magic bytes, or another format"
    return exc.__class__.__name__


def _raw_zooms(path: Path, img, ndim: int) -> tuple[float, ...]:
    """Voxel sizes as stored: nibabel silently replaces zero/negative pixdim when loading."""
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as fh:
            raw = type(img.header).from_fileobj(fh, check=False)
        return tuple(float(z) for z in raw["pixdim"][1 : 1 + ndim])
    except Exception as exc:
        raise InputError(f"not a readable NIfTI file ({_why(exc)})", path) from exc


def axis_for_plane(affine: np.ndarray, plane: str) -> int | None:
    """The voxel axis whose world direction is normal to `plane` ("axial" -> S/I), or None."""
    import nibabel as nib

    if plane not in PLANE_CODES:
        raise ConfigError(f"unknown slicing plane {plane!r} (axial, coronal or sagittal)")
    codes = nib.aff2axcodes(affine)
    for axis, code in enumerate(codes):
        if code in PLANE_CODES[plane]:
            return axis
    return None
