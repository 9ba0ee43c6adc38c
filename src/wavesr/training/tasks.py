"""The two training stages of WaveSR as engine tasks.

Stage 1 (:class:`AutoencoderTask`): the frequency autoencoder on (LR, HR) patch pairs, Eq. 8.
Stage 2 (:class:`LDTTask`): the LDT on latents of the frozen autoencoder, Eq. 9. The latents of
every training slice are encoded once (posterior mode) and cached; each step crops random
latent windows from the cache, so stage 2 spends its time in the transformer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from wavesr.autoencoder import FrequencyAutoencoder, autoencoder_losses
from wavesr.bundle import load_ldt, save_bundle
from wavesr.config import WaveSRConfig
from wavesr.data.bank import SliceBank, step_generator
from wavesr.degrade import Degradation, degrade, pad_to_multiple
from wavesr.diffusion import create_diffusion
from wavesr.errors import CheckpointError
from wavesr.transformer import LatentDiffusionTransformer


def load_matching(model: nn.Module, tensors: dict[str, Tensor]) -> set[str]:
    """Copy the tensors whose name and shape match (fine-tuning a grown model); returns names."""
    own = model.state_dict()
    matched = {k for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict({k: tensors[k].to(own[k].dtype) for k in matched}, strict=False)
    return matched


def degradation_of(config: WaveSRConfig) -> Degradation:
    d = config.data
    return Degradation(kind=d.degradation, scale=d.scale, noise_sigma=d.noise_sigma)


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
    )


class LDTStandIn:
    """What an LDT hands the decoder, cheaply: its one-step x0 prediction from the encoded HR
    latents noised to a random timestep (uniform over the schedule), for a random half of the
    batch; the other half keeps the encoded latents.

    A decoder trained only on encoded latents trusts them fully; at inference it gets sampled
    latents that are right in the coarse structure and wrong in the fine detail. Training on
    this mix (`wavesr train autoencoder --robust-to MODEL`, encoder frozen) teaches it to use
    them as far as they are reliable.
    """

    def __init__(self, bundle, fraction: float = 0.5) -> None:
        loaded = load_ldt(bundle)
        self.ldt = loaded.model.requires_grad_(False)
        self.hf_scale, self.cond_scale = loaded.hf_scale, loaded.cond_scale
        self.diffusion = diffusion_of(bundle.config)
        self.fraction = fraction
        self.generator = torch.Generator()

    @torch.no_grad()
    def __call__(self, ll_latent: Tensor, generated: Tensor) -> Tensor:
        device, b = generated.device, generated.shape[0]
        self.ldt.to(device)
        gen = self.generator
        t = torch.randint(0, self.diffusion.num_timesteps, (b,), generator=gen).to(device)
        noise = torch.randn(generated.shape, generator=gen).to(device)
        x_t = self.diffusion.q_sample(generated.detach() * self.hf_scale, t, noise)
        cond = {"cond": ll_latent.detach() * self.cond_scale}
        x0 = self.diffusion.p_mean_variance(self.ldt, x_t, t, model_kwargs=cond)["pred_xstart"]
        keep = (torch.rand(b, generator=gen) >= self.fraction).to(device).view(-1, 1, 1, 1)
        return torch.where(keep, generated, x0 / self.hf_scale)


class AutoencoderTask:
    name = "autoencoder"

    def __init__(
        self,
        config: WaveSRConfig,
        bank: SliceBank,
        *,
        init_from: dict[str, Tensor] | None = None,
        freeze_encoder: bool = False,
        stand_in: LDTStandIn | None = None,
    ) -> None:
        self.config, self.bank = config, bank
        self.degradation = degradation_of(config)
        self.init_from, self.freeze_encoder = init_from, freeze_encoder
        self.stand_in = stand_in

    def build_model(self) -> nn.Module:
        model = FrequencyAutoencoder(self.config.autoencoder)
        if self.init_from is not None:
            loaded = load_matching(model, self.init_from)
            if self.freeze_encoder and not all(
                f"encoder.{k}" in loaded for k in model.encoder.state_dict()
            ):
                raise CheckpointError("--freeze-encoder needs an --init-from with the same encoder")
        if self.freeze_encoder:
            for p in model.encoder.parameters():
                p.requires_grad_(False)
        return model

    def compute_loss(self, model: nn.Module, step: int, rank: int) -> dict[str, Tensor]:
        train = self.config.autoencoder_training.train
        hr = self.bank.batch(step, train.batch_size, self.config.data.crop, train.seed, rank)
        device = next(model.parameters()).device
        _, lr_up = degrade(hr, self.degradation, generator=step_generator(train.seed, step, rank))
        hr, lr_up = hr.to(device), lr_up.to(device)
        if self.stand_in is not None:
            self.stand_in.generator.manual_seed(train.seed * 1_000_003 + step * 97 + rank)
        return autoencoder_losses(model(lr_up, hr, replace_generated=self.stand_in), hr)

    def export(self, model: nn.Module, run_dir: Path, step: int) -> None:
        save_bundle(
            run_dir,
            "autoencoder",
            self.config,
            {"autoencoder": model.state_dict()},
            step=step,
            extras={"degradation": self.degradation.label},
        )


@torch.no_grad()
def encode_slice_latents(
    autoencoder: FrequencyAutoencoder, hr: Tensor, degradation: Degradation, *, seed: int = 0
) -> Tensor:
    """HR image(s) (B, 1, H, W), H, W multiples of the stride -> latents (B, 12 or 15, h, w)."""
    _, lr_up = degrade(hr, degradation, seed=seed)
    return autoencoder.encode_pair(lr_up, hr).mode()


class LatentCache:
    """Posterior-mode latents of all training slices: cond (LR LL, 3 ch), generated (9/12 ch)."""

    def __init__(self, latents: list[Tensor]) -> None:
        self.latents = latents
        cond = torch.cat([z[:3].flatten() for z in latents])
        high = torch.cat([z[3:].flatten() for z in latents])
        # Unit-variance scaling of the diffusion space, as the SD VAE's 0.18215 (measured here).
        self.cond_scale = float(1.0 / cond.std().clamp_min(1e-6))
        self.hf_scale = float(1.0 / high.std().clamp_min(1e-6))

    @classmethod
    def build(
        cls,
        autoencoder: FrequencyAutoencoder,
        bank: SliceBank,
        config: WaveSRConfig,
        *,
        progress: bool = True,
        batch_size: int = 16,
    ) -> LatentCache:
        """Encode (at most ``data.cache_max_slices``, evenly spaced) slices in same-size batches."""
        autoencoder.eval()
        device = next(autoencoder.parameters()).device
        multiple = autoencoder.stride * config.ldt.patch_size
        degradation = degradation_of(config)
        n = len(bank.slices)
        keep = config.data.cache_max_slices
        chosen = list(range(n)) if keep <= 0 or keep >= n else _evenly_spaced(n, keep)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i in chosen:
            by_shape.setdefault(bank.slices[i].shape, []).append(i)
        latents: list[Tensor] = []
        bar = tqdm(total=len(chosen), desc="encoding latents", disable=not progress)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                group = indices[start : start + batch_size]
                hr = torch.stack([torch.from_numpy(bank.slices[i]) for i in group])[:, None]
                hr, _ = pad_to_multiple(_pad_at_least(hr, config.data.crop), multiple)
                hr = hr.to(device)
                z = encode_slice_latents(autoencoder, hr, degradation, seed=group[0])
                latents.extend(z.cpu().unbind(0))
                bar.update(len(group))
        bar.close()
        return cls(latents)

    def batch(
        self, step: int, batch_size: int, size: int, seed: int, rank: int
    ) -> tuple[Tensor, Tensor]:
        """Scaled (x0 generated latents (B, 9/12, size, size), cond (B, 3, size, size))."""
        gen = step_generator(seed, step, rank)
        picks = torch.randint(0, len(self.latents), (batch_size,), generator=gen)
        windows = []
        for i in picks:
            z = self.latents[int(i)]
            top = int(torch.randint(0, z.shape[-2] - size + 1, (1,), generator=gen))
            left = int(torch.randint(0, z.shape[-1] - size + 1, (1,), generator=gen))
            windows.append(z[:, top : top + size, left : left + size])
        z = torch.stack(windows)
        return z[:, 3:] * self.hf_scale, z[:, :3] * self.cond_scale


def _evenly_spaced(n: int, k: int) -> list[int]:
    return sorted({int(round(i * (n - 1) / max(1, k - 1))) for i in range(k)})


def _pad_at_least(x: Tensor, size: int) -> Tensor:
    ph, pw = max(0, size - x.shape[-2]), max(0, size - x.shape[-1])
    return torch.nn.functional.pad(x, (0, pw, 0, ph)) if (ph or pw) else x


class LDTTask:
    name = "ldt"

    def __init__(
        self,
        config: WaveSRConfig,
        autoencoder: FrequencyAutoencoder,
        cache: LatentCache,
        *,
        autoencoder_source: str = "",
        init_from: dict[str, Tensor] | None = None,
    ) -> None:
        self.config, self.autoencoder, self.cache = config, autoencoder, cache
        self.diffusion = diffusion_of(config)
        self.latent_crop = config.data.crop // autoencoder.stride
        self.autoencoder_source = autoencoder_source
        self.init_from = init_from

    def build_model(self) -> nn.Module:
        model = LatentDiffusionTransformer(self.config.ldt)
        if self.init_from is not None and not load_matching(model, self.init_from):
            raise CheckpointError("--init-from holds no LDT weights that fit this config")
        return model

    def compute_loss(self, model: nn.Module, step: int, rank: int) -> dict[str, Tensor]:
        train = self.config.ldt_training.train
        x0, cond = self.cache.batch(step, train.batch_size, self.latent_crop, train.seed, rank)
        gen = step_generator(train.seed + 7, step, rank)
        t = torch.randint(0, self.diffusion.num_timesteps, (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        device = next(model.parameters()).device
        terms = self.diffusion.training_losses(
            model,
            x0.to(device),
            t.to(device),
            model_kwargs={"cond": cond.to(device)},
            noise=noise.to(device),
        )
        return {k: v.mean() for k, v in terms.items()}

    def export(self, model: nn.Module, run_dir: Path, step: int) -> None:
        save_bundle(
            run_dir,
            "wavesr",
            self.config,
            {"autoencoder": self.autoencoder.state_dict(), "ldt": model.state_dict()},
            step=step,
            extras={
                "hf_scale": self.cache.hf_scale,
                "cond_scale": self.cache.cond_scale,
                "degradation": degradation_of(self.config).label,
                "autoencoder_source": self.autoencoder_source,
            },
        )
