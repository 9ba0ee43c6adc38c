"""Synthetic degradations HR -> LR: bicubic (antialiased, MATLAB-imresize-like), k-space
truncation as a scanner acquires a smaller matrix (apodisation window, partial Fourier with
zero-filled or homodyne reconstruction), or a thick-slice acquisition along one axis
("slice-axis"), optionally with Rician noise; and a random draw of these per sample
(`RandomDegradation`, SynthSR / Real-ESRGAN-style domain randomisation for training).
Deterministic given a seed or generator."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from wavesr.errors import ConfigError, InputError

KINDS = ("bicubic", "kspace", "slice-axis")
RANDOM = "random"  # data.degradation: a `RandomDegradation` draw per sample
SCALES = (2, 4, 8)
SLICE_PROFILES = ("gaussian", "box", "sinc")
WINDOWS = ("none", "hamming", "tukey")  # k-space apodisation
PF_RECONS = ("zero-fill", "homodyne")  # partial-Fourier reconstruction
TUKEY_ALPHA = 0.5  # share of the kept k-space half-width that the Tukey window tapers
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...: a Gaussian's FWHM / sigma


@dataclass(frozen=True)
class Degradation:
    kind: str = "bicubic"  # "bicubic" | "kspace" | "slice-axis"
    scale: int = 4  # 2, 4, 8
    noise_sigma: float = 0.0  # Rician noise sigma as a fraction of the [0, 1] range; 0 = off
    # slice-axis only (ignored by the other kinds): the slice profile along the thick axis and
    # the gap between slices as a fraction of the slice spacing (the profile is 1 - gap as wide).
    profile: str = "gaussian"  # "gaussian" (FWHM = the profile width) | "box" | "sinc"
    gap: float = 0.0  # in [0, 1)
    # k-space only: apodisation of the kept k-space, and partial Fourier along the rows (the
    # phase-encode direction): the share of its lines acquired, in [0.5, 1], and how the
    # missing ones are reconstructed.
    window: str = "none"  # "none" | "hamming" | "tukey"
    partial_fourier: float = 1.0
    pf_recon: str = "zero-fill"  # "zero-fill" | "homodyne"
    # How lr goes onto the HR grid (`upsample_for`): "auto" is the kind's own.
    upsampler: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown degradation {self.kind!r} (choose from {', '.join(KINDS)})")
        if isinstance(self.scale, bool) or self.scale not in SCALES:
            raise ConfigError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if not (math.isfinite(self.noise_sigma) and self.noise_sigma >= 0):
            raise ConfigError(f"noise_sigma must be >= 0, got {self.noise_sigma!r}")
        _check_profile(self.profile, self.gap)
        _check_kspace_options(self.window, self.partial_fourier, self.pf_recon)
        if self.upsampler not in UPSAMPLERS:
            raise ConfigError(
                f"unknown upsampler {self.upsampler!r} (choose from {', '.join(UPSAMPLERS)})"
            )

    @property
    def label(self) -> str:
        """Short name, e.g. "bicubic-x4", "kspace-x4-hamming-pf0.625+rician0.02" or
        "slice-axis-x4-box-gap0.2" (the default profile / window add nothing)."""
        base = f"{self.kind}-x{self.scale}"
        if self.kind == "slice-axis":
            base += "" if self.profile == "gaussian" else f"-{self.profile}"
            base += f"-gap{self.gap:g}" if self.gap > 0 else ""
        if self.kind == "kspace":
            base += "" if self.window == "none" else f"-{self.window}"
            if self.partial_fourier < 1:
                base += f"-pf{self.partial_fourier:g}"
                base += "-homodyne" if self.pf_recon == "homodyne" else ""
        return f"{base}+rician{self.noise_sigma:g}" if self.noise_sigma > 0 else base


def _check_kspace_options(window: str, partial_fourier: float, pf_recon: str) -> None:
    if window not in WINDOWS:
        raise ConfigError(f"unknown k-space window {window!r} (choose from {', '.join(WINDOWS)})")
    if (
        isinstance(partial_fourier, bool)
        or not isinstance(partial_fourier, int | float)
        or not 0.5 <= partial_fourier <= 1.0
    ):
        raise ConfigError(f"partial Fourier must lie in [0.5, 1], got {partial_fourier!r}")
    if pf_recon not in PF_RECONS:
        raise ConfigError(
            f"unknown partial-Fourier reconstruction {pf_recon!r} (choose from "
            f"{', '.join(PF_RECONS)})"
        )


def _check_profile(profile: str, gap: float) -> None:
    if profile not in SLICE_PROFILES:
        raise ConfigError(
            f"unknown slice profile {profile!r} (choose from {', '.join(SLICE_PROFILES)})"
        )
    if isinstance(gap, bool) or not isinstance(gap, int | float) or not 0.0 <= gap < 1.0:
        raise ConfigError(f"slice gap must lie in [0, 1), got {gap!r}")


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


# ----------------------------------------------------------------------------- slice-axis
#
# A thick-slice acquisition along the rows axis (H, dim -2) of a (B, C, H, W) batch: LR row i
# is the HR column profile weighted by the slice profile centred on the middle of HR rows
# [s*i, s*i + s), i.e. at HR coordinate c_i = s*i + (s - 1)/2 (a half-integer for even s). That
# is where bicubic interpolation with align_corners=False (`upsample`, `slice_upsample`) puts LR
# row i, so the degradation and the interpolation back agree: a constant comes back exactly, a
# linear ramp away from the borders. Blur and sampling are one strided 1-D convolution whose
# taps sit at offsets j - (L - 1)/2 from c_i (L has the parity of s), over the reflect-padded
# rows. The columns (W) are untouched.


def slice_kernel(
    scale: int, profile: str = "gaussian", gap: float = 0.0, *, dtype=torch.float32
) -> Tensor:
    """The normalised 1-D slice profile (L,) at tap offsets ``j - (L - 1)/2``, j = 0..L-1.

    The profile is ``width = scale * (1 - gap)`` HR pixels wide: a Gaussian of FWHM ``width``
    (sigma = width / 2.3548, sampled at the tap offsets, cut beyond 3 sigma) or a box of
    ``width`` (each tap weighted by the part of its pixel [d - 1/2, d + 1/2] inside the box).
    L has the parity of ``scale`` and is at least ``scale``.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    _check_profile(profile, gap)
    width = scale * (1.0 - float(gap))
    if profile == "gaussian":
        sigma = width / FWHM_PER_SIGMA
        reach = 3.0 * sigma
    elif profile == "box":
        reach = width / 2.0 + 0.5
    else:
        reach = SINC_REACH * width / 2.0
    # Taps at offsets (parity of scale): integers for odd scale, half-integers for even.
    half = math.ceil(reach) if scale % 2 else math.ceil(reach - 0.5) + 0.5
    length = max(int(round(2 * half + 1)), scale)
    offsets = torch.arange(length, dtype=torch.float64) - (length - 1) / 2.0
    if profile == "gaussian":
        d2 = offsets**2
        weights = torch.exp(-(d2 - d2.min()) / (2.0 * sigma * sigma))  # no underflow to all-0
    elif profile == "box":
        lo = torch.clamp(offsets - 0.5, min=-width / 2.0)
        hi = torch.clamp(offsets + 0.5, max=width / 2.0)
        weights = (hi - lo).clamp(min=0.0)
        while len(weights) > scale + 1 and weights[0] == 0 and weights[-1] == 0:
            weights = weights[1:-1]  # taps whose pixel lies outside the box
    else:
        weights = sinc_pulse_profile(offsets / width)
    return (weights / weights.sum()).to(dtype)


