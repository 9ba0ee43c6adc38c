"""The baselines as evaluation methods: ``edsr`` and ``pixel-diffusion``.

Weights come from ``--weights NAME=RUN`` (a bundle folder written by ``wavesr train NAME``), else
from the bundled default ``wavesr.weights.baseline_dir(NAME)``. The bundle's trained scale must
be the evaluation scale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from wavesr.baselines.edsr import EDSR
from wavesr.baselines.pixel_diffusion import PixelDiffusionSampler, build_unet
from wavesr.bundle.checkpoint_io import load_state_into
from wavesr.bundle.folder import Bundle, load_bundle
from wavesr.errors import ConfigError
from wavesr.evaluation.methods import MethodContext, check_model_scale, register_method
from wavesr.model.degrade import Degradation, model_input, upsample_for


def baseline_weights_dir(name: str, ctx: MethodContext) -> Path:
    """``ctx.weights[name]``, else the bundled default; a ConfigError naming both when neither."""
    if name in ctx.weights:
        return Path(ctx.weights[name])
    hint = f"pass --weights {name}=RUN (a `wavesr train {name}` run folder)"
    try:
        from wavesr.weights import baseline_dir
    except ModuleNotFoundError as exc:
        if exc.name != "wavesr.weights":
            raise
        raise ConfigError(f"method {name} needs weights: {hint}") from None
    try:
        return Path(baseline_dir(name))
    except ConfigError:
        raise ConfigError(
            f"method {name} needs weights: {hint} (no bundled {name} baseline is installed)"
        ) from None


def load_baseline(name: str, ctx: MethodContext) -> tuple[Bundle, nn.Module, dict]:
    """The bundle, its network (weights loaded, on ``ctx.device``, eval mode) and info."""
    path = baseline_weights_dir(name, ctx)
    bundle = load_bundle(path)
    if bundle.kind != name or "network" not in bundle.tensors:
        raise ConfigError(
            f"method {name} needs a {name!r} bundle, this one is {bundle.kind!r}", path
        )
    check_model_scale(bundle.config.data.scale, ctx, path)
    network = (
        EDSR.from_config(bundle.config.baselines) if name == "edsr" else build_unet(bundle.config)
    )
    load_state_into(network, bundle.tensors["network"], bundle.root)
    data = bundle.config.data
    info = {
        "model": str(path),
        "model_kind": bundle.kind,
        "model_step": bundle.step,
        "trained_degradation": data.to_degradation().label,
    }
    return bundle, network.to(ctx.device).eval(), info


def input_grid(bundle: Bundle, ctx: MethodContext) -> Degradation:
    """How a baseline puts its LR onto the HR grid: as its training did (`model_input`)."""
    return model_input(bundle.config.data.to_degradation(), ctx.told_degradation)


class EDSRMethod:
    name = "edsr"

    def __init__(
        self,
        network: nn.Module,
        device: str,
        info: dict | None = None,
        grid: Degradation | None = None,
    ) -> None:
        self.net, self.device, self.info = network, torch.device(device), info or {}
        self.grid = grid

    def network(self) -> nn.Module:
        return self.net

    def flops_call(self, lr_up: Tensor) -> Callable[[], Tensor]:
        return lambda: self.on_hr_grid(lr_up)

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        return self.on_hr_grid(lr_up if self.grid is None else upsample_for(lr, self.grid))

    @torch.no_grad()
    def on_hr_grid(self, lr_up: Tensor) -> Tensor:
        sr = self.net(lr_up.to(self.device, torch.float32))
        return sr.clamp(0.0, 1.0).to(lr_up.device)


class PixelDiffusionMethod:
    name = "pixel-diffusion"

    def __init__(
        self,
        sampler: PixelDiffusionSampler,
        steps: int,
        seed: int,
        info: dict | None = None,
        grid: Degradation | None = None,
    ) -> None:
        self.sampler, self.steps, self.seed, self.info = sampler, steps, seed, info or {}
        self.grid = grid

    def network(self) -> nn.Module:
        return self.sampler.network

    def flops_call(self, lr_up: Tensor) -> Callable[[], Tensor]:
        return lambda: self.on_hr_grid(lr_up)

    def __call__(self, lr: Tensor, lr_up: Tensor, hr: Tensor) -> Tensor:
        return self.on_hr_grid(lr_up if self.grid is None else upsample_for(lr, self.grid))

    def on_hr_grid(self, lr_up: Tensor) -> Tensor:
        return self.sampler(lr_up, steps=self.steps, seed=self.seed).to(lr_up.device)


@register_method("edsr")
def _edsr(ctx: MethodContext) -> EDSRMethod:
    bundle, network, info = load_baseline("edsr", ctx)
    return EDSRMethod(network, ctx.device, info, input_grid(bundle, ctx))


@register_method("pixel-diffusion")
def _pixel_diffusion(ctx: MethodContext) -> PixelDiffusionMethod:
    bundle, network, info = load_baseline("pixel-diffusion", ctx)
    sampler = PixelDiffusionSampler(bundle.config, network, ctx.device)
    steps = ctx.steps or bundle.config.diffusion.sample_steps
    diffusion = bundle.config.diffusion
    info.update(steps=steps, sampler=diffusion.sampler, temperature=diffusion.temperature)
    return PixelDiffusionMethod(sampler, steps, ctx.seed, info, input_grid(bundle, ctx))
