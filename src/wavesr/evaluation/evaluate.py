"""`wavesr evaluate`: run SR methods on the same degraded slices and measure them.

For every slice of every DATA argument: HR = the normalised slice (per-slice min-max), reduced
to the working size with `prepare_slice` and cropped to a multiple of the scale; LR, LR-up =
degrade(HR) with a per-slice seed (the same LR for every method). Each method maps
(LR, LR-up, HR-for-oracles) to SR on the HR grid; PSNR, SSIM and band PSNR compare clamp(SR)
with HR (data range 1), the band energy ratio compares their spectra (energies summed over the
slices, then divided), FID compares the SR set with the HR set.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from wavesr.data.load import find_inputs, load_slices
from wavesr.data.prepare import prepare_slice, select_evenly
from wavesr.errors import ConfigError, OutputError
from wavesr.evaluation import metrics
from wavesr.evaluation.methods import MethodContext, SRMethod, build_method
from wavesr.evaluation.shared import (
    N_BANDS,
    EvalSettings,
    EvalSlice,
    FIDTracker,
    _batches,
    _degrade_batch,
    json_number,
)
from wavesr.io_atomic import atomic_write
from wavesr.model.degrade import Degradation
from wavesr.report import html, machine_info, viewer
from wavesr.report.markdown import (  # re-exported: they used to live here
    ENERGY_NOTE,
    band_table,
    energy_table,
    report_header,
)
from wavesr.report.markdown import evaluate_markdown as render_report
from wavesr.runtime import resolve_device

__all__ = [
    "ENERGY_NOTE",
    "EvalResult",
    "EvalSet",
    "EvalSettings",
    "EvalSlice",
    "FIDTracker",
    "MethodRun",
    "add_report_panels",
    "band_table",
    "check_report_slices",
    "dataset_entry",
    "energy_table",
    "evaluate",
    "flatten_slices",
    "json_number",
    "load_eval_sets",
    "method_entry",
    "per_slice_csv",
    "render_report",
    "report_frames",
    "report_header",
    "report_indices",
    "report_viewer",
    "run_method",
    "select_evenly",
    "size_counts",
    "write_files",
    "write_outputs",
]

SSIM_BORDER = 5  # metrics.ssim leaves the SSIM map's outer 5 pixels out
REPORT_HTML = "report.html"
# The uncertainty figures (--uncertainty-samples), by role, and their file names.
UNCERTAINTY_FIGURES = {
    "perception_distortion": "perception_distortion.png",
    "maps": "uncertainty_maps.png",
}
REPORT_SLICES = 64  # slices report.html shows by default, evenly spaced


# ----------------------------------------------------------------------------- data


@dataclass
class EvalSet:
    """The evaluation slices of one DATA argument (HR, prepared, float32 in [0, 1])."""

    name: str
    path: Path
    slice_names: list[str]
    hr: list[np.ndarray]
    n_available: int

    def __len__(self) -> int:
        return len(self.hr)


def dataset_names(paths: Sequence[Path]) -> list[str]:
    """A short unique label per DATA argument: its folder or file name."""
    names: list[str] = []
    for path in paths:
        base = path.name or path.resolve().name or str(path)
        name, n = base, 2
        while name in names:
            name, n = f"{base}#{n}", n + 1
        names.append(name)
    return names


def _slice_label(root: Path, unit: Path, name: str) -> str:
    """Slice names relative to the DATA argument, so two sub-folders cannot collide."""
    if unit == root:
        return name
    rel = unit.relative_to(root) if root.is_dir() else Path(unit.name)
    prefix = rel.parent if unit.is_file() else rel
    return name if prefix == Path(".") else f"{prefix.as_posix()}/{name}"


def load_eval_set(path: Path, name: str, settings: EvalSettings) -> EvalSet:
    images: list[np.ndarray] = []
    labels: list[str] = []
    for unit in find_inputs([path]):
        stack = load_slices(unit)
        images.extend(stack.slices)
        labels.extend(_slice_label(path, unit, n) for n in stack.names)
    keep = select_evenly(len(images), settings.max_slices)
    hr = [prepare_slice(images[i], settings.size, settings.resize, settings.scale) for i in keep]
    return EvalSet(name, path, [labels[i] for i in keep], hr, n_available=len(images))


def load_eval_sets(paths: Sequence[Path], settings: EvalSettings) -> list[EvalSet]:
    paths = [Path(p) for p in paths]
    return [load_eval_set(p, n, settings) for p, n in zip(paths, dataset_names(paths))]


# ----------------------------------------------------------------------------- running


def flatten_slices(sets: Sequence[EvalSet], seed: int) -> list[EvalSlice]:
    out = []
    for d, s in enumerate(sets):
        for name, hr in zip(s.slice_names, s.hr):
            out.append(EvalSlice(d, name, hr, seed * 1_000_003 + len(out)))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class MethodRun:
    """Per-slice metrics and costs of one method."""

    name: str
    psnr: np.ndarray
    ssim: np.ndarray
    bands: np.ndarray  # (n, N_BANDS)
    sr_energy: np.ndarray  # (n, N_BANDS) spectral energy per band of the clamped SR
    hr_energy: np.ndarray  # (n, N_BANDS) the same of HR
    sr_seconds: float
    params: int | None
    flops: int | None
    flops_size: tuple[int, int] | None
    fid: float | None
    fid_note: str
    info: dict = field(default_factory=dict)
    total_seconds: float = 0.0
    outputs: dict[int, np.ndarray] = field(default_factory=dict)  # clamped SR of `keep` slices
    psnr_head: np.ndarray | None = None  # inside the HR's head mask (`metrics.head_mask`)
    ssim_head: np.ndarray | None = None


def run_method(
    name: str,
    method: SRMethod,
    slices: Sequence[EvalSlice],
    deg: Degradation,
    settings: EvalSettings,
    fid: FIDTracker,
    *,
    progress: bool = True,
    keep: Collection[int] = (),
) -> MethodRun:
    """Run `method` on every slice and measure it; SR images of the `keep` indices are kept."""
    start_all = time.perf_counter()
    device = torch.device(settings.device)
    n = len(slices)
    psnr, ssim = np.zeros(n), np.zeros(n)
    psnr_head, ssim_head = np.zeros(n), np.zeros(n)
    bands = np.zeros((n, N_BANDS))
    sr_energy, hr_energy = np.zeros((n, N_BANDS)), np.zeros((n, N_BANDS))
    net = method.network()
    params = metrics.count_parameters(net) if net is not None else None
    flops, flops_size, seconds = None, None, 0.0
    fid.start()
    fid_subset = set(select_evenly(n, settings.fid_slices if settings.fid_slices > 0 else None))
    outputs: dict[int, np.ndarray] = {}
    bar = tqdm(total=n, desc=name, unit="slice", disable=not progress, leave=False)
    with torch.no_grad():
        for i, idx in enumerate(_batches(slices, settings.batch)):
            lr, lr_up, hr = _degrade_batch([slices[j] for j in idx], deg)
            lr, lr_up, hr = lr.to(device), lr_up.to(device), hr.to(device)
            if i == 0:  # the FLOP count is also the untimed warm-up call
                call = method.flops_call(lr_up[:1])
                if call is not None:
                    flops = metrics.flops_per_call(call)
                    flops_size = (int(hr.shape[-2]), int(hr.shape[-1]))
            _sync(device)
            t0 = time.perf_counter()
            sr = method(lr, lr_up, hr)
            _sync(device)
            seconds += time.perf_counter() - t0
            if not isinstance(sr, Tensor) or sr.shape != hr.shape:
                got = tuple(sr.shape) if isinstance(sr, Tensor) else type(sr).__name__
                raise ValueError(f"method {name} returned {got}, expected {tuple(hr.shape)}")
            sr = sr.to(device=device, dtype=torch.float32).clamp(0.0, 1.0)
            fid.update(hr, sr, [j in fid_subset for j in idx])
            sr_np, hr_np = sr[:, 0].cpu().numpy(), hr[:, 0].cpu().numpy()
            for k, j in enumerate(idx):
                psnr[j] = metrics.psnr(sr_np[k], hr_np[k])
                ssim[j] = metrics.ssim(sr_np[k], hr_np[k])
                psnr_head[j], ssim_head[j] = head_scores(sr_np[k], hr_np[k])
                bands[j] = metrics.band_psnr(sr_np[k], hr_np[k], n_bands=N_BANDS)
                sr_energy[j] = metrics.band_energy(sr_np[k], n_bands=N_BANDS)
                hr_energy[j] = metrics.band_energy(hr_np[k], n_bands=N_BANDS)
                if j in keep:
                    outputs[j] = sr_np[k].copy()
            bar.update(len(idx))
    bar.close()
    fid_value, fid_note = fid.finish()
    return MethodRun(
        name=name,
        psnr=psnr,
        ssim=ssim,
        bands=bands,
        sr_energy=sr_energy,
        hr_energy=hr_energy,
        sr_seconds=seconds,
        params=params,
        flops=flops,
        flops_size=flops_size,
        fid=fid_value,
        fid_note=fid_note,
        info=dict(getattr(method, "info", {}) or {}),
        total_seconds=time.perf_counter() - start_all,
        outputs=outputs,
        psnr_head=psnr_head,
        ssim_head=ssim_head,
    )


def head_scores(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM inside the HR slice's head mask (`metrics.head_mask`); NaN where the mask
    leaves SSIM nothing (a head only within 5 pixels of the border)."""
    mask = metrics.head_mask(hr)
    inner = mask[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER]
    ssim = metrics.ssim(sr, hr, mask=mask) if inner.any() else math.nan
    return metrics.psnr(sr, hr, mask=mask), ssim


