"""Assemble a WaveSR model folder from training runs (and shrink it to fp16 for bundling).

The LDT is trained on latents of a frozen encoder, so its decoder may be replaced by one fine-tuned
later with the same encoder (`wavesr train autoencoder --init-from AE --freeze-encoder`). Export
checks that the encoders are identical before it combines them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from wavesr.bundle.folder import load_bundle, save_bundle
from wavesr.config import WaveSRConfig, operating_point, parse_override, with_overrides
from wavesr.errors import CheckpointError, ConfigError

# What the LDT's weights were trained with: changing these on export would break the model.
FIXED_BY_TRAINING = {
    f"diffusion.{k}"
    for k in (
        "num_timesteps",
        "noise_schedule",
        "predict",
        "learn_sigma",
        "latent_scaling",
        "loss_weighting",
        "min_snr_gamma",
        "vlb_weight",
        "vlb_scaling",
    )
}


def _same_encoder(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    keys_a = {k for k in a if k.startswith("encoder.")}
    keys_b = {k for k in b if k.startswith("encoder.")}
    return keys_a == keys_b and all(torch.equal(a[k].float(), b[k].float()) for k in keys_a)


def inference_overrides(config: WaveSRConfig, overrides: list[str]) -> WaveSRConfig:
    """``config`` with ``diffusion.*`` overrides; any other key is a ConfigError."""
    for text in overrides:
        key = parse_override(text)[0]
        if key.split(".")[0] != "diffusion" or key in FIXED_BY_TRAINING:
            raise ConfigError(
                f"export --set {key}: only inference settings (diffusion.*, not the schedule "
                "or prediction the LDT was trained with) can change on export"
            )
    return with_overrides(config, overrides)


def export_model(
    ldt_run: Path,
    out: Path,
    *,
    autoencoder_run: Path | None = None,
    fp16: bool = False,
    temperature: float | None = None,
    consistency_steps: int | None = None,
    overrides: list[str] | None = None,
    modes: dict[str, dict] | None = None,
) -> Path:
    """Write a self-contained model folder (autoencoder + LDT + latent scales) to ``out``.

    ``temperature`` and ``consistency_steps`` set the model's defaults (``diffusion.*``), as do
    ``overrides`` (``diffusion.KEY=VALUE``: inference settings only, e.g. the sampling steps or
    the tile window; the networks must stay those the weights were trained as).
    ``modes`` ({"perceptual": {"temperature": 0.8}, ...}) writes ``diffusion.modes``: the values
    given, the rest from the mode's default (`config.operating_point`).
    A baseline run (``edsr``, ``pixel-diffusion``) is copied as it is (optionally in fp16).
    """
    ldt = load_bundle(ldt_run)
    if ldt.kind in ("edsr", "pixel-diffusion") and autoencoder_run is None:
        dtype = torch.float16 if fp16 else None
        save_bundle(
            out, ldt.kind, ldt.config, ldt.tensors, extras=ldt.extras, step=ldt.step, dtype=dtype
        )
        return out
    if ldt.kind != "wavesr" or "ldt" not in ldt.tensors:
        raise CheckpointError("not a WaveSR (autoencoder + LDT) run", ldt_run)
    config, autoencoder = ldt.config, ldt.tensors["autoencoder"]
    extras = dict(ldt.extras)
    if autoencoder_run is not None:
        ae = load_bundle(autoencoder_run)
        if "autoencoder" not in ae.tensors:
            raise CheckpointError("holds no autoencoder weights", autoencoder_run)
        if not _same_encoder(autoencoder, ae.tensors["autoencoder"]):
            raise CheckpointError(
                "its encoder differs from the one the LDT was trained with; fine-tune the "
                "decoder with --init-from and --freeze-encoder",
                autoencoder_run,
            )
        config.autoencoder = ae.config.autoencoder
        autoencoder = ae.tensors["autoencoder"]
        extras["decoder_source"] = str(autoencoder_run)
    if overrides:
        config = inference_overrides(config, overrides)
    if temperature is not None:
        config.diffusion.temperature = temperature
    if consistency_steps is not None:
        config.diffusion.consistency_steps = consistency_steps
    set_modes(config, modes or {})
    config.validate()
    save_bundle(
        out,
        "wavesr",
        config,
        {"autoencoder": autoencoder, "ldt": ldt.tensors["ldt"]},
        extras=extras,
        step=ldt.step,
        dtype=torch.float16 if fp16 else None,
    )
    return out


def set_modes(config: WaveSRConfig, modes: dict[str, dict]) -> None:
    """Write the named operating points given (``--perceptual-temperature`` and the like)."""
    for name, values in modes.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            point = replace(operating_point(config.diffusion, name), **given)
            setattr(config.diffusion.modes, name, point)
