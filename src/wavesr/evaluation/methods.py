"""SR methods that `wavesr evaluate` can compare, behind one small registry.

A method is built by a factory ``factory(ctx: MethodContext) -> SRMethod`` registered under a
name with ``@register_method("name")``. Adding a method is one decorated factory anywhere that
is imported (the baselines register theirs from ``wavesr.evaluation.baseline_methods``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from wavesr.config import sampling_settings
from wavesr.errors import ConfigError
from wavesr.model.degrade import Degradation, back_project, upsample_for, zero_fill_upsample

MODEL_DEGRADATIONS = ("auto", "input")

__all__ = [
    "MethodContext",
    "SRMethod",
    "build_method",
    "check_model_scale",
    "known_methods",
    "model_dir_for",
    "register_method",
    "unregister_method",
]


@dataclass
class MethodContext:
    """What every method factory may need; a factory uses only the fields it cares about."""

    scale: int
    degradation: Degradation
    model: Path | None = None  # --model: the default model folder for all network methods
    weights: dict[str, Path] = field(default_factory=dict)  # --weights METHOD=DIR
    steps: int = 50
    seed: int = 0
    device: str = "cpu"
    batch: int = 16
    temperature: float | None = None  # None: the model's own diffusion.temperature
    consistency_steps: int | None = None  # None: the model's own diffusion.consistency_steps
    mode: str | None = None  # "faithful" / "perceptual": the model's operating point (--mode)
    # Whether the network methods are told `degradation` ("input") or assume their own
    # ("auto"), as a user with an LR series of unknown acquisition runs them.
    model_degradation: str = "auto"

    def __post_init__(self) -> None:
        if self.model_degradation not in MODEL_DEGRADATIONS:
            raise ConfigError(
                f"--model-degradation must be one of {', '.join(MODEL_DEGRADATIONS)}, "
                f"got {self.model_degradation!r}"
            )

    @property
    def told_degradation(self) -> Degradation | None:
        """What the network methods are told of the LR: the degradation, or None (their own)."""
        return self.degradation if self.model_degradation == "input" else None


class SRMethod(Protocol):
    """Optionally also `info: dict` (model folder, kind, ...) copied into metrics.json."""

    name: str

    def network(self) -> torch.nn.Module | None:
        """The network(s) whose parameters are counted; None for interpolation."""
        ...

    def flops_call(self, lr_up: Tensor) -> Callable[[], object] | None:
        """A zero-argument function doing one full SR of the one slice `lr_up` (1, 1, H, W)."""
        ...

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        """(B, 1, h, w) LR, (B, 1, H, W) LR on the HR grid -> (B, 1, H, W) SR.

        `hr` is only for oracles (upper bounds); real methods must ignore it.
        """
        ...


MethodFactory = Callable[[MethodContext], SRMethod]
_FACTORIES: dict[str, MethodFactory] = {}


def register_method(name: str) -> Callable[[MethodFactory], MethodFactory]:
    """Decorator: register `factory(ctx) -> SRMethod` under `name` (names are unique)."""

    def decorate(factory: MethodFactory) -> MethodFactory:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"SR method {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return decorate


def unregister_method(name: str) -> None:
    """Remove a method (for tests and plug-ins that replace one); unknown names are ignored."""
    _FACTORIES.pop(name, None)


def known_methods() -> list[str]:
    return sorted(_FACTORIES)


def build_method(name: str, ctx: MethodContext) -> SRMethod:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown method {name!r} (known: {', '.join(known_methods())})")
    return factory(ctx)


def model_dir_for(name: str, ctx: MethodContext) -> Path | None:
    """The model folder for method `name`: its --weights entry, else --model, else None."""
    return ctx.weights.get(name) or ctx.model


def check_model_scale(trained_scale: int, ctx: MethodContext, path: Path | None) -> None:
    if int(trained_scale) != int(ctx.scale):
        raise ConfigError(f"model trained for x{trained_scale}, asked for x{ctx.scale}", path)


# ----------------------------------------------------------------------------- built-ins


class Bicubic:
    """Bicubic interpolation of the LR image (along the rows only for slice-axis LRs)."""

    name = "bicubic"

    def __init__(self, degradation: Degradation) -> None:
        self.degradation = replace(degradation, upsampler="bicubic")

    def network(self) -> None:
        return None

    def flops_call(self, lr_up: Tensor) -> None:
        return None

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        return upsample_for(lr, self.degradation)


@register_method("bicubic")
def _bicubic(ctx: MethodContext) -> Bicubic:
    return Bicubic(ctx.degradation)


class ZeroFill:
    """The scanner's own upsampler: zero-filled (sinc) interpolation through k-space."""

    name = "zero-fill"

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def network(self) -> None:
        return None

    def flops_call(self, lr_up: Tensor) -> None:
        return None

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        return zero_fill_upsample(lr, self.scale).clamp(0.0, 1.0)