# ----------------------------------------------------------------------------- report.html


def check_report_slices(report_slices: int) -> None:
    if report_slices < 0:
        raise ConfigError(f"--report-slices must be at least 1, got {report_slices}")


def report_indices(n: int, report_slices: int) -> list[int]:
    """The slices report.html shows: `report_slices` of the `n`, evenly spaced (0: none)."""
    return select_evenly(n, report_slices) if report_slices > 0 else []


def report_frames(
    slices: Sequence[EvalSlice],
    sets: Sequence[EvalSet],
    deg: Degradation,
    indices: Sequence[int],
    *,
    bicubic: bool,
) -> list[viewer.Frame]:
    """Viewer frames of the `indices` slices: LR (the methods' own input), HR and, when
    `bicubic`, the bicubic upsampling (for runs without the bicubic method)."""
    frames = []
    for j in indices:
        s = slices[j]
        lr, lr_up, _ = _degrade_batch([s], deg)
        frame = viewer.comparison_frame(
            f"{sets[s.dataset].name} / {s.name}", lr[0, 0].numpy(), s.hr
        )
        if bicubic:
            viewer.add_method(frame, "bicubic", lr_up[0, 0].clamp(0.0, 1.0).numpy(), s.hr)
        frames.append(frame)
    return frames


def add_report_panels(
    frames: Sequence[viewer.Frame],
    indices: Sequence[int],
    run: MethodRun,
    slices: Sequence[EvalSlice],
) -> None:
    """Add `run`'s kept outputs (and their errors) to the frames of `indices`."""
    for frame, j in zip(frames, indices):
        note = viewer.slice_note(run.psnr[j], run.ssim[j])
        viewer.add_method(frame, run.name, run.outputs[j], slices[j].hr, note=note)


