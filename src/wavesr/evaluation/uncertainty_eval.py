"""`--uncertainty-samples N` of `wavesr evaluate` and `wavesr benchmark`: how far the wavesr
method's outputs can be trusted, on the evaluated slices (docs/uncertainty.md).

One pass over the slices, batch by batch, runs the model at every setting:
- N seeds (seed, seed + 1, ...) at the model's temperature and at temperature 1: the std over
  seeds of each slice's PSNR (seed consistency); at the model's temperature the N samples' mean
  and per-pixel std too (calibration: Spearman of std against |mean - HR| per slice);
- one sample (the first seed) at each of `TEMPERATURES` and the mean of the N samples: PSNR,
  SSIM, FID, band energy ratio and LR consistency (PSNR of degrade(SR) against the LR input, with
  the model's back-projection and without), the points of the perception-distortion plot.
The samples are summed on the fly (`RunningMoments`): memory does not grow with N.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from wavesr.data.prepare import select_evenly
from wavesr.evaluation import metrics, uncertainty
from wavesr.evaluation.sampling_stats import STD_DDOF, RunningMoments
from wavesr.evaluation.shared import (
    MIN_UNCERTAINTY_SAMPLES,
    N_BANDS,
    EvalSettings,
    EvalSlice,
    FIDTracker,
    _batches,
    _degrade_batch,
    json_number,
)
from wavesr.model.degrade import Degradation, back_project

__all__ = [
    "ENERGY_BANDS",
    "MAP_SLICES",
    "MIN_SAMPLES",
    "REFERENCE_METHODS",
    "TEMPERATURES",
    "SliceMaps",
    "UncertaintyResult",
    "measure_uncertainty",
    "reference_points",
]

MIN_SAMPLES = MIN_UNCERTAINTY_SAMPLES  # fewer seeds say little about a spread
TEMPERATURES = (0.0, 0.5, 1.0)
ENERGY_BANDS = (4, 8)  # the band energy ratio of the plot: mean over bands 4..8 of 10
MAP_SLICES = 3  # slices of the error-beside-std figure
REFERENCE_METHODS = ("bicubic", "edsr")  # drawn beside WaveSR's points when evaluated


@dataclass
class SliceMaps:
    """One slice of the error-beside-std figure (all in [0, 1] units)."""

    label: str
    hr: np.ndarray
    mean: np.ndarray
    std: np.ndarray


@dataclass
class UncertaintyResult:
    doc: dict  # metrics.json's "uncertainty"
    maps: list[SliceMaps]  # MAP_SLICES evenly spaced slices
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # mean, std


class _Row:
    """Per-slice scores of one perception-distortion setting."""

    def __init__(self, n: int) -> None:
        self.psnr, self.ssim = np.zeros(n), np.zeros(n)
        self.lr_psnr, self.lr_psnr_no_bp = np.zeros(n), np.zeros(n)
        self.sr_energy, self.hr_energy = np.zeros((n, N_BANDS)), np.zeros((n, N_BANDS))
        self.fid_images: list[tuple[np.ndarray, np.ndarray]] = []  # (HR, SR) of the FID subset

    def add(
        self,
        idx: Sequence[int],
        sr: np.ndarray,
        hr: np.ndarray,
        lr_psnr: Sequence[float],
        lr_psnr_no_bp: Sequence[float],
        fid_subset: Collection[int],
    ) -> None:
        for k, j in enumerate(idx):
            self.psnr[j] = metrics.psnr(sr[k], hr[k])
            self.ssim[j] = metrics.ssim(sr[k], hr[k])
            self.sr_energy[j] = metrics.band_energy(sr[k], n_bands=N_BANDS)
            self.hr_energy[j] = metrics.band_energy(hr[k], n_bands=N_BANDS)
            self.lr_psnr[j], self.lr_psnr_no_bp[j] = lr_psnr[k], lr_psnr_no_bp[k]
            if j in fid_subset:
                self.fid_images.append((hr[k].copy(), sr[k].copy()))

    def entry(self, setting: str, temperature: float, samples: int, fid: FIDTracker) -> dict:
        ratio = metrics.energy_ratio(self.sr_energy, self.hr_energy)
        fid_value, fid_note = _fid(fid, self.fid_images)
        return {
            "setting": setting,
            "temperature": temperature,
            "samples": samples,
            "psnr": json_number(self.psnr.mean()),
            "ssim": json_number(self.ssim.mean()),
            "fid": None if fid_value is None else json_number(fid_value),
            "fid_note": fid_note,
            "band_energy_ratio": [json_number(v) for v in ratio],
            "energy_b4_b8": json_number(uncertainty.band_ratio_mean(ratio, *ENERGY_BANDS)),
            "lr_psnr": json_number(uncertainty.mean_finite(self.lr_psnr)),
            "lr_psnr_no_bp": json_number(uncertainty.mean_finite(self.lr_psnr_no_bp)),
        }


def _fid(fid: FIDTracker, images: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float | None, str]:
    """FID of one setting's kept SR slices against the HR set (features computed once)."""
    if fid.metric is None:
        return None, f"FID not computed: {fid.reason}"
    fid.start()
    for hr, sr in images:  # one at a time: the slices may differ in size
        fid.update(torch.from_numpy(hr)[None, None], torch.from_numpy(sr)[None, None], [True])
    return fid.finish()


def _setting(temperature: float, samples: int = 1) -> str:
    if samples == 1:
        return f"temperature {temperature:g}"
    return f"mean of {samples} (temperature {temperature:g})"


