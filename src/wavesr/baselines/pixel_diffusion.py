"""Conditional diffusion in pixel space, with WaveSR's own diffusion code and settings.

The UNet sees concat(x_t, lr_up) and predicts eps or x0 (``diffusion.predict``, plus the
learned-variance channel when ``diffusion.learn_sigma``). What it diffuses
(``baselines.pixel_target``):

* ``image`` (SR3, Saharia et al. 2021): the HR image in [-1, 1], x0 = 2 * hr - 1;
* ``residual`` (SRDiff, Li et al. 2022): what bicubic misses, x0 = (hr - lr_up) * residual_scale.
  A model that has learnt little then stays near bicubic instead of far below it.

Sampling uses the same sampler, number of steps and temperature (the scale of x_T) as the WaveSR
pipeline.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wavesr.baselines.unet import UNet
from wavesr.config import WaveSRConfig
from wavesr.model.build import diffusion_of
from wavesr.model.degrade import crop_to, pad_to_multiple


def build_unet(config: WaveSRConfig) -> UNet:
    b = config.baselines
    out = 2 if config.diffusion.learn_sigma else 1
    return UNet(in_channels=2, out_channels=out, channels=b.unet_channels, mults=b.unet_mults)


def to_diffusion_space(x: Tensor) -> Tensor:
    return 2.0 * x - 1.0


def from_diffusion_space(x: Tensor) -> Tensor:
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def diffusion_target(config: WaveSRConfig, hr: Tensor, lr_up: Tensor) -> Tensor:
    """The x0 the diffusion learns for an (HR, bicubic-upsampled LR) pair."""
    if config.baselines.pixel_target == "residual":
        return (hr - lr_up) * config.baselines.residual_scale
    return to_diffusion_space(hr)


def image_from_target(config: WaveSRConfig, x0: Tensor, lr_up: Tensor) -> Tensor:
    """Inverse of :func:`diffusion_target`: the SR image in [0, 1]."""
    if config.baselines.pixel_target == "residual":
        return (lr_up + x0 / config.baselines.residual_scale).clamp(0.0, 1.0)
    return from_diffusion_space(x0)


def pixel_diffusion_loss(
    config: WaveSRConfig,
    model: nn.Module,
    diffusion,
    hr: Tensor,
    lr_up: Tensor,
    t: Tensor,
    noise: Tensor,
) -> dict[str, Tensor]:
    """Batch means of the diffusion's hybrid loss terms ("loss", "mse", "vb")."""
    terms = diffusion.training_losses(
        model,
        diffusion_target(config, hr, lr_up),
        t,
        model_kwargs={"cond": to_diffusion_space(lr_up)},
        noise=noise,
    )
    return {k: v.mean() for k, v in terms.items()}


class PixelDiffusionSampler:
    """Super-resolves (B, 1, H, W) bicubic-upsampled slices with a trained UNet."""

    def __init__(self, config: WaveSRConfig, network: UNet, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()

    @torch.no_grad()
    def __call__(
        self,
        lr_up: Tensor,
        *,
        steps: int | None = None,
        seed: int = 0,
        sampler: str | None = None,
        temperature: float | None = None,
        progress: bool = False,
    ) -> Tensor:
        cfg = self.config.diffusion
        temperature = cfg.temperature if temperature is None else temperature
        steps = steps or cfg.sample_steps
        sampler = sampler or cfg.sampler
        diffusion = diffusion_of(self.config, f"ddim{steps}" if sampler == "ddim" else str(steps))
        x, size = pad_to_multiple(lr_up.to(self.device, torch.float32), self.network.stride)
        # A CPU generator: the same seed gives the same noise on every device.
        generator = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(x.shape, generator=generator).to(self.device) * temperature
        sample = diffusion.sample_loop(
            self.network,
            x.shape,
            sampler=sampler,
            eta=cfg.eta,
            model_kwargs={"cond": to_diffusion_space(x)},
            noise=noise,
            generator=generator,
            progress=progress,
            clip_denoised=True,
            device=self.device,
        )
        return crop_to(image_from_target(self.config, sample, x), size)
