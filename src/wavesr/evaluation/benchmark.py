"""`wavesr benchmark`: the paper's tables and figures from one run on one machine.

Every method sees the same degraded slices (evaluate's data path, seeds and metrics). The
diffusion methods (those with a ``steps`` attribute: wavesr, pixel-diffusion) are measured on
all slices at the largest step count; each smaller step count is timed once more on a fixed,
evenly spaced subset of the slices, for the speed table. HR FID features are computed once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from wavesr.data.prepare import select_evenly
from wavesr.errors import ConfigError
from wavesr.evaluation.evaluate import (
    REPORT_SLICES,
    MethodRun,
    add_report_panels,
    add_uncertainty_panels,
    check_report_slices,
    check_uncertainty_method,
    dataset_entry,
    flatten_slices,
    load_eval_sets,
    method_context,
    method_entry,
    png_writers,
    report_frames,
    report_indices,
    report_viewer,
    run_method,
    run_uncertainty,
    uncertainty_entry,
    uncertainty_figures,
    write_files,
)
from wavesr.evaluation.methods import MethodContext, SRMethod, build_method, known_methods
from wavesr.evaluation.shared import EvalSettings, FIDTracker, json_number
from wavesr.report import figures, html, machine_info, viewer
from wavesr.report.markdown import benchmark_markdown as render_markdown  # re-exported
from wavesr.runtime import resolve_device

__all__ = [
    "BenchmarkResult",
    "BenchmarkSettings",
    "FigureSlice",
    "benchmark",
    "build_methods",
    "render_markdown",
    "write_benchmark",
]

BANDS_FIGURE = "bands.png"
REPORT_HTML = "report.html"
SPEED_PAIR = ("wavesr", "pixel-diffusion")  # the speed table's ratio is pixel / wavesr


@dataclass
class BenchmarkSettings:
    """What `wavesr benchmark` adds to evaluate's settings (whose `steps` it overrides)."""

    steps: tuple[int, ...] = (20, 50)
    figure_slices: int = 3
    speed_slices: int = 8  # slices timed for the smaller step counts; 0 = all
    skip_missing: bool = False

    def validate(self) -> tuple[int, ...]:
        """The step counts, sorted and unique."""
        if not self.steps:
            raise ConfigError("--steps needs at least one step count")
        if min(self.steps) < 1:
            raise ConfigError(f"--steps must all be at least 1, got {list(self.steps)}")
        if self.figure_slices < 0:
            raise ConfigError(f"--figure-slices must be >= 0, got {self.figure_slices}")
        if self.speed_slices < 0:
            raise ConfigError(f"--speed-slices must be >= 0, got {self.speed_slices}")
        return tuple(sorted(set(self.steps)))


@dataclass
class FigureSlice:
    """One slice of the Fig. 3/4 panels: HR and every method's SR."""

    index: int
    dataset: str
    name: str
    hr: np.ndarray
    outputs: list[tuple[str, np.ndarray]]


@dataclass
class BenchmarkResult:
    doc: dict  # benchmark.json's content, without the command
    figures: list[FigureSlice]
    viewers: list[viewer.Viewer] = field(default_factory=list)  # report.html's slice viewer
    uncertainty_maps: list = field(default_factory=list)  # uncertainty_eval.SliceMaps


# ----------------------------------------------------------------------------- methods


def build_methods(
    names: Sequence[str], ctx: MethodContext, *, skip_missing: bool
) -> tuple[dict[str, SRMethod], dict[str, str]]:
    """Build every method up front: (built, skipped name -> reason).

    A method whose weights are missing (no folder given and none bundled: a ConfigError that
    names no path) is an error listing all of them, or skipped with `skip_missing`. Errors about
    a folder that was given (wrong kind, wrong scale, corrupt) are never skipped.
    """
    unknown = [n for n in names if n not in known_methods()]
    if unknown:
        raise ConfigError(
            f"unknown method(s) {', '.join(unknown)} (known: {', '.join(known_methods())})"
        )
    built: dict[str, SRMethod] = {}
    missing: dict[str, str] = {}
    for name in names:
        try:
            built[name] = build_method(name, ctx)
        except ConfigError as exc:
            if exc.path is not None:
                raise
            missing[name] = str(exc)
    if missing and not skip_missing:
        raise ConfigError(
            "missing weights: "
            + "; ".join(missing.values())
            + ". Pass --model DIR / --weights METHOD=DIR, or --skip-missing to benchmark the "
            "other methods"
        )
    if not built:
        raise ConfigError("no method left to benchmark: weights are missing for all of them")
    return built, missing


def _is_diffusion(method: SRMethod) -> bool:
    return isinstance(getattr(method, "steps", None), int)