def measure_uncertainty(
    method,
    slices: Sequence[EvalSlice],
    deg: Degradation,
    settings: EvalSettings,
    fid: FIDTracker,
    *,
    samples: int,
    temperatures: Sequence[float] = TEMPERATURES,
    keep: Collection[int] = (),
    labels: Sequence[str] | None = None,
    progress: bool = True,
) -> UncertaintyResult:
    """Run the `wavesr` method's pipeline over `slices` at every setting and measure.

    `method` is the built wavesr method (its pipeline, steps, temperature, back-projection and
    degradation); `fid` already holds the HR features when FID is on. The mean and std of the
    `keep` slices are returned for the slice viewer; `labels` name the slices of the figure.
    """
    if samples < MIN_SAMPLES:
        raise ValueError(f"--uncertainty-samples needs at least {MIN_SAMPLES}, got {samples}")
    started = time.perf_counter()
    pipe, t_model = method.pipeline, float(method.temperature)
    steps, k_bp = method.steps, int(method.consistency_steps)
    bp_deg = pipe.input_degradation(method.degradation)
    seeds = [settings.seed + k for k in range(samples)]
    counts = {float(t): 1 for t in temperatures} | {t_model: samples, 1.0: samples}
    n = len(slices)
    fid_subset = set()
    if fid.metric is not None:
        fid_subset = set(select_evenly(n, settings.fid_slices if settings.fid_slices > 0 else None))
    rows = {t: _Row(n) for t in sorted(counts)}
    mean_row = _Row(n)
    seed_psnr = {t: np.zeros((samples, n)) for t in (t_model, 1.0)}
    spearman = np.full(n, np.nan)
    map_idx = set(select_evenly(n, MAP_SLICES))
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    device = torch.device(settings.device)
    bar = tqdm(
        total=n * sum(counts.values()),
        desc="wavesr uncertainty",
        unit="sample",
        disable=not progress,
        leave=False,
    )
    with torch.no_grad():
        for idx in _batches(slices, settings.batch):
            lr, _, hr = (t.to(device) for t in _degrade_batch([slices[j] for j in idx], deg))
            lr_up = pipe.to_hr_grid(lr, method.degradation)
            hr_np = hr[:, 0].cpu().numpy()
            for t in rows:
                moments = (RunningMoments(), RunningMoments()) if t == t_model else None
                for k in range(counts[t]):
                    raw = pipe(
                        lr_up,
                        steps=steps,
                        seed=seeds[k],
                        temperature=t,
                        consistency_steps=0,
                        degradation=bp_deg,
                    )
                    sr = back_project(raw, lr_up, bp_deg, k_bp)  # what the pipeline returns
                    sr_np = sr[:, 0].float().cpu().numpy()
                    if t in seed_psnr:
                        seed_psnr[t][k, idx] = [metrics.psnr(a, b) for a, b in zip(sr_np, hr_np)]
                    if k == 0:
                        lr_out = uncertainty.lr_consistency(sr, lr, deg)
                        lr_raw = uncertainty.lr_consistency(raw, lr, deg)
                        rows[t].add(idx, sr_np, hr_np, lr_out, lr_raw, fid_subset)
                    if moments is not None:
                        moments[0].update(sr_np)
                        moments[1].update(raw[:, 0].float().cpu().numpy())
                    bar.update(len(idx))
                if moments is None:
                    continue
                mean = moments[0].mean.astype(np.float32)
                std = moments[0].std(STD_DDOF).astype(np.float32)
                raw_mean = torch.from_numpy(moments[1].mean.astype(np.float32))[:, None]
                lr_out = uncertainty.lr_consistency(torch.from_numpy(mean)[:, None], lr, deg)
                lr_raw = uncertainty.lr_consistency(raw_mean, lr, deg)
                mean_row.add(idx, mean, hr_np, lr_out, lr_raw, fid_subset)
                for k, j in enumerate(idx):
                    spearman[j] = uncertainty.calibration(std[k], np.abs(mean[k] - hr_np[k]))
                    if j in keep or j in map_idx:
                        kept[j] = (mean[k].copy(), std[k].copy())
    bar.close()
    points = [rows[t].entry(_setting(t), t, 1, fid) for t in rows]
    points.append(mean_row.entry(_setting(t_model, samples), t_model, samples, fid))
    defined = np.isfinite(spearman)
    doc = {
        "method": "wavesr",
        "samples": samples,
        "seeds": seeds,
        "temperature": t_model,
        "consistency_steps": k_bp,
        "std_ddof": STD_DDOF,
        "energy_bands": list(ENERGY_BANDS),
        "seed_consistency": [
            {
                "temperature": t,
                "seeds": samples,
                "psnr_std": json_number(uncertainty.seed_consistency(p)),
                "psnr": json_number(uncertainty.mean_finite(p)),
            }
            for t, p in seed_psnr.items()
        ],
        "calibration": {
            "temperature": t_model,
            "samples": samples,
            "spearman": json_number(uncertainty.mean_finite(spearman)),
            "n_slices": int(defined.sum()),
            "n_undefined": int((~defined).sum()),
        },
        "perception_distortion": points,
        "seconds": time.perf_counter() - started,
    }
    names = labels or [s.name for s in slices]
    maps = [SliceMaps(names[j], slices[j].hr, *kept[j]) for j in sorted(map_idx)]
    return UncertaintyResult(doc, maps, {j: kept[j] for j in keep if j in kept})


def reference_points(methods: dict) -> dict:
    """PSNR, SSIM, FID and mean band energy ratio of `REFERENCE_METHODS` that were evaluated."""
    return {
        name: {
            "psnr": m["psnr"],
            "ssim": m["ssim"],
            "fid": m["fid"],
            "energy_b4_b8": json_number(
                uncertainty.band_ratio_mean(m["band_energy_ratio"], *ENERGY_BANDS)
            ),
        }
        for name, m in methods.items()
        if name in REFERENCE_METHODS
    }