SINC_TIME_BANDWIDTH = 4.0  # the excitation pulse's time-bandwidth product
SINC_REACH = 1.6  # the sinc profile's taps reach this many half-widths (its side lobes)


def sinc_pulse_profile(position: Tensor) -> Tensor:
    """Slice profile of a Hann-windowed sinc excitation (time-bandwidth 4), the shape a measured
    2-D slice profile has: flat top, finite transition bands, small side lobes.

    ``position`` is in units of the profile's FWHM (centre 0, half maximum at +-0.5); the
    small-tip-angle profile is the pulse's Fourier transform, taken as a magnitude.
    """
    t = torch.linspace(-1.0, 1.0, 2049, dtype=torch.float64)
    pulse = torch.sinc(SINC_TIME_BANDWIDTH / 2.0 * t) * 0.5 * (1.0 + torch.cos(math.pi * t))
    # The pulse's transform at frequency f (cycles per unit t) ~ sum_t p(t) cos(2 pi f t).
    # Its FWHM is close to the bandwidth TBW / 2 (in those units): scale so FWHM = 1.
    fwhm = _sinc_profile_fwhm(pulse, t)
    f = position.to(torch.float64)[:, None] * fwhm
    return (pulse[None, :] * torch.cos(2.0 * math.pi * f * t[None, :])).sum(1).abs()


