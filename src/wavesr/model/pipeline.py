"""The WaveSR inference pipeline, top to bottom in one place.

LR slice --bicubic--> LR on the HR grid --Haar DWT--> LL_LR band
  --encoder--> LR LL latent (condition c)
  --LDT (diffusion sampling)--> HR high-frequency latents {LH, HL, HH}
  --decoder (conditioned on LL_LR)--> HR sub-bands --inverse DWT--> SR slice
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from wavesr.config import WaveSRConfig, check_consistency_steps, check_temperature
from wavesr.errors import CheckpointError
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.build import diffusion_of, encode_slice_latents
from wavesr.model.degrade import (
    Degradation,
    back_project,
    crop_to,
    model_input,
    pad_to_multiple,
    upsample_for,
)
from wavesr.model.latent_scaling import LatentScaling
from wavesr.model.tiling import TiledDenoiser
from wavesr.model.transformer import LatentDiffusionTransformer
from wavesr.model.wavelet import dwt2, idwt2


class WaveSRPipeline:
    """Super-resolves batches of slices with a trained autoencoder + LDT."""

    def __init__(
        self,
        config: WaveSRConfig,
        autoencoder: FrequencyAutoencoder,
        ldt: LatentDiffusionTransformer | None,
        *,
        hf_scaling: LatentScaling | None = None,
        cond_scaling: LatentScaling | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.config = config
        self.autoencoder = autoencoder.to(device).eval()
        self.ldt = ldt.to(device).eval() if ldt is not None else None
        self.hf_scaling = hf_scaling or LatentScaling.identity(config.ldt.in_channels)
        self.cond_scaling = cond_scaling or LatentScaling.identity(config.ldt.cond_channels)
        self.device = torch.device(device)

    @property
    def scale(self) -> int:
        return self.config.data.scale

    @property
    def stride(self) -> int:
        """Input sizes are padded to a multiple of this (DWT x encoder x LDT patch)."""
        return self.autoencoder.stride * self.config.ldt.patch_size

    @torch.no_grad()
    def __call__(
        self,
        lr_up: Tensor,
        *,
        steps: int | None = None,
        seed: int | Sequence[int] = 0,
        sampler: str | None = None,
        temperature: float | None = None,
        consistency_steps: int | None = None,
        degradation: Degradation | None = None,
        progress: bool = False,
    ) -> Tensor:
        """SR of LR slices already on the HR grid: (B, 1, H, W) in [0, 1] -> (B, 1, H, W).

        ``steps``, ``sampler``, ``temperature`` and ``consistency_steps`` (back-projection onto
        ``lr_up``) default to the model's ``diffusion`` config. ``degradation`` is how the LR
        was acquired, for the back-projection (with the model's input upsampler,
        `input_degradation`); default: the model's own training degradation.
        ``seed`` may be k seeds for a batch of k equal groups (see `starting_noise`).
        """
        check_consistency_steps(consistency_steps)
        if self.ldt is None:
            raise CheckpointError("this model has no LDT (an autoencoder-only run)", None)
        lr_bands, ll_latent, size = self.encode_condition(lr_up)
        high_latents = self.sample_high_frequency_latents(
            ll_latent,
            steps=steps,
            seed=seed,
            sampler=sampler,
            temperature=temperature,
            progress=progress,
        )
        sr = self.decode(lr_bands, ll_latent, high_latents, size)
        if consistency_steps is None:
            consistency_steps = self.config.diffusion.consistency_steps
        return back_project(
            sr, lr_up.to(self.device), self.input_degradation(degradation), consistency_steps
        )

    def encode_condition(self, lr_up: Tensor) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """LR on the HR grid -> (its Haar bands, the LL latent that conditions the LDT, the size
        to crop back to); the input is padded to a multiple of ``stride``."""
        x, size = pad_to_multiple(lr_up.to(self.device), self.stride)
        lr_bands = dwt2(x)
        return lr_bands, self.autoencoder.encode_band(lr_bands[:, :1], 0).mode(), size

    def decode(
        self, lr_bands: Tensor, ll_latent: Tensor, high_latents: Tensor, size: tuple[int, int]
    ) -> Tensor:
        """Decoder (conditioned on the LR's bands) -> inverse DWT -> the SR slice, cropped."""
        bands = self.autoencoder.decode(ll_latent, high_latents, lr_bands)
        return crop_to(idwt2(bands), size).clamp(0.0, 1.0)

    @property
    def degradation(self) -> Degradation:
        """What the model assumes of its LR when not told (what back-projection inverts):
        its training degradation without noise (slice profile and gap from the bundle's
        config), or for a model trained on a random mix a scanner's k-space LR."""
        return self.input_degradation()

    def input_degradation(self, degradation: Degradation | None = None) -> Degradation:
        """``degradation`` (how the LR was acquired; default: the model's own assumption),
        noise-free, with the model's input upsampler: the operator that puts an LR onto this
        model's HR grid and that back-projection inverts (`degrade.model_input`)."""
        return model_input(self.config.data.to_degradation(), degradation)

    def to_hr_grid(self, lr: Tensor, degradation: Degradation | None = None) -> Tensor:
        """LR slices onto the HR grid as the model's training did (`input_degradation`)."""
        return upsample_for(lr.to(self.device), self.input_degradation(degradation))

    def sample_high_frequency_latents(
        self,
        ll_latent: Tensor,
        *,
        steps: int | None,
        seed: int | Sequence[int],
        sampler: str | None,
        progress: bool,
        temperature: float | None = None,
    ) -> Tensor:
        cfg = self.config.diffusion
        check_temperature(temperature)
        temperature = cfg.temperature if temperature is None else temperature
        steps = steps or cfg.sample_steps
        sampler = sampler or cfg.sampler
        respacing = f"ddim{steps}" if sampler == "ddim" else str(steps)
        diffusion = diffusion_of(self.config, respacing)
        b, _, h, w = ll_latent.shape
        shape = (b, self.config.ldt.in_channels, h, w)
        noise, generator = self.starting_noise(shape, seed)
        sample = diffusion.sample_loop(
            self.denoiser,
            shape,
            sampler=sampler,
            eta=cfg.eta,
            model_kwargs={"cond": self.cond_scaling.to_diffusion(ll_latent)},
            noise=noise * temperature,
            generator=generator,
            progress=progress,
            device=self.device,
        )
        return self.hf_scaling.from_diffusion(sample)

    def starting_noise(
        self, shape: tuple[int, ...], seed: int | Sequence[int]
    ) -> tuple[Tensor, torch.Generator]:
        """The sampler's starting noise of `shape` and the generator the sampling loop continues.

        With k seeds the batch is k equal groups (k samples of the same slices, stacked): group
        i gets the noise a call with ``seed=seeds[i]`` on that group alone gets, so under DDIM
        with eta 0 each group's sample is that call's (up to float rounding). The loop
        continues the first seed's generator (its draws matter only for eta > 0 or ancestral).
        """
        seeds = [int(s) for s in seed] if isinstance(seed, Sequence) else [int(seed)]
        if not seeds or shape[0] % len(seeds):
            raise ValueError(f"a batch of {shape[0]} cannot be split into {len(seeds)} seeds")
        group = (shape[0] // len(seeds), *shape[1:])
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        noise = [torch.randn(group, generator=g, device=self.device) for g in generators]
        return torch.cat(noise), generators[0]

    @property
    def denoiser(self) -> torch.nn.Module:
        """The LDT, tiled into overlapping windows when ``diffusion.tile_window`` is set."""
        cfg = self.config.diffusion
        if not cfg.tile_window:
            return self.ldt
        patch = self.config.ldt.patch_size
        return TiledDenoiser(self.ldt, cfg.tile_window, cfg.tile_overlap, align=patch)

    @torch.no_grad()
    def oracle(self, lr_up: Tensor, hr: Tensor) -> Tensor:
        """Decode with the encoded HR high-frequency latents: what a perfect LDT would give."""
        x, size = pad_to_multiple(lr_up.to(self.device), self.stride)
        y, _ = pad_to_multiple(hr.to(self.device), self.stride)
        latents = self.autoencoder.encode_pair(x, y).mode()
        ll_latent, high = self.autoencoder.split_latents(latents)
        return self.decode(dwt2(x), ll_latent, high, size)

    def super_resolve(self, lr: Tensor, degradation: Degradation | None = None, **kwargs) -> Tensor:
        """SR of LR slices at low resolution (B, 1, h, w) -> (B, 1, h*scale, w*scale), or for a
        slice-axis model thick-slice images (B, 1, h, W) with the coarse axis on the rows ->
        (B, 1, h*scale, W); the LR goes onto the HR grid as in the model's training.
        ``degradation``: how the LR was acquired (default: the model's own assumption)."""
        lr_up = self.to_hr_grid(lr, degradation)
        return self(lr_up, degradation=degradation, **kwargs)


__all__ = ["WaveSRPipeline", "encode_slice_latents"]
