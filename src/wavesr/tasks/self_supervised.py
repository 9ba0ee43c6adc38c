"""Self-supervised decoder adaptation for one thick-slice scan (SMORE's idea, Zhao et al. 2021).

The in-plane slices of a thick-slice scan (perpendicular to the thick axis) are at full
resolution. Degraded along their rows by the model's slice-axis degradation they become pairs
(thick-like LR, HR) of exactly this scan's anatomy, contrast and noise; each slice is also used
transposed, so both in-plane directions are thinned. On these pairs the model's decoder (every
autoencoder weight outside the encoder) is fine-tuned for a few minutes, the encoder frozen so
the latents the LDT was trained on stay the same, the LDT untouched. A decoder trained as a
robust one (``wavesr_training.robust_decoder``) keeps seeing the LDT's predictions for part of
each batch, as in its stage 3.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from wavesr.data.bank import SliceBank
from wavesr.data.load import nonempty_slices
from wavesr.data.normalize import normalize_stack
from wavesr.errors import ConfigError, InputError

ADAPT_MAX_STEPS = 1_000_000  # the time limit ends an adaptation, not this


@dataclass
class Adaptation:
    steps: int
    seconds: float
    slices: int  # training slices, transposed ones included
    last_loss: float

    def summary(self) -> str:
        return (
            f"decoder adapted on {self.slices} in-plane slices: {self.steps} steps in "
            f"{self.seconds / 60:.1f} min, last loss {self.last_loss:.4g}"
        )


def check_adapt_minutes(minutes: float) -> float:
    """`minutes` as a float; ConfigError unless it is a finite number >= 0."""
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise ConfigError(f"--adapt-minutes must be a number >= 0, got {minutes!r}")
    if not (math.isfinite(minutes) and minutes >= 0):
        raise ConfigError(f"--adapt-minutes must be a finite number >= 0, got {minutes!r}")
    return float(minutes)


def in_plane_slices(volume: np.ndarray, axis: int, normalization: str) -> list[np.ndarray]:
    """The non-empty slices perpendicular to `axis`, normalised as the model was trained
    (float32 in [0, 1]), each followed by its transpose."""
    stack = np.ascontiguousarray(np.moveaxis(np.asarray(volume, dtype=np.float32), axis, 0))
    stack = stack[nonempty_slices(stack)]
    if not len(stack):
        raise InputError("no non-empty in-plane slice to adapt the decoder on")
    normed, _ = normalize_stack(stack, normalization)
    return [s for image in normed for s in (image, np.ascontiguousarray(image.T))]


def adaptation_config(config, max_steps: int):
    """The model's config set up for adaptation: `decoder_training` (its stage-3 settings) as
    the autoencoder stage, a constant learning rate (the run ends on time, not on a schedule),
    no validation, one checkpoint, and the slice-axis degradation (an in-plane model's own
    degradation would thin both axes)."""
    config = copy.deepcopy(config)
    stage = config.decoder_training
    stage.optim.schedule = "constant"
    stage.train.max_steps = max_steps
    stage.train.checkpoint_every = max_steps
    stage.train.validate_every = 0
    config.autoencoder_training = stage
    config.data.degradation = "slice-axis"
    return config.validate()


def adapt_decoder(
    pipeline,
    volume: np.ndarray,
    axis: int,
    minutes: float,
    *,
    model_dir: str | Path | None = None,
    max_steps: int = ADAPT_MAX_STEPS,
    progress: bool = True,
) -> Adaptation:
    """Fine-tune `pipeline`'s decoder in place on `volume`'s own in-plane slices for `minutes`
    (at least one step, at most `max_steps`). `model_dir`, the pipeline's bundle, supplies the
    LDT stand-in of a robust decoder (without it, plain encoded latents are used)."""
    from wavesr.bundle.folder import load_bundle
    from wavesr.training.engine import train
    from wavesr.training.tasks import AutoencoderTask, LDTStandIn

    minutes = check_adapt_minutes(minutes)
    if max_steps < 1:
        raise ConfigError(f"max_steps must be >= 1, got {max_steps}")
    config = adaptation_config(pipeline.config, max_steps)
    images = in_plane_slices(volume, axis, config.data.normalization)
    names = [f"in-plane {i // 2}{' transposed' if i % 2 else ''}" for i in range(len(images))]
    bank = SliceBank(images, names)
    stand_in = None
    if model_dir is not None and config.wavesr_training.robust_decoder:
        stand_in = LDTStandIn(load_bundle(model_dir), config.wavesr_training.robust_fraction)
    weights = {k: v.detach().cpu() for k, v in pipeline.autoencoder.state_dict().items()}
    task = AutoencoderTask(config, bank, init_from=weights, freeze_encoder=True, stand_in=stand_in)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wavesr-adapt-") as run_dir:
        result = train(
            task,
            config.autoencoder_training,
            Path(run_dir),
            config_dict=config.to_dict(),
            max_minutes=minutes,
            progress=progress,
        )
        adapted = load_bundle(run_dir).tensors["autoencoder"]
    pipeline.autoencoder.load_state_dict(adapted)
    pipeline.autoencoder.eval()
    return Adaptation(result.step, time.perf_counter() - started, len(images), result.last_loss)


@contextmanager
def kept_weights(model: nn.Module):
    """Restores `model`'s weights on leaving (an adaptation is for one scan only)."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        yield model
    finally:
        model.load_state_dict(saved)
