"""Frequency autoencoder (paper section 3.1, Eq. 2-4 and the stage-1 loss Eq. 8).

One Stable-Diffusion-style KL encoder is shared by the four Haar sub-bands (Eq. 2): each band is a
one-channel image of size H/2 x W/2 that becomes a 3-channel latent of size H/(2d) x W/(2d), d =
``downsample``. The paper's s = 4 (latent side / image side = 1/4) is d = 2 in the `cpu` and
`paper` presets; d = 4 is the Table-3 "s = 8" ablation (docs/design.md).
The decoder (Eq. 3) takes the LR LL latent and the three HR high-frequency latents (12 channels)
and returns all four HR sub-bands. With ``ll_detail`` on, a fifth band is encoded and generated:
the LL detail LL_HR - LL_LR, the part of the HR LL band that a x4 LR image does not hold.
The decoder's final block also sees the grayscale LR LL band in pixel
space (the "super-resolution-aware" conditioning); the LL output is predicted as a residual on top
of the LR LL band. See docs/design.md for the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import Decoder, DiagonalGaussianDistribution, Encoder
from diffusers.models.resnet import ResnetBlock2D
from torch import Tensor, nn

from wavesr.model.perceptual import focal_frequency_loss
from wavesr.model.wavelet import dwt2, idwt2

NUM_BANDS = 4  # Haar sub-bands returned by the decoder: LL, LH, HL, HH
HIGH_BANDS = 3


@dataclass
class AutoencoderConfig:
    latent_channels: int = 3
    downsample: int = 4  # of the half-size bands: latent side = image side / (2 * downsample)
    base_channels: int = 32
    channel_mult_last: int = 4  # widths go base, 2*base, ..., up to base*channel_mult_last
    layers_per_block: int = 1
    norm_num_groups: int = 16
    mid_attention: bool = True
    cond_channels: int = 32  # width of the conditioned final block
    final_layers: int = 1  # residual blocks in the conditioned final block
    # Sub-bands differ in scale by ~10x (LL in [0, 2], details ~0.05); they are multiplied by these
    # factors before the shared encoder and divided after the decoder.
    # A fifth value scales the LL detail band (used when ll_detail is on).
    band_scales: tuple[float, ...] = (0.5, 4.0, 4.0, 4.0)
    ll_residual: bool = True  # LL output = LR LL + predicted correction
    # Also encode (and let the LDT generate) LL_HR - LL_LR: at x4 the HR LL band holds frequencies
    # the LR image lacks, which no HF band carries (docs/design.md, "What the LDT generates").
    ll_detail: bool = False
    # Training only: the share of samples whose decoder gets neither the LR LL band nor the LR LL
    # latent (the LL residual is kept). The latents must then carry the whole band, not just what
    # the LR lacks, which makes them predictable from the LR (docs/design.md, "Condition dropout").
    condition_dropout: float = 0.0
    # What of the LR the decoder's final block sees: its LL band ("ll", the paper's design) or all
    # four of its Haar bands ("bands"), each output band then predicted as a residual on the LR's.
    # "bands" is for degradations that keep detail in the LR's high bands, e.g. `slice-axis`,
    # whose LR keeps every column frequency (docs/design.md, "What the through-plane decoder sees").
    lr_condition: str = "ll"

    @property
    def condition_band_count(self) -> int:
        """LR Haar bands the decoder's final block sees."""
        return NUM_BANDS if self.lr_condition == "bands" else 1

    @property
    def encoded_bands(self) -> int:
        """Bands through the shared encoder: LL_LR, LH, HL, HH (+ the LL detail)."""
        return NUM_BANDS + int(self.ll_detail)

    @property
    def generated_channels(self) -> int:
        """Latent channels the LDT generates (all encoded bands but LL_LR)."""
        return self.latent_channels * (self.encoded_bands - 1)

    def block_out_channels(self) -> tuple[int, ...]:
        n_down = int(round(math.log2(self.downsample)))
        if 2**n_down != self.downsample or n_down < 1:
            raise ValueError(
                f"autoencoder downsample must be a power of 2 >= 2, got {self.downsample}"
            )
        cap = self.base_channels * self.channel_mult_last
        return tuple(min(self.base_channels * 2**i, cap) for i in range(n_down + 1))

    def to_dict(self) -> dict:
        return asdict(self)