@register_method("zero-fill")
def _zero_fill(ctx: MethodContext) -> ZeroFill:
    if ctx.degradation.kind == "slice-axis":
        raise ConfigError("zero-fill is an in-plane method (k-space of both axes)")
    return ZeroFill(ctx.scale)


def _load_pipeline(name: str, path: Path, ctx: MethodContext, *, need_ldt: bool):
    from wavesr.bundle.folder import load_bundle, load_pipeline

    bundle = load_bundle(path)
    if need_ldt and "ldt" not in bundle.tensors:
        raise ConfigError(
            f"method {name} needs a full wavesr model (autoencoder + LDT), but this is an "
            f"{bundle.kind!r} bundle (use autoencoder-oracle for it)",
            path,
        )
    check_model_scale(bundle.config.data.scale, ctx, path)
    data = bundle.config.data
    info = {
        "model": str(path),
        "model_kind": bundle.kind,
        "model_step": bundle.step,
        "trained_degradation": data.to_degradation().label,
    }
    return load_pipeline(bundle, device=ctx.device), info


class AutoencoderOracle:
    """Decode the encoded HR high-frequency latents: the autoencoder's upper bound."""

    name = "autoencoder-oracle"

    def __init__(
        self, pipeline, info: dict | None = None, degradation: Degradation | None = None
    ) -> None:
        self.pipeline, self.info = pipeline, info or {}
        self.degradation = degradation  # what the model is told of the LR; None: its own

    def network(self) -> torch.nn.Module:
        return self.pipeline.autoencoder

    def flops_call(self, lr_up: Tensor) -> Callable[[], Tensor]:
        return lambda: self.pipeline.oracle(lr_up, lr_up)  # FLOPs do not depend on hr's values

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        return self.pipeline.oracle(self.pipeline.to_hr_grid(lr, self.degradation), hr)


@register_method("autoencoder-oracle")
def _autoencoder_oracle(ctx: MethodContext) -> AutoencoderOracle:
    path = model_dir_for("autoencoder-oracle", ctx) or _default_model_dir()
    pipeline, info = _load_pipeline("autoencoder-oracle", path, ctx, need_ldt=False)
    return AutoencoderOracle(pipeline, info, ctx.told_degradation)


