"""Synthetic degradations HR -> LR: bicubic (antialiased, MATLAB-imresize-like) or k-space
truncation, optionally with Rician noise. Deterministic given a seed or generator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from wavesr.errors import ConfigError, InputError

KINDS = ("bicubic", "kspace")
SCALES = (2, 4, 8)


@dataclass(frozen=True)
class Degradation:
    kind: str = "bicubic"  # "bicubic" | "kspace"
    scale: int = 4  # 2, 4, 8
    noise_sigma: float = 0.0  # Rician noise sigma as a fraction of the [0, 1] range; 0 = off

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown degradation {self.kind!r} (choose from {', '.join(KINDS)})")
        if isinstance(self.scale, bool) or self.scale not in SCALES:
            raise ConfigError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if not (math.isfinite(self.noise_sigma) and self.noise_sigma >= 0):
            raise ConfigError(f"noise_sigma must be >= 0, got {self.noise_sigma!r}")

    @property
    def label(self) -> str:
        """Short name, e.g. "bicubic-x4" or "kspace-x4+rician0.02"."""
        base = f"{self.kind}-x{self.scale}"
        return f"{base}+rician{self.noise_sigma:g}" if self.noise_sigma > 0 else base


def _check(x: Tensor, scale: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")


def downsample(hr: Tensor, scale: int) -> Tensor:
    """Antialiased bicubic downsampling by `scale` (like MATLAB imresize), clamped to [0, 1]."""
    _check(hr, scale)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise InputError(f"image size {h}x{w} is not divisible by the scale {scale} (pad it first)")
    lr = F.interpolate(
        hr, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=True
    )
    return lr.clamp(0.0, 1.0)


def upsample(lr: Tensor, scale: int) -> Tensor:
    """Bicubic upsampling by `scale` (align_corners=False), clamped to [0, 1]."""
    _check(lr, scale)
    h, w = lr.shape[-2:]
    up = F.interpolate(lr, size=(h * scale, w * scale), mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


def _centre(size: int, keep: int) -> slice:
    # After fftshift the DC bin sits at size // 2; this keeps it at keep // 2 in the crop.
    start = size // 2 - keep // 2
    return slice(start, start + keep)


def kspace_truncate(hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """Keep the central 1/scale of k-space in each dimension; complex results, no magnitude.

    Returns (lr, lr_up): lr on the (H/s, W/s) grid, divided by s^2 so intensities keep their
    mean, and lr_up the zero-filled inverse FFT on the HR grid.
    """
    _check(hr, scale)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise InputError(f"image size {h}x{w} is not divisible by the scale {scale} (pad it first)")
    k = torch.fft.fftshift(torch.fft.fft2(hr.to(_real_dtype(hr))), dim=(-2, -1))
    rows, cols = _centre(h, h // scale), _centre(w, w // scale)
    cropped = k[..., rows, cols]
    lr = torch.fft.ifft2(torch.fft.ifftshift(cropped, dim=(-2, -1))) / (scale * scale)
    return lr, _zero_fill(cropped, (h, w))


def _zero_fill(cropped: Tensor, size: tuple[int, int]) -> Tensor:
    """Inverse FFT on a larger grid of centred k-space `cropped` (zero-filled outside)."""
    h, w = size
    full = torch.zeros((*cropped.shape[:-2], h, w), dtype=cropped.dtype, device=cropped.device)
    full[..., _centre(h, cropped.shape[-2]), _centre(w, cropped.shape[-1])] = cropped
    return torch.fft.ifft2(torch.fft.ifftshift(full, dim=(-2, -1)))


def _real_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _noise(
    shape: torch.Size, sigma: float, like: Tensor, generator: torch.Generator | None
) -> Tensor:
    # Drawn on the CPU so a seed gives the same noise on every device.
    n = torch.randn(shape, generator=generator, dtype=torch.float32)
    return (n * sigma).to(device=like.device, dtype=_real_dtype(like))


def degrade(
    hr: Tensor,
    deg: Degradation,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Return (lr, lr_up): the LR image and its upsampling onto the HR grid, both in [0, 1].

    Rician noise sqrt((x + n1)^2 + n2^2), n ~ N(0, sigma), is applied to lr; lr_up is then
    computed from the noisy lr (bicubic) or the noisy complex LR image (k-space).
    """
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    sigma = float(deg.noise_sigma)
    if deg.kind == "bicubic":
        lr = downsample(hr, deg.scale)
        if sigma > 0:
            n1 = _noise(lr.shape, sigma, lr, generator)
            n2 = _noise(lr.shape, sigma, lr, generator)
            lr = torch.sqrt((lr + n1) ** 2 + n2**2).clamp(0.0, 1.0)
        return lr, upsample(lr, deg.scale)
    lr_c, up_c = kspace_truncate(hr, deg.scale)
    if sigma > 0:
        noise = torch.complex(
            _noise(lr_c.shape, sigma, hr, generator), _noise(lr_c.shape, sigma, hr, generator)
        )
        lr_c = lr_c + noise  # |x + n1 + i n2| with real x is the Rician formula
        k = torch.fft.fftshift(torch.fft.fft2(lr_c), dim=(-2, -1)) * deg.scale**2
        up_c = _zero_fill(k, tuple(hr.shape[-2:]))
    lr = lr_c.abs().clamp(0.0, 1.0).to(hr.dtype)
    return lr, up_c.abs().clamp(0.0, 1.0).to(hr.dtype)


def back_project(sr: Tensor, lr_up: Tensor, deg: Degradation, iterations: int) -> Tensor:
    """Iterative back-projection (Irani & Peleg, 1991): make SR consistent with its LR input.

    Each iteration adds ``lr_up - D(sr)``, where ``D`` degrades noise-free and brings the result
    back onto the HR grid the way ``lr_up`` was made. For k-space truncation this replaces the
    SR's central k-space with the measured one (exactly so in one iteration where the images
    are real and positive; the magnitude makes it approximate elsewhere); for bicubic it
    converges towards an SR whose downsampling is the LR.
    """
    clean = Degradation(deg.kind, deg.scale)
    for _ in range(iterations):
        _, sr_up = degrade(sr, clean)
        sr = (sr + lr_up - sr_up).clamp(0.0, 1.0)
    return sr


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right so H and W are multiples of `multiple`; returns (x, (H, W)).

    Falls back to edge replication when the image is too small for reflection.
    """
    if x.ndim < 2:
        raise ValueError(f"expected at least 2-D, got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    batched = x.reshape(-1, 1, h, w)
    padded = F.pad(batched, (0, pw, 0, ph), mode=mode)
    return padded.reshape(*x.shape[:-2], h + ph, w + pw), (h, w)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop the bottom/right padding off: keep x[..., :H, :W]."""
    return x[..., : size[0], : size[1]]