AUTOENCODER_PRESETS: dict[str, dict] = {
    "tiny": dict(base_channels=8, channel_mult_last=2, norm_num_groups=4, cond_channels=8),
    "cpu": dict(
        downsample=2, base_channels=32, channel_mult_last=4, layers_per_block=1, cond_channels=32
    ),
    "paper": dict(
        downsample=2, base_channels=64, channel_mult_last=4, layers_per_block=2, cond_channels=64
    ),
}


def autoencoder_preset(name: str, **overrides) -> AutoencoderConfig:
    if name not in AUTOENCODER_PRESETS:
        raise KeyError(
            f"unknown autoencoder preset {name!r}; choose from {sorted(AUTOENCODER_PRESETS)}"
        )
    return AutoencoderConfig(**{**AUTOENCODER_PRESETS[name], **overrides})


class ConditionedFinalBlock(nn.Module):
    """Final decoder block: fuses decoder features with the LR band(s) (pixel space)."""

    def __init__(
        self, feat_channels: int, width: int, groups: int, layers: int = 1, cond_bands: int = 1
    ) -> None:
        super().__init__()
        self.cond_in = nn.Conv2d(cond_bands, width, 3, padding=1)
        self.fuse = ResnetBlock2D(
            in_channels=feat_channels + width, out_channels=width, temb_channels=None, groups=groups
        )
        # Extra residual blocks at band resolution: they start as identity (zero last conv), so
        # they can be added to a trained decoder and fine-tuned (`train autoencoder --init-from`).
        self.refine = nn.ModuleList(
            ResnetBlock2D(in_channels=width, out_channels=width, temb_channels=None, groups=groups)
            for _ in range(layers - 1)
        )
        for block in self.refine:
            nn.init.zeros_(block.conv2.weight)
            nn.init.zeros_(block.conv2.bias)
        self.norm = nn.GroupNorm(groups, width)
        self.out = nn.Conv2d(width, NUM_BANDS, 3, padding=1)

    def forward(self, feats: Tensor, lr_bands: Tensor) -> Tensor:
        x = torch.cat([feats, self.cond_in(lr_bands)], dim=1)
        x = self.fuse(x, None)
        for block in self.refine:
            x = block(x, None)
        return self.out(F.silu(self.norm(x)))


