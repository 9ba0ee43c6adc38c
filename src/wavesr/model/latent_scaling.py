"""The affine map between the autoencoder's latents and the LDT's diffusion space.

Diffusion assumes data of about unit variance. The SD VAE habit is one scale for all channels
(its 0.18215); WaveSR's generated latents mix bands whose spreads differ by ~50x (LH / HH near
0.05, the LL detail near 2.4 after one global scale), so the quiet bands sit under the noise for
most of the schedule and the LDT learns nothing there. "per-channel" standardises every channel
to zero mean and unit std, measured on the training latents and stored in the bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

LATENT_SCALINGS = ("global", "per-channel")


@dataclass
class LatentScaling:
    """x = (z - shift) * scale per channel; ``scale`` and ``shift`` have one value per channel."""

    scale: Tensor  # (C,)
    shift: Tensor  # (C,)

    @classmethod
    def measure(cls, values: Tensor, mode: str = "per-channel") -> LatentScaling:
        """From ``values`` (C, M), each row one channel's samples: "global" = one scale 1 / std,
        no shift; "per-channel" = each channel's own mean and 1 / std."""
        channels = values.shape[0]
        flat = values.double()
        if mode == "global":
            scale = torch.full((channels,), 1.0 / float(flat.std().clamp_min(1e-6)))
            return cls(scale.float(), torch.zeros(channels))
        if mode != "per-channel":
            raise ValueError(f"latent scaling must be one of {LATENT_SCALINGS}, got {mode!r}")
        return cls((1.0 / flat.std(dim=1).clamp_min(1e-6)).float(), flat.mean(dim=1).float())

    @classmethod
    def identity(cls, channels: int) -> LatentScaling:
        return cls(torch.ones(channels), torch.zeros(channels))

    @classmethod
    def from_extras(cls, scale: float | Sequence[float], shift: Sequence[float] | None, n: int):
        """A bundle's stored values: a float (older bundles: one global scale) or lists."""
        scale_t = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        scale_t = scale_t.expand(n).clone() if scale_t.numel() == 1 else scale_t
        shift_t = torch.zeros(n) if shift is None else torch.as_tensor(shift, dtype=torch.float32)
        if scale_t.numel() != n or shift_t.numel() != n:
            raise ValueError(f"latent scaling needs {n} values per channel")
        return cls(scale_t, shift_t.reshape(-1))

    def to_extras(self) -> tuple[list[float], list[float]]:
        return self.scale.tolist(), self.shift.tolist()

    def _view(self, t: Tensor, like: Tensor) -> Tensor:
        return t.to(device=like.device, dtype=like.dtype).view(1, -1, 1, 1)

    def to_diffusion(self, z: Tensor) -> Tensor:
        """Latents (B, C, h, w) -> diffusion space."""
        return (z - self._view(self.shift, z)) * self._view(self.scale, z)

    def from_diffusion(self, x: Tensor) -> Tensor:
        """Diffusion space (B, C, h, w) -> latents (a zero sample gives the mean latent)."""
        return x / self._view(self.scale, x) + self._view(self.shift, x)
