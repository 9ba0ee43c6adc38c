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

from wavesr.bundle.checkpoint_io import load_tensors, save_tensors
from wavesr.bundle.folder import load_ldt, save_bundle, scaling_extras
from wavesr.config import ROBUST_LATENTS, WaveSRConfig
from wavesr.data.bank import SliceBank, step_generator
from wavesr.errors import CheckpointError, ConfigError
from wavesr.model.autoencoder import (
    AutoencoderLossWeights,
    FrequencyAutoencoder,
    autoencoder_losses,
)
from wavesr.model.build import degradation_of, diffusion_of, encode_slice_latents
from wavesr.model.degrade import degrade, pad_to_multiple
from wavesr.model.latent_scaling import LatentScaling
from wavesr.model.transformer import LatentDiffusionTransformer
from wavesr.training.adversarial import AdversarialTerm
from wavesr.training.validation import LDTValidator


def load_matching(model: nn.Module, tensors: dict[str, Tensor]) -> set[str]:
    """Copy the tensors whose name and shape match (fine-tuning a grown model); returns names."""
    own = model.state_dict()
    matched = {k for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict({k: tensors[k].to(own[k].dtype) for k in matched}, strict=False)
    return matched


class LDTStandIn:
    """What an LDT hands the decoder, cheaply: its one-step x0 prediction from the encoded HR
    latents noised to a random timestep (uniform over the schedule), for a random half of the
    batch; the other half keeps the encoded latents.

    A decoder trained only on encoded latents trusts them fully; at inference it gets sampled
    latents that are right in the coarse structure and wrong in the fine detail. Training on
    this mix (`wavesr train autoencoder --robust-to MODEL`, encoder frozen) teaches it to use
    them as far as they are reliable.
    """

    def __init__(
        self,
        bundle,
        fraction: float = 0.5,
        *,
        mode: str = "one-step",
        steps: int = 10,
        temperature: float = 0.0,
    ) -> None:
        loaded = load_ldt(bundle)
        self.ldt = loaded.model.requires_grad_(False)
        self.hf_scaling, self.cond_scaling = loaded.hf, loaded.cond
        self.diffusion = diffusion_of(bundle.config)
        self.fraction = fraction
        self.generator = torch.Generator()
        # "sampled": the DDIM run of inference itself (steps, temperature) instead of one step
        if mode not in ROBUST_LATENTS:
            raise ConfigError(f"robust latents must be one-step or sampled, got {mode!r}")
        self.mode, self.temperature = mode, temperature
        self.sampler = diffusion_of(bundle.config, f"ddim{steps}") if mode == "sampled" else None

    @torch.no_grad()
    def __call__(self, ll_latent: Tensor, generated: Tensor) -> Tensor:
        device, b = generated.device, generated.shape[0]
        self.ldt.to(device)
        gen = self.generator
        cond = {"cond": self.cond_scaling.to_diffusion(ll_latent.detach())}
        if self.sampler is not None:
            x0 = self.sample(generated.shape, cond, device)
        else:
            t = torch.randint(0, self.diffusion.num_timesteps, (b,), generator=gen).to(device)
            noise = torch.randn(generated.shape, generator=gen).to(device)
            x_t = self.diffusion.q_sample(
                self.hf_scaling.to_diffusion(generated.detach()), t, noise
            )
            x0 = self.diffusion.p_mean_variance(self.ldt, x_t, t, model_kwargs=cond)["pred_xstart"]
        keep = (torch.rand(b, generator=gen) >= self.fraction).to(device).view(-1, 1, 1, 1)
        return torch.where(keep, generated, self.hf_scaling.from_diffusion(x0))

    def sample(self, shape: torch.Size, cond: dict, device: torch.device) -> Tensor:
        """The DDIM sample inference would draw (deterministic at temperature 0)."""
        noise = torch.randn(shape, generator=self.generator).to(device) * self.temperature
        return self.sampler.sample_loop(
            self.ldt, shape, sampler="ddim", eta=0.0, model_kwargs=cond, noise=noise, device=device
        )


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
        stage = config.autoencoder_training
        self.loss_weights = AutoencoderLossWeights(
            focal_frequency=stage.perceptual.focal_frequency_weight,
            focal_alpha=stage.perceptual.focal_frequency_alpha,
        )
        self.adversarial: AdversarialTerm | None = None

    def build_model(self) -> nn.Module:
        model = FrequencyAutoencoder(self.config.autoencoder)
        stage = self.config.autoencoder_training
        if stage.perceptual.adversarial_weight > 0:  # built after the model: its init unchanged
            self.adversarial = AdversarialTerm(stage.perceptual, stage.optim.grad_clip)
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
        out = model(lr_up, hr, replace_generated=self.stand_in)
        losses = autoencoder_losses(out, hr, self.loss_weights)
        if self.adversarial is not None:
            losses = self.adversarial(model, out, hr, losses, step)
        return losses

    def extra_state(self) -> dict[str, Tensor]:
        """The discriminator's weights and optimizer state, for the engine's checkpoints."""
        return {} if self.adversarial is None else self.adversarial.state_dict()

    def load_extra_state(self, tensors: dict[str, Tensor]) -> None:
        if self.adversarial is not None:
            self.adversarial.load_state_dict(tensors)

    def export(self, model: nn.Module, run_dir: Path, step: int) -> None:
        save_bundle(
            run_dir,
            "autoencoder",
            self.config,
            {"autoencoder": model.state_dict()},
            step=step,
            extras={"degradation": self.degradation.label},
        )


class LatentCache:
    """Posterior-mode latents of the training slices: cond (LR LL, 3 ch), generated (9/12 ch).

    Latents of equal shape are stacked, so that a batch of random windows is cropped with one
    gather per shape rather than a Python loop per sample.
    """

    def __init__(self, latents: list[Tensor], scaling: str = "global") -> None:
        self.latents = latents
        lc = 3
        cond = torch.cat([z[:lc].flatten(1) for z in latents], dim=1)
        high = torch.cat([z[lc:].flatten(1) for z in latents], dim=1)
        # The diffusion space: unit variance, as the SD VAE's 0.18215 (measured here).
        self.cond_scaling = LatentScaling.measure(cond, scaling)
        self.hf_scaling = LatentScaling.measure(high, scaling)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, z in enumerate(latents):
            by_shape.setdefault(tuple(z.shape), []).append(i)
        self.groups = [
            (torch.tensor(ix), torch.stack([latents[i] for i in ix])) for ix in by_shape.values()
        ]
        self.sizes = torch.tensor([tuple(z.shape[-2:]) for z in latents])  # (N, 2): h, w
        self.group_of = torch.empty(len(latents), dtype=torch.long)
        self.row_of = torch.empty(len(latents), dtype=torch.long)
        for g, (ix, _) in enumerate(self.groups):
            self.group_of[ix] = g
            self.row_of[ix] = torch.arange(len(ix))

    @classmethod
    def build(
        cls,
        autoencoder: FrequencyAutoencoder,
        bank: SliceBank,
        config: WaveSRConfig,
        *,
        progress: bool = True,
        batch_size: int = 16,
        exclude: set[int] | None = None,
    ) -> LatentCache:
        """Encode (at most ``data.cache_max_slices``, evenly spaced) slices in same-size batches;
        ``exclude``: slice indices kept out (the validation slices)."""
        autoencoder.eval()
        device = next(autoencoder.parameters()).device
        multiple = autoencoder.stride * config.ldt.patch_size
        degradation = degradation_of(config)
        candidates = [i for i in range(len(bank.slices)) if i not in (exclude or set())]
        n, keep = len(candidates), config.data.cache_max_slices
        chosen = (
            candidates
            if keep <= 0 or keep >= n
            else [candidates[j] for j in _evenly_spaced(n, keep)]
        )
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
        return cls(latents, config.diffusion.latent_scaling)

    def save(self, path: Path) -> None:
        save_tensors({f"{i:06d}": z.contiguous() for i, z in enumerate(self.latents)}, path)

    @classmethod
    def load(cls, path: Path, scaling: str = "global") -> LatentCache:
        tensors = load_tensors(path)
        return cls([tensors[k] for k in sorted(tensors)], scaling)

    def windows(self, picks: Tensor, tops: Tensor, lefts: Tensor, size: int) -> Tensor:
        """Windows (B, C, size, size) of latents ``picks`` at (tops, lefts)."""
        c = self.latents[0].shape[0]
        out = torch.empty(len(picks), c, size, size)
        offsets = torch.arange(size)
        for g, (_, stack) in enumerate(self.groups):
            mine = (self.group_of[picks] == g).nonzero().flatten()
            if len(mine) == 0:
                continue
            rows = (tops[mine, None] + offsets)[:, None, :, None]
            cols = (lefts[mine, None] + offsets)[:, None, None, :]
            samples = self.row_of[picks[mine]][:, None, None, None]
            out[mine] = stack[samples, torch.arange(c)[None, :, None, None], rows, cols]
        return out

    def batch(
        self, step: int, batch_size: int, size: int, seed: int, rank: int
    ) -> tuple[Tensor, Tensor]:
        """Scaled (x0 generated latents (B, 9/12, size, size), cond (B, 3, size, size))."""
        gen = step_generator(seed, step, rank)
        picks = torch.randint(0, len(self.latents), (batch_size,), generator=gen)
        heights, widths = self.sizes[picks].unbind(1)
        tops = (torch.rand(batch_size, generator=gen) * (heights - size + 1)).long()
        lefts = (torch.rand(batch_size, generator=gen) * (widths - size + 1)).long()
        z = self.windows(picks, tops, lefts, size)
        return self.hf_scaling.to_diffusion(z[:, 3:]), self.cond_scaling.to_diffusion(z[:, :3])


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
        validator: LDTValidator | None = None,
    ) -> None:
        self.config, self.autoencoder, self.cache = config, autoencoder, cache
        self.validator = validator
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

    def validate(self, model: nn.Module) -> dict[str, float]:
        if self.validator is None:
            return {}
        return self.validator(model, self.cache.hf_scaling, self.cache.cond_scaling)

    def export(self, model: nn.Module, run_dir: Path, step: int) -> None:
        save_bundle(
            run_dir,
            "wavesr",
            self.config,
            {"autoencoder": self.autoencoder.state_dict(), "ldt": model.state_dict()},
            step=step,
            extras={
                **scaling_extras(self.cache.hf_scaling, self.cache.cond_scaling),
                "degradation": degradation_of(self.config).label,
                "autoencoder_source": self.autoencoder_source,
            },
        )