def add_uncertainty_panels(
    frames: Sequence[viewer.Frame],
    indices: Sequence[int],
    kept: dict[int, tuple[np.ndarray, np.ndarray]],
    slices: Sequence[EvalSlice],
    samples: int,
) -> None:
    """Add the mean of the uncertainty samples, its |error| and their std to the frames."""
    for frame, j in zip(frames, indices):
        if j in kept:
            mean, std = kept[j]
            viewer.add_method(frame, f"wavesr mean of {samples}", mean, slices[j].hr, std=std)


def report_viewer(frames: list[viewer.Frame], n: int) -> viewer.Viewer:
    caption = (
        f"{len(frames)} of the {n} evaluated slices, evenly spaced; the LR input shown with "
        "nearest-neighbour upscaling; every panel an 8-bit PNG of the [0, 1] window of the "
        "normalised slice; under each method, its PSNR and SSIM on this slice."
    )
    return viewer.Viewer("eval", "LR, bicubic, each method, HR and |error|", frames, caption)


# ----------------------------------------------------------------------------- results


def _summary(run: MethodRun, mask: np.ndarray) -> dict:
    head = {}
    if run.psnr_head is not None:
        head = {
            "psnr_head": json_number(run.psnr_head[mask].mean()),
            "ssim_head": json_number(np.nanmean(run.ssim_head[mask])),
        }
    return {
        "psnr": json_number(run.psnr[mask].mean()),
        "ssim": json_number(run.ssim[mask].mean()),
        **head,
        "band_psnr": [json_number(v) for v in run.bands[mask].mean(axis=0)],
        "band_energy_ratio": [
            json_number(v) for v in metrics.energy_ratio(run.sr_energy[mask], run.hr_energy[mask])
        ],
        "n_slices": int(mask.sum()),
    }


@dataclass
class EvalResult:
    """metrics.json's content, the per-slice rows and report.html's slice viewer."""

    metrics: dict
    rows: list[dict]
    viewers: list[viewer.Viewer] = field(default_factory=list)
    uncertainty_maps: list = field(default_factory=list)  # uncertainty_eval.SliceMaps


