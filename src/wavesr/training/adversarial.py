"""The adversarial term of the autoencoder stages: a discriminator the task owns and steps.

The engine optimises one model; the discriminator is an auxiliary network with its own optimizer,
stepped inside the task's ``compute_loss`` (before the generator's term is built, so that the
update cannot touch tensors the generator's backward still needs). Its weights and optimizer
state travel in the checkpoints (``extra.safetensors``) so that ``--resume`` continues it; it is
never exported into a bundle.

Per step from ``adversarial_start`` on (taming's ``VQLPIPSWithDiscriminator`` semantics):
1. discriminator: hinge loss on the real HR and the detached decoded image, one Adam step;
2. generator: loss += lambda * w * (-mean D(decoded)), w the adaptive weight (the ratio of the
   reconstruction's and the adversarial term's gradient norms at the decoder's last layer).
Before the start nothing runs, so a run is unchanged until then.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn

from wavesr.config import PerceptualConfig
from wavesr.model.perceptual import (
    Discriminator,
    DiscriminatorConfig,
    adaptive_weight,
    discriminator_inputs,
    hinge_d_loss,
    hinge_g_loss,
)
from wavesr.training.checkpoint import flatten_optimizer, unflatten_optimizer

DISCRIMINATOR_PREFIX = "discriminator."
OPTIMIZER_PREFIX = "discriminator_optimizer."


class AdversarialTerm:
    """Discriminator, its optimizer, and the generator-side term of one autoencoder stage."""

    def __init__(self, settings: PerceptualConfig, grad_clip: float = 0.0) -> None:
        self.settings, self.grad_clip = settings, grad_clip
        self.discriminator = Discriminator(
            DiscriminatorConfig(
                settings.discriminator_channels,
                settings.discriminator_layers,
                settings.discriminator_input,
            )
        )
        self.optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=settings.discriminator_lr, betas=(0.5, 0.9)
        )

    def __call__(
        self, model: nn.Module, out: dict[str, Tensor], hr: Tensor, losses: dict[str, Tensor], step
    ) -> dict[str, Tensor]:
        """``losses`` (from ``autoencoder_losses``) with the adversarial term added from the start
        step on; trains the discriminator one step on the way."""
        if step < self.settings.adversarial_start:
            return losses
        autoencoder = getattr(model, "module", model)  # DDP-wrapped or not
        self.to(hr.device)
        scales = autoencoder.band_scales
        real = discriminator_inputs(hr, out["hr_bands"], scales)
        fake = discriminator_inputs(out["sr"], out["bands_hat"], scales)
        d_loss, d_real, d_fake = self.discriminator_step(real, fake)
        with frozen(self.discriminator):
            logits = self.discriminator(fake)
        g_loss = torch.stack([hinge_g_loss(v) for v in logits.values()]).mean()
        weight = torch.tensor(self.settings.adversarial_weight, device=hr.device)
        if self.settings.adaptive_weight:
            last_layer = autoencoder.final.out.weight
            weight = weight * adaptive_weight(losses["loss"], g_loss, last_layer)
        return {
            **losses,
            "loss": losses["loss"] + weight * g_loss,
            "adv_g": g_loss.detach(),
            "adv_weight": weight,
            "adv_d": d_loss,
            "d_real": d_real,
            "d_fake": d_fake,
        }

    def discriminator_step(
        self, real: dict[str, Tensor], fake: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One hinge-loss step; returns the loss and the mean real / fake logits (detached)."""
        fake = {k: v.detach() for k, v in fake.items()}
        logits_real, logits_fake = self.discriminator(real), self.discriminator(fake)
        loss = torch.stack(
            [hinge_d_loss(logits_real[k], logits_fake[k]) for k in logits_real]
        ).mean()
        loss.backward()
        self._all_reduce_grads()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.discriminator.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean_real = torch.stack([v.mean() for v in logits_real.values()]).mean()
        mean_fake = torch.stack([v.mean() for v in logits_fake.values()]).mean()
        return loss.detach(), mean_real.detach(), mean_fake.detach()

    def _all_reduce_grads(self) -> None:
        """Average the gradients over processes (the discriminator is not DDP-wrapped)."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for p in self.discriminator.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()

    def to(self, device: torch.device) -> None:
        """Move the discriminator and its optimizer state (built or loaded on the CPU)."""
        if next(self.discriminator.parameters()).device == device:
            return
        self.discriminator.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor) and key != "step":
                    state[key] = value.to(device)

    # ---- checkpoint state ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Tensor]:
        """Weights and optimizer state as flat tensors (the checkpoint's extra.safetensors)."""
        out = {DISCRIMINATOR_PREFIX + k: v for k, v in self.discriminator.state_dict().items()}
        tensors, _ = flatten_optimizer(self.optimizer.state_dict())
        out.update({OPTIMIZER_PREFIX + k: v for k, v in tensors.items()})
        return out

    def load_state_dict(self, tensors: dict[str, Tensor]) -> None:
        weights = {
            k.removeprefix(DISCRIMINATOR_PREFIX): v
            for k, v in tensors.items()
            if k.startswith(DISCRIMINATOR_PREFIX)
        }
        if not weights:  # a checkpoint from before the term was switched on: start fresh
            return
        self.discriminator.load_state_dict(weights)
        state = {
            k.removeprefix(OPTIMIZER_PREFIX): v
            for k, v in tensors.items()
            if k.startswith(OPTIMIZER_PREFIX)
        }
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict(unflatten_optimizer(state, groups))


@contextmanager
def frozen(module: nn.Module):
    """No parameter gradients for ``module`` inside (gradients still flow to its inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
