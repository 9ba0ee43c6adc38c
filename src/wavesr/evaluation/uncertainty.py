"""How far one can trust a WaveSR output: statistics over samples, seeds and temperatures.

Seed consistency: how much a slice's PSNR moves when only the seed changes. LR consistency: how
well an output explains its own input (degrade it again, compare with the LR). Calibration: do
pixels where the samples disagree (high std) also hold the larger errors. Pure functions of
arrays; `wavesr.evaluation.uncertainty_eval` runs the model and feeds them (docs/uncertainty.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from wavesr.evaluation import metrics
from wavesr.model.degrade import Degradation, degrade

__all__ = [
    "band_ratio_mean",
    "calibration",
    "lr_consistency",
    "mean_finite",
    "seed_consistency",
]


def seed_consistency(psnr: np.ndarray, *, ddof: int = 1) -> float:
    """Mean over slices of the std over seeds of each slice's PSNR (dB).

    `psnr` is (n_seeds, n_slices); 0 means every seed scores the same on every slice. Slices
    with a non-finite PSNR (an exact match) are left out; nan if none is left.
    """
    p = np.asarray(psnr, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] <= ddof:
        raise ValueError(f"need (n_seeds > {ddof}, n_slices) PSNRs, got shape {p.shape}")
    finite = np.isfinite(p).all(axis=0)
    return mean_finite(p[:, finite].std(axis=0, ddof=ddof))


def lr_consistency(sr: Tensor, lr: Tensor, deg: Degradation) -> list[float]:
    """Per slice, the PSNR (dB, data range 1) of degrade(SR) against the LR input.

    `sr` (B, 1, H, W) and `lr` (B, 1, h, w) in [0, 1]. SR is degraded without noise (the
    input's own noise cannot be re-drawn), so with noisy LR even a perfect SR stays finite.
    """
    clean = replace(deg, noise_sigma=0.0)
    with torch.no_grad():
        again, _ = degrade(sr.float().clamp(0.0, 1.0), clean)
    again, lr = again[:, 0].cpu().numpy(), lr[:, 0].float().cpu().numpy()
    return [metrics.psnr(a, b) for a, b in zip(again, lr)]


def calibration(std: np.ndarray, error: np.ndarray) -> float:
    """Spearman rank correlation between a slice's per-pixel std and its absolute error.

    1: the error grows wherever the std does; 0: the std says nothing about where the errors
    are. nan when either map is constant (e.g. every sample equal at temperature 0).
    """
    from scipy.stats import spearmanr

    s = np.asarray(std, dtype=np.float64).ravel()
    e = np.asarray(error, dtype=np.float64).ravel()
    if s.shape != e.shape:
        raise ValueError(f"std and error differ in shape: {np.shape(std)}, {np.shape(error)}")
    if s.size < 2 or np.ptp(s) == 0 or np.ptp(e) == 0:
        return float("nan")
    return float(spearmanr(s, e).statistic)


def band_ratio_mean(ratios: Sequence[float | None], first: int = 4, last: int = 8) -> float:
    """Mean of the band energy ratios of bands `first`..`last` (1-based, both included).

    Bands 4-8 of 10 are where SR has to invent detail: bicubic is far below 1 there, noise and
    hallucinated texture push the ratio above 1. Missing (None / nan) bands are left out.
    """
    if not 1 <= first <= last <= len(ratios):
        raise ValueError(f"bands {first}..{last} do not exist in {len(ratios)} bands")
    values = [np.nan if v is None else float(v) for v in ratios[first - 1 : last]]
    return mean_finite(values)


def mean_finite(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the finite values; nan when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan
