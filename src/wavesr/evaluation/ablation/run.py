"""`wavesr ablate`: design variants trained and evaluated under one equal budget (Table 3).

A variant is a list of ``--set``-style overrides on one baseline config, or a baseline method
(EDSR, pixel diffusion) on that config. Variants whose stage-1 settings agree share one
autoencoder run (``out/autoencoders/<key>``); each variant's LDT (or baseline network) trains in
``out/variants/<name>`` for at most the same minutes and steps, with the same seed and data, and
is then evaluated on the same slices with the `wavesr evaluate` machinery.

Markers in each run folder make the command resumable: ``ablation-training.json`` holds the
fingerprint of what is trained there (and, once done, the training record), ``ablation-done.json``
a variant's whole result. A finished stage is never redone; an interrupted one continues from its
last checkpoint with what is left of its minutes.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wavesr.baselines.train import check_baseline_config, train_baseline
from wavesr.bundle.checkpoint_io import checkpoint_dirs, read_json
from wavesr.bundle.folder import load_bundle
from wavesr.bundle.weights_check import check_training_start
from wavesr.config import WaveSRConfig, load_config, parse_override, read_yaml
from wavesr.data.types import missing_error
from wavesr.errors import ConfigError, OutputError
from wavesr.evaluation.ablation.report import write_ablation
from wavesr.evaluation.evaluate import evaluate, write_outputs
from wavesr.evaluation.shared import EvalSettings, json_number
from wavesr.io_atomic import atomic_write, check_output_path
from wavesr.report import fmt, machine_info
from wavesr.training.engine import TrainingError, TrainResult
from wavesr.training.run import check_data, train_autoencoder, train_ldt
from wavesr.training.validation import read_validation

__all__ = [
    "AblationPlan",
    "AblationResult",
    "AblationSettings",
    "LATENT_RATIOS",
    "PlannedVariant",
    "Stage1",
    "TABLE3",
    "Variant",
    "load_variants",
    "plan_ablation",
    "run_ablation",
    "stage1_key",
    "table3_variants",
]

VARIANT_METHODS = ("wavesr", "edsr", "pixel-diffusion")
VARIANT_KEYS = ("label", "method", "set")
FILE_KEYS = ("baseline", "variants")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TRAINING_MARKER = "ablation-training.json"
DONE_MARKER = "ablation-done.json"
ABLATION_JSON = "ablation.json"
EVAL_SEED = 0
BOUND_BY = {"finished": "steps", "time-limit": "minutes"}
# The same for every variant: a variant's own `set` may not change them (--set may, for all).
SHARED_FIELDS = (
    "data.paths",
    "data.scale",
    "autoencoder_training.train.seed",
    "autoencoder_training.train.max_steps",
    "ldt_training.train.seed",
    "ldt_training.train.max_steps",
    "baseline_training.train.seed",
    "baseline_training.train.max_steps",
)

# Latent side / image side, as the `cpu` (1/4) and `cpu-s8` (1/8) presets set it: the
# autoencoder's down-sampling of the half-size Haar bands, the LDT patches to match.
LATENT_RATIOS: dict[str, tuple[str, ...]] = {
    "1/4": ("autoencoder.downsample=2", "ldt.patch_size=4", "ldt.cond_patch_size=4"),
    "1/8": ("autoencoder.downsample=4", "ldt.patch_size=2", "ldt.cond_patch_size=2"),
}

# The paper's Table 3: id -> (prediction, schedule, latent ratio, conditioning) and its reported
# PSNR (dB) and FID. Id 0 is the default design.
TABLE3: dict[str, dict] = {
    "0": {"design": ("eps", "cosine", "1/4", "cross-attention"), "paper": (35.73, 63.21)},
    "1": {"design": ("x0", "cosine", "1/4", "cross-attention"), "paper": (34.85, 68.92)},
    "2": {"design": ("x0", "linear", "1/4", "cross-attention"), "paper": (35.42, 66.10)},
    "3": {"design": ("x0", "cosine", "1/8", "cross-attention"), "paper": (34.30, 70.33)},
    "4": {"design": ("x0", "cosine", "1/4", "concat"), "paper": (35.10, 64.50)},
    "5": {"design": ("eps", "linear", "1/4", "concat"), "paper": (33.90, 71.75)},
    "6": {"design": ("eps", "linear", "1/8", "cross-attention"), "paper": (33.10, 76.20)},
    "7": {"design": ("x0", "linear", "1/8", "concat"), "paper": (34.02, 69.30)},
    "8": {"design": ("eps", "cosine", "1/8", "concat"), "paper": (33.55, 72.60)},
}


# ----------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: overrides on the baseline config, or a baseline method."""

    name: str
    overrides: tuple[str, ...] = ()
    method: str = "wavesr"
    label: str = ""
    paper: dict[str, float] | None = None  # the paper's Table-3 PSNR and FID


def design_overrides(predict: str, schedule: str, ratio: str, conditioning: str) -> list[str]:
    """The config overrides of one Table-3 design."""
    return [
        f"diffusion.predict={predict}",
        f"diffusion.noise_schedule={schedule}",
        *LATENT_RATIOS[ratio],
        f"ldt.conditioning={conditioning}",
    ]


def table3_variants() -> list[Variant]:
    """The built-in variant set `table3`: the paper's Table 3, ids 0-8."""
    variants = []
    for vid, row in TABLE3.items():
        psnr, fid = row["paper"]
        label = ", ".join(row["design"]) + (" (default)" if vid == "0" else "")
        overrides = tuple(design_overrides(*row["design"]))
        variants.append(Variant(vid, overrides, label=label, paper={"psnr": psnr, "fid": fid}))
    return variants


def load_variants(spec: str | Path) -> tuple[list[Variant], list[str]]:
    """The variants of ``--variants`` (``table3`` or a YAML file) and the file's baseline."""
    if str(spec) == "table3":
        return table3_variants(), []
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--variants must be table3 or a .yaml file, got {str(spec)!r}")
    if not path.is_file():
        raise ConfigError("variants file not found", path)
    return parse_variants_file(read_yaml(path), path)


def parse_variants_file(values: dict, path: Path) -> tuple[list[Variant], list[str]]:
    """``{variants: {name: {set, method, label}}, baseline: [k=v, ...]}`` -> both, checked."""
    unknown = sorted(set(values) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} (expected {', '.join(FILE_KEYS)})", path)
    baseline = override_list(values.get("baseline") or [], "baseline", path)
    entries = values.get("variants")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError("'variants' must map variant names to their settings", path)
    variants = [parse_variant(str(name), entry, path) for name, entry in entries.items()]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError("variant names must be unique", path)
    return variants, baseline


def parse_variant(name: str, entry: object, path: Path) -> Variant:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"variant name {name!r}: use letters, digits, '.', '_' or '-' (it names a folder)",
            path,
        )
    entry = {} if entry is None else entry
    if not isinstance(entry, dict):
        raise ConfigError(f"variant {name}: expected a mapping of {', '.join(VARIANT_KEYS)}", path)
    unknown = sorted(set(entry) - set(VARIANT_KEYS))
    if unknown:
        raise ConfigError(
            f"variant {name}: unknown key {unknown[0]!r} (expected {', '.join(VARIANT_KEYS)})", path
        )
    method = entry.get("method", "wavesr")
    if method not in VARIANT_METHODS:
        raise ConfigError(
            f"variant {name}: method must be one of {', '.join(VARIANT_METHODS)}, got {method!r}",
            path,
        )
    label = entry.get("label", "")
    if not isinstance(label, str):
        raise ConfigError(f"variant {name}: label must be a string", path)
    overrides = override_list(entry.get("set") or [], f"variant {name}: set", path)
    return Variant(name, tuple(overrides), method, label)


def override_list(value: object, where: str, path: Path) -> list[str]:
    """A list of ``key.sub=value`` strings, each one checked by the config's own parser."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of KEY=VALUE strings", path)
    for text in value:
        parse_override(text)
    return list(value)


# ----------------------------------------------------------------------------- plan


@dataclass
class Stage1:
    """One autoencoder run shared by the variants whose stage-1 settings agree."""

    key: str  # short hash of the stage-1 settings, or "given" for --autoencoder
    run: Path
    config: WaveSRConfig | None  # what trains it; None: an existing run (--autoencoder)

    @property
    def reused(self) -> bool:
        return self.config is None


@dataclass
class PlannedVariant:
    variant: Variant
    config: WaveSRConfig
    run: Path
    stage1: Stage1 | None  # None for baseline methods

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def max_steps(self) -> int:
        stage = self.config.ldt_training if self.stage1 else self.config.baseline_training
        return stage.train.max_steps


@dataclass
class AblationPlan:
    config_name: str
    base_overrides: list[str]  # the variants file's baseline, then --set
    base: WaveSRConfig
    variants: list[PlannedVariant]
    steps: int | None  # --steps-per-variant

    def stage1_runs(self) -> list[Stage1]:
        runs = {pv.stage1.key: pv.stage1 for pv in self.variants if pv.stage1 is not None}
        return list(runs.values())


def digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def stage1_key(config: WaveSRConfig) -> str:
    """Short hash of everything stage 1 trains on: the autoencoder, its training, the data."""
    values = config.to_dict()
    data = {k: v for k, v in values["data"].items() if k != "cache_max_slices"}  # stage 2 only
    return digest(
        {
            "autoencoder": values["autoencoder"],
            "training": values["autoencoder_training"],
            "data": data,
        }
    )[:10]


def autoencoder_signature(config: WaveSRConfig) -> str:
    """What must agree for a trained autoencoder to serve a variant (--autoencoder)."""
    values = config.to_dict()
    signed = {
        "autoencoder": values["autoencoder"],
        "scale": config.data.scale,
        "degradation": config.data.degradation,
    }
    if config.data.degradation == "slice-axis":  # only here, so older signatures stay the same
        signed.update(slice_profile=config.data.slice_profile, slice_gap=config.data.slice_gap)
    return digest(signed)


def build_config(
    name: str, overrides: Sequence[str], data: Sequence[Path], steps: int | None, what: str
) -> WaveSRConfig:
    """``load_config(name, overrides)`` with the ablation's data and step budget."""
    try:
        config = load_config(name, list(overrides))
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    config.data.paths = [str(p) for p in data]
    if steps is not None:
        for stage in (config.ldt_training, config.baseline_training):
            stage.train.max_steps = steps
    return config


def dotted(config: WaveSRConfig, key: str) -> object:
    value: object = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def check_shared_fields(name: str, config: WaveSRConfig, base: WaveSRConfig) -> None:
    for key in SHARED_FIELDS:
        if dotted(config, key) != dotted(base, key):
            raise ConfigError(
                f"variant {name}: {key} is the same for every variant "
                "(set it with --set or --steps-per-variant, not per variant)"
            )


def given_autoencoder(run: Path) -> tuple[Path, str]:
    """(run, signature) of an existing stage-1 run passed with --autoencoder."""
    bundle = load_bundle(run)
    if "autoencoder" not in bundle.tensors:
        raise ConfigError(f"--autoencoder {run} holds no autoencoder weights")
    return Path(run), autoencoder_signature(bundle.config)


def plan_ablation(
    config_name: str,
    overrides: Sequence[str],
    variants: Sequence[Variant],
    data: Sequence[Path],
    out: Path,
    *,
    file_baseline: Sequence[str] = (),
    steps: int | None = None,
    autoencoder: Path | None = None,
) -> AblationPlan:
    """Every variant's config, built (and so validated) before anything is trained."""
    if not variants:
        raise ConfigError("no variants to run")
    base_overrides = [*file_baseline, *overrides]
    base = build_config(config_name, base_overrides, data, steps, "baseline config")
    given = given_autoencoder(autoencoder) if autoencoder is not None else None
    stages: dict[str, Stage1] = {}
    planned = []
    for v in variants:
        what = f"variant {v.name}"
        config = build_config(config_name, [*base_overrides, *v.overrides], data, steps, what)
        check_shared_fields(v.name, config, base)
        stage1 = None
        if v.method == "wavesr":
            stage1 = stage1_for(config, given, stages, Path(out))
        else:
            try:
                check_baseline_config(v.method, config)
            except ConfigError as exc:
                raise ConfigError(f"{what}: {exc}") from None
        planned.append(PlannedVariant(v, config, Path(out) / "variants" / v.name, stage1))
    return AblationPlan(config_name, base_overrides, base, planned, steps)


def stage1_for(
    config: WaveSRConfig, given: tuple[Path, str] | None, stages: dict[str, Stage1], out: Path
) -> Stage1:
    if given is not None and autoencoder_signature(config) == given[1]:
        return stages.setdefault("given", Stage1("given", given[0], None))
    key = stage1_key(config)
    return stages.setdefault(key, Stage1(key, out / "autoencoders" / key, copy.deepcopy(config)))


# ----------------------------------------------------------------------------- checks


@dataclass
class AblationSettings:
    minutes: float  # per variant's network, and per stage-1 run
    eval_paths: list[Path]
    max_slices: int = 16
    eval_steps: int = 20
    fid: bool = True
    device: str = "cpu"
    resume: bool = False
    progress: bool = True


def holds_ablation(out: Path) -> bool:
    return any((out / name).exists() for name in (ABLATION_JSON, "variants", "autoencoders"))


def evaluation_settings(plan: AblationPlan, settings: AblationSettings) -> EvalSettings:
    """The same slices for every variant: the baseline config's data settings."""
    data = plan.base.data
    return EvalSettings(
        scale=data.scale,
        degradation=data.degradation,
        noise_sigma=data.noise_sigma,
        slice_profile=data.slice_profile,
        slice_gap=data.slice_gap,
        size=data.size,
        resize=data.resize,
        max_slices=settings.max_slices,
        seed=EVAL_SEED,
        steps=settings.eval_steps,
        device=settings.device,
        fid=settings.fid,
    )


def training_fingerprint(pv: PlannedVariant, settings: AblationSettings) -> str:
    source = str(pv.stage1.run) if pv.stage1 and pv.stage1.reused else None
    return digest(
        {
            "method": pv.variant.method,
            "config": pv.config.to_dict(),
            "minutes": settings.minutes,
            "autoencoder": pv.stage1.key if pv.stage1 else None,
            "autoencoder_run": source,
        }
    )


def stage1_fingerprint(stage1: Stage1, settings: AblationSettings) -> str:
    return digest({"key": stage1.key, "minutes": settings.minutes})


def check_marker(run: Path, fingerprint: str, what: str) -> None:
    marker = run / TRAINING_MARKER
    if marker.is_file() and read_json(marker).get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{what} in {run} was trained with another config or budget; rerun with the same "
            "options as before, or choose a new --out"
        )


def check_ablation(plan: AblationPlan, settings: AblationSettings, out: Path) -> EvalSettings:
    """Every check that can fail before the first minute of training; nothing is written."""
    inputs = [*plan.base.data.paths, *settings.eval_paths]
    check_output_path(out / ABLATION_JSON, inputs=inputs, overwrite=True)
    if not settings.resume and holds_ablation(out):
        raise OutputError("holds an ablation already; pass --resume to continue it", out)
    check_data(plan.base.data.paths)
    for path in settings.eval_paths:
        if not Path(path).exists():
            raise missing_error(Path(path))
    eval_settings = evaluation_settings(plan, settings)
    eval_settings.validate()
    for stage1 in plan.stage1_runs():
        if stage1.reused:
            continue
        check_training_start("autoencoder", stage1.config, stage1.run, resume=settings.resume)
        check_marker(stage1.run, stage1_fingerprint(stage1, settings), f"stage 1 {stage1.key}")
    for pv in plan.variants:
        kind = "ldt" if pv.stage1 else pv.variant.method
        check_training_start(kind, pv.config, pv.run, resume=settings.resume)
        check_marker(pv.run, training_fingerprint(pv, settings), f"variant {pv.name}")
    return eval_settings


# ----------------------------------------------------------------------------- training


def say(message: str) -> None:
    print(f"ablate: {message}", flush=True)


def write_json(path: Path, values: dict) -> None:
    text = json.dumps(values, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=True)


def trained_minutes(run: Path) -> float:
    """Training-loop minutes so far (the engine's clock, summed over resumes)."""
    checkpoints = checkpoint_dirs(run)
    if not checkpoints:
        return 0.0
    return float(read_json(checkpoints[-1] / "state.json").get("elapsed_s", 0.0)) / 60


def timed_training(
    train: Callable[[float], TrainResult], run: Path, budget: float, resume: bool
) -> dict:
    """Call ``train(max_minutes)`` with what is left of ``budget``; the training record."""
    resumed = resume and bool(checkpoint_dirs(run))
    left = max(budget - trained_minutes(run), 0.0) if resumed else budget
    started = time.monotonic()
    result = train(left)
    return {
        "status": result.status,
        "bound_by": BOUND_BY.get(result.status),
        "steps": result.step,
        "minutes": trained_minutes(run),
        "wall_minutes": (time.monotonic() - started) / 60,
        "last_loss": json_number(result.last_loss),
        "resumed": resumed,
    }


def train_once(
    run: Path,
    fingerprint: str,
    train: Callable[[float], TrainResult],
    settings: AblationSettings,
    announce: Callable[[], None],
) -> tuple[dict, bool]:
    """(training record of ``run``, whether it was trained now): a finished run's record comes
    from its marker (with --resume); otherwise it trains, continuing from its checkpoints."""
    marker = run / TRAINING_MARKER
    if settings.resume and marker.is_file():
        done = read_json(marker).get("training")
        if done is not None:
            return done, False
    announce()
    run.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": fingerprint, "training": None})
    record = timed_training(train, run, settings.minutes, settings.resume)
    if record["status"] != "interrupted":
        write_json(marker, {"fingerprint": fingerprint, "training": record})
    return record, True


def budget_text(minutes: float, steps: int) -> str:
    return f"budget {minutes:g} min / {steps} steps"


def ensure_stage1(stage1: Stage1, plan: AblationPlan, settings: AblationSettings) -> dict:
    """Train (or find) one shared autoencoder run; its record for ablation.json."""
    users = [pv.name for pv in plan.variants if pv.stage1 is stage1]
    record = {"key": stage1.key, "run": str(stage1.run), "reused": stage1.reused, "variants": users}
    if stage1.reused:
        return {**record, "budget": None, "training": None}
    config = stage1.config
    steps = config.autoencoder_training.train.max_steps

    def train(minutes: float) -> TrainResult:
        return train_autoencoder(
            copy.deepcopy(config),
            stage1.run,
            max_minutes=minutes,
            resume=settings.resume,
            progress=settings.progress,
        )

    def announce() -> None:
        say(
            f"stage 1 {stage1.key} (variants {', '.join(users)}): training the autoencoder, "
            f"{budget_text(settings.minutes, steps)}"
        )

    fingerprint = stage1_fingerprint(stage1, settings)
    training, trained = train_once(stage1.run, fingerprint, train, settings, announce)
    if not trained:
        say(f"stage 1 {stage1.key}: trained before, kept")
    elif training["status"] != "interrupted":
        say(f"stage 1 {stage1.key} done: {training_text(training)}")
    return {
        **record,
        "budget": {"minutes": settings.minutes, "max_steps": steps},
        "training": training,
    }


def training_text(training: dict) -> str:
    return (
        f"{training['steps']} steps in {training['minutes']:.2f} min "
        f"(bound by {training['bound_by']})"
    )


def train_variant(pv: PlannedVariant, settings: AblationSettings) -> Callable[[float], TrainResult]:
    """``train(max_minutes)`` for the variant's network."""

    def train(minutes: float) -> TrainResult:
        config = copy.deepcopy(pv.config)
        common = dict(max_minutes=minutes, resume=settings.resume, progress=settings.progress)
        if pv.stage1 is None:
            return train_baseline(pv.variant.method, config, pv.run, **common)
        return train_ldt(config, pv.stage1.run, pv.run, **common)

    return train


# ----------------------------------------------------------------------------- evaluation


def sets_temperature(plan: AblationPlan, pv: PlannedVariant) -> bool:
    overrides = [*plan.base_overrides, *pv.variant.overrides]
    return any(parse_override(text)[0] == "diffusion.temperature" for text in overrides)


def variant_eval_settings(
    plan: AblationPlan, pv: PlannedVariant, eval_settings: EvalSettings
) -> EvalSettings:
    """Temperature 0 (deterministic) for WaveSR unless the variant sets its own."""
    own = pv.stage1 is None or sets_temperature(plan, pv)
    return dataclasses.replace(eval_settings, temperature=None if own else 0.0)


def evaluate_command(
    paths: Sequence[Path], method: str, run: Path, settings: EvalSettings, out: Path
) -> str:
    """The `wavesr evaluate` command that reruns one variant's evaluation."""
    model = ["--model", str(run)] if method == "wavesr" else ["--weights", f"{method}={run}"]
    argv = ["wavesr", "evaluate", *map(str, paths), "--methods", method, *model]
    argv += ["--steps", str(settings.steps), "--scale", str(settings.scale), "--out", str(out)]
    argv += ["--degradation", settings.degradation, "--size", str(settings.size)]
    argv += ["--resize", settings.resize, "--seed", str(settings.seed), "--device", settings.device]
    if settings.noise_sigma:
        argv += ["--noise-sigma", repr(settings.noise_sigma)]
    if settings.slice_profile != "gaussian":
        argv += ["--slice-profile", settings.slice_profile]
    if settings.slice_gap:
        argv += ["--slice-gap", repr(settings.slice_gap)]
    if settings.max_slices is not None:
        argv += ["--max-slices", str(settings.max_slices)]
    if settings.temperature is not None:
        argv += ["--temperature", repr(settings.temperature)]
    argv += ["--fid-slices", str(settings.fid_slices)] if settings.fid else ["--no-fid"]
    return shlex.join(argv)


def evaluation_fingerprint(paths: Sequence[Path], settings: EvalSettings) -> str:
    return digest({"paths": [str(Path(p).resolve()) for p in paths], **vars(settings)})


def evaluate_variant(
    pv: PlannedVariant, paths: Sequence[Path], settings: EvalSettings, progress: bool
) -> dict:
    """Evaluate the variant's model; writes the usual evaluate outputs to ``run/eval``."""
    method = pv.variant.method
    model = pv.run if method == "wavesr" else None
    weights = {} if method == "wavesr" else {method: pv.run}
    result = evaluate(paths, [method], settings, model=model, weights=weights, progress=progress)
    out = pv.run / "eval"
    write_outputs(result, out, evaluate_command(paths, method, pv.run, settings, out))
    m = result.metrics["methods"][method]
    return {
        "psnr": m["psnr"],
        "ssim": m["ssim"],
        "fid": m["fid"],
        "fid_note": m["fid_note"],
        "band_psnr": m["band_psnr"],
        "seconds_per_slice": m["seconds_per_slice"],
        "n_slices": m["n_slices"],
        "steps": settings.steps,
        "temperature": m.get("info", {}).get("temperature"),
        "metrics": str(out / "metrics.json"),
    }


def final_validation(run: Path) -> dict | None:
    """The last row of the run's ``val_*`` columns (None when it did not validate)."""
    columns = read_validation(run / "metrics.csv")
    if not columns.get("step"):
        return None
    return {key: json_number(values[-1]) for key, values in columns.items()}


# ----------------------------------------------------------------------------- variants


def design_of(pv: PlannedVariant) -> dict:
    """The Table-3 columns of a variant (None where they do not apply)."""
    config, method = pv.config, pv.variant.method
    if method == "edsr":
        return dict(prediction=None, schedule=None, latent_ratio=None, conditioning=None)
    diffusion = dict(prediction=config.diffusion.predict, schedule=config.diffusion.noise_schedule)
    if method == "pixel-diffusion":
        return {**diffusion, "latent_ratio": "pixels", "conditioning": "concat"}
    ratio = f"1/{2 * config.autoencoder.downsample}"  # Haar halves, then the autoencoder
    return {**diffusion, "latent_ratio": ratio, "conditioning": config.ldt.conditioning}


def variant_record(pv: PlannedVariant, settings: AblationSettings) -> dict:
    """What ablation.json says about a variant, before its training and evaluation."""
    v = pv.variant
    stage1 = None
    if pv.stage1 is not None:
        stage1 = {"key": pv.stage1.key, "run": str(pv.stage1.run), "reused": pv.stage1.reused}
    return {
        "name": v.name,
        "label": v.label,
        "method": v.method,
        "overrides": list(v.overrides),
        "design": design_of(pv),
        "paper": v.paper,
        "run": str(pv.run),
        "autoencoder": stage1,
        "budget": {"minutes": settings.minutes, "max_steps": pv.max_steps},
        "training": None,
        "validation": None,
        "evaluation": None,
        "error": None,
    }


def run_variant(
    pv: PlannedVariant,
    plan: AblationPlan,
    settings: AblationSettings,
    eval_settings: EvalSettings,
    position: str,
) -> dict:
    """Train and evaluate one variant (or read what an earlier run left); its record."""
    done_marker = pv.run / DONE_MARKER
    own_eval = variant_eval_settings(plan, pv, eval_settings)
    eval_fingerprint = evaluation_fingerprint(settings.eval_paths, own_eval)
    if settings.resume and done_marker.is_file():
        done = read_json(done_marker)
        if done.get("error") or done.get("evaluation_fingerprint") == eval_fingerprint:
            say(f"variant {pv.name} {position}: done before, kept")
            return done
    record = variant_record(pv, settings)

    def announce() -> None:
        label = f" ({pv.variant.label})" if pv.variant.label else ""
        say(
            f"variant {pv.name} {position}{label}: training {pv.variant.method}, "
            f"{budget_text(settings.minutes, pv.max_steps)}"
        )

    fingerprint = training_fingerprint(pv, settings)
    try:
        train = train_variant(pv, settings)
        training, _ = train_once(pv.run, fingerprint, train, settings, announce)
    except TrainingError as exc:  # e.g. a loss that became NaN: a result of this variant
        record["error"] = str(exc)
        write_json(done_marker, record)
        say(f"variant {pv.name} failed: {exc}")
        return record
    record["training"] = training
    if training["status"] == "interrupted":
        return record
    record["validation"] = final_validation(pv.run)
    record["evaluation"] = evaluate_variant(
        pv, settings.eval_paths, own_eval, progress=settings.progress
    )
    record["evaluation_fingerprint"] = eval_fingerprint
    write_json(done_marker, record)
    e = record["evaluation"]
    say(
        f"variant {pv.name} done: PSNR {fmt(e['psnr'])} dB, SSIM {fmt(e['ssim'], 4)}, "
        f"FID {fmt(e['fid'])}; {training_text(training)}"
    )
    return record


# ----------------------------------------------------------------------------- the ablation


@dataclass
class AblationResult:
    doc: dict
    interrupted: bool
    written: list[Path]


def ablation_doc(
    plan: AblationPlan,
    settings: AblationSettings,
    eval_settings: EvalSettings,
    records: list[dict],
    stage1_records: dict[str, dict],
    command: str,
) -> dict:
    """ablation.json's content: the finished variants so far and what is still pending."""
    done = {r["name"] for r in records}
    n_slices = next((r["evaluation"]["n_slices"] for r in records if r["evaluation"]), None)
    return {
        "command": command,
        "config": {"name": plan.config_name, "overrides": plan.base_overrides},
        "budget": {
            "minutes_per_variant": settings.minutes,
            "steps_per_variant": plan.steps,
            "minutes_per_stage1_run": settings.minutes,
            "seed": plan.base.ldt_training.train.seed,
            "data": list(plan.base.data.paths),
        },
        "evaluation": {
            "data": [str(p) for p in settings.eval_paths],
            "n_slices": n_slices,
            "max_slices": eval_settings.max_slices,
            "scale": eval_settings.scale,
            "degradation": eval_settings.degradation,
            "size": eval_settings.size,
            "resize": eval_settings.resize,
            "steps": eval_settings.steps,
            "seed": eval_settings.seed,
            "fid": eval_settings.fid,
            "fid_slices": eval_settings.fid_slices,
            "device": eval_settings.device,
        },
        "autoencoders": list(stage1_records.values()),
        "variants": records,
        "pending": [pv.name for pv in plan.variants if pv.name not in done],
        "machine": machine_info(settings.device),
    }


def is_interrupted(record: dict) -> bool:
    training = record.get("training") or {}
    return training.get("status") == "interrupted"


def run_ablation(
    plan: AblationPlan, settings: AblationSettings, out: Path, command: str
) -> AblationResult:
    """Train and evaluate every variant in order; ablation.json / .md and curves.png are
    rewritten after each one, so an interrupted ablation still shows what is done."""
    out = Path(out)
    eval_settings = check_ablation(plan, settings, out)
    out.mkdir(parents=True, exist_ok=True)
    stage1_records: dict[str, dict] = {}
    records: list[dict] = []
    interrupted = False
    for k, pv in enumerate(plan.variants, 1):
        if pv.stage1 is not None and pv.stage1.key not in stage1_records:
            stage1 = ensure_stage1(pv.stage1, plan, settings)
            stage1_records[pv.stage1.key] = stage1
            if is_interrupted(stage1):
                interrupted = True
                break
        record = run_variant(pv, plan, settings, eval_settings, f"[{k}/{len(plan.variants)}]")
        if is_interrupted(record):
            interrupted = True
            break
        records.append(record)
        doc = ablation_doc(plan, settings, eval_settings, records, stage1_records, command)
        write_ablation(doc, out)
    doc = ablation_doc(plan, settings, eval_settings, records, stage1_records, command)
    written = write_ablation(doc, out)
    return AblationResult(doc, interrupted, written)
