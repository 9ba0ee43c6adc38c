"""Per-voxel mean and standard deviation of samples seen one at a time (Welford's algorithm).

`wavesr sr --samples N` keeps one `RunningMoments` per batch of slices instead of N outputs, so
its memory is that of one sample plus two running arrays, whatever N.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STD_DDOF", "RunningMoments"]

STD_DDOF = 1  # wavesr's std maps: the unbiased estimate from the samples (M2 / (n - 1))


class RunningMoments:
    """Element-wise mean and variance of equally shaped arrays, updated one array at a time.

    Welford (1962): for the n-th sample x, delta = x - mean, mean += delta / n,
    M2 += delta * (x - mean), the variance being M2 / (n - ddof). Unlike
    sum(x^2) / n - mean^2 it does not cancel catastrophically, and identical samples give a
    variance of exactly 0.
    """

    def __init__(self, dtype: np.dtype | type = np.float64) -> None:
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None  # allocated at the second sample

    def update(self, x: np.ndarray) -> None:
        """Add one sample."""
        x = np.asarray(x, dtype=self.dtype)
        if self._mean is None:
            self._mean = x.copy()
            self.count = 1
            return
        if x.shape != self._mean.shape:
            raise ValueError(f"sample shape {x.shape} differs from {self._mean.shape}")
        if self._m2 is None:
            self._m2 = np.zeros_like(self._mean)
        self.count += 1
        delta = x - self._mean
        self._mean += delta / self.count
        delta *= x - self._mean
        self._m2 += delta

    @property
    def mean(self) -> np.ndarray:
        if self._mean is None:
            raise ValueError("no samples yet")
        return self._mean

    def variance(self, ddof: int = 0) -> np.ndarray:
        """M2 / (n - ddof): ddof 0 is the samples' own variance, 1 the unbiased estimate."""
        if self.count <= ddof:
            raise ValueError(f"the variance with ddof={ddof} needs more than {ddof} samples")
        if self._m2 is None:  # one sample, ddof 0
            return np.zeros_like(self.mean)
        return self._m2 / (self.count - ddof)

    def std(self, ddof: int = 0) -> np.ndarray:
        return np.sqrt(self.variance(ddof))
