"""Builders from a WaveSRConfig that inference and training share: the diffusion process and the
encoded latents of a slice.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wavesr.config import WaveSRConfig
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.degrade import Degradation, degrade
from wavesr.model.diffusion import create_diffusion


def diffusion_of(config: WaveSRConfig, respacing: str | int | None = None):
    d = config.diffusion
    return create_diffusion(
        respacing,
        noise_schedule=d.noise_schedule,
        diffusion_steps=d.num_timesteps,
        predict=d.predict,
        learn_sigma=d.learn_sigma,
        vlb_weight=d.vlb_weight,
        vlb_scaling=d.vlb_scaling,
        loss_weighting=d.loss_weighting,
        min_snr_gamma=d.min_snr_gamma,
    )


@torch.no_grad()
def encode_slice_latents(
    autoencoder: FrequencyAutoencoder, hr: Tensor, degradation: Degradation, *, seed: int = 0
) -> Tensor:
    """HR image(s) (B, 1, H, W), H, W multiples of the stride -> latents (B, 12 or 15, h, w)."""
    _, lr_up = degrade(hr, degradation, seed=seed)
    return autoencoder.encode_pair(lr_up, hr).mode()


def degradation_of(config: WaveSRConfig) -> Degradation:
    """The training degradation of `config` (kind, scale, noise, slice profile and gap)."""
    return config.data.to_degradation()