def method_entry(run: MethodRun, sets: Sequence[EvalSet], which: np.ndarray) -> dict:
    n = len(which)
    entry = _summary(run, np.ones(n, dtype=bool))
    entry.update(
        fid=json_number(run.fid) if run.fid is not None else None,
        fid_note=run.fid_note,
        seconds_per_slice=run.sr_seconds / n,
        params=run.params,
        gflops_per_slice=None if run.flops is None else run.flops / 1e9,
        gflops_size=None if run.flops_size is None else list(run.flops_size),
        eval_seconds=run.total_seconds,
        datasets={s.name: _summary(run, which == d) for d, s in enumerate(sets)},
    )
    if run.info:
        entry["info"] = run.info
    return entry


def method_context(
    settings: EvalSettings, deg: Degradation, model: Path | None, weights: dict | None
) -> MethodContext:
    """What every method is built with, from the evaluation settings (evaluate and benchmark)."""
    return MethodContext(
        scale=settings.scale,
        degradation=deg,
        model=model,
        weights=dict(weights or {}),
        steps=settings.steps,
        seed=settings.seed,
        device=settings.device,
        batch=settings.batch,
        temperature=settings.temperature,
        consistency_steps=settings.consistency_steps,
        model_degradation=settings.model_degradation,
        mode=settings.mode,
    )


def evaluate(
    paths: Sequence[str | Path],
    methods: Sequence[str],
    settings: EvalSettings,
    *,
    model: Path | None = None,
    weights: dict[str, Path] | None = None,
    progress: bool = True,
    report_slices: int = REPORT_SLICES,
) -> EvalResult:
    """Evaluate `methods` on the slices of `paths` (each one a dataset); nothing is written.

    The result keeps `report_slices` evenly spaced slices (8-bit PNGs) for report.html.
    """
    started = time.perf_counter()
    settings = replace(settings, device=resolve_device(settings.device))
    deg = settings.validate()
    check_report_slices(report_slices)
    if not methods:
        raise ConfigError("no methods given (--methods bicubic ...)")
    ctx = method_context(settings, deg, model, weights)
    names = list(dict.fromkeys(methods))
    check_uncertainty_method(settings, names)
    built = [build_method(name, ctx) for name in names]  # model errors before any work
    t0 = time.perf_counter()
    sets = load_eval_sets([Path(p) for p in paths], settings)
    load_seconds = time.perf_counter() - t0
    slices = flatten_slices(sets, settings.seed)
    which = np.array([s.dataset for s in slices])
    fid = FIDTracker(settings)
    shown = report_indices(len(slices), report_slices)
    frames = report_frames(slices, sets, deg, shown, bicubic="bicubic" not in names)
    runs = []
    for n, m in zip(names, built):
        run = run_method(n, m, slices, deg, settings, fid, progress=progress, keep=set(shown))
        add_report_panels(frames, shown, run, slices)
        run.outputs.clear()  # the viewer keeps 8-bit PNGs; one method's floats at a time
        runs.append(run)
    uncertain = None
    if settings.uncertainty_samples:
        uncertain = run_uncertainty(
            built[names.index("wavesr")], slices, sets, deg, settings, fid, shown, progress
        )
        add_uncertainty_panels(frames, shown, uncertain.kept, slices, settings.uncertainty_samples)
    result = {
        "settings": {
            "scale": settings.scale,
            "degradation": deg.label,
            "model_degradation": settings.model_degradation,
            "size": settings.size,
            "resize": settings.resize,
            "max_slices": settings.max_slices,
            "seed": settings.seed,
            "steps": settings.steps,
            "batch": settings.batch,
            "device": settings.device,
            "fid": settings.fid,
            "model": None if model is None else str(model),
            "weights": {k: str(v) for k, v in (weights or {}).items()},
        },
        "datasets": [dataset_entry(s) for s in sets],
        "methods": {r.name: method_entry(r, sets, which) for r in runs},
        "machine": machine_info(settings.device),
        "timings": {
            "load_seconds": load_seconds,
            "total_seconds": time.perf_counter() - started,
        },
    }
    if uncertain is not None:
        result["settings"]["uncertainty_samples"] = settings.uncertainty_samples
        result["uncertainty"] = uncertainty_entry(uncertain.doc, result["methods"])
    rows = [
        {
            "dataset": sets[s.dataset].name,
            "slice": s.name,
            "method": r.name,
            "psnr": float(r.psnr[i]),
            "ssim": float(r.ssim[i]),
            "psnr_head": float(r.psnr_head[i]),
            "ssim_head": float(r.ssim_head[i]),
        }
        for r in runs
        for i, s in enumerate(slices)
    ]
    maps = [] if uncertain is None else uncertain.maps
    viewers = [report_viewer(frames, len(slices))] if frames else []
    return EvalResult(result, rows, viewers, maps)


