"""`wavesr evaluate --through-plane`: thick-slice restoration measured on fine volumes.

For each volume (NIfTI or DICOM: anything with voxel sizes; isotropic or fine ones):

1. the slice axis: `axis` (0-2 or a plane name), by default the voxel axis the orientation
   calls S/I, i.e. the axial slices are thinned;
2. HR: the volume min-max normalised to [0, 1] (one scale for the whole volume, the unit the
   degradation acts on) and cropped, centred, along the axis to a multiple of the scale;
3. LR: thick slices made by `degrade` itself (the slice-axis degradation the through-plane
   models are trained on: the same slice profile, gap and sampling phase) on the reformats
   that hold the axis on their rows; LR voxel i is the slice profile centred at HR position
   s*i + (s - 1)/2;
4. each method restores the HR grid from LR, its output clamped to [0, 1];
5. each slice perpendicular to the axis is scored against HR with `metrics` (PSNR, SSIM, band
   PSNR; data range 1), near-empty HR slices (`nonempty_slices`, the rule `sr` uses) left out;
   per volume the mean over the held-back slices and over all slices, then the mean over the
   volumes (each volume weighs the same).

Held-back slices: the LR sample centre s*i + (s - 1)/2 falls between two HR slices for even s.
The slices within half a voxel of a centre (the two middle slices of each thick slice) are the
sample slices, closest to what was measured; the others are held back (half of them at x4, 6 of
8 at x8, none at x2).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from wavesr.config import check_consistency_steps, check_temperature
from wavesr.data.load import find_inputs, nonempty_slices
from wavesr.data.nifti import axis_for_plane
from wavesr.data.prepare import select_evenly
from wavesr.data.write import voxel_sizes
from wavesr.errors import ConfigError, InputError
from wavesr.evaluation import metrics
from wavesr.evaluation.evaluate import dataset_names, head_scores, png_writers, write_files
from wavesr.evaluation.shared import json_number
from wavesr.model.degrade import Degradation, degrade
from wavesr.report import machine_info
from wavesr.report.through_plane import FIGURE, cut_figure, through_plane_markdown
from wavesr.runtime import resolve_device
from wavesr.tasks.self_supervised import (
    ADAPT_MAX_STEPS,
    adapt_decoder,
    check_adapt_minutes,
    kept_weights,
)
from wavesr.tasks.sr import SROptions, check_options, load_pipeline
from wavesr.tasks.through_plane.reformat import (
    AxisFactor,
    bicubic_along_axis,
    partner_axes,
    reformat,
    super_resolve_volume,
    thick_axis,
    trilinear_along_axis,
    unformat,
)
from wavesr.tasks.through_plane.self_ensemble import check_ensemble_size, flip_ensemble
from wavesr.tasks.through_plane.sr import ModelRows, axis_option, in_plane_options, read_3d

METHODS = ("trilinear", "bicubic-axis", "wavesr", "wavesr-inplane", "wavesr-adapted")
MODEL_METHODS = ("wavesr", "wavesr-inplane", "wavesr-adapted")
N_BANDS = 10
MIN_IN_PLANE = 11  # SSIM's 11 x 11 window
NORMALIZATION = "volume min-max to [0, 1]"

# Restores the HR grid of a volume from its thick slices: (volume, LR) -> HR-sized array.
Restore = Callable[["EvalVolume", np.ndarray], np.ndarray]


@dataclass
class ThroughPlaneSettings:
    scale: int = 4
    axis: int | str | None = None  # None or "auto": the S/I axis; 0-2 or a plane name
    slice_profile: str = "gaussian"
    slice_gap: float = 0.0
    max_volumes: int | None = None  # per DATA argument, evenly spaced
    stacks: int = 2
    self_ensemble: int = 1  # flips averaged per reformat (`self_ensemble.flip_ensemble`)
    steps: int = 50
    seed: int = 0
    batch: int = 16
    device: str = "cpu"
    temperature: float | None = None
    consistency_steps: int | None = None
    adapt_minutes: float = 0.0  # wavesr-adapted: decoder fine-tuning per volume
    adapt_max_steps: int = ADAPT_MAX_STEPS

    def validate(self) -> Degradation:
        deg = Degradation("slice-axis", self.scale, 0.0, self.slice_profile, self.slice_gap)
        if self.max_volumes is not None and self.max_volumes < 1:
            raise ConfigError(f"--max-volumes must be at least 1, got {self.max_volumes}")
        partner_axes(0, self.stacks)
        self.self_ensemble = check_ensemble_size(self.self_ensemble)
        check_options(self.sr_options())
        check_temperature(self.temperature)
        check_consistency_steps(self.consistency_steps)
        self.adapt_minutes = check_adapt_minutes(self.adapt_minutes)
        return deg

    def sr_options(self) -> SROptions:
        return SROptions(
            scale=self.scale,
            steps=self.steps,
            seed=self.seed,
            batch=self.batch,
            device=self.device,
            temperature=self.temperature,
            consistency_steps=self.consistency_steps,
            progress=False,
        )


# ----------------------------------------------------------------------------- geometry


def sample_slices(n: int, scale: int) -> np.ndarray:
    """(n,) bool: the HR slices along the axis within half a voxel of an LR sample centre
    s*i + (s - 1)/2 (the centre of the thick slice that holds them)."""
    j = np.arange(n)
    centre = (j // scale) * scale + (scale - 1) / 2
    return np.abs(j - centre) <= 0.5


def held_back_slices(n: int, scale: int) -> np.ndarray:
    """(n,) bool: the HR slices that are not sample slices (see `sample_slices`)."""
    return ~sample_slices(n, scale)


def thick_slices(hr: np.ndarray, axis: int, deg: Degradation) -> np.ndarray:
    """`hr` with thick slices along `axis`: `degrade` on the reformats that hold the axis on
    their rows (its length / scale voxels along `axis`)."""
    partner = partner_axes(axis, 1)[0]
    rows = torch.from_numpy(np.ascontiguousarray(reformat(hr, axis, partner))).unsqueeze(1)
    lr, _ = degrade(rows, replace(deg, noise_sigma=0.0))
    return np.ascontiguousarray(unformat(lr[:, 0].numpy(), axis, partner))


# ----------------------------------------------------------------------------- data


@dataclass
class EvalVolume:
    dataset: str
    name: str
    path: Path
    hr: np.ndarray  # float32 in [0, 1], cropped along `axis` to a multiple of the scale
    affine: np.ndarray
    axis: int
    shape: tuple[int, ...]  # before the crop
    crop: tuple[int, int]  # the HR slices kept along the axis: [start, stop)

    def entry(self) -> dict:
        return {
            "dataset": self.dataset,
            "name": self.name,
            "path": str(self.path),
            "shape": list(self.shape),
            "voxel_size": [float(v) for v in voxel_sizes(self.affine)],
            "axis": self.axis,
            "slices_kept": list(self.crop),
        }


def slice_axis(spacing: Sequence[float], affine: np.ndarray, axis: int | str | None) -> int:
    """The thinned axis: `axis` (0-2 or a plane name), or the S/I axis for None / "auto"."""
    if isinstance(axis, str) and axis.strip().lower() == "auto":
        axis = None
    if axis is None:
        found = axis_for_plane(affine, "axial")
        if found is None:
            raise ConfigError("no voxel axis of this volume is S/I: pass --axis")
        return found
    return thick_axis(spacing, axis_option(axis, affine))


def load_volume(path: Path, dataset: str, settings: ThroughPlaneSettings) -> EvalVolume:
    volume, affine = read_3d(path)
    axis = slice_axis(voxel_sizes(affine), affine, settings.axis)
    n, s = volume.shape[axis], settings.scale
    if n < 2 * s:
        raise InputError(
            f"{n} slices along axis {axis}: too thin for x{s} thick slices (needs >= {2 * s})",
            path,
        )
    if min(v for a, v in enumerate(volume.shape) if a != axis) < MIN_IN_PLANE:
        raise InputError(f"in-plane size below {MIN_IN_PLANE} voxels (SSIM's window)", path)
    lo, hi = float(volume.min()), float(volume.max())
    if not hi > lo:
        raise InputError("a constant volume: nothing to score", path)
    start = (n % s) // 2
    stop = start + n - n % s
    hr = np.take((volume.astype(np.float32) - lo) / (hi - lo), range(start, stop), axis)
    return EvalVolume(
        dataset, path.name, path, hr, affine, axis, tuple(volume.shape), (start, stop)
    )


def load_volumes(paths: Sequence[Path], settings: ThroughPlaneSettings) -> list[EvalVolume]:
    """Every selected volume of every DATA argument, checked before any method runs."""
    out = []
    for path, name in zip(paths, dataset_names(paths)):
        units = find_inputs([path])
        for i in select_evenly(len(units), settings.max_volumes):
            out.append(load_volume(units[i], name, settings))
    return out


# ----------------------------------------------------------------------------- methods


def interpolation(upsample: Callable[[np.ndarray, int, float], np.ndarray]) -> Restore:
    def run(vol: EvalVolume, lr: np.ndarray) -> np.ndarray:
        return upsample(lr, vol.axis, vol.hr.shape[vol.axis] / lr.shape[vol.axis])

    return run


@dataclass
class ModelMethod:
    """A WaveSR pipeline on the reformats (`ModelRows`, both stacks averaged); with
    `adapt_minutes`, its decoder is first fine-tuned on the volume's own in-plane slices and
    restored afterwards."""

    pipeline: object
    model_dir: Path
    opts: SROptions
    stacks: int = 2
    adapt_minutes: float = 0.0
    adapt_max_steps: int = ADAPT_MAX_STEPS
    self_ensemble: int = 1
    adaptations: list[dict] = field(default_factory=list)

    def __call__(self, vol: EvalVolume, lr: np.ndarray) -> np.ndarray:
        if not self.adapt_minutes:
            return self.super_resolve(vol, lr)
        with kept_weights(self.pipeline.autoencoder):
            done = adapt_decoder(
                self.pipeline,
                lr,
                vol.axis,
                self.adapt_minutes,
                model_dir=self.model_dir,
                max_steps=self.adapt_max_steps,
                progress=False,
            )
            self.adaptations.append(
                {"steps": done.steps, "seconds": done.seconds, "last_loss": done.last_loss}
            )
            return self.super_resolve(vol, lr)

    def super_resolve(self, vol: EvalVolume, lr: np.ndarray) -> np.ndarray:
        s = vol.hr.shape[vol.axis] // lr.shape[vol.axis]
        rows = flip_ensemble(
            ModelRows(self.pipeline, s, self.opts, tqdm(disable=True)), self.self_ensemble
        )
        # A dimensionless factor: exactly s times the slices, the HR grid.
        factor = AxisFactor(model=s, thick=float(s), fine=1.0)
        sr, _ = super_resolve_volume(lr, vol.affine, vol.axis, factor, rows, self.stacks)
        return sr


def model_dir_for(name: str, model: Path | None, weights: dict[str, Path]) -> Path:
    """--weights NAME=DIR, else --model (not for wavesr-inplane), else the bundled model."""
    from wavesr.weights import default_model_dir, through_plane_model_dir

    if name in weights:
        return Path(weights[name])
    if name == "wavesr-inplane":
        return default_model_dir()
    return Path(model) if model is not None else through_plane_model_dir()


def build_methods(
    names: Sequence[str],
    settings: ThroughPlaneSettings,
    model: Path | None,
    weights: dict[str, Path],
) -> dict[str, Restore]:
    """Every method, models loaded (errors before any work); one pipeline per model folder."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ConfigError(
            f"unknown through-plane method {unknown[0]!r} (choose from {', '.join(METHODS)})"
        )
    if ("wavesr-adapted" in names) != (settings.adapt_minutes > 0):
        raise ConfigError("the wavesr-adapted method and --adapt-minutes N > 0 go together")
    if settings.self_ensemble > 1 and not set(names) & set(MODEL_METHODS):
        raise ConfigError("--self-ensemble averages a model: add wavesr to --methods")
    pipelines: dict[Path, object] = {}
    built: dict[str, Restore] = {}
    for name in names:
        if name == "trilinear":
            built[name] = interpolation(trilinear_along_axis)
        elif name == "bicubic-axis":
            built[name] = interpolation(bicubic_along_axis)
        else:
            folder = model_dir_for(name, model, weights)
            first = folder not in pipelines
            if first:
                pipelines[folder] = load_pipeline(folder, settings.scale, settings.device)
            pipeline = pipelines[folder]
            warn = first and name != "wavesr-inplane"  # the in-plane one is meant as such
            opts = in_plane_options(pipeline, folder, settings.sr_options(), warn=warn)
            built[name] = ModelMethod(
                pipeline,
                folder,
                opts,
                settings.stacks,
                settings.adapt_minutes if name == "wavesr-adapted" else 0.0,
                settings.adapt_max_steps,
                settings.self_ensemble,
            )
    return built


# ----------------------------------------------------------------------------- scores


@dataclass
class SliceScores:
    """Per HR slice along the axis; NaN where a slice is not scored (near-empty)."""

    psnr: np.ndarray
    ssim: np.ndarray
    bands: np.ndarray  # (n, N_BANDS)
    psnr_head: np.ndarray | None = None  # inside each HR slice's head mask (`metrics.head_mask`)
    ssim_head: np.ndarray | None = None

    def summary(self, mask: np.ndarray) -> dict:
        """Means over the slices of `mask` (None when there are none)."""
        n = int(mask.sum())

        def mean(values: np.ndarray) -> float | None:
            return json_number(values[mask].mean(axis=0)) if n else None

        head = {}
        if self.psnr_head is not None:
            head = {"psnr_head": mean(self.psnr_head), "ssim_head": mean(self.ssim_head)}
        return {
            "psnr": mean(self.psnr),
            "ssim": mean(self.ssim),
            **head,
            "band_psnr": [json_number(v) for v in self.bands[mask].mean(axis=0)] if n else None,
            "n_slices": n,
        }


def score_slices(sr: np.ndarray, hr: np.ndarray, axis: int, scored: np.ndarray) -> SliceScores:
    """PSNR, SSIM and band PSNR of each slice perpendicular to `axis` flagged in `scored`."""
    n = hr.shape[axis]
    psnr, ssim = np.full(n, np.nan), np.full(n, np.nan)
    psnr_head, ssim_head = np.full(n, np.nan), np.full(n, np.nan)
    bands = np.full((n, N_BANDS), np.nan)
    for j in np.flatnonzero(scored):
        a, b = np.take(sr, j, axis), np.take(hr, j, axis)
        psnr[j] = metrics.psnr(a, b)
        ssim[j] = metrics.ssim(a, b)
        psnr_head[j], ssim_head[j] = head_scores(a, b)
        bands[j] = metrics.band_psnr(a, b, n_bands=N_BANDS)
    return SliceScores(psnr, ssim, bands, psnr_head, ssim_head)


@dataclass
class VolumeRun:
    volume: EvalVolume
    scored: np.ndarray  # (n,) non-empty HR slices
    held_back: np.ndarray  # (n,) held-back slices (scored or not)
    scores: dict[str, SliceScores] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def entry(self) -> dict:
        held = self.scored & self.held_back
        return {
            **self.volume.entry(),
            "n_slices": int(len(self.scored)),
            "n_scored": int(self.scored.sum()),
            "n_held_back": int(held.sum()),
            "methods": {
                name: {
                    "held_back": s.summary(held),
                    "all": s.summary(self.scored),
                    "seconds": self.seconds[name],
                }
                for name, s in self.scores.items()
            },
        }


@dataclass
class Cut:
    """One reformat through the first volume, for the figure: the thick axis on the rows."""

    title: str
    aspect: float  # row voxel size / column voxel size
    thick: np.ndarray  # LR, each row repeated `scale` times
    outputs: dict[str, np.ndarray]
    hr: np.ndarray


def cut_axis(affine: np.ndarray, axis: int) -> int:
    """The axis a figure cuts across: the coronal one (A/P) unless it is the thick axis."""
    coronal = axis_for_plane(affine, "coronal")
    if coronal is not None and coronal != axis:
        return coronal
    return next(a for a in range(3) if a != axis)


