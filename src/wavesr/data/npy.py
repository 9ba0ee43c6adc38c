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
    check_voxel_count(mm.shape, path)
    if mm.ndim not in (2, 3):
        raise InputError(f"expected a 2-D or 3-D array, got shape {mm.shape}", path)
    if not (np.issubdtype(mm.dtype, np.number) or mm.dtype == np.bool_):
        raise InputError(f"expected a numeric array, got dtype {mm.dtype}", path)
    if np.iscomplexobj(mm):
        raise InputError("complex arrays are not supported (take the magnitude first)", path)
    try:
        data = np.array(mm, dtype=np.float32)
    except Exception as exc:
        raise InputError(f"not a readable .npy file ({reason(exc)})", path) from exc
    check_finite(data, path)
    return data
