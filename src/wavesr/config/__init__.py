"""Configuration (base layer): the config dataclasses, presets, overrides and size bounds.
May import only the base modules (errors, io_atomic) and the model layer's parameter types.

Typed configuration: dataclasses, YAML presets (`cpu`, `paper`, `tiny`) and dotted overrides.

A config is a tree of dataclasses. ``load_config("cpu")`` reads ``src/wavesr/configs/cpu.yaml``;
``load_config("my.yaml", overrides=["ldt_training.batch_size=4"])`` reads a file and applies
``key=value`` overrides (values parsed as YAML). Unknown keys and wrong types raise ConfigError
before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wavesr.config.bounds import check_size_limits
from wavesr.errors import ConfigError
from wavesr.io_atomic import atomic_write
from wavesr.model.autoencoder import AutoencoderConfig
from wavesr.model.degrade import KINDS, RANDOM, SLICE_PROFILES, Degradation, RandomDegradation
from wavesr.model.diffusion.gaussian_diffusion import LOSS_WEIGHTINGS
from wavesr.model.latent_scaling import LATENT_SCALINGS
from wavesr.model.transformer import CONDITIONING_MODES, LDTConfig

PRESET_DIR = Path(__file__).parent.parent / "configs"


@dataclass
class DataConfig:
    paths: list[str] = field(default_factory=list)
    size: int = 224  # slices larger than this are reduced to it (see `resize`)
    resize: str = "area"  # "area" (anti-aliased downscale) or "center-crop"
    crop: int = 128  # random training crop (multiple of the model stride)
    scale: int = 4
    # "bicubic", "kspace", "slice-axis" (thick slices, rows) or "random" (a draw per image of
    # in-plane acquisitions, `RandomDegradation`, all put onto the HR grid by zero-filling)
    degradation: str = "bicubic"
    noise_sigma: float = 0.0
    slice_profile: str = "gaussian"  # slice-axis: "gaussian" (FWHM = scale) or "box"
    slice_gap: float = 0.0  # slice-axis: gap between slices, fraction of the spacing, [0, 1)
    normalization: str = "slice-minmax"
    # NIfTI slicing axis; None = axial; "all" = slices along all three axes; "reformats" = the
    # coronal and sagittal slices with the S/I axis on their rows (a thick-axial scan's reformats)
    axis: str | None = None
    transpose: bool = False  # image-space training crops (stages 1, 3) also randomly transposed
    cache_max_slices: int = 0  # stage 2 encodes at most this many slices (evenly spaced); 0 = all

    def to_degradation(self) -> Degradation | RandomDegradation:
        """The training degradation these settings describe (noise included)."""
        if self.degradation == RANDOM:
            return RandomDegradation(self.scale)
        return Degradation(
            self.degradation, self.scale, self.noise_sigma, self.slice_profile, self.slice_gap
        )


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # "adam" or "adamw"
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # "cosine" (to min_lr over max_steps) or "constant"


@dataclass
class TrainConfig:
    batch_size: int = 8
    max_steps: int = 10000
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 250
    keep_last: int = 3
    mixed_precision: str = "no"  # "no", "fp16", "bf16"
    ema_decay: float = 0.0  # 0 disables EMA
    validate_every: int = 0  # steps between validations (tasks that have one); 0 = off
    validation_slices: int = 16  # training-split slices held out for the validation


# What the patch discriminator judges (model/perceptual.py): the image, the decoded HF Haar
# bands (LH, HL, HH at their band scales) or both, each through its own discriminator.
DISCRIMINATOR_INPUTS = ("image", "bands", "image+bands")


@dataclass
class PerceptualConfig:
    """Texture terms of the autoencoder stages (stage 1, stage 3's decoder; all off at 0):
    a patch discriminator with a hinge loss and the VQGAN adaptive weight, and the focal
    frequency loss (docs/design.md, "Perceptual mode: code"). Other stages must leave them 0."""

    adversarial_weight: float = 0.0  # times the adaptive weight; 0 = no discriminator at all
    adversarial_start: int = 0  # step from which the discriminator trains and the term counts
    adaptive_weight: bool = True  # VQGAN's grad-norm ratio at the decoder's last layer
    discriminator_lr: float = 1e-4  # Adam, betas (0.5, 0.9), constant
    discriminator_channels: int = 64  # multiple of 8
    discriminator_layers: int = 3
    discriminator_input: str = "image"  # "image", "bands" (LH, HL, HH) or "image+bands"
    focal_frequency_weight: float = 0.0
    focal_frequency_alpha: float = 1.0


@dataclass
class StageConfig:
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)


# Named operating points (`--mode`): the best-PSNR setting and the sampling setting.
OPERATING_MODES = ("faithful", "perceptual")
PERCEPTUAL_TEMPERATURE = 1.0  # a bundle without diffusion.modes: sample the learnt distribution


@dataclass
class OperatingPoint:
    temperature: float = 0.0
    consistency_steps: int = 0


@dataclass
class OperatingModes:
    """``diffusion.modes``; None: faithful = temperature 0 with the model's consistency_steps,
    perceptual = temperature 1 without back-projection (docs/design.md, "Perceptual mode")."""

    faithful: OperatingPoint | None = None
    perceptual: OperatingPoint | None = None


@dataclass
class DiffusionConfig:
    num_timesteps: int = 1000
    noise_schedule: str = "cosine"  # "cosine" or "linear"
    predict: str = "eps"  # "eps" or "x0"
    learn_sigma: bool = True
    vlb_weight: float = 1e-4
    vlb_scaling: str = "per-dim-bits"
    loss_weighting: str = "uniform"  # "uniform" (L_simple) or "min-snr" (Min-SNR-gamma)
    min_snr_gamma: float = 5.0
    # "global": one scale for all generated channels (the SD VAE's 0.18215 habit);
    # "per-channel": each latent channel standardised to zero mean, unit std (latent_scaling.py).
    latent_scaling: str = "global"
    sampler: str = "ddim"  # "ddim" or "ancestral"
    sample_steps: int = 50
    eta: float = 0.0
    # Scale of the starting noise x_T (1 = the model's distribution). Below 1 the DDIM sample moves
    # towards the conditional mode: fewer invented details, higher PSNR (docs/diffusion.md).
    temperature: float = 1.0
    # Iterations of back-projection onto the LR input after decoding (0 = off; docs/design.md).
    consistency_steps: int = 0
    # Tiled sampling (tiling.py): latents larger than this window (latent pixels; 0 = never) are
    # denoised as overlapping windows, blended; the cpu preset uses its training crop.
    tile_window: int = 0
    tile_overlap: int = 8
    modes: OperatingModes = field(default_factory=OperatingModes)


@dataclass
class BaselineConfig:
    edsr_blocks: int = 16
    edsr_channels: int = 32
    unet_channels: int = 32
    unet_mults: list[int] = field(default_factory=lambda: [1, 2, 2])
    # What the pixel-diffusion baseline diffuses: "image" (SR3) or "residual" (SRDiff: HR minus
    # bicubic, times residual_scale so that it spans about [-1, 1] like an image).
    pixel_target: str = "image"
    residual_scale: float = 5.0


# What stage 3 decodes in place of the encoded latents (`wavesr_training.robust_latents`).
ROBUST_LATENTS = ("one-step", "sampled")


@dataclass
class WaveSRTrainingConfig:
    """`wavesr train wavesr`: its stages and how its --max-minutes is shared between them.

    With ``robust_decoder`` a third stage fine-tunes the decoder (encoder frozen) on a mix of
    encoded latents and the trained LDT's predictions (``decoder_training`` settings): a decoder
    that has only seen encoded latents renders the LDT's estimates worse than it could.
    """

    autoencoder_share: float = 0.35
    robust_decoder: bool = False
    decoder_share: float = 0.15  # of --max-minutes, when robust_decoder; stage 2 gets the rest
    robust_fraction: float = 0.5  # share of each stage-3 batch decoded from LDT predictions
    # What those predictions are: "one-step" (the x0 prediction from a random timestep, cheap) or
    # "sampled" (the DDIM run of inference, diffusion.sample_steps at diffusion.temperature).
    robust_latents: str = "one-step"


@dataclass
class WaveSRConfig:
    name: str = "custom"
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    ldt: LDTConfig = field(default_factory=LDTConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    autoencoder_training: StageConfig = field(default_factory=StageConfig)
    ldt_training: StageConfig = field(default_factory=StageConfig)
    decoder_training: StageConfig = field(default_factory=StageConfig)
    baseline_training: StageConfig = field(default_factory=StageConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    wavesr_training: WaveSRTrainingConfig = field(default_factory=WaveSRTrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> WaveSRConfig:
        checks = [
            (self.data.scale in (2, 4, 8), "data.scale must be 2, 4 or 8"),
            (
                self.data.degradation in (*KINDS, RANDOM),
                "data.degradation: " + "|".join((*KINDS, RANDOM)),
            ),
            (
                self.data.slice_profile in SLICE_PROFILES,
                "data.slice_profile: " + "|".join(SLICE_PROFILES),
            ),
            (
                math.isfinite(self.data.slice_gap) and 0 <= self.data.slice_gap < 1,
                "data.slice_gap must lie in [0, 1)",
            ),
            (self.data.resize in ("area", "center-crop"), "data.resize: area|center-crop"),
            (self.diffusion.noise_schedule in ("cosine", "linear"), "diffusion.noise_schedule"),
            (self.diffusion.predict in ("eps", "x0"), "diffusion.predict must be eps or x0"),
            (self.diffusion.sampler in ("ddim", "ancestral"), "diffusion.sampler: ddim|ancestral"),
            (
                self.diffusion.loss_weighting in LOSS_WEIGHTINGS,
                "diffusion.loss_weighting: " + "|".join(LOSS_WEIGHTINGS),
            ),
            (self.diffusion.min_snr_gamma > 0, "diffusion.min_snr_gamma must be > 0"),
            (
                self.diffusion.latent_scaling in LATENT_SCALINGS,
                "diffusion.latent_scaling: " + "|".join(LATENT_SCALINGS),
            ),
            (self.autoencoder.downsample in (2, 4, 8), "autoencoder.downsample must be 2, 4 or 8"),
            (
                self.ldt.conditioning in CONDITIONING_MODES,
                "ldt.conditioning: " + "|".join(CONDITIONING_MODES),
            ),
            (
                self.ldt.in_channels == self.autoencoder.generated_channels,
                f"ldt.in_channels must be {self.autoencoder.generated_channels} (the latent "
                "channels of the generated bands)",
            ),
            (self.ldt.cond_channels == self.autoencoder.latent_channels, "ldt.cond_channels"),
        ]
        check_size_limits(self)
        stride = 2 * self.autoencoder.downsample * self.ldt.patch_size
        checks.append(
            (
                self.data.crop >= stride and self.data.crop % stride == 0,
                f"data.crop must be a positive multiple of {stride}",
            )
        )
        checks.append((self.data.noise_sigma >= 0, "data.noise_sigma must be >= 0"))
        checks.append(
            (
                0 < self.wavesr_training.autoencoder_share < 1,
                "wavesr_training.autoencoder_share must lie in (0, 1)",
            )
        )
        shares = self.wavesr_training.autoencoder_share + self.wavesr_training.decoder_share
        checks.append(
            (
                0 <= self.wavesr_training.decoder_share and shares < 1,
                "wavesr_training.decoder_share must be >= 0, and with autoencoder_share < 1",
            )
        )
        checks.append(
            (
                0 < self.wavesr_training.robust_fraction <= 1,
                "wavesr_training.robust_fraction must lie in (0, 1]",
            )
        )
        checks.append(
            (
                self.wavesr_training.robust_latents in ROBUST_LATENTS,
                "wavesr_training.robust_latents must be one-step or sampled",
            )
        )
        stages = {
            "autoencoder_training": self.autoencoder_training,
            "ldt_training": self.ldt_training,
            "decoder_training": self.decoder_training,
            "baseline_training": self.baseline_training,
        }
        for name, stage in stages.items():
            checks += _stage_checks(name, stage)
            if name in ("ldt_training", "baseline_training"):
                p = stage.perceptual
                unused = p.adversarial_weight == 0 and p.focal_frequency_weight == 0
                checks.append((unused, f"{name}.perceptual: only the autoencoder stages use it"))
        checks += _model_checks(self)
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid config: {message}")
        return self


def _stage_checks(name: str, stage: StageConfig) -> list[tuple[bool, str]]:
    """Values that would otherwise crash (or silently misbehave) in the middle of a run."""
    t, o = stage.train, stage.optim
    return [
        (t.batch_size >= 1, f"{name}.train.batch_size must be >= 1"),
        (t.max_steps >= 1, f"{name}.train.max_steps must be >= 1"),
        (t.log_every >= 1, f"{name}.train.log_every must be >= 1"),
        (t.checkpoint_every >= 1, f"{name}.train.checkpoint_every must be >= 1"),
        (t.keep_last >= 1, f"{name}.train.keep_last must be >= 1"),
        (t.validate_every >= 0, f"{name}.train.validate_every must be >= 0 (0 = off)"),
        (t.validation_slices >= 1, f"{name}.train.validation_slices must be >= 1"),
        (0 <= t.ema_decay < 1, f"{name}.train.ema_decay must lie in [0, 1)"),
        (
            t.mixed_precision in ("no", "fp16", "bf16"),
            f"{name}.train.mixed_precision: no|fp16|bf16",
        ),
        (o.lr > 0, f"{name}.optim.lr must be > 0"),
        (0 <= o.min_lr <= o.lr, f"{name}.optim.min_lr must lie in [0, lr]"),
        (o.warmup_steps >= 0, f"{name}.optim.warmup_steps must be >= 0"),
        (o.schedule in ("cosine", "constant"), f"{name}.optim.schedule: cosine|constant"),
        (o.optimizer in ("adam", "adamw"), f"{name}.optim.optimizer: adam|adamw"),
        *_perceptual_checks(f"{name}.perceptual", stage.perceptual),
    ]


def _perceptual_checks(name: str, p: PerceptualConfig) -> list[tuple[bool, str]]:
    return [
        (p.adversarial_weight >= 0, f"{name}.adversarial_weight must be >= 0 (0 = off)"),
        (p.adversarial_start >= 0, f"{name}.adversarial_start must be >= 0"),
        (p.discriminator_lr > 0, f"{name}.discriminator_lr must be > 0"),
        (
            p.discriminator_channels >= 8 and p.discriminator_channels % 8 == 0,
            f"{name}.discriminator_channels must be a positive multiple of 8",
        ),
        (1 <= p.discriminator_layers <= 5, f"{name}.discriminator_layers must be in [1, 5]"),
        (
            p.discriminator_input in DISCRIMINATOR_INPUTS,
            f"{name}.discriminator_input: " + "|".join(DISCRIMINATOR_INPUTS),
        ),
        (p.focal_frequency_weight >= 0, f"{name}.focal_frequency_weight must be >= 0 (0 = off)"),
        (p.focal_frequency_alpha > 0, f"{name}.focal_frequency_alpha must be > 0"),
    ]


def _model_checks(config: WaveSRConfig) -> list[tuple[bool, str]]:
    """Sizes and widths that would otherwise fail inside torch / diffusers, or train on nothing."""
    ae, diff, data = config.autoencoder, config.diffusion, config.data
    counts = (ae.latent_channels, ae.base_channels, ae.channel_mult_last, ae.layers_per_block)
    sizes_ok = min(*counts, ae.norm_num_groups, ae.cond_channels) >= 1
    widths_ok = sizes_ok and ae.downsample in (2, 4, 8)
    if widths_ok:
        widths = (*ae.block_out_channels(), ae.cond_channels)
        widths_ok = all(w % ae.norm_num_groups == 0 for w in widths)
    checks = [
        (data.size >= 16, "data.size must be >= 16"),
        (data.cache_max_slices >= 0, "data.cache_max_slices must be >= 0 (0 = all)"),
        (diff.num_timesteps >= 1, "diffusion.num_timesteps must be >= 1"),
        (
            1 <= diff.sample_steps <= diff.num_timesteps,
            "diffusion.sample_steps must lie in [1, num_timesteps]",
        ),
        (diff.eta >= 0, "diffusion.eta must be >= 0"),
        (diff.tile_window >= 0, "diffusion.tile_window must be >= 0 (0 = no tiling)"),
        (
            diff.tile_window == 0 or 0 <= diff.tile_overlap < diff.tile_window,
            "diffusion.tile_overlap must lie in [0, tile_window)",
        ),
        (0 <= diff.temperature <= 1, "diffusion.temperature must be in [0, 1]"),
        (
            0 <= diff.consistency_steps <= MAX_CONSISTENCY_STEPS,
            f"diffusion.consistency_steps must be in [0, {MAX_CONSISTENCY_STEPS}]",
        ),
        *(
            (
                0 <= point.temperature <= 1
                and 0 <= point.consistency_steps <= MAX_CONSISTENCY_STEPS,
                f"diffusion.modes.{name}: temperature in [0, 1], consistency_steps in "
                f"[0, {MAX_CONSISTENCY_STEPS}]",
            )
            for name in OPERATING_MODES
            if (point := getattr(diff.modes, name)) is not None
        ),
        (
            widths_ok,
            "autoencoder widths (base_channels, channel_mult_last, cond_channels, ...) must be "
            ">= 1 and multiples of norm_num_groups",
        ),
        (
            len(ae.band_scales) in (ae.encoded_bands, 5) and all(s > 0 for s in ae.band_scales),
            f"autoencoder.band_scales needs {ae.encoded_bands} positive values "
            "(LL, LH, HL, HH, and the LL detail when autoencoder.ll_detail is on)",
        ),
        (
            config.baselines.pixel_target in ("image", "residual"),
            "baselines.pixel_target must be image or residual",
        ),
        (config.baselines.residual_scale > 0, "baselines.residual_scale must be > 0"),
        (
            0 <= ae.condition_dropout < 1,
            "autoencoder.condition_dropout must be in [0, 1)",
        ),
        (ae.lr_condition in ("ll", "bands"), "autoencoder.lr_condition must be ll or bands"),
    ]
    for name in ("autoencoder_training", "ldt_training", "decoder_training", "baseline_training"):
        optim = getattr(config, name).optim
        checks.append((optim.weight_decay >= 0, f"{name}.optim.weight_decay must be >= 0"))
        checks.append((optim.grad_clip >= 0, f"{name}.optim.grad_clip must be >= 0 (0 = off)"))
    return checks


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key}: {value!r} is not a valid {annotation}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key}: expected a mapping, got {value!r}")
        return _build(annotation, value, key)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key {key}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(annotation) or (Any,)
        items = [_coerce(v, inner, f"{key}[]") for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as the number it plainly is.
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    if annotation is Any:
        return value
    raise ConfigError(
        f"config key {key}: {value!r} is not a valid {getattr(annotation, '__name__', annotation)}"
    )


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config key {prefix + '.' if prefix else ''}{unknown[0]}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(values: dict) -> WaveSRConfig:
    return _build(WaveSRConfig, values).validate()


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config override {dotted}: {part} is not a section")
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"config override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config override {text!r}: value is not valid YAML") from exc


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def read_yaml(path: Path) -> dict:
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config ({exc.__class__.__name__})", path) from exc
    if not isinstance(values, dict):
        raise ConfigError("config file must hold a mapping", path)
    return values


MAX_CONSISTENCY_STEPS = 100


def check_consistency_steps(steps: int | None) -> None:
    """A `--consistency-steps` option: None (the model's own) or 0..MAX_CONSISTENCY_STEPS."""
    if steps is not None and not 0 <= steps <= MAX_CONSISTENCY_STEPS:
        raise ConfigError(
            f"--consistency-steps must be in [0, {MAX_CONSISTENCY_STEPS}], got {steps}"
        )


def check_temperature(temperature: float | None) -> None:
    """A `--temperature` option: None (the model's own) or a value in [0, 1]."""
    if temperature is not None and not 0.0 <= temperature <= 1.0:
        raise ConfigError(f"--temperature must be in [0, 1], got {temperature}")


def operating_point(diffusion: DiffusionConfig, mode: str) -> OperatingPoint:
    """The model's ``diffusion.modes`` entry for ``mode``, or its default (`OperatingModes`)."""
    if mode not in OPERATING_MODES:
        raise ConfigError(f"--mode must be one of {', '.join(OPERATING_MODES)}, got {mode!r}")
    point = getattr(diffusion.modes, mode)
    if point is not None:
        return point
    if mode == "faithful":
        return OperatingPoint(0.0, diffusion.consistency_steps)
    return OperatingPoint(PERCEPTUAL_TEMPERATURE, 0)


def sampling_settings(
    diffusion: DiffusionConfig,
    mode: str | None,
    temperature: float | None = None,
    consistency_steps: int | None = None,
) -> tuple[float, int]:
    """(temperature, consistency_steps) to run with: explicit values first, then ``mode``'s,
    then the model's own ``diffusion.temperature`` / ``consistency_steps``."""
    if mode is not None:
        point = operating_point(diffusion, mode)
        default_t, default_c = point.temperature, point.consistency_steps
    else:
        default_t, default_c = diffusion.temperature, diffusion.consistency_steps
    return (
        default_t if temperature is None else temperature,
        default_c if consistency_steps is None else consistency_steps,
    )


def check_mode(mode: str | None) -> None:
    """A `--mode` option: None (the model's own defaults) or one of OPERATING_MODES."""
    if mode is not None and mode not in OPERATING_MODES:
        raise ConfigError(f"--mode must be one of {', '.join(OPERATING_MODES)}, got {mode!r}")


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> WaveSRConfig:
    """A preset name (``cpu``, ``paper``, ``tiny``) or a YAML path, plus ``key=value`` overrides."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError("config file not found", path)
        values = read_yaml(path)
    elif (PRESET_DIR / f"{name_or_path}.yaml").is_file():
        values = read_yaml(PRESET_DIR / f"{name_or_path}.yaml")
    else:
        raise ConfigError(
            f"unknown preset {name_or_path!r}; choose from {preset_names()} or a .yaml"
        )
    for text in overrides or []:
        _set_dotted(values, *parse_override(text))
    return config_from_dict(values)


def with_overrides(config: WaveSRConfig, overrides: list[str]) -> WaveSRConfig:
    """A validated copy of ``config`` with ``key=value`` overrides applied."""
    values = config.to_dict()
    for text in overrides:
        _set_dotted(values, *parse_override(text))
    return config_from_dict(values)


def save_config(config: WaveSRConfig, path: Path) -> None:
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text), overwrite=True)