def make_cut(vol: EvalVolume, lr: np.ndarray, outputs: dict[str, np.ndarray]) -> Cut:
    across = cut_axis(vol.affine, vol.axis)
    partner = 3 - vol.axis - across
    i = vol.hr.shape[across] // 2

    def take(volume: np.ndarray) -> np.ndarray:
        return reformat(volume, vol.axis, partner)[i]

    s = vol.hr.shape[vol.axis] // lr.shape[vol.axis]
    sizes = voxel_sizes(vol.affine)
    return Cut(
        title=f"{vol.name}: voxel axis {across} = {i} (axis {vol.axis} thinned x{s})",
        aspect=float(sizes[vol.axis] / sizes[partner]),
        thick=np.repeat(take(lr), s, axis=0),
        outputs={k: take(v) for k, v in outputs.items()},
        hr=take(vol.hr),
    )


# ----------------------------------------------------------------------------- running


@dataclass
class ThroughPlaneEval:
    metrics: dict  # metrics.json's content (without the command)
    runs: list[VolumeRun]
    cut: Cut | None


def method_summary(runs: Sequence[VolumeRun], name: str) -> dict:
    """Means over the volumes of the per-volume means."""
    entries = [r.entry()["methods"][name] for r in runs]

    def over_volumes(part: str) -> dict:
        parts = [e[part] for e in entries if e[part]["n_slices"]]
        if not parts:
            return {"psnr": None, "ssim": None, "band_psnr": None, "n_slices": 0, "n_volumes": 0}
        bands = np.array([[_nan(v) for v in p["band_psnr"]] for p in parts])
        return {
            "psnr": json_number(np.mean([_nan(p["psnr"]) for p in parts])),
            "ssim": json_number(np.mean([_nan(p["ssim"]) for p in parts])),
            "psnr_head": json_number(np.mean([_nan(p.get("psnr_head")) for p in parts])),
            "ssim_head": json_number(np.nanmean([_nan(p.get("ssim_head")) for p in parts])),
            "band_psnr": [json_number(v) for v in bands.mean(axis=0)],
            "n_slices": sum(p["n_slices"] for p in parts),
            "n_volumes": len(parts),
        }

    return {
        "held_back": over_volumes("held_back"),
        "all": over_volumes("all"),
        "seconds_per_volume": float(np.mean([e["seconds"] for e in entries])),
    }