def _sinc_profile_fwhm(pulse: Tensor, t: Tensor) -> float:
    f = torch.linspace(0.0, SINC_TIME_BANDWIDTH, 4001, dtype=torch.float64)
    profile = (pulse[None, :] * torch.cos(2.0 * math.pi * f[:, None] * t[None, :])).sum(1).abs()
    below = int(torch.nonzero(profile < profile[0] / 2.0)[0])
    return 2.0 * float(f[below])


def slice_downsample(hr: Tensor, scale: int, profile: str = "gaussian", gap: float = 0.0) -> Tensor:
    """Thick slices along the rows: (B, C, H, W) -> (B, C, H/scale, W), clamped to [0, 1].

    LR row i = sum_j k_j * HR[c_i + j - (L - 1)/2] with c_i = scale*i + (scale - 1)/2 and k the
    `slice_kernel`; reflect padding at the top and bottom (edge replication if too small).
    """
    _check(hr, scale)
    h, w = hr.shape[-2:]
    if h % scale:
        raise InputError(f"image height {h} is not divisible by the scale {scale} (pad it first)")
    x = hr.to(_real_dtype(hr))
    kernel = slice_kernel(scale, profile, gap, dtype=x.dtype).to(x.device)
    pad = (len(kernel) - scale) // 2
    b, c = x.shape[:2]
    x = x.reshape(b * c, 1, h, w)
    if pad:
        x = F.pad(x, (0, 0, pad, pad), mode="reflect" if pad < h else "replicate")
    lr = F.conv2d(x, kernel.view(1, 1, -1, 1), stride=(scale, 1))
    return lr.reshape(b, c, h // scale, w).clamp(0.0, 1.0).to(hr.dtype)


def upsample_rows(x: Tensor, factor: int) -> Tensor:
    """Bicubic upsampling of the rows only (align_corners=False), not clamped (any intensity
    range): (B, C, h, W) -> (B, C, h*factor, W). The columns are left as they are (cubic
    weights at integer positions are exactly 0/1)."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * factor, w), mode="bicubic", align_corners=False)


def slice_upsample(lr: Tensor, scale: int) -> Tensor:
    """`upsample_rows` of an LR slice in [0, 1], clamped to [0, 1]: slice-axis lr -> lr_up."""
    _check(lr, scale)
    return upsample_rows(lr, scale).clamp(0.0, 1.0)


UPSAMPLERS = ("auto", "bicubic", "zero-fill")


def upsample_for(lr: Tensor, deg: Degradation) -> Tensor:
    """An LR image onto the HR grid the way `degrade` makes lr_up from lr, clamped to [0, 1]:
    ``deg.upsampler``, where "auto" is the kind's own: along the rows only for slice-axis,
    zero-filled (sinc) interpolation for k-space (what the scanner does), bicubic otherwise."""
    if deg.kind == "slice-axis":
        return slice_upsample(lr, deg.scale)
    upsampler = deg.upsampler
    if upsampler == "auto":
        upsampler = "zero-fill" if deg.kind == "kspace" else "bicubic"
    if upsampler == "zero-fill":
        return zero_fill_upsample(lr, deg.scale).clamp(0.0, 1.0)
    return upsample(lr, deg.scale)


def _centre(size: int, keep: int) -> slice:
    # After fftshift the DC bin sits at size // 2; this keeps it at keep // 2 in the crop.
    start = size // 2 - keep // 2
    return slice(start, start + keep)


def kspace_truncate(
    hr: Tensor,
    scale: int,
    window: str = "none",
    partial_fourier: float = 1.0,
    pf_recon: str = "zero-fill",
    *,
    noise: Tensor | None = None,
) -> Tensor:
    """The complex LR image a scanner reconstructs from the central 1/scale of k-space.

    The kept k-space is apodised by ``window`` (a separable Hamming or Tukey window centred
    on DC); ``noise`` (complex, LR-sized) is added to the LR image as the receiver adds it;
    with ``partial_fourier`` < 1 only that share of the rows' k-space lines is kept (the first
    lines are missing) and the rest is zero-filled or reconstructed by homodyne detection.
    The LR is divided by s^2 so intensities keep their mean. Both matrices span one field of
    view: LR pixel i covers HR pixels [s*i, s*i + s), its centre at HR s*i + (s - 1)/2, as for
    `downsample` (a sub-pixel shift in k-space puts it there).
    """
    _check(hr, scale)
    _check_kspace_options(window, partial_fourier, pf_recon)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise InputError(f"image size {h}x{w} is not divisible by the scale {scale} (pad it first)")
    k = torch.fft.fftshift(torch.fft.fft2(hr.to(_real_dtype(hr))), dim=(-2, -1))
    k = k * _shift_ramp(h, w, -(scale - 1) / 2.0, k.device)
    rows, cols = _centre(h, h // scale), _centre(w, w // scale)
    cropped = k[..., rows, cols] * apodisation(h // scale, w // scale, window).to(k.device)
    lr = torch.fft.ifft2(torch.fft.ifftshift(cropped, dim=(-2, -1))) / (scale * scale)
    if noise is not None:
        lr = lr + noise.to(lr.device)
    if partial_fourier < 1.0:
        lr = _partial_fourier(lr, partial_fourier, pf_recon)
    return lr


def _shift_ramp(h: int, w: int, shift: float, device) -> Tensor:
    """Centred k-space phase ramp that moves an (h, w) image by `shift` pixels along both axes
    (content at x goes to x + shift)."""
    ky = (torch.arange(h, dtype=torch.float64) - h // 2) / h
    kx = (torch.arange(w, dtype=torch.float64) - w // 2) / w
    phase = -2.0 * math.pi * shift * (ky[:, None] + kx[None, :])
    return torch.polar(torch.ones_like(phase), phase).to(device)


def _window_1d(n: int, window: str) -> Tensor:
    # Frequencies k = -n//2 .. n - n//2 - 1 (DC at n // 2 after fftshift), r = |k| / (n / 2).
    r = (torch.arange(n, dtype=torch.float64) - n // 2).abs() / (n / 2.0)
    if window == "hamming":
        return 0.54 + 0.46 * torch.cos(math.pi * r)
    if window == "tukey":
        taper = (r - (1.0 - TUKEY_ALPHA)).clamp(min=0.0) / TUKEY_ALPHA
        return 0.5 * (1.0 + torch.cos(math.pi * taper.clamp(max=1.0)))
    return torch.ones(n, dtype=torch.float64)


def apodisation(h: int, w: int, window: str) -> Tensor:
    """The separable k-space window (h, w), 1 at DC; all ones for "none"."""
    return _window_1d(h, window)[:, None] * _window_1d(w, window)[None, :]


def _partial_fourier(image: Tensor, share: float, recon: str) -> Tensor:
    """The complex image again, with the first ``(1 - share) * rows`` k-space lines missing:
    zero-filled, or reconstructed by homodyne detection (Noll et al., 1991)."""
    k = torch.fft.fftshift(torch.fft.fft2(image), dim=(-2, -1))
    n = k.shape[-2]
    missing = int(round((1.0 - share) * n))
    if missing == 0:
        return image
    acquired = torch.ones(n, dtype=torch.float64, device=k.device)
    acquired[:missing] = 0.0
    if recon == "zero-fill":
        return torch.fft.ifft2(torch.fft.ifftshift(k * acquired[:, None], dim=(-2, -1)))
    # The lines acquired on both sides of DC give a low-resolution phase; the one-sided lines
    # are doubled and the image is demodulated by that phase (its real part is the image).
    symmetric = torch.zeros_like(acquired)
    symmetric[missing : 2 * (n // 2) - missing + 1] = 1.0
    weights = acquired + (acquired - symmetric)
    low = torch.fft.ifft2(torch.fft.ifftshift(k * symmetric[:, None], dim=(-2, -1)))
    full = torch.fft.ifft2(torch.fft.ifftshift(k * weights[:, None], dim=(-2, -1)))
    demodulated = full * torch.exp(-1j * torch.angle(low))
    return torch.complex(demodulated.real, torch.zeros_like(demodulated.real))


def zero_fill_upsample(lr: Tensor, scale: int) -> Tensor:
    """Sinc interpolation of a real LR image by `scale` through k-space, as a scanner's
    zero-filled reconstruction to a finer matrix: (B, C, h, w) -> (B, C, h*s, w*s), not clamped.

    HR pixel j sits at LR coordinate (j - (s - 1)/2) / s, the footprint convention of
    `downsample` and `kspace_truncate` (and of bicubic `upsample`). The Nyquist line of an
    even size is split between +-Nyquist.
    """
    _check(lr, scale)
    h, w = lr.shape[-2:]
    k = torch.fft.fftshift(torch.fft.fft2(lr.to(_real_dtype(lr))), dim=(-2, -1))
    k = _split_nyquist(_split_nyquist(k, -2), -1)
    big_h, big_w = h * scale, w * scale
    full = torch.zeros((*k.shape[:-2], big_h, big_w), dtype=k.dtype, device=k.device)
    full[..., _centre(big_h, k.shape[-2]), _centre(big_w, k.shape[-1])] = k
    full = full * _shift_ramp(big_h, big_w, (scale - 1) / 2.0, k.device)
    up = torch.fft.ifft2(torch.fft.ifftshift(full, dim=(-2, -1))).real * (scale * scale)
    return up.to(lr.dtype)


def _split_nyquist(k: Tensor, dim: int) -> Tensor:
    """Centred k-space of even size n along ``dim`` -> n + 1 entries, the Nyquist bin (index 0)
    halved and repeated at the end; odd sizes unchanged."""
    n = k.shape[dim]
    if n % 2:
        return k
    nyquist = k.narrow(dim, 0, 1) / 2.0
    return torch.cat([nyquist, k.narrow(dim, 1, n - 1), nyquist], dim=dim)


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
    deg: Degradation | RandomDegradation,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Return (lr, lr_up): the LR image and its upsampling onto the HR grid, both in [0, 1].

    Noise: bicubic and slice-axis get Rician noise sqrt((x + n1)^2 + n2^2), n ~ N(0, sigma) on
    lr; k-space gets complex Gaussian noise on the complex LR image before the magnitude (the
    same law). lr_up is `upsample_for` of the noisy magnitude lr, what a user has. For
    slice-axis only the rows are degraded: lr is (B, C, H/scale, W) (`slice_downsample`).
    A `RandomDegradation` draws one degradation per image of the batch.
    """
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    if isinstance(deg, RandomDegradation):
        return _degrade_each(hr, deg, generator)
    sigma = float(deg.noise_sigma)
    if deg.kind == "kspace":
        noise = None
        if sigma > 0:
            shape = (*hr.shape[:-2], hr.shape[-2] // deg.scale, hr.shape[-1] // deg.scale)
            noise = torch.complex(
                _noise(shape, sigma, hr, generator), _noise(shape, sigma, hr, generator)
            )
        lr_c = kspace_truncate(
            hr, deg.scale, deg.window, deg.partial_fourier, deg.pf_recon, noise=noise
        )
        lr = lr_c.abs().clamp(0.0, 1.0).to(hr.dtype)
        return lr, upsample_for(lr, deg)
    if deg.kind == "bicubic":
        lr = downsample(hr, deg.scale)
    else:
        lr = slice_downsample(hr, deg.scale, deg.profile, deg.gap)
    if sigma > 0:
        n1 = _noise(lr.shape, sigma, lr, generator)
        n2 = _noise(lr.shape, sigma, lr, generator)
        lr = torch.sqrt((lr + n1) ** 2 + n2**2).clamp(0.0, 1.0)
    return lr, upsample_for(lr, deg)


def _degrade_each(
    hr: Tensor, spec: RandomDegradation, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    generator = generator or torch.Generator().manual_seed(0)
    lrs, ups = [], []
    for image in hr.split(1):
        deg, transpose = spec.draw(generator)
        x = image.transpose(-2, -1) if transpose else image
        lr, up = degrade(x, deg, generator=generator)
        if transpose:
            lr, up = lr.transpose(-2, -1), up.transpose(-2, -1)
        lrs.append(lr)
        ups.append(up)
    return torch.cat(lrs), torch.cat(ups)


# ----------------------------------------------------------------------------- random
#
# Training on a distribution of acquisitions rather than one (the idea of SynthSR's domain
# randomisation, Billot et al. 2023, and Real-ESRGAN's degradation model, Wang et al. 2021):
# each training image gets its own kind and parameters. Every draw goes onto the HR grid with
# the same upsampler, so that a model need not be told how its input was made.


@dataclass(frozen=True)
class RandomDegradation:
    """A distribution over in-plane acquisitions of one scale; `draw` samples one."""

    scale: int = 4
    kspace_share: float = 0.75  # the rest bicubic
    windows: tuple[str, ...] = ("none", "none", "hamming", "tukey")  # drawn uniformly
    partial_fourier_share: float = 0.3  # of k-space draws
    partial_fourier: tuple[float, ...] = (0.75, 0.625)
    noise_share: float = 0.6
    noise_sigma: tuple[float, float] = (0.005, 0.04)  # log-uniform range
    upsampler: str = "zero-fill"

    def __post_init__(self) -> None:
        Degradation("bicubic", self.scale)  # checks the scale
        for share in (self.kspace_share, self.partial_fourier_share, self.noise_share):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"random degradation shares must lie in [0, 1], got {share}")
        for window in self.windows:
            _check_kspace_options(window, 1.0, "zero-fill")
        for pf in self.partial_fourier:
            _check_kspace_options("none", pf, "zero-fill")
        lo, hi = self.noise_sigma
        if not 0.0 < lo <= hi:
            raise ConfigError(f"random noise_sigma range must be 0 < lo <= hi, got {lo}, {hi}")
        if self.upsampler not in UPSAMPLERS[1:]:
            raise ConfigError(
                f"random upsampler must be bicubic or zero-fill, got {self.upsampler!r}"
            )

    @property
    def label(self) -> str:
        return f"random-x{self.scale}"

    @property
    def kind(self) -> str:
        return RANDOM

    def draw(self, generator: torch.Generator) -> tuple[Degradation, bool]:
        """One degradation, and whether to apply it transposed (partial Fourier along either
        in-plane axis)."""
        u = torch.rand(8, generator=generator, dtype=torch.float64).tolist()
        sigma = 0.0
        if u[0] < self.noise_share:
            lo, hi = self.noise_sigma
            sigma = math.exp(math.log(lo) + u[1] * (math.log(hi) - math.log(lo)))
        if u[2] >= self.kspace_share:
            return Degradation("bicubic", self.scale, sigma, upsampler=self.upsampler), u[7] < 0.5
        window = self.windows[min(int(u[3] * len(self.windows)), len(self.windows) - 1)]
        pf, recon = 1.0, "zero-fill"
        if u[4] < self.partial_fourier_share and self.partial_fourier:
            options = self.partial_fourier
            pf = options[min(int(u[5] * len(options)), len(options) - 1)]
            recon = "homodyne" if u[6] < 0.5 else "zero-fill"
        deg = Degradation(
            "kspace",
            self.scale,
            sigma,
            window=window,
            partial_fourier=pf,
            pf_recon=recon,
            upsampler=self.upsampler,
        )
        return deg, u[7] < 0.5


def model_input(
    trained: Degradation | RandomDegradation, told: Degradation | None = None
) -> Degradation:
    """The noise-free operator that puts an LR onto a model's HR grid, and that back-projection
    inverts: ``told`` (how the LR was acquired), else the model's own assumption. A model
    trained on a `RandomDegradation` assumes a scanner's k-space LR and always uses its mix's
    upsampler; one trained on a single degradation uses the kind's own."""
    if isinstance(trained, RandomDegradation):
        deg = told or Degradation("kspace", trained.scale)
        return replace(deg, noise_sigma=0.0, upsampler=trained.upsampler)
    return replace(told or trained, noise_sigma=0.0)


def back_project(sr: Tensor, lr_up: Tensor, deg: Degradation, iterations: int) -> Tensor:
    """Iterative back-projection (Irani & Peleg, 1991): make SR consistent with its LR input.

    Each iteration adds ``lr_up - D(sr)``, where ``D`` degrades noise-free and brings the result
    back onto the HR grid the way ``lr_up`` was made. For k-space truncation this replaces the
    SR's central k-space with the measured one (exactly so in one iteration where the images
    are real and positive; the magnitude makes it approximate elsewhere); for bicubic and
    slice-axis (with the degradation's own slice profile and gap, along the rows only) it
    converges towards an SR whose downsampling is the LR.
    """
    clean = replace(deg, noise_sigma=0.0)
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
