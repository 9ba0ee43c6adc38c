"""The slice stack every reader returns, plus small validation helpers shared by the readers."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavesr.errors import InputError

# Voxels an input's header may promise (2**28: 1 GiB as float32, e.g. 512 x 512 x 1024); larger
# headers are refused before any data are read. `--max-voxels` raises it (`voxel_limit`).
MAX_VOXELS = 2**28
_max_voxels: ContextVar[int] = ContextVar("max_voxels", default=MAX_VOXELS)
# Deflate (gzip, HDF5's gzip filter) packs at most 1032 bytes into one: a compressed file of n
# bytes cannot hold more than 1032 n bytes of data, whatever its header says.
MAX_DEFLATE_RATIO = 1032
MIN_SLICE_SIZE = 8


@dataclass
class SliceStack:
    """2-D slices of one input, normalised to [0, 1], with what is needed to write them back."""

    slices: np.ndarray  # (N, H, W) float32 in [0, 1]
    source: Path
    kind: str  # "nifti" | "dicom" | "hdf5" | "image" | "npy"
    indices: list[int]  # index of each kept slice in the original stack
    affine: np.ndarray | None  # 4x4 voxel->world (RAS) of the original volume
    slice_axis: int | None  # volume axis the slices were taken along
    volume_shape: tuple[int, ...] | None  # original 3-D volume shape
    normalization: dict = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.slices.shape[0])


def reason(exc: BaseException, limit: int = 120) -> str:
    """`ExcClass: first line of its message`, shortened: the cause, fit for a one-line error."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def missing_error(path: Path, what: str = "file or folder") -> InputError:
    """The error for a path that does not exist; a broken symlink (or loop) says so."""
    if path.is_symlink():
        return InputError("broken symbolic link (its target is missing, or the links loop)", path)
    return InputError(f"no such {what}", path)


def require_file(path: Path) -> None:
    """Raise InputError unless `path` is an existing, non-empty regular file."""
    if not path.exists():
        raise missing_error(path, "file")
    if not path.is_file():
        raise InputError("not a regular file", path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path)


@contextmanager
def voxel_limit(limit: int | None) -> Iterator[None]:
    """Within the block, inputs may promise up to ``limit`` voxels (None: the default)."""
    token = _max_voxels.set(MAX_VOXELS if limit is None else int(limit))
    try:
        yield
    finally:
        _max_voxels.reset(token)


def check_voxel_count(shape: Sequence[int], path: Path) -> None:
    """Reject headers that claim an absurd size before any data is read."""
    if any(int(n) < 0 for n in shape):
        raise InputError(f"header claims a negative dimension {tuple(shape)}", path)
    total = math.prod(int(n) for n in shape)
    limit = _max_voxels.get()
    if total > limit:
        raise InputError(
            f"header claims {tuple(int(n) for n in shape)} = {total:,} voxels, above the limit "
            f"of {limit:,} (--max-voxels N allows more)",
            path,
        )


def check_finite(array: np.ndarray, path: Path) -> None:
    """Raise InputError if `array` holds NaN or infinite values."""
    if not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"data holds {bad} NaN/infinite values", path)


def check_slice_size(height: int, width: int, path: Path) -> None:
    """Raise InputError for slices smaller than 8x8 pixels."""
    if height < MIN_SLICE_SIZE or width < MIN_SLICE_SIZE:
        raise InputError(
            f"slices are {height}x{width}, smaller than the minimum "
            f"{MIN_SLICE_SIZE}x{MIN_SLICE_SIZE}",
            path,
        )