def _nan(value: float | None) -> float:
    """A JSON number back as a float (null: infinite or undefined, kept as NaN)."""
    return math.nan if value is None else float(value)


def evaluate_through_plane(
    paths: Sequence[str | Path],
    methods: Sequence[str],
    settings: ThroughPlaneSettings,
    *,
    model: Path | None = None,
    weights: dict[str, Path] | None = None,
    progress: bool = True,
) -> ThroughPlaneEval:
    """Evaluate `methods` on the volumes of `paths` (each one a dataset); nothing is written."""
    started = time.perf_counter()
    settings = replace(settings, device=resolve_device(settings.device))
    deg = settings.validate()
    names = list(dict.fromkeys(methods))
    if not names:
        raise ConfigError("no methods given (--methods trilinear,bicubic-axis,...)")
    weights = {k: Path(v) for k, v in (weights or {}).items()}
    built = build_methods(names, settings, model, weights)
    volumes = load_volumes([Path(p) for p in paths], settings)
    runs, cut = [], None
    total = len(volumes) * len(names)
    with tqdm(total=total, desc="through-plane", unit="run", disable=not progress) as bar:
        for vol in volumes:
            run, outputs, lr = run_volume(vol, deg, built, bar)
            runs.append(run)
            if cut is None:
                cut = make_cut(vol, lr, outputs)
    doc = {
        "settings": settings_entry(settings, deg, names, model, weights),
        "volumes": [r.entry() for r in runs],
        "methods": {name: method_summary(runs, name) for name in names},
        "machine": machine_info(settings.device),
        "timings": {"total_seconds": time.perf_counter() - started},
    }
    for name, method in built.items():
        if isinstance(method, ModelMethod) and method.adaptations:
            for entry, done in zip(doc["volumes"], method.adaptations):
                entry["methods"][name]["adaptation"] = done
    return ThroughPlaneEval(doc, runs, cut)