class FrequencyAutoencoder(nn.Module):
    """KL autoencoder over Haar sub-bands with an LR-LL-conditioned decoder."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.block_out_channels()
        n = len(widths)
        self.encoder = Encoder(
            in_channels=1,
            out_channels=config.latent_channels,
            down_block_types=("DownEncoderBlock2D",) * n,
            block_out_channels=widths,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            double_z=True,
            mid_block_add_attention=config.mid_attention,
        )
        self.decoder = Decoder(
            in_channels=config.latent_channels * config.encoded_bands,
            out_channels=widths[0],
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=widths,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            mid_block_add_attention=config.mid_attention,
        )
        self.final = ConditionedFinalBlock(
            widths[0],
            config.cond_channels,
            config.norm_num_groups,
            config.final_layers,
            config.condition_band_count,
        )
        self.register_buffer(
            "band_scales", torch.tensor(config.band_scales, dtype=torch.float32), persistent=False
        )

    @property
    def stride(self) -> int:
        """Pixels of the image per latent pixel (Haar halves, then the encoder's s)."""
        return 2 * self.config.downsample

    def encode_band(self, band: Tensor, band_index: int | Tensor) -> DiagonalGaussianDistribution:
        """Encode one-channel sub-band(s) (B, 1, h, w) -> posterior over (B, 3, h/s, w/s)."""
        scale = self.band_scales[band_index]
        if isinstance(band_index, Tensor):
            scale = scale.view(-1, 1, 1, 1)
        return DiagonalGaussianDistribution(self.encoder(band * scale))

    def encoder_inputs(self, lr_bands: Tensor, hr_bands: Tensor) -> Tensor:
        """Bands of LR-up and HR (B, 4, h, w) -> the encoded bands [LL_LR, LH, HL, HH(, dLL)]."""
        bands = [lr_bands[:, :1], hr_bands[:, 1:]]
        if self.config.ll_detail:
            bands.append(hr_bands[:, :1] - lr_bands[:, :1])
        return torch.cat(bands, dim=1)

    def encode_pair(self, lr_up: Tensor, hr: Tensor) -> DiagonalGaussianDistribution:
        """Images (B, 1, H, W) -> posterior over [LL_LR latent, generated latents]."""
        return self.encode_bands(self.encoder_inputs(dwt2(lr_up), dwt2(hr)))

    def encode_bands(self, bands: Tensor) -> DiagonalGaussianDistribution:
        """(B, n, h, w) bands from :meth:`encoder_inputs` -> posterior over (B, 3n, h/s, w/s).

        All bands go through the shared encoder as one batch of nB single-channel images.
        """
        b, n = bands.shape[:2]
        flat = bands.transpose(0, 1).reshape(n * b, 1, *bands.shape[-2:])
        index = torch.arange(n, device=bands.device).repeat_interleave(b)
        moments = self.encoder(flat * self.band_scales[index].view(-1, 1, 1, 1))
        # (nB, 2*lc, h', w') -> (B, 2*n*lc) with mean channels first, then logvar channels.
        lc = self.config.latent_channels
        moments = moments.view(n, b, 2, lc, *moments.shape[-2:]).permute(1, 2, 0, 3, 4, 5)
        return DiagonalGaussianDistribution(moments.reshape(b, 2 * n * lc, *moments.shape[-2:]))

    def decode(
        self,
        ll_latent: Tensor,
        high_latents: Tensor,
        lr_bands: Tensor,
        keep_condition: Tensor | None = None,
    ) -> Tensor:
        """Eq. 3: LL latent (B, 3) + generated latents (B, 9 or 12) and the LR's bands -> bands.

        ``lr_bands`` are the LR's Haar bands (B, 4, h, w); (B, 1, h, w), the LL band alone, is
        enough for a decoder with ``lr_condition`` "ll". ``keep_condition`` (B, 1, 1, 1) of 0 / 1
        hides the LR LL latent and bands from the samples marked 0 (condition dropout); the
        residual still adds the LR band(s).
        """
        lr_seen = self.condition_bands(lr_bands)
        cond_latent, cond_bands = ll_latent, lr_seen
        if keep_condition is not None:
            cond_latent, cond_bands = ll_latent * keep_condition, lr_seen * keep_condition
        feats = self.decoder(torch.cat([cond_latent, high_latents], dim=1))
        feats = feats[..., : lr_seen.shape[-2], : lr_seen.shape[-1]]
        out = self.final(feats, self.scaled_condition(cond_bands))
        out = out / self.band_scales[:NUM_BANDS].view(1, -1, 1, 1)
        if self.config.ll_residual:
            n = lr_seen.shape[1]
            out = torch.cat([out[:, :n] + lr_seen, out[:, n:]], dim=1)
        return out

    def condition_bands(self, lr_bands: Tensor) -> Tensor:
        """The LR bands the decoder sees: the LL band, or all four (``lr_condition``)."""
        n = self.config.condition_band_count
        if lr_bands.shape[1] < n:
            raise ValueError(
                f"this decoder sees {n} LR bands (autoencoder.lr_condition="
                f"{self.config.lr_condition!r}); got {lr_bands.shape[1]}"
            )
        return lr_bands[:, :n]

    def scaled_condition(self, cond_bands: Tensor) -> Tensor:
        """The LR detail bands at the encoder's scale, as the HR's are; the LL band as it is."""
        if cond_bands.shape[1] == 1:
            return cond_bands
        detail = cond_bands[:, 1:] * self.band_scales[1:NUM_BANDS].view(1, -1, 1, 1)
        return torch.cat([cond_bands[:, :1], detail], dim=1)

    def condition_keep_mask(self, x: Tensor) -> Tensor | None:
        """A random (B, 1, 1, 1) 0 / 1 mask for condition dropout, or None when it is off."""
        if not self.training or self.config.condition_dropout <= 0:
            return None
        draw = torch.rand(x.shape[0], 1, 1, 1, device=x.device)
        return (draw >= self.config.condition_dropout).to(x.dtype)

    def split_latents(self, latents: Tensor) -> tuple[Tensor, Tensor]:
        lc = self.config.latent_channels
        return latents[:, :lc], latents[:, lc:]

    def forward(
        self,
        lr_up: Tensor,
        hr: Tensor,
        *,
        sample: bool = True,
        replace_generated: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Stage-1 pass on image pairs (B, 1, H, W) with H, W multiples of :attr:`stride`.

        ``replace_generated(ll_latent, generated)`` swaps the encoded generated latents for others
        before decoding (robust decoder training on what an LDT produces).
        """
        lr_bands, hr_bands = dwt2(lr_up), dwt2(hr)
        posterior = self.encode_bands(self.encoder_inputs(lr_bands, hr_bands))
        latents = posterior.sample() if sample else posterior.mode()
        ll_latent, high_latents = self.split_latents(latents)
        if replace_generated is not None:
            high_latents = replace_generated(ll_latent, high_latents)
        bands_hat = self.decode(ll_latent, high_latents, lr_bands, self.condition_keep_mask(lr_up))
        return {
            "bands_hat": bands_hat,
            "hr_bands": hr_bands,
            "sr": idwt2(bands_hat),
            "kl": posterior.kl(),
        }


@dataclass
class AutoencoderLossWeights:
    freq: float = 1.0
    pixel: float = 1.0
    cycle: float = 1.0
    kl: float = 1e-6
    # Focal frequency loss on the SR image (Jiang et al. 2021; 0 = off, not even computed).
    focal_frequency: float = 0.0
    focal_alpha: float = 1.0
    extra: dict = field(default_factory=dict)


def autoencoder_losses(
    out: dict[str, Tensor], hr: Tensor, weights: AutoencoderLossWeights | None = None
) -> dict[str, Tensor]:
    """Eq. 8: L_freq + L_pixel + L_cycle + beta * L_KL, each term returned separately (plus the
    focal frequency loss when its weight is above 0).

    L_cycle re-analyses the SR image after clamping to the valid [0, 1] range; without the clamp it
    would equal L_freq exactly because the Haar transform is orthonormal (see docs/design.md).
    """
    w = weights or AutoencoderLossWeights()
    freq = F.mse_loss(out["bands_hat"], out["hr_bands"])
    pixel = F.mse_loss(out["sr"], hr)
    cycle = F.mse_loss(dwt2(out["sr"].clamp(0.0, 1.0)), out["hr_bands"])
    kl = out["kl"].mean()
    total = w.freq * freq + w.pixel * pixel + w.cycle * cycle + w.kl * kl
    terms = {"loss": total, "freq": freq, "pixel": pixel, "cycle": cycle, "kl": kl}
    if w.focal_frequency > 0:
        terms["focal_frequency"] = focal_frequency_loss(out["sr"], hr, w.focal_alpha)
        terms["loss"] = total + w.focal_frequency * terms["focal_frequency"]
    return terms
