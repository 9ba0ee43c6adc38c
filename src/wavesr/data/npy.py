"""NumPy .npy arrays: 2-D (one slice) or 3-D (N, H, W)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wavesr.data.types import check_finite, check_voxel_count, reason, require_file
from wavesr.errors import InputError


def read_npy(path: Path) -> np.ndarray:
    """Return a 2-D or 3-D float32 array; pickled object arrays are refused."""
    require_file(path)
    try:
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        if "python objects" in str(exc).lower() or "allow_pickle" in str(exc):
            raise InputError(
                "not a readable .npy file: it holds Python objects, and loading them needs "
                "pickle, which is refused (it could run arbitrary code)",
                path,
            ) from exc
        raise InputError(f"not a readable .npy file ({reason(exc)})", path) from exc
    if not isinstance(mm, np.ndarray):
        raise InputError("expected a single array (.npy), not an archive", path)
    check_slice_array(mm, path)
    try:
        data = np.array(mm, dtype=np.float32)
    except Exception as exc:
        raise InputError(f"not a readable .npy file ({reason(exc)})", path) from exc
    check_finite(data, path)
    return data


def check_slice_array(array: np.ndarray, path: Path | None = None) -> None:
    """Raise InputError unless `array` is a 2-D or 3-D real array of a sane size (errors name
    `path` when given)."""
    check_voxel_count(array.shape, path)
    if array.ndim not in (2, 3):
        raise InputError(f"expected a 2-D or 3-D array, got shape {array.shape}", path)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputError(f"expected a numeric array, got dtype {array.dtype}", path)
    if np.iscomplexobj(array):
        raise InputError("complex arrays are not supported (take the magnitude first)", path)