def _set_steps(method: SRMethod, steps: int) -> None:
    method.steps = steps  # type: ignore[attr-defined]
    info = getattr(method, "info", None)
    if isinstance(info, dict) and "steps" in info:
        info["steps"] = steps


# ----------------------------------------------------------------------------- running


def _speed_row(run: MethodRun) -> dict:
    n = len(run.psnr)
    return {
        "seconds_per_slice": run.sr_seconds / n,
        "gflops_per_slice": None if run.flops is None else run.flops / 1e9,
        "psnr": json_number(run.psnr.mean()),
        "n_slices": n,
    }


def _speed_table(step_counts: Sequence[int], speed: dict[str, dict[int, dict]]) -> dict:
    rows = []
    for steps in step_counts:
        per = {name: by_steps[steps] for name, by_steps in speed.items()}
        row = {
            "steps": steps,
            "n_slices": max((v["n_slices"] for v in per.values()), default=0),
            "seconds_per_slice": {n: v["seconds_per_slice"] for n, v in per.items()},
            "gflops_per_slice": {n: v["gflops_per_slice"] for n, v in per.items()},
            "psnr": {n: v["psnr"] for n, v in per.items()},
            "ratio_pixel_over_wavesr": None,
        }
        wavesr, pixel = (per.get(n) for n in SPEED_PAIR)
        if wavesr and pixel and wavesr["seconds_per_slice"] > 0:
            row["ratio_pixel_over_wavesr"] = (
                pixel["seconds_per_slice"] / wavesr["seconds_per_slice"]
            )
        rows.append(row)
    return {"methods": list(speed), "rows": rows}


def _machine(device: str) -> dict:
    info = machine_info(device)
    if "gpu" not in info and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def benchmark(
    paths: Sequence[str | Path],
    methods: Sequence[str],
    settings: EvalSettings,
    options: BenchmarkSettings,
    *,
    model: Path | None = None,
    weights: dict[str, Path] | None = None,
    progress: bool = True,
    report_slices: int = REPORT_SLICES,
) -> BenchmarkResult:
    """Run the benchmark; nothing is written. Raises before any work on bad settings.

    The result keeps `report_slices` evenly spaced slices (8-bit PNGs) for report.html.
    """
    started = time.perf_counter()
    step_counts = options.validate()
    top = step_counts[-1]
    settings = replace(settings, steps=top, device=resolve_device(settings.device))
    deg = settings.validate()
    check_report_slices(report_slices)
    if not methods:
        raise ConfigError("no methods given (--methods bicubic ...)")
    check_uncertainty_method(settings, methods)
    ctx = method_context(settings, deg, model, weights)  # settings.steps is the top count
    built, skipped = build_methods(
        list(dict.fromkeys(methods)), ctx, skip_missing=options.skip_missing
    )
    if settings.uncertainty_samples and "wavesr" not in built:
        raise ConfigError("--uncertainty-samples measures the wavesr method, which was skipped")

    t0 = time.perf_counter()
    sets = load_eval_sets([Path(p) for p in paths], settings)
    load_seconds = time.perf_counter() - t0
    slices = flatten_slices(sets, settings.seed)
    n = len(slices)
    which = np.array([s.dataset for s in slices])
    figure_idx = select_evenly(n, options.figure_slices) if options.figure_slices else []
    speed_idx = select_evenly(n, options.speed_slices or None)
    speed_slices = [slices[i] for i in speed_idx]
    shown = report_indices(n, report_slices)
    frames = report_frames(slices, sets, deg, shown, bicubic="bicubic" not in built)
    keep = set(figure_idx) | set(shown)

    extra = step_counts[:-1]
    n_diffusion = sum(_is_diffusion(m) for m in built.values())
    stages = tqdm(
        total=len(built) + n_diffusion * len(extra),
        desc="benchmark",
        unit="run",
        disable=not progress,
    )
    fid = FIDTracker(settings)
    no_fid = FIDTracker(replace(settings, fid=False))
    runs: dict[str, MethodRun] = {}
    speed: dict[str, dict[int, dict]] = {}
    for name, method in built.items():
        diffusion = _is_diffusion(method)
        if diffusion:
            _set_steps(method, top)
        stages.set_postfix_str(f"{name} ({top} steps)" if diffusion else name)
        runs[name] = run_method(
            name, method, slices, deg, settings, fid, progress=progress, keep=keep
        )
        add_report_panels(frames, shown, runs[name], slices)
        for j in set(runs[name].outputs) - set(figure_idx):  # the viewer keeps 8-bit PNGs
            del runs[name].outputs[j]
        stages.update()
        if not diffusion:
            continue
        speed[name] = {top: _speed_row(runs[name])}
        for steps in extra:
            stages.set_postfix_str(f"{name} ({steps} steps, {len(speed_slices)} slices)")
            _set_steps(method, steps)
            sub = run_method(
                f"{name} {steps} steps",
                method,
                speed_slices,
                deg,
                replace(settings, steps=steps),
                no_fid,
                progress=progress,
            )
            speed[name][steps] = _speed_row(sub)
            stages.update()
        _set_steps(method, top)
    stages.close()
    uncertain = None
    if settings.uncertainty_samples:
        uncertain = run_uncertainty(
            built["wavesr"], slices, sets, deg, settings, fid, shown, progress
        )
        add_uncertainty_panels(frames, shown, uncertain.kept, slices, settings.uncertainty_samples)

    doc = {
        "settings": {
            "scale": settings.scale,
            "degradation": deg.label,
            "size": settings.size,
            "resize": settings.resize,
            "max_slices": settings.max_slices,
            "seed": settings.seed,
            "steps": list(step_counts),
            "table_steps": top,
            "batch": settings.batch,
            "device": settings.device,
            "fid": settings.fid,
            "fid_slices": settings.fid_slices,
            "figure_slices": options.figure_slices,
            "speed_slices": len(speed_slices),
            "skip_missing": options.skip_missing,
            "model": None if model is None else str(model),
            "weights": {k: str(v) for k, v in (weights or {}).items()},
        },
        "datasets": [dataset_entry(s) for s in sets],
        "methods": {
            name: {
                **method_entry(run, sets, which),
                "steps": top if _is_diffusion(built[name]) else None,
            }
            for name, run in runs.items()
        },
        "skipped": skipped,
        "speed": _speed_table(step_counts, speed),
        "bands_figure": BANDS_FIGURE,
        "figures": [],
        "machine": _machine(settings.device),
        "timings": {"load_seconds": load_seconds},
    }
    figs = [
        FigureSlice(
            index=i,
            dataset=sets[slices[i].dataset].name,
            name=slices[i].name,
            hr=slices[i].hr,
            outputs=[(name, run.outputs[i]) for name, run in runs.items()],
        )
        for i in figure_idx
    ]
    doc["figures"] = [
        {"file": _figure_name(k), "index": f.index, "dataset": f.dataset, "slice": f.name}
        for k, f in enumerate(figs, 1)
    ]
    if uncertain is not None:
        doc["settings"]["uncertainty_samples"] = settings.uncertainty_samples
        doc["uncertainty"] = uncertainty_entry(uncertain.doc, doc["methods"])
    doc["timings"]["total_seconds"] = time.perf_counter() - started
    viewers = [report_viewer(frames, n)] if frames else []
    return BenchmarkResult(doc, figs, viewers, [] if uncertain is None else uncertain.maps)


