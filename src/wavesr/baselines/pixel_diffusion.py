"""SR3-style conditional diffusion in pixel space, with WaveSR's own diffusion code and settings.

The UNet sees concat(x_t, lr_up) and predicts eps (plus the learned-variance channel when
``diffusion.learn_sigma``). Images live in [-1, 1] in the diffusion space: x0 = 2 * hr - 1.
Sampling uses the same sampler and number of steps as the WaveSR pipeline.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wavesr.baselines.unet import UNet
from wavesr.config import WaveSRConfig
from wavesr.degrade import crop_to, pad_to_multiple
from wavesr.training.tasks import diffusion_of


def build_unet(config: WaveSRConfig) -> UNet:
    b = config.baselines
    out = 2 if config.diffusion.learn_sigma else 1
    return UNet(in_channels=2, out_channels=out, channels=b.unet_channels, mults=b.unet_mults)


def to_diffusion_space(x: Tensor) -> Tensor:
    return 2.0 * x - 1.0


def from_diffusion_space(x: Tensor) -> Tensor:
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def pixel_diffusion_loss(
    model: nn.Module, diffusion, hr: Tensor, lr_up: Tensor, t: Tensor, noise: Tensor
) -> dict[str, Tensor]:
    """Batch means of the diffusion's hybrid loss terms ("loss", "mse", "vb")."""
    terms = diffusion.training_losses(
        model,
        to_diffusion_space(hr),
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
        progress: bool = False,
    ) -> Tensor:
        cfg = self.config.diffusion
        steps = steps or cfg.sample_steps
        sampler = sampler or cfg.sampler
        diffusion = diffusion_of(self.config, f"ddim{steps}" if sampler == "ddim" else str(steps))
        x, size = pad_to_multiple(lr_up.to(self.device, torch.float32), self.network.stride)
        # A CPU generator: the same seed gives the same noise on every device.
        generator = torch.Generator().manual_seed(int(seed))
        sample = diffusion.sample_loop(
            self.network,
            x.shape,
            sampler=sampler,
            eta=cfg.eta,
            model_kwargs={"cond": to_diffusion_space(x)},
            generator=generator,
            progress=progress,
            clip_denoised=True,
            device=self.device,
        )
        return crop_to(from_diffusion_space(sample), size)
