"""`wavesr train edsr|pixel-diffusion`: the baselines as tasks of the shared training engine.

Same data as WaveSR: SliceBank crops of ``data.crop`` degraded on the fly with the configured
degradation, batches a pure function of (seed, step, rank); stage config ``baseline_training``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from wavesr.baselines.edsr import EDSR, edsr_loss
from wavesr.baselines.pixel_diffusion import build_unet, pixel_diffusion_loss
from wavesr.bundle.folder import save_bundle
from wavesr.config import WaveSRConfig
from wavesr.data.bank import SliceBank, step_generator
from wavesr.errors import ConfigError
from wavesr.model.build import degradation_of, diffusion_of
from wavesr.model.degrade import degrade
from wavesr.training.engine import TrainResult
from wavesr.training.run import check_data, run_task, slice_bank


class BaselineTask:
    """Shared part of the baseline tasks: the (hr, lr_up) batch of a step, and the export."""

    name = "baseline"

    def __init__(self, config: WaveSRConfig, bank: SliceBank) -> None:
        self.config, self.bank = config, bank
        self.degradation = degradation_of(config)

    def batch(self, model: nn.Module, step: int, rank: int) -> tuple[Tensor, Tensor]:
        train_cfg = self.config.baseline_training.train
        hr = self.bank.batch(
            step, train_cfg.batch_size, self.config.data.crop, train_cfg.seed, rank
        )
        gen = step_generator(train_cfg.seed, step, rank)
        _, lr_up = degrade(hr, self.degradation, generator=gen)
        device = next(model.parameters()).device
        return hr.to(device), lr_up.to(device)

    def export(self, model: nn.Module, run_dir: Path, step: int) -> None:
        save_bundle(
            run_dir,
            self.name,
            self.config,
            {"network": model.state_dict()},
            step=step,
            extras={"degradation": self.degradation.label},
        )


class EDSRTask(BaselineTask):
    name = "edsr"

    def build_model(self) -> nn.Module:
        return EDSR.from_config(self.config.baselines)

    def compute_loss(self, model: nn.Module, step: int, rank: int) -> dict[str, Tensor]:
        hr, lr_up = self.batch(model, step, rank)
        return edsr_loss(model, lr_up, hr)


class PixelDiffusionTask(BaselineTask):
    name = "pixel-diffusion"

    def __init__(self, config: WaveSRConfig, bank: SliceBank) -> None:
        super().__init__(config, bank)
        self.diffusion = diffusion_of(config)

    def build_model(self) -> nn.Module:
        return build_unet(self.config)

    def compute_loss(self, model: nn.Module, step: int, rank: int) -> dict[str, Tensor]:
        hr, lr_up = self.batch(model, step, rank)
        gen = step_generator(self.config.baseline_training.train.seed + 7, step, rank)
        t = torch.randint(0, self.diffusion.num_timesteps, (hr.shape[0],), generator=gen)
        noise = torch.randn(hr.shape, generator=gen)
        return pixel_diffusion_loss(
            self.config, model, self.diffusion, hr, lr_up, t.to(hr.device), noise.to(hr.device)
        )


TASKS = {"edsr": EDSRTask, "pixel-diffusion": PixelDiffusionTask}


def check_baseline_config(name: str, config: WaveSRConfig) -> None:
    if name not in TASKS:
        raise ConfigError(f"unknown baseline {name!r}; choose from {sorted(TASKS)}")
    b = config.baselines
    if b.edsr_blocks < 0 or min(b.edsr_channels, b.unet_channels, *b.unet_mults, 1) < 1:
        raise ConfigError("invalid config: baselines channels and mults must be >= 1")
    if name == "pixel-diffusion":
        if not b.unet_mults:
            raise ConfigError("invalid config: baselines.unet_mults must not be empty")
        stride = 2 ** (len(b.unet_mults) - 1)
        if config.data.crop % stride:
            raise ConfigError(
                f"invalid config: data.crop ({config.data.crop}) must be a multiple of the "
                f"UNet stride {stride} (2 ** (len(baselines.unet_mults) - 1))"
            )


def train_baseline(
    name: str,
    config: WaveSRConfig,
    out: Path,
    *,
    max_minutes: float | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train baseline ``name`` ("edsr" or "pixel-diffusion"); the bundle is written to ``out``."""
    check_baseline_config(name, config)
    check_data(config.data.paths)
    bank = slice_bank(config, progress)
    return run_task(
        lambda: TASKS[name](config, bank),
        config,
        config.baseline_training,
        Path(out),
        max_minutes=max_minutes,
        resume=resume,
        progress=progress,
    )
