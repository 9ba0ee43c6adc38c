"""fastMRI HDF5 files: the "reconstruction_rss" dataset, shaped (slices, H, W)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wavesr.data.types import (
    MAX_DEFLATE_RATIO,
    check_finite,
    check_voxel_count,
    reason,
    require_file,
)
from wavesr.errors import InputError

DATASET = "reconstruction_rss"


def read_hdf5(path: Path) -> np.ndarray:
    """Return the (N, H, W) float32 root-sum-of-squares reconstruction of a fastMRI file."""
    import h5py

    require_file(path)
    try:
        fh = h5py.File(path, "r")
    except Exception as exc:
        raise InputError(f"not a readable HDF5 file ({reason(exc)})", path) from exc
    try:
        with fh:
            data = _read_dataset(fh, path)
    except InputError:
        raise
    except Exception as exc:  # damaged files fail deep inside the HDF5 library
        raise InputError(f"corrupt HDF5 file ({reason(exc)})", path) from exc
    if data.ndim == 2:
        data = data[None]
    check_finite(data, path)
    return data


def _read_dataset(fh, path: Path) -> np.ndarray:
    import h5py

    if DATASET not in fh:
        keys = ", ".join(sorted(fh.keys())) or "none"
        raise InputError(f'HDF5 file has no "{DATASET}" dataset (keys: {keys})', path)
    dset = fh[DATASET]
    if not isinstance(dset, h5py.Dataset):
        raise InputError(f'"{DATASET}" is a group, not a dataset', path)
    shape = tuple(int(n) for n in dset.shape)
    check_voxel_count(shape, path)
    if len(shape) not in (2, 3):
        raise InputError(f'"{DATASET}" must be (slices, H, W), got shape {shape}', path)
    if not (np.issubdtype(dset.dtype, np.number) or dset.dtype == np.bool_):
        raise InputError(f'"{DATASET}" must hold numbers, got dtype {dset.dtype}', path)
    if np.iscomplexobj(np.empty(0, dset.dtype)):
        raise InputError(f'"{DATASET}" is complex; expected magnitude images', path)
    _check_stored_size(dset, shape, path)
    return np.asarray(dset[()], dtype=np.float32)


def _check_stored_size(dset, shape: tuple[int, ...], path: Path) -> None:
    """A dataset must store what its shape promises: HDF5 fills unwritten storage with a fill
    value, so a tiny file could otherwise make a huge array."""
    promised = math.prod(shape) * dset.dtype.itemsize
    stored = dset.id.get_storage_size()
    filters = dset.compression
    short = (not filters and stored < promised) or (
        filters == "gzip" and promised > stored * MAX_DEFLATE_RATIO
    )
    if short and dset.external is None:
        raise InputError(
            f'"{DATASET}" promises {shape} ({promised:,} bytes) but the file stores '
            f"{stored:,} bytes of it",
            path,
        )
