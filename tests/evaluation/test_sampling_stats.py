"""Welford's running moments against hand-computed values and numpy on stacked samples."""

from __future__ import annotations

import numpy as np
import pytest

from wavesr.evaluation.sampling_stats import RunningMoments


def _moments(samples) -> RunningMoments:
    moments = RunningMoments()
    for x in samples:
        moments.update(x)
    return moments


def test_hand_computed_mean_and_std() -> None:
    # Per element: (0, 2, 4) -> mean 2, M2 = 4 + 0 + 4 = 8; (1, 1, 1) -> mean 1, M2 = 0.
    m = _moments([np.array([0.0, 1.0]), np.array([2.0, 1.0]), np.array([4.0, 1.0])])
    assert m.count == 3
    np.testing.assert_array_equal(m.mean, [2.0, 1.0])
    np.testing.assert_allclose(m.variance(), [8 / 3, 0.0])
    np.testing.assert_allclose(m.std(ddof=1), [2.0, 0.0])


def test_equals_numpy_on_stacked_samples() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(5.0, 2.0, size=(7, 3, 4, 5)).astype(np.float32)
    m = _moments(samples)
    np.testing.assert_allclose(m.mean, samples.mean(axis=0, dtype=np.float64), rtol=1e-12)
    for ddof in (0, 1):
        expected = samples.astype(np.float64).std(axis=0, ddof=ddof)
        np.testing.assert_allclose(m.std(ddof), expected, rtol=1e-10)


def test_identical_samples_have_exactly_zero_spread() -> None:
    x = np.array([[0.1, 0.7], [1e6, -3.3]], dtype=np.float32)
    m = _moments([x] * 5)
    assert np.all(m.std(ddof=1) == 0.0)
    np.testing.assert_array_equal(m.mean, x.astype(np.float64))


def test_stable_far_from_zero() -> None:
    """sum(x^2) / n - mean^2 loses everything here; Welford keeps the variance of 1e-2."""
    samples = 1e8 + np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    m = _moments(samples[:, None])
    assert m.variance(ddof=0)[0] == pytest.approx(0.02, rel=1e-6)


def test_one_sample_and_misuse() -> None:
    m = RunningMoments()
    with pytest.raises(ValueError, match="no samples"):
        _ = m.mean
    m.update(np.ones((2, 2)))
    np.testing.assert_array_equal(m.std(), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="ddof=1"):
        m.std(ddof=1)
    with pytest.raises(ValueError, match="shape"):
        m.update(np.ones(3))
