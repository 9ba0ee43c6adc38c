"""Entry points of `wavesr train ...`: build data, task and engine run for one stage."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from wavesr.bundle.checkpoint_io import read_json
from wavesr.bundle.export import export_model
from wavesr.bundle.folder import (
    MANIFEST,
    copy_bundle,
    latent_scalings,
    load_autoencoder,
    load_bundle,
)
from wavesr.config import StageConfig, WaveSRConfig, save_config
from wavesr.data.bank import SliceBank
from wavesr.data.types import missing_error
from wavesr.errors import ConfigError, WaveSRError
from wavesr.training.engine import Task, TrainResult, train
from wavesr.training.tasks import AutoencoderTask, LatentCache, LDTStandIn, LDTTask
from wavesr.training.validation import (
    LDTValidator,
    plot_validation,
    read_validation,
    validation_indices,
    verdict,
)


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
    robust_latents: str = "one-step",
) -> TrainResult:
    """Stage 1; ``init_from`` (a bundle) starts from its matching weights (fine-tuning).

    ``robust_to`` (a model bundle with an LDT trained on this encoder; needs ``freeze_encoder``)
    fine-tunes the decoder on a mix of encoded and LDT-predicted latents (`LDTStandIn`); the
    predicted ones make up ``robust_fraction`` of each batch; ``robust_latents`` "sampled" makes
    them the DDIM sample of inference (``config.diffusion.sample_steps`` at its temperature).
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
        stand_in = LDTStandIn(
            model_bundle,
            fraction=robust_fraction,
            mode=robust_latents,
            steps=config.diffusion.sample_steps,
            temperature=config.diffusion.temperature,
        )
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
    init, scalings = None, None
    if init_from is not None:
        init_bundle = load_bundle(init_from)
        init = init_bundle.tensors.get("ldt")
        if init is None:
            raise ConfigError(f"--init-from {init_from} holds no LDT weights")
        scalings = latent_scalings(init_bundle.extras, init_bundle.config.ldt)
    ae_bundle = load_bundle(autoencoder_run)
    config.autoencoder = ae_bundle.config.autoencoder
    trained = ae_bundle.config.data  # the LR the autoencoder was trained on: the LDT's too
    for name in ("scale", "degradation", "slice_profile", "slice_gap", "noise_sigma"):
        setattr(config.data, name, getattr(trained, name))
    config.validate()
    # Encoding every training slice is the slow part of the cache: do it on the GPU if there is one.
    encode_on = "cuda" if torch.cuda.is_available() else "cpu"
    autoencoder = load_autoencoder(ae_bundle, encode_on)
    for p in autoencoder.parameters():
        p.requires_grad_(False)
    bank = slice_bank(config, progress)
    settings = config.ldt_training.train
    # At most a fifth of the slices are held out, so that a small data set still trains.
    held = min(settings.validation_slices, len(bank) // 5) if settings.validate_every else 0
    held_out = validation_indices(len(bank), held) if held else []
    cache = stored_latent_cache(
        ae_bundle, autoencoder, bank, config, held_out, progress=progress and is_main_rank()
    )
    if scalings is not None:
        cache.hf_scaling, cache.cond_scaling = scalings
    autoencoder.cpu()
    validator = LDTValidator.from_bank(autoencoder, bank, held_out, config) if held_out else None
    result = run_task(
        lambda: LDTTask(
            config,
            autoencoder,
            cache,
            autoencoder_source=str(autoencoder_run),
            init_from=init,
            validator=validator,
        ),
        config,
        config.ldt_training,
        out,
        max_minutes=max_minutes,
        resume=resume,
        progress=progress,
    )
    if validator is not None and is_main_rank():
        report_validation(out)
    return result


def train_wavesr(
    config: WaveSRConfig,
    out: Path,
    *,
    max_minutes: float | None,
    resume: bool,
    progress: bool = True,
    init_from: Path | None = None,
    freeze_encoder: bool = False,
) -> TrainResult:
    """The whole model: stage 1 in ``out/autoencoder``, stage 2 in ``out/ldt``, with
    ``wavesr_training.robust_decoder`` stage 3 (the robust decoder) in ``out/decoder``, then the
    inference bundle in ``out`` itself (``wavesr sr --model out``).

    ``max_minutes`` is shared: stage 1 gets ``wavesr_training.autoencoder_share`` of it, stage 3
    ``decoder_share``, stage 2 what is left. With ``resume`` a finished stage is not trained
    again, an unfinished one goes on. ``init_from`` (a model bundle) fine-tunes all of it:
    stage 1 starts from its autoencoder (``freeze_encoder`` keeps its encoder, so that its LDT
    stays valid), stage 2 from its LDT and latent scales.
    """
    check_data(config.data.paths)
    started = time.monotonic()
    plan = config.wavesr_training

    def minutes_left(reserved: float) -> float | None:
        if max_minutes is None:
            return None
        spent = (time.monotonic() - started) / 60
        return max(max_minutes * (1 - reserved) - spent, 1.0)

    stage1 = train_autoencoder(
        config,
        out / "autoencoder",
        max_minutes=None if max_minutes is None else max_minutes * plan.autoencoder_share,
        resume=resume,
        progress=progress,
        init_from=init_from,
        freeze_encoder=freeze_encoder,
    )
    if stage1.status == "interrupted":
        return stage1
    reserved = plan.decoder_share if plan.robust_decoder else 0.0
    stage2 = train_ldt(
        copy.deepcopy(config),
        out / "autoencoder",
        out / "ldt",
        max_minutes=minutes_left(reserved),
        resume=resume,
        progress=progress,
        init_from=init_from,
    )
    if stage2.status == "interrupted" or not plan.robust_decoder:
        if is_main_rank():
            copy_bundle(out / "ldt", out)
        return TrainResult(stage2.step, stage2.status, stage2.last_loss, out)
    stage3 = train_robust_decoder(
        config, out, max_minutes=minutes_left(0.0), resume=resume, progress=progress
    )
    if is_main_rank() and stage3.status != "interrupted":
        export_model(out / "ldt", out, autoencoder_run=out / "decoder")
    return TrainResult(stage3.step, stage3.status, stage3.last_loss, out)


def train_robust_decoder(
    config: WaveSRConfig,
    out: Path,
    *,
    max_minutes: float | None,
    resume: bool,
    progress: bool = True,
) -> TrainResult:
    """Stage 3 of `wavesr train wavesr`: the decoder of ``out/ldt`` fine-tuned (encoder frozen)
    on a mix of encoded latents and that LDT's predictions, with ``decoder_training``.

    Condition dropout is stage 1's business (it shapes what the encoder stores); the stage-3
    decoder always sees the LR, as it will at inference."""
    stage = copy.deepcopy(config)
    stage.autoencoder_training = stage.decoder_training
    stage.autoencoder.condition_dropout = 0.0
    return train_autoencoder(
        stage,
        out / "decoder",
        max_minutes=max_minutes,
        resume=resume,
        progress=progress,
        init_from=out / "ldt",
        freeze_encoder=True,
        robust_to=out / "ldt",
        robust_fraction=config.wavesr_training.robust_fraction,
        robust_latents=config.wavesr_training.robust_latents,
    )


def stored_latent_cache(
    ae_bundle, autoencoder, bank: SliceBank, config: WaveSRConfig, held_out: list[int], *, progress
) -> LatentCache:
    """The latent cache, encoded once per (autoencoder weights, data settings, held-out slices)
    and kept in the stage-1 run folder, so that every LDT run on it (an ablation's variants, a
    resumed run) skips the encoding."""
    path = ae_bundle.root / latent_cache_name(ae_bundle.root, config, held_out)
    if path.is_file():
        try:
            return LatentCache.load(path, config.diffusion.latent_scaling)
        except WaveSRError:
            pass  # a damaged cache is rebuilt
    cache = LatentCache.build(autoencoder, bank, config, progress=progress, exclude=set(held_out))
    if is_main_rank():
        try:
            cache.save(path)
        except OSError:
            pass  # a read-only stage-1 folder: the cache just is not kept
    return cache


def latent_cache_name(ae_root: Path, config: WaveSRConfig, held_out: list[int]) -> str:
    """File name of the stored latent cache: a hash of what the latents depend on."""
    key = {
        "autoencoder": weight_hashes(ae_root),
        "data": dataclasses.asdict(config.data),
        "held_out": held_out,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return f"latent-cache-{digest[:16]}.safetensors"


def weight_hashes(root: Path) -> dict[str, str]:
    """The SHA-256 of each weights file of a bundle (what re-exporting the same run keeps)."""
    return {name: entry["sha256"] for name, entry in read_json(root / MANIFEST)["files"].items()}


def report_validation(run_dir: Path) -> None:
    """Plot the run's validation curves and print the verdict on the last one."""
    columns = read_validation(run_dir / "metrics.csv")
    if not columns.get("step"):
        return
    plot_validation(run_dir / "metrics.csv", run_dir / "validation.png")
    last = {k: v[-1] for k, v in columns.items() if k != "step"}
    print(f"step {int(columns['step'][-1])}: {verdict(last)}", flush=True)