class WaveSR:
    """The full pipeline: LDT sampling of the HR high-frequency latents, then decoding."""

    name = "wavesr"

    def __init__(
        self,
        pipeline,
        steps: int,
        seed: int,
        info: dict | None = None,
        temperature: float | None = None,
        consistency_steps: int | None = None,
        degradation: Degradation | None = None,
    ) -> None:
        self.pipeline, self.steps, self.seed, self.info = pipeline, steps, seed, info or {}
        self.temperature, self.consistency_steps = temperature, consistency_steps
        self.degradation = degradation  # what the model is told of the LR; None: its own

    def network(self) -> torch.nn.Module:
        return torch.nn.ModuleDict(
            {"autoencoder": self.pipeline.autoencoder, "ldt": self.pipeline.ldt}
        )

    def flops_call(self, lr_up: Tensor) -> Callable[[], Tensor]:
        return lambda: self.on_hr_grid(lr_up)

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        return self.on_hr_grid(self.pipeline.to_hr_grid(lr, self.degradation))

    def on_hr_grid(self, lr_up: Tensor) -> Tensor:
        """The SR of an LR already put onto the HR grid by the model's own upsampler."""
        return self.pipeline(
            lr_up,
            steps=self.steps,
            seed=self.seed,
            temperature=self.temperature,
            consistency_steps=self.consistency_steps,
            degradation=self.degradation,
        )


def _default_model_dir() -> Path:
    try:
        from wavesr.weights import default_model_dir
    except ModuleNotFoundError as exc:
        if exc.name != "wavesr.weights":
            raise
        raise ConfigError("no --model given and no bundled default model") from None
    path = default_model_dir()
    if path is None:
        raise ConfigError("no --model given and no bundled default model")
    return Path(path)


def _sampling(pipeline, ctx: MethodContext) -> tuple[float, int]:
    """(temperature, consistency steps): --temperature / --consistency-steps, else --mode's,
    else the model's own."""
    diffusion = pipeline.config.diffusion
    return sampling_settings(diffusion, ctx.mode, ctx.temperature, ctx.consistency_steps)


def _consistency_steps(pipeline, ctx: MethodContext) -> int:
    return _sampling(pipeline, ctx)[1]


@register_method("wavesr")
def _wavesr(ctx: MethodContext) -> WaveSR:
    path = model_dir_for("wavesr", ctx) or _default_model_dir()
    pipeline, info = _load_pipeline("wavesr", path, ctx, need_ldt=True)
    temperature, consistency = _sampling(pipeline, ctx)
    info = {
        **info,
        "mode": ctx.mode,
        "steps": ctx.steps,
        "temperature": temperature,
        "consistency_steps": consistency,
    }
    told = ctx.told_degradation
    return WaveSR(pipeline, ctx.steps, ctx.seed, info, temperature, consistency, told)


class WaveSRZeroLatents:
    """WaveSR with all-zero generated latents instead of the LDT's samples: the LDT's baseline.

    The same model, decoder and back-projection as ``wavesr``, so the two rows differ only by
    what the LDT's latents add. Zero is in the autoencoder's latent space (what the decoder
    receives), whatever scaling the LDT samples in.
    """

    name = "wavesr-zero-latents"
    fill = "zero"  # what the decoder gets in place of the LDT's latents (the info's high_latents)

    def __init__(
        self,
        pipeline,
        info: dict | None = None,
        consistency_steps: int = 0,
        degradation: Degradation | None = None,
    ) -> None:
        self.pipeline, self.info = pipeline, info or {}
        self.consistency_steps = consistency_steps
        self.degradation = degradation  # what the model is told of the LR; None: its own

    def network(self) -> torch.nn.Module:
        return self.pipeline.autoencoder  # the LDT is never run

    def flops_call(self, lr_up: Tensor) -> Callable[[], Tensor]:
        return lambda: self.on_hr_grid(lr_up)

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        return self.on_hr_grid(self.pipeline.to_hr_grid(lr, self.degradation))

    @torch.no_grad()
    def on_hr_grid(self, lr_up: Tensor) -> Tensor:
        pipe = self.pipeline
        lr_bands, ll_latent, size = pipe.encode_condition(lr_up)
        sr = pipe.decode(lr_bands, ll_latent, self.generated_latents(ll_latent), size)
        degradation = pipe.input_degradation(self.degradation)
        return back_project(sr, lr_up.to(pipe.device), degradation, self.consistency_steps)

    def generated_latents(self, ll_latent: Tensor) -> Tensor:
        """What the decoder gets in place of the LDT's latents."""
        b, _, h, w = ll_latent.shape
        return ll_latent.new_zeros((b, self.pipeline.config.ldt.in_channels, h, w))