def run_volume(
    vol: EvalVolume, deg: Degradation, methods: dict[str, Restore], bar
) -> tuple[VolumeRun, dict[str, np.ndarray], np.ndarray]:
    """Thick slices of `vol`, each method's restoration and its scores."""
    lr = thick_slices(vol.hr, vol.axis, deg)
    n = vol.hr.shape[vol.axis]
    scored = nonempty_slices(np.moveaxis(vol.hr, vol.axis, 0))
    run = VolumeRun(vol, scored, held_back_slices(n, deg.scale))
    outputs = {}
    for name, method in methods.items():
        bar.set_postfix_str(f"{vol.name} {name}")
        t0 = time.perf_counter()
        sr = np.clip(np.asarray(method(vol, lr), dtype=np.float32), 0.0, 1.0)
        run.seconds[name] = time.perf_counter() - t0
        if sr.shape != vol.hr.shape:
            raise ValueError(f"method {name} gave {sr.shape}, expected {vol.hr.shape}")
        run.scores[name] = score_slices(sr, vol.hr, vol.axis, scored)
        outputs[name] = sr
        bar.update(1)
    return run, outputs, lr


def settings_entry(
    settings: ThroughPlaneSettings,
    deg: Degradation,
    names: Sequence[str],
    model: Path | None,
    weights: dict[str, Path],
) -> dict:
    models = {n: str(model_dir_for(n, model, weights)) for n in names if n in MODEL_METHODS}
    return {
        "through_plane": True,
        "scale": settings.scale,
        "degradation": deg.label,
        "axis": "auto (S/I)" if settings.axis in (None, "auto") else str(settings.axis),
        "normalization": NORMALIZATION,
        "max_volumes": settings.max_volumes,
        "stacks": settings.stacks,
        "self_ensemble": settings.self_ensemble,
        "steps": settings.steps,
        "seed": settings.seed,
        "batch": settings.batch,
        "device": settings.device,
        "temperature": settings.temperature,
        "consistency_steps": settings.consistency_steps,
        "adapt_minutes": settings.adapt_minutes,
        "models": models,
    }


def write_through_plane(result: ThroughPlaneEval, out: Path, command: str) -> list[Path]:
    """metrics.json, report.md and the figure (`FIGURE`) into `out`, each atomically."""
    doc = {"command": command, **result.metrics}
    pngs = {} if result.cut is None else {FIGURE: cut_figure(result.cut)}
    texts = {
        "report.md": through_plane_markdown(doc, command, figure=FIGURE if pngs else None),
        "metrics.json": json.dumps(doc, indent=2, allow_nan=False) + "\n",
    }
    return write_files(out, texts, png_writers(out, pngs))
