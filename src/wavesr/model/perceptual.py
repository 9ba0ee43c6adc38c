"""Perceptual terms of decoder training: a patch discriminator, hinge losses, the VQGAN adaptive
weight and the focal frequency loss.

The paper's decoder is "discriminator-constrained"; trained on L2 losses alone it averages the
top-octave texture away (docs/design.md, "Perceptual mode: code"). Modelled on
taming-transformers (``NLayerDiscriminator``, ``hinge_d_loss``, ``calculate_adaptive_weight`` in
``vqperceptual.py``) and on Jiang et al. 2021 (focal frequency loss). The training loop that
steps the discriminator lives in ``wavesr.training.adversarial``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VIEW_CHANNELS = {"image": 1, "bands": 3}  # what a discriminator can judge, and its channels


# ----------------------------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------------------------


@dataclass
class DiscriminatorConfig:
    channels: int = 64  # width of the first layer, doubled per layer up to 8x
    layers: int = 3  # stride-2 layers (3: 70 x 70 receptive field, pix2pix's PatchGAN)
    inputs: str = "image"  # views joined by "+": "image", "bands" (LH, HL, HH) or both


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix / taming ``NLayerDiscriminator``): one logit per overlapping patch.

    GroupNorm instead of BatchNorm: the real and the fake batch go through separately, and batch
    statistics would tell them apart.
    """

    def __init__(self, in_channels: int, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        widths = [channels * min(2**i, 8) for i in range(layers + 1)]
        blocks: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1
            blocks += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=False),
                nn.GroupNorm(8, widths[i]),
                nn.LeakyReLU(0.2),
            ]
        blocks.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*blocks)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """One :class:`PatchDiscriminator` per view (``image``: 1 channel, ``bands``: 3 channels)."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        names = config.inputs.split("+")
        if not names or not set(names) <= set(VIEW_CHANNELS):
            raise ValueError(f"discriminator inputs: views of {sorted(VIEW_CHANNELS)} joined by +")
        self.views = nn.ModuleDict(
            {n: PatchDiscriminator(VIEW_CHANNELS[n], config.channels, config.layers) for n in names}
        )

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Logits per view; ``inputs`` from :func:`discriminator_inputs`."""
        return {name: net(inputs[name]) for name, net in self.views.items()}


def discriminator_inputs(image: Tensor, bands: Tensor, band_scales: Tensor) -> dict[str, Tensor]:
    """An image (B, 1, H, W) in [0, 1] and its Haar bands (B, 4, H/2, W/2) -> the views: the
    image in [-1, 1], the HF bands at the encoder's band scales (std near 0.5)."""
    hf = bands[:, 1:4] * band_scales[1:4].view(1, -1, 1, 1)
    return {"image": image * 2.0 - 1.0, "bands": hf}


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator hinge loss: (mean relu(1 - real) + mean relu(1 + fake)) / 2."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    """The generator's side of the hinge GAN: -mean D(fake)."""
    return -logits_fake.mean()


def adaptive_weight(
    reconstruction: Tensor, adversarial: Tensor, last_layer: Tensor, max_weight: float = 1e4
) -> Tensor:
    """VQGAN's balance: ||grad rec|| / (||grad adv|| + 1e-4) at the decoder's last layer, clamped
    to [0, max_weight] and detached, so that neither term drowns the other's gradient."""
    rec_grad = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0]
    adv_grad = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (adv_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def focal_frequency_loss(pred: Tensor, target: Tensor, alpha: float = 1.0) -> Tensor:
    """Focal frequency loss (Jiang et al. 2021, their defaults: no patches, no log, per-image
    normalisation): mean over frequencies of w * |F(pred) - F(target)|^2, orthonormal 2-D FFT,
    with w = |F(pred) - F(target)|^alpha / its maximum per image and channel, detached: the
    frequencies the model gets most wrong weigh most."""
    diff = torch.fft.fft2(pred.float(), norm="ortho") - torch.fft.fft2(target.float(), norm="ortho")
    distance = diff.real**2 + diff.imag**2
    weight = distance.sqrt() ** alpha
    peak = weight.flatten(-2).amax(-1)[..., None, None]
    weight = torch.nan_to_num(weight / peak, nan=0.0).clamp(0.0, 1.0).detach()
    return (weight * distance).mean()