class WaveSRMeanLatents(WaveSRZeroLatents):
    """WaveSR with every generated latent set to its training mean (the stored latent shift).

    What an LDT that learnt the channel means but nothing about the slice would give at
    temperature 0: beating this row, not only the zero row, is what shows slice-specific detail.
    With `global` latent scaling (no shift) it equals ``wavesr-zero-latents``.
    """

    name = "wavesr-mean-latents"
    fill = "mean"

    def generated_latents(self, ll_latent: Tensor) -> Tensor:
        return self.pipeline.hf_scaling.from_diffusion(super().generated_latents(ll_latent))


class WaveSRNoiseLatents(WaveSRZeroLatents):
    """WaveSR with the LDT's sample replaced by Gaussian noise of the training latents'
    per-channel mean and std: the LDT's starting noise (same seed) times the temperature,
    mapped out of the diffusion space as a sample is. The LDT earns its place only by beating
    this row in FID and band energy (docs/design.md, "Perceptual mode: code").
    """

    name = "wavesr-noise-latents"
    fill = "noise"

    def __init__(
        self,
        pipeline,
        info: dict | None = None,
        consistency_steps: int = 0,
        degradation: Degradation | None = None,
        *,
        seed: int = 0,
        temperature: float | None = None,
    ) -> None:
        super().__init__(pipeline, info, consistency_steps, degradation)
        own = pipeline.config.diffusion.temperature  # None: the model's own, as for wavesr
        self.seed, self.temperature = seed, own if temperature is None else temperature

    def generated_latents(self, ll_latent: Tensor) -> Tensor:
        shape = tuple(super().generated_latents(ll_latent).shape)
        noise, _ = self.pipeline.starting_noise(shape, self.seed)
        return self.pipeline.hf_scaling.from_diffusion(noise * self.temperature)


def _wavesr_fixed_latents(
    cls: type[WaveSRZeroLatents], ctx: MethodContext, **options
) -> WaveSRZeroLatents:
    """The `wavesr` method's model (its own --weights entry first, then wavesr's, then --model)."""
    path = ctx.weights.get(cls.name) or model_dir_for("wavesr", ctx) or _default_model_dir()
    pipeline, info = _load_pipeline(cls.name, path, ctx, need_ldt=True)
    consistency = _consistency_steps(pipeline, ctx)
    info = {**info, "high_latents": cls.fill, "consistency_steps": consistency}
    return cls(pipeline, info, consistency, ctx.told_degradation, **options)


@register_method(WaveSRZeroLatents.name)
def _wavesr_zero_latents(ctx: MethodContext) -> WaveSRZeroLatents:
    return _wavesr_fixed_latents(WaveSRZeroLatents, ctx)


@register_method(WaveSRMeanLatents.name)
def _wavesr_mean_latents(ctx: MethodContext) -> WaveSRZeroLatents:
    return _wavesr_fixed_latents(WaveSRMeanLatents, ctx)


@register_method(WaveSRNoiseLatents.name)
def _wavesr_noise_latents(ctx: MethodContext) -> WaveSRZeroLatents:
    method = _wavesr_fixed_latents(WaveSRNoiseLatents, ctx, seed=ctx.seed)
    method.temperature = _sampling(method.pipeline, ctx)[0]
    method.info.update(seed=ctx.seed, temperature=method.temperature, mode=ctx.mode)
    return method


def _load_plugin(module: str) -> None:
    """Import `module` if it exists; a missing dependency inside it still raises."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise


# Baseline methods (edsr, pixel-diffusion) register themselves from their own module. This
# must stay last: that module imports register_method from this one.
_load_plugin("wavesr.evaluation.baseline_methods")
