"""`wavesr info`: parameters and FLOPs of the autoencoder and the LDT for one slice.

Without --model the networks are built from the config with random weights (counts and FLOPs
do not depend on the weights), so no training is needed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

PAPER_PARAMS_M = 46.3
PAPER_GFLOPS = 17.4


@dataclass
class ModelCosts:
    """Parameter counts and FLOPs (a multiply-add counts 2) of one SR of one slice."""

    size: int  # slice side as run (padded to the model stride)
    autoencoder_params: int
    ldt_params: int
    encode_flops: int  # Haar DWT + encoder of the LR LL band
    ldt_step_flops: int  # one LDT forward (one sampling step)
    decode_flops: int  # decoder + inverse DWT

    @property
    def total_params(self) -> int:
        return self.autoencoder_params + self.ldt_params

    def total_flops(self, steps: int) -> int:
        return self.encode_flops + steps * self.ldt_step_flops + self.decode_flops


def build_models(config_name: str, model: Path | None):
    """(config, autoencoder, ldt): from a bundle's weights, or random weights for a config."""
    from wavesr.model.autoencoder import FrequencyAutoencoder
    from wavesr.model.transformer import LatentDiffusionTransformer

    if model is not None:
        from wavesr.bundle.folder import load_pipeline
        from wavesr.errors import CheckpointError

        pipeline = load_pipeline(model)
        if pipeline.ldt is None:
            raise CheckpointError("this model has no LDT (an autoencoder-only run)", model)
        return pipeline.config, pipeline.autoencoder, pipeline.ldt
    from wavesr.config import load_config

    config = load_config(config_name)
    autoencoder = FrequencyAutoencoder(config.autoencoder).eval()
    ldt = LatentDiffusionTransformer(config.ldt).eval()
    return config, autoencoder, ldt


@torch.no_grad()
def measure_costs(autoencoder, ldt, size: int) -> ModelCosts:
    """FLOPs of encode / one LDT step / decode for a size x size slice (padded to the stride)."""
    from wavesr.evaluation.metrics import count_parameters, flops_per_call
    from wavesr.model.wavelet import dwt2, idwt2

    stride = autoencoder.stride * ldt.config.patch_size
    padded = -(-size // stride) * stride
    image = torch.rand(1, 1, padded, padded)
    lr_bands = dwt2(image)
    ll_latent = autoencoder.encode_band(lr_bands[:, :1], 0).mode()
    h, w = ll_latent.shape[-2:]
    noise = torch.randn(1, ldt.config.in_channels, h, w)
    t = torch.tensor([500])
    return ModelCosts(
        size=padded,
        autoencoder_params=count_parameters(autoencoder),
        ldt_params=count_parameters(ldt),
        encode_flops=flops_per_call(lambda: autoencoder.encode_band(dwt2(image)[:, :1], 0).mode()),
        ldt_step_flops=flops_per_call(lambda: ldt(noise, t, ll_latent)),
        decode_flops=flops_per_call(lambda: idwt2(autoencoder.decode(ll_latent, noise, lr_bands))),
    )


def _params_line(label: str, n: int) -> str:
    return f"  {label:<11}  {n:>12,d}  ({n / 1e6:.2f} M)"


def format_report(name: str, scale: int, size: int, costs: ModelCosts, steps: int) -> list[str]:
    def g(flops: int) -> str:
        return f"{flops / 1e9:9.3f} G"

    side = f"{size}x{size}" + (
        f" (run as {costs.size}x{costs.size}, padded to the model stride)"
        if costs.size != size
        else ""
    )
    lines = [
        f"config: {name}, x{scale}, one {side} slice",
        "parameters:",
        _params_line("autoencoder", costs.autoencoder_params),
        _params_line("LDT", costs.ldt_params),
        _params_line("total", costs.total_params),
        "FLOPs (a multiply-add counts 2; divide by 2 for MACs):",
        f"  autoencoder encode (LR LL band)  {g(costs.encode_flops)}",
        f"  LDT, per sampling step           {g(costs.ldt_step_flops)}",
        f"  decoder (+ inverse DWT)          {g(costs.decode_flops)}",
        f"  one LDT step + AE                {g(costs.total_flops(1))}",
        f"  {steps} steps + AE{' ' * (22 - len(str(steps)))}{g(costs.total_flops(steps))}",
    ]
    if name == "paper":
        lines += [
            f"paper (Table 1): {PAPER_PARAMS_M} M parameters, {PAPER_GFLOPS} G FLOPs.",
            "  The paper does not state what its 17.4 G counts; our reading is one LDT forward",
            '  plus one autoencoder pass (compare with "one LDT step + AE"), not a full '
            f"{steps}-step sampling.",
        ]
    return lines


def _run(args: argparse.Namespace) -> int:
    from wavesr.errors import ConfigError

    if args.size < 8:
        raise ConfigError(f"--size must be >= 8, got {args.size}")
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    config, autoencoder, ldt = build_models(args.config or args.preset, args.model)
    costs = measure_costs(autoencoder, ldt, args.size)
    for line in format_report(config.name, config.data.scale, args.size, costs, args.steps):
        print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from wavesr.config import preset_names

    p = sub.add_parser("info", help="parameter counts and FLOPs of the autoencoder and the LDT")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        default="paper",
        choices=preset_names(),
        help="config preset (default: paper)",
    )
    source.add_argument("--config", default=None, help="config YAML file")
    source.add_argument(
        "--model", type=Path, default=None, help="model folder (its config and weights)"
    )
    p.add_argument("--size", type=int, default=224, help="slice side in pixels (default 224)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps for the total")
    p.set_defaults(func=_run)
