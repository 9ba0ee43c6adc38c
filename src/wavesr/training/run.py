"""Entry points of `wavesr train ...`: build data, task and engine run for one stage."""

from __future__ import annotations

import os
from pathlib import Path

from wavesr.bundle import load_bundle
from wavesr.config import WaveSRConfig, save_config
from wavesr.data.bank import SliceBank
from wavesr.data.types import missing_error
from wavesr.errors import ConfigError
from wavesr.pipeline import load_autoencoder
from wavesr.training.engine import TrainResult, train
from wavesr.training.tasks import AutoencoderTask, LatentCache, LDTTask


def _check_data(paths: list[str]) -> None:
    if not paths:
        raise ConfigError("no training data: pass --data DIR (or set data.paths in the config)")
    for p in paths:
        if not Path(p).exists():
            raise missing_error(Path(p))


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train_autoencoder(
    config: WaveSRConfig,
    out: Path,
    *,
    max_minutes: float | None,
    resume: bool,
    progress: bool = True,
    init_from: Path | None = None,
    freeze_encoder: bool = False,
) -> TrainResult:
    """Stage 1; ``init_from`` (a bundle) starts from its matching weights (fine-tuning)."""
    _check_data(config.data.paths)
    init = None
    if init_from is not None:
        init = load_bundle(init_from).tensors.get("autoencoder")
        if init is None:
            raise ConfigError(f"--init-from {init_from} holds no autoencoder weights")
    elif freeze_encoder:
        raise ConfigError("--freeze-encoder needs --init-from RUN (an encoder to keep)")
    bank = SliceBank.from_paths(config.data.paths, config.data, progress=progress and _is_main())
    if _is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    task = AutoencoderTask(config, bank, init_from=init, freeze_encoder=freeze_encoder)
    return train(
        task,
        config.autoencoder_training,
        out,
        config_dict=config.to_dict(),
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
) -> TrainResult:
    """Stage 2: the autoencoder's architecture and data settings come from its own bundle."""
    _check_data(config.data.paths)
    ae_bundle = load_bundle(autoencoder_run)
    config.autoencoder = ae_bundle.config.autoencoder
    config.data.scale = ae_bundle.config.data.scale
    config.data.degradation = ae_bundle.config.data.degradation
    config.validate()
    autoencoder = load_autoencoder(ae_bundle)
    for p in autoencoder.parameters():
        p.requires_grad_(False)
    bank = SliceBank.from_paths(config.data.paths, config.data, progress=progress and _is_main())
    cache = LatentCache.build(autoencoder, bank, config, progress=progress and _is_main())
    if _is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
    task = LDTTask(config, autoencoder, cache, autoencoder_source=str(autoencoder_run))
    return train(
        task,
        config.ldt_training,
        out,
        config_dict=config.to_dict(),
        max_minutes=max_minutes,
        resume=resume,
        progress=progress,
    )
