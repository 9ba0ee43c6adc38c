"""Geometric self-ensemble (test-time augmentation) for through-plane row upsamplers.

EDSR+ (Lim et al. 2017) and BasicSR run a model on flipped and rotated copies of the input, undo
each transform on the output and average: a regression model's errors under the symmetries of
the problem are partly independent, so the mean is closer to the truth. Through-plane SR has
fewer symmetries than in-plane SR: only the rows (the thick axis) were degraded, so a transpose
would hand the model a slice degraded along its columns. The valid transforms are the four flips
(none, rows, columns, both). A flip keeps the voxel-cell geometry of `through_plane`: LR row i
covers HR rows i*s .. i*s+s-1, so reversing both grids maps cells onto cells (and an even row
count keeps the Haar pairs of the DWT).
"""

from __future__ import annotations

import numpy as np

from wavesr.errors import ConfigError
from wavesr.tasks.through_plane.reformat import RowUpsample

# (flip rows, flip columns) of (N, H, W) slices, in the order they are run.
FLIPS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))
ENSEMBLE_SIZES = (1, 2, 4)


def flip_slices(slices: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    """`slices` (N, H, W) reversed along rows and/or columns (its own inverse), contiguous."""
    axes = tuple(a for a, flip in ((1, rows), (2, cols)) if flip)
    return np.ascontiguousarray(np.flip(slices, axis=axes) if axes else slices)


def check_ensemble_size(size: int) -> int:
    """`size` if it is a supported number of flips (1: off, 2: + rows, 4: all), else ConfigError."""
    is_int = isinstance(size, int | np.integer) and not isinstance(size, bool)
    if not is_int or size not in ENSEMBLE_SIZES:
        sizes = ", ".join(map(str, ENSEMBLE_SIZES))
        raise ConfigError(f"--self-ensemble must be one of {sizes}, got {size!r}")
    return int(size)


def flip_ensemble(upsample: RowUpsample, size: int = 4) -> RowUpsample:
    """A `RowUpsample` that runs `upsample` on the first `size` flips of `FLIPS`, flips each
    result back and returns their mean (float32). `size` 1 returns `upsample` itself."""
    size = check_ensemble_size(size)
    if size == 1:
        return upsample

    def run(slices: np.ndarray) -> np.ndarray:
        total = None
        for rows, cols in FLIPS[:size]:
            up = np.asarray(upsample(flip_slices(slices, rows, cols)), dtype=np.float32)
            back = flip_slices(up, rows, cols)
            total = back.copy() if total is None else total + back
        return total / np.float32(size)

    return run