def _figure_name(k: int) -> str:
    return f"fig3_slice_{k}.png"


# ----------------------------------------------------------------------------- outputs


def write_benchmark(result: BenchmarkResult, out: Path, command: str) -> list[Path]:
    """Write benchmark.json, benchmark.md, bands.png, fig3_slice_K.png and report.html (which
    embeds the figures), each atomically.

    The texts are rendered before the first write; if any write fails, the files this call
    wrote are removed again.
    """
    out = Path(out)
    html.require_frames(result.viewers, out / REPORT_HTML)
    doc = {"command": command, **result.doc}
    texts = {
        "benchmark.md": render_markdown(doc, command),
        "benchmark.json": json.dumps(doc, indent=2, allow_nan=False) + "\n",
    }
    curves, energy = (
        {name: [np.nan if v is None else v for v in m[key]] for name, m in doc["methods"].items()}
        for key in ("band_psnr", "band_energy_ratio")
    )
    writers = [lambda: figures.band_psnr_figure(curves, out / BANDS_FIGURE, energy=energy)]
    writers += [
        lambda f=f, k=k: figures.spectrum_figure(f.outputs, f.hr, out / _figure_name(k))
        for k, f in enumerate(result.figures, 1)
    ]
    pngs = uncertainty_figures(doc, result.uncertainty_maps)
    writers += png_writers(out, pngs)
    writers.append(lambda: _write_html(result, doc, out, pngs))
    return write_files(out, texts, writers)


def _write_html(result: BenchmarkResult, doc: dict, out: Path, pngs: dict[str, bytes]) -> Path:
    """report.html, with the figures just written (and the uncertainty figures) embedded."""
    shown = [(BANDS_FIGURE, "PSNR and energy ratio per band")]
    shown += [(f["file"], f"{f['file']}: {f['dataset']} / {f['slice']}") for f in doc["figures"]]
    embedded = [html.Figure(name, (out / name).read_bytes(), caption) for name, caption in shown]
    embedded += [html.Figure(name, png) for name, png in pngs.items()]
    page = html.benchmark_html(doc, doc["command"], result.viewers, embedded)
    return html.write_page(out / REPORT_HTML, page)