def check_uncertainty_method(settings: EvalSettings, names: Sequence[str]) -> None:
    if settings.uncertainty_samples and "wavesr" not in names:
        raise ConfigError("--uncertainty-samples measures the wavesr method: add it to --methods")


def run_uncertainty(
    method: SRMethod,
    slices: Sequence[EvalSlice],
    sets: Sequence[EvalSet],
    deg: Degradation,
    settings: EvalSettings,
    fid: FIDTracker,
    keep: Collection[int],
    progress: bool,
):
    """`uncertainty_eval.measure_uncertainty` of the built wavesr method on the slices."""
    from wavesr.evaluation.uncertainty_eval import measure_uncertainty

    labels = [f"{sets[s.dataset].name} / {s.name}" for s in slices]
    return measure_uncertainty(
        method,
        slices,
        deg,
        settings,
        fid,
        samples=settings.uncertainty_samples,
        keep=set(keep),
        labels=labels,
        progress=progress,
    )


def uncertainty_entry(doc: dict, methods: dict) -> dict:
    """metrics.json's "uncertainty": the measurements, the reference points, the figures."""
    from wavesr.evaluation.uncertainty_eval import reference_points

    return {
        **doc,
        "references": reference_points(methods),
        "figures": dict(UNCERTAINTY_FIGURES),
    }


def size_counts(images: Sequence[np.ndarray]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for im in images:
        key = f"{im.shape[0]}x{im.shape[1]}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def dataset_entry(s: EvalSet) -> dict:
    """One dataset's line in metrics.json / benchmark.json."""
    return {
        "name": s.name,
        "path": str(s.path),
        "n_slices": len(s),
        "n_available": s.n_available,
        "sizes": size_counts(s.hr),
    }


# ----------------------------------------------------------------------------- outputs


PER_SLICE_KEYS = ("dataset", "slice", "method")
PER_SLICE_SCORES = ("psnr", "ssim", "psnr_head", "ssim_head")


def per_slice_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=[*PER_SLICE_KEYS, *PER_SLICE_SCORES], lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: f"{row[k]:.6f}" for k in PER_SLICE_SCORES if k in row}})
    return buf.getvalue()


def write_outputs(result: EvalResult, out: Path, command: str) -> list[Path]:
    """Write metrics.json, per_slice.csv, report.md and report.html into `out`, each atomically.

    Everything is rendered before the first write; if a write fails, the files written by
    this call are removed again.
    """
    html.require_frames(result.viewers, Path(out) / REPORT_HTML)
    metrics_doc = {"command": command, **result.metrics}
    pngs = uncertainty_figures(metrics_doc, result.uncertainty_maps)
    figures = [html.Figure(name, png) for name, png in pngs.items()]
    texts = {
        "per_slice.csv": per_slice_csv(result.rows),
        "report.md": render_report(metrics_doc, command),
        REPORT_HTML: html.evaluate_html(metrics_doc, command, result.viewers, figures),
        "metrics.json": json.dumps(metrics_doc, indent=2, allow_nan=False) + "\n",
    }
    return write_files(out, texts, png_writers(out, pngs))


def uncertainty_figures(doc: dict, maps: Sequence) -> dict[str, bytes]:
    """The uncertainty figures' PNGs by file name (none without "uncertainty" in `doc`)."""
    if "uncertainty" not in doc:
        return {}
    from wavesr.report.uncertainty import figure_pngs

    return figure_pngs(doc["uncertainty"], maps)


def png_writers(out: Path, pngs: dict[str, bytes]) -> list[Callable[[], Path]]:
    """One `write_files` writer per PNG (each written atomically into `out`)."""

    def write(name: str, png: bytes) -> Path:
        path = Path(out) / name
        atomic_write(path, lambda tmp: tmp.write_bytes(png), overwrite=True)
        return path

    return [lambda n=n, p=p: write(n, p) for n, p in pngs.items()]


def write_files(
    out: Path, texts: dict[str, str], writers: Sequence[Callable[[], Path]] = ()
) -> list[Path]:
    """Run `writers` (each writes one file into `out`), then write `texts` atomically.

    If anything fails, the files written so far by this call are removed again.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError("output exists and is not a folder", out)
    written: list[Path] = []
    try:
        for writer in writers:
            written.append(writer())
        for name, text in texts.items():
            path = out / name
            atomic_write(
                path, lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"), overwrite=True
            )
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
