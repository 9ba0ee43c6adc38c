"""The trust statistics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesr.evaluation.uncertainty import (
    band_ratio_mean,
    calibration,
    lr_consistency,
    mean_finite,
    seed_consistency,
)
from wavesr.model.degrade import Degradation, degrade


def test_seed_consistency() -> None:
    same = np.tile([20.0, 25.0, 31.0], (4, 1))  # 4 seeds, 3 slices, identical runs
    assert seed_consistency(same) == 0.0
    psnr = np.array([[20.0, 21.0], [22.0, 23.0]])  # each slice: 2 dB apart
    assert seed_consistency(psnr) == pytest.approx(math.sqrt(2))  # ddof 1: sqrt(2^2 / 2)
    assert seed_consistency(psnr, ddof=0) == pytest.approx(1.0)
    with_inf = np.array([[20.0, np.inf], [22.0, 30.0]])  # an exact match leaves its slice out
    assert seed_consistency(with_inf) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="n_seeds"):
        seed_consistency(np.ones((1, 3)))


def test_calibration_is_spearman_of_std_and_error() -> None:
    std = np.array([[0.1, 0.2], [0.3, 0.4]])
    assert calibration(std, std**2) == pytest.approx(1.0)  # monotone: rank correlation 1
    assert calibration(std, -std) == pytest.approx(-1.0)
    # Ranks (1, 2, 3, 4) against (1, 3, 2, 4): 1 - 6 * 2 / (4 * 15) = 0.8.
    assert calibration([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert math.isnan(calibration(np.zeros(4), [1.0, 3.0, 2.0, 4.0]))  # all samples equal
    with pytest.raises(ValueError, match="shape"):
        calibration(np.ones(4), np.ones(5))


def test_lr_consistency_is_psnr_of_the_degraded_output() -> None:
    deg = Degradation("bicubic", 4)
    hr = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    lr, _ = degrade(hr, deg)
    assert lr_consistency(hr, lr, deg) == [math.inf, math.inf]  # HR explains its LR exactly
    flat = torch.full((1, 1, 16, 16), 0.5)  # degrades to 0.5 everywhere
    off = torch.full((1, 1, 4, 4), 0.6)  # MSE 0.01 -> 20 dB
    assert lr_consistency(flat, off, deg)[0] == pytest.approx(20.0)
    noisy = Degradation("bicubic", 4, noise_sigma=0.5)  # SR is degraded without noise
    assert lr_consistency(flat, off, noisy)[0] == pytest.approx(20.0)


def test_band_ratio_mean_and_mean_finite() -> None:
    ratios = [float(k) for k in range(1, 11)]
    assert band_ratio_mean(ratios) == 6.0  # bands 4..8: (4 + 5 + 6 + 7 + 8) / 5
    assert band_ratio_mean(ratios, 1, 2) == 1.5
    ratios[4] = None  # band 5 missing
    assert band_ratio_mean(ratios) == 6.25
    with pytest.raises(ValueError, match="do not exist"):
        band_ratio_mean(ratios, 8, 11)
    assert mean_finite([1.0, np.nan, np.inf, 3.0]) == 2.0
    assert math.isnan(mean_finite([np.nan]))
