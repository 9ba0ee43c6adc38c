"""Entry points of `wavesr train ...`: build data, task and engine run for one stage."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from wavesr.bundle import load_bundle
from wavesr.config import StageConfig, WaveSRConfig, save_config
from wavesr.data.bank import SliceBank
from wavesr.data.types import missing_error
from wavesr.errors import ConfigError
from wavesr.pipeline import load_autoencoder
from wavesr.training.engine import Task, TrainResult, train
from wavesr.training.tasks import AutoencoderTask, LatentCache, LDTStandIn, LDTTask


def check_data(paths: list[str]) -> None:
    """Fail early (ConfigError / InputError) when there is no training data or a path is missing."""
    if not paths:
        raise ConfigError("no training data: pass --data DIR (or set data.paths in the config)")
    for p in paths:
        if not Path(p).exists():
            raise missing_error(Path(p))


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def slice_bank(config: WaveSRConfig, progress: bool) -> SliceBank:
    """The training slices of ``config.data`` (progress bar on the main rank only)."""
    return SliceBank.from_paths(
        config.data.paths, config.data, progress=progress and is_main_rank()
    )


def run_task(
    make_task: Callable[[], Task],
    config: WaveSRConfig,
    settings: StageConfig,
    out: Path,
    *,
    max_minutes: float | None,
    resume: bool,
    progress: bool,
) -> TrainResult:
    """Write ``out/config.yaml`` (main rank), then train the task ``make_task()`` builds."""
    if is_main_rank():
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    return train(
        make_task(),
        settings,
        out,
        config_dict=config.to_dict(),
        max_minutes=max_minutes,
        resume=resume,
        progress=progress,
    )


def train_autoencoder(
    config: WaveSRConfig,
    out: Path,
    *,
    max_minutes: float | None,
    resume: bool,
    progress: bool = True,
    init_from: Path | None = None,
    freeze_encoder: bool = False,
    robust_to: Path | None = None,
    robust_fraction: float = 0.5,
) -> TrainResult:
    """Stage 1; ``init_from`` (a bundle) starts from its matching weights (fine-tuning).

    ``robust_to`` (a model bundle with an LDT trained on this encoder; needs ``freeze_encoder``)
    fine-tunes the decoder on a mix of encoded and LDT-predicted latents (`LDTStandIn`); the
    predicted ones make up ``robust_fraction`` of each batch.
    """
    check_data(config.data.paths)
    init = None
    if init_from is not None:
        init = load_bundle(init_from).tensors.get("autoencoder")
        if init is None:
            raise ConfigError(f"--init-from {init_from} holds no autoencoder weights")
    elif freeze_encoder:
        raise ConfigError("--freeze-encoder needs --init-from RUN (an encoder to keep)")
    stand_in = None
    if robust_to is not None:
        if not freeze_encoder:
            raise ConfigError("--robust-to needs --freeze-encoder (the LDT's latents must stay)")
        model_bundle = load_bundle(robust_to)
        if "ldt" not in model_bundle.tensors:
            raise ConfigError(f"--robust-to {robust_to} holds no LDT weights")
        stand_in = LDTStandIn(model_bundle, fraction=robust_fraction)
    bank = slice_bank(config, progress)
    return run_task(
        lambda: AutoencoderTask(
            config, bank, init_from=init, freeze_encoder=freeze_encoder, stand_in=stand_in
        ),
        config,
        config.autoencoder_training,
        out,
        max_minutes=max_minutes,
        resume=resume,
        progress=progress,
    )


def train_ldt(
    config: WaveSRConfig,
    autoencoder_run: Path,
    out: Path,
    *,
    max_minutes: float | None,
    resume: bool,
    progress: bool = True,
    init_from: Path | None = None,
) -> TrainResult:
    """Stage 2: the autoencoder's architecture and data settings come from its own bundle.

    ``init_from`` (a model bundle) fine-tunes its LDT and keeps its latent scales, so that the
    weights see latents scaled as they were trained on.
    """
    check_data(config.data.paths)
    init, scales = None, None
    if init_from is not None:
        init_bundle = load_bundle(init_from)
        init = init_bundle.tensors.get("ldt")
        if init is None:
            raise ConfigError(f"--init-from {init_from} holds no LDT weights")
        scales = (init_bundle.extras.get("hf_scale"), init_bundle.extras.get("cond_scale"))
    ae_bundle = load_bundle(autoencoder_run)
    config.autoencoder = ae_bundle.config.autoencoder
    config.data.scale = ae_bundle.config.data.scale
    config.data.degradation = ae_bundle.config.data.degradation
    config.validate()
    # Encoding every training slice is the slow part of the cache: do it on the GPU if there is one.
    encode_on = "cuda" if torch.cuda.is_available() else "cpu"
    autoencoder = load_autoencoder(ae_bundle, encode_on)
    for p in autoencoder.parameters():
        p.requires_grad_(False)
    bank = slice_bank(config, progress)
    cache = LatentCache.build(autoencoder, bank, config, progress=progress and is_main_rank())
    if scales is not None and None not in scales:
        cache.hf_scale, cache.cond_scale = float(scales[0]), float(scales[1])
    autoencoder.cpu()
    return run_task(
        lambda: LDTTask(
            config, autoencoder, cache, autoencoder_source=str(autoencoder_run), init_from=init
        ),
        config,
        config.ldt_training,
        out,
        max_minutes=max_minutes,
        resume=resume,
        progress=progress,
    )
