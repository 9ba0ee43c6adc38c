from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from wavesr.errors import ConfigError, InputError
from wavesr.model.degrade import (
    FWHM_PER_SIGMA,
    Degradation,
    RandomDegradation,
    apodisation,
    back_project,
    crop_to,
    degrade,
    downsample,
    kspace_truncate,
    pad_to_multiple,
    sinc_pulse_profile,
    slice_downsample,
    slice_kernel,
    slice_upsample,
    upsample,
    upsample_for,
    zero_fill_upsample,
)


def _image(h=32, w=24, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 1, h, w, generator=g) * 0.8 + 0.1


def _band_limited(h=32, w=24) -> torch.Tensor:
    y = torch.arange(h, dtype=torch.float64)[:, None]
    x = torch.arange(w, dtype=torch.float64)[None, :]
    img = 0.5 + 0.2 * torch.cos(2 * math.pi * 2 * y / h) + 0.1 * torch.sin(2 * math.pi * 1 * x / w)
    return img[None, None]


def test_labels_and_validation():
    assert Degradation().label == "bicubic-x4"
    assert Degradation("kspace", 4, 0.02).label == "kspace-x4+rician0.02"
    assert Degradation("kspace", 2).label == "kspace-x2"
    for bad in [dict(kind="blur"), dict(scale=3), dict(noise_sigma=-0.1)]:
        with pytest.raises(ConfigError):
            Degradation(**bad)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_bicubic_shapes_and_constant(scale):
    hr = torch.full((1, 1, 32, 24), 0.3)
    lr, up = degrade(hr, Degradation("bicubic", scale))
    assert lr.shape == (1, 1, 32 // scale, 24 // scale) and up.shape == hr.shape
    torch.testing.assert_close(lr, torch.full_like(lr, 0.3))
    torch.testing.assert_close(up, hr)


def test_downsample_is_antialiased_and_checks_size():
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2
    lr = downsample(checker.float()[None, None], 2)
    # Without antialiasing a period-2 pattern aliases to 0 or 1; antialiased it is ~0.5 grey.
    assert abs(float(lr[0, 0, 3:5, 3:5].mean()) - 0.5) < 0.02
    assert float(lr[0, 0, 2:6, 2:6].std()) < 0.02
    with pytest.raises(InputError, match="not divisible"):
        downsample(torch.zeros(1, 1, 30, 32), 4)
    assert upsample(torch.full((1, 1, 4, 4), 1.0), 2).max() <= 1.0


def test_bicubic_matches_interpolate():
    hr = _image()
    lr, up = degrade(hr, Degradation("bicubic", 2))
    ref = torch.nn.functional.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True)
    torch.testing.assert_close(lr, ref.clamp(0, 1))
    ref_up = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic")
    torch.testing.assert_close(up, ref_up.clamp(0, 1))


def test_kspace_keeps_low_frequencies_exactly():
    """The LR's spectrum is the HR's central spectrum, moved by the footprint shift."""
    hr = _image(32, 24).double()
    lr_c = kspace_truncate(hr, 4)
    k_hr = torch.fft.fftshift(torch.fft.fft2(hr), dim=(-2, -1))
    rows, cols = slice(16 - 4, 16 + 4), slice(12 - 3, 12 + 3)
    ky = (torch.arange(32, dtype=torch.float64) - 16) / 32
    kx = (torch.arange(24, dtype=torch.float64) - 12) / 24
    # Content at HR x goes to x - 1.5: multiply by exp(+2 pi i k 1.5).
    ramp = torch.exp(2j * math.pi * 1.5 * (ky[:, None] + kx[None, :]))
    k_lr = torch.fft.fftshift(torch.fft.fft2(lr_c), dim=(-2, -1)) * 16
    torch.testing.assert_close(k_lr, (k_hr * ramp)[..., rows, cols])
    torch.testing.assert_close(lr_c.real.mean(), hr.mean())


def test_kspace_band_limited_image_is_exact():
    """A band-limited image: the LR samples it at the LR pixel centres s*i + (s - 1)/2, and
    zero-filling brings it back exactly."""
    hr = _band_limited()
    lr, up = degrade(hr, Degradation("kspace", 4))
    assert lr.shape == (1, 1, 8, 6) and lr.dtype == torch.float64
    torch.testing.assert_close(up, hr)
    y = 4 * torch.arange(8, dtype=torch.float64)[:, None] + 1.5
    x = 4 * torch.arange(6, dtype=torch.float64)[None, :] + 1.5
    expected = (
        0.5 + 0.2 * torch.cos(2 * math.pi * 2 * y / 32) + 0.1 * torch.sin(2 * math.pi * x / 24)
    )
    torch.testing.assert_close(lr[0, 0], expected)


def test_seeded_noise_is_deterministic():
    hr = _image()
    for deg in (
        Degradation("bicubic", 2, 0.05),
        Degradation("kspace", 2, 0.05),
        Degradation("kspace", 2, 0.05, window="hamming", partial_fourier=0.75),
        Degradation("kspace", 2, 0.05, partial_fourier=0.625, pf_recon="homodyne"),
    ):
        a = degrade(hr, deg, seed=7)
        b = degrade(hr, deg, seed=7)
        c = degrade(hr, deg, seed=8)
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], b[1])
        assert not torch.equal(a[0], c[0])
        clean = degrade(hr, replace(deg, noise_sigma=0.0))
        assert (a[0] - clean[0]).abs().mean() > 0.01
        g = torch.Generator().manual_seed(7)
        torch.testing.assert_close(degrade(hr, deg, generator=g)[0], a[0])


def test_rician_noise_floor_on_black():
    lr, _ = degrade(torch.zeros(1, 1, 128, 128), Degradation("bicubic", 2, 0.05), seed=0)
    # |n1 + i n2| is Rayleigh distributed: mean sigma * sqrt(pi / 2).
    assert float(lr.mean()) == pytest.approx(0.05 * math.sqrt(math.pi / 2), rel=0.05)


def test_pad_and_crop_round_trip():
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).reshape(2, 1, 5, 6)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (2, 1, 8, 8) and size == (5, 6)
    torch.testing.assert_close(padded[..., 5, :6], x[..., 3, :])  # reflection of row 3
    torch.testing.assert_close(padded[..., :5, 6], x[..., :, 4])
    torch.testing.assert_close(crop_to(padded, size), x)
    same, size = pad_to_multiple(x[..., :4, :4], 4)
    assert same.shape == (2, 1, 4, 4) and size == (4, 4)
    tiny, _ = pad_to_multiple(torch.ones(1, 1, 2, 2), 8)
    assert tiny.shape == (1, 1, 8, 8) and torch.all(tiny == 1)


def _lr_residual(sr: torch.Tensor, lr: torch.Tensor, scale: int) -> float:
    return float((downsample(sr, scale) - lr).abs().mean())


def test_back_projection_moves_the_sr_towards_its_lr_input():
    hr = _image(32, 32)
    deg = Degradation("bicubic", 4)
    lr, lr_up = degrade(hr, deg)
    guess = torch.full_like(hr, 0.5)  # an SR that ignores the input entirely
    residuals = [_lr_residual(back_project(guess, lr_up, deg, k), lr, 4) for k in (0, 1, 5)]
    assert residuals[0] > 2 * residuals[1] > 2 * residuals[2]
    torch.testing.assert_close(back_project(guess, lr_up, deg, 0), guess)


def test_back_projection_is_exact_data_consistency_for_kspace():
    """One iteration replaces the SR's central k-space with the measured one."""
    hr = _band_limited(32, 32).float() * 0.8
    deg = Degradation("kspace", 4)
    _, lr_up = degrade(hr, deg)
    sr = back_project(hr.flip(-1), lr_up, deg, 1)  # a wrong SR in [0, 1]
    _, again = degrade(sr, deg)
    torch.testing.assert_close(again, lr_up, atol=2e-3, rtol=0)


def test_back_projection_ignores_the_degradation_noise():
    """The consistency target is the given LR; no fresh noise is drawn for the SR."""
    hr = _image(16, 16)
    noisy = Degradation("bicubic", 4, noise_sigma=0.05)
    _, lr_up = degrade(hr, noisy, seed=1)
    a = back_project(hr, lr_up, noisy, 2)
    b = back_project(hr, lr_up, Degradation("bicubic", 4), 2)
    torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- slice-axis


def _gauss(offsets: list[float], fwhm: float) -> list[float]:
    sigma = fwhm / 2.3548
    w = [math.exp(-(d * d) / (2 * sigma * sigma)) for d in offsets]
    return [v / sum(w) for v in w]


def test_slice_axis_labels_and_validation():
    assert Degradation("slice-axis", 4).label == "slice-axis-x4"
    deg = Degradation("slice-axis", 2, 0.02, profile="box", gap=0.2)
    assert deg.label == "slice-axis-x2-box-gap0.2+rician0.02"
    assert Degradation("bicubic", 4, profile="box", gap=0.5).label == "bicubic-x4"  # ignored
    for bad in [dict(profile="lorentz"), dict(gap=1.0), dict(gap=-0.1), dict(gap=math.nan)]:
        with pytest.raises(ConfigError):
            Degradation("slice-axis", 4, **bad)


def test_gaussian_slice_kernel_matches_hand_values():
    # FWHM 4 (= the scale): sigma = 4 / 2.3548; even scale -> taps at half-integer offsets
    # out to 3 sigma (5.1): +-0.5 ... +-5.5.
    k = slice_kernel(4, dtype=torch.float64)
    offsets = [j - 5.5 for j in range(12)]
    expected = torch.tensor(_gauss(offsets, 4.0), dtype=torch.float64)
    torch.testing.assert_close(k, expected, rtol=2e-4, atol=0)  # 2.3548: FWHM / sigma, 5 digits
    # At FWHM 4, offsets 0.5 and 1.5 differ by exp(-1 / sigma^2) = 2^(-1/2); at FWHM 2, 1/4.
    assert float(k[7] / k[6]) == pytest.approx(2**-0.5, rel=1e-3)
    k2 = slice_kernel(2, dtype=torch.float64)
    assert float(k2[len(k2) // 2 + 1] / k2[len(k2) // 2]) == pytest.approx(0.25, rel=1e-3)
    # A gap of half the spacing halves the FWHM: x4 with gap 0.5 is the x2 profile.
    torch.testing.assert_close(slice_kernel(4, gap=0.5, dtype=torch.float64), k2)
    assert float(k.sum()) == pytest.approx(1.0)


def test_box_slice_kernel_matches_hand_values():
    torch.testing.assert_close(slice_kernel(4, "box"), torch.full((4,), 0.25))
    # Width 3 (gap 0.25) centred between rows: half of the two outer pixels is inside.
    torch.testing.assert_close(slice_kernel(4, "box", 0.25), torch.tensor([0.5, 1, 1, 0.5]) / 3)
    # Width 4 at x8 (gap 0.5): the kernel is never shorter than the scale (zero taps).
    expected = torch.tensor([0, 0, 0.25, 0.25, 0.25, 0.25, 0, 0])
    torch.testing.assert_close(slice_kernel(8, "box", 0.5), expected)


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("profile", ["gaussian", "box"])
def test_slice_axis_shapes_and_constant(scale, profile):
    hr = torch.full((2, 3, 32, 24), 0.3)
    lr, up = degrade(hr, Degradation("slice-axis", scale, profile=profile))
    assert lr.shape == (2, 3, 32 // scale, 24) and up.shape == hr.shape
    torch.testing.assert_close(lr, torch.full_like(lr, 0.3), atol=1e-6, rtol=0)
    torch.testing.assert_close(up, hr, atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="not divisible"):
        slice_downsample(torch.zeros(1, 1, 30, 32), 4)


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("profile", ["gaussian", "box"])
def test_slice_axis_phase_on_a_ramp(scale, profile):
    """LR row i samples the middle of HR rows [s*i, s*i + s): where the upsampling puts it."""
    h, slope = 64, 0.01
    y = torch.arange(h, dtype=torch.float64)
    hr = (0.1 + slope * y)[None, None, :, None].expand(1, 1, h, 5)
    lr, up = degrade(hr, Degradation("slice-axis", scale, profile=profile))
    centres = scale * torch.arange(h // scale, dtype=torch.float64) + (scale - 1) / 2
    inner = slice(2, h // scale - 2)  # away from the reflected borders
    torch.testing.assert_close(lr[0, 0, inner, 0], (0.1 + slope * centres)[inner])
    err = (up - hr)[0, 0, 3 * scale : h - 3 * scale]
    # Half a row out of phase would be a constant 0.5 * slope; the cubic's own wobble averages out.
    assert abs(float(err.mean())) < 0.02 * slope
    assert float(err.abs().max()) < 0.06 * slope * scale


def test_slice_axis_leaves_the_columns_alone():
    g = torch.Generator().manual_seed(0)
    row = torch.rand(1, 1, 1, 24, generator=g) * 0.8 + 0.1
    hr = row.expand(2, 1, 32, 24).contiguous()  # every row equal: nothing to blur along H
    lr, up = degrade(hr, Degradation("slice-axis", 4))
    torch.testing.assert_close(up, hr, atol=1e-6, rtol=0)
    torch.testing.assert_close(lr, hr[:, :, :8], atol=1e-6, rtol=0)
    # Each column is degraded on its own: changing one column changes only that column.
    img = _image(32, 24)
    other = img.clone()
    other[..., 7] = 0.5
    (a, a_up), (b, b_up) = (
        degrade(img, Degradation("slice-axis", 4)),
        degrade(other, Degradation("slice-axis", 4)),
    )
    changed = ((a - b).abs() > 0).any(dim=-2)[0, 0]
    assert changed.nonzero().flatten().tolist() == [7]
    assert ((a_up - b_up).abs() > 0).any(dim=-2)[0, 0].nonzero().flatten().tolist() == [7]


def test_slice_axis_is_one_conv_with_the_kernel():
    """Interior LR rows are the kernel-weighted HR rows around the block centres."""
    hr = _image(32, 6).double()
    k = slice_kernel(4, dtype=torch.float64)
    lr = slice_downsample(hr, 4)
    offsets = torch.arange(len(k)) - (len(k) - 1) // 2 - 1  # HR rows of LR row i: 4i + offsets
    for i in (2, 3, 4):
        rows = hr[..., 4 * i + 2 + offsets, :]  # centre 4i + 1.5, taps from 4i + 1.5 - 5.5
        torch.testing.assert_close(lr[..., i, :], (rows * k[:, None]).sum(-2).clamp(0, 1))


def test_slice_axis_noise_and_upsample_for():
    hr = _image()
    deg = Degradation("slice-axis", 2, 0.05)
    a, b = degrade(hr, deg, seed=3), degrade(hr, deg, seed=3)
    torch.testing.assert_close(a[0], b[0])
    clean_lr, _ = degrade(hr, Degradation("slice-axis", 2))
    assert (a[0] - clean_lr).abs().mean() > 0.01
    torch.testing.assert_close(a[1], slice_upsample(a[0], 2))  # lr_up from the noisy lr
    torch.testing.assert_close(upsample_for(a[0], deg), a[1])
    lr = torch.rand(1, 1, 4, 6)
    assert upsample_for(lr, Degradation("bicubic", 2)).shape == (1, 1, 8, 12)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_back_projection_for_slice_axis(scale):
    hr = _image(32, 32)
    deg = Degradation("slice-axis", scale, profile="box", gap=0.25)
    lr, lr_up = degrade(hr, deg)
    guess = torch.full_like(hr, 0.5)

    def residual(sr):
        return float((slice_downsample(sr, scale, "box", 0.25) - lr).abs().mean())

    before, after = residual(guess), residual(back_project(guess, lr_up, deg, 10))
    assert after < before / 50
    # The operator is the degradation's own: back-projecting with the Gaussian profile leaves
    # the SR further from its box-profile LR.
    gauss = back_project(guess, lr_up, Degradation("slice-axis", scale), 10)
    assert residual(gauss) > 5 * after


# ----------------------------------------------------------------------------- acquisitions


def test_kspace_option_labels_and_validation():
    deg = Degradation(
        "kspace", 4, 0.02, window="hamming", partial_fourier=0.625, pf_recon="homodyne"
    )
    assert deg.label == "kspace-x4-hamming-pf0.625-homodyne+rician0.02"
    assert Degradation("kspace", 4, partial_fourier=0.75).label == "kspace-x4-pf0.75"
    assert Degradation("slice-axis", 4, profile="sinc").label == "slice-axis-x4-sinc"
    for bad in [
        dict(window="hann"),
        dict(partial_fourier=0.4),
        dict(partial_fourier=1.1),
        dict(pf_recon="pocs"),
        dict(upsampler="lanczos"),
    ]:
        with pytest.raises(ConfigError):
            Degradation("kspace", 4, **bad)


def test_windows_match_hand_values():
    # n = 8: k = -4..3, r = |k| / 4.
    r = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0, 0.25, 0.5, 0.75], dtype=torch.float64)
    torch.testing.assert_close(
        apodisation(8, 1, "hamming")[:, 0], 0.54 + 0.46 * torch.cos(math.pi * r)
    )
    tukey = apodisation(8, 1, "tukey")[:, 0]  # flat to r = 0.5, then a half cosine to 0 at r = 1
    expected = [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    torch.testing.assert_close(tukey, torch.tensor(expected, dtype=torch.float64))
    assert torch.equal(apodisation(4, 6, "none"), torch.ones(4, 6, dtype=torch.float64))


def test_hamming_window_blurs_and_keeps_the_mean():
    hr = _image(32, 32).double()
    plain = degrade(hr, Degradation("kspace", 2))[0]
    windowed = degrade(hr, Degradation("kspace", 2, window="hamming"))[0]
    assert float(windowed.std()) < 0.9 * float(plain.std())
    torch.testing.assert_close(windowed.mean(), plain.mean(), atol=2e-3, rtol=0)


def test_partial_fourier_zero_fill_drops_lines_and_homodyne_recovers_a_real_image():
    """A real, positive, band-limited image (no Nyquist content): the homodyne reconstruction
    of partial k-space gives it back (its phase is zero), the zero-filled one does not."""
    y = torch.arange(32, dtype=torch.float64)[:, None]
    hr = _band_limited(32, 32) + 0.1 * torch.cos(2 * math.pi * 5 * y / 32)  # row frequency 5
    full = degrade(hr, Degradation("kspace", 2))[0]
    zero = degrade(hr, Degradation("kspace", 2, partial_fourier=0.625))[0]
    homodyne = degrade(hr, Degradation("kspace", 2, partial_fourier=0.625, pf_recon="homodyne"))[0]
    assert float((zero - full).abs().max()) > 0.02
    torch.testing.assert_close(homodyne, full, atol=1e-6, rtol=0)
    # Zero-filled: the first (1 - 0.625) * 16 = 6 rows of the LR's k-space are gone.
    lr_c = kspace_truncate(hr, 2, partial_fourier=0.625)  # 16 rows of LR k-space
    k = torch.fft.fftshift(torch.fft.fft2(lr_c), dim=(-2, -1))
    assert float(k[..., :6, :].abs().max()) < 1e-9 and float(k[..., 6:, :].abs().max()) > 1


def test_kspace_noise_is_rician_on_black():
    lr, _ = degrade(torch.zeros(1, 1, 256, 256), Degradation("kspace", 2, 0.05), seed=0)
    assert float(lr.mean()) == pytest.approx(0.05 * math.sqrt(math.pi / 2), rel=0.05)


def test_zero_fill_upsample_interpolates_band_limited_images_exactly():
    hr = _band_limited(32, 24)
    y = 4 * torch.arange(8, dtype=torch.float64)[:, None] + 1.5
    x = 4 * torch.arange(6, dtype=torch.float64)[None, :] + 1.5
    lr = 0.5 + 0.2 * torch.cos(2 * math.pi * 2 * y / 32) + 0.1 * torch.sin(2 * math.pi * x / 24)
    up = zero_fill_upsample(lr[None, None], 4)
    assert up.shape == (1, 1, 32, 24)
    torch.testing.assert_close(up, hr)
    assert not torch.is_complex(up)


def test_sinc_slice_profile_is_flat_topped_with_half_maximum_at_the_width():
    # Half maximum at +- 0.5 FWHM, flatter top than a Gaussian of the same FWHM.
    p = sinc_pulse_profile(torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64))
    p = p / p[0]
    assert float(p[2]) == pytest.approx(0.5, abs=0.01)
    gaussian_at_quarter = math.exp(-((0.25 * FWHM_PER_SIGMA) ** 2) / 2)
    assert float(p[1]) > gaussian_at_quarter + 0.03
    assert float(p[3]) < 0.05
    k = slice_kernel(4, "sinc")
    torch.testing.assert_close(k.sum(), torch.tensor(1.0))
    torch.testing.assert_close(k, k.flip(0))


def test_random_degradation_draws_are_seeded_and_cover_the_kinds():
    spec = RandomDegradation(4)
    g = torch.Generator().manual_seed(0)
    draws = [spec.draw(g)[0] for _ in range(400)]
    kinds = {d.kind for d in draws}
    assert kinds == {"bicubic", "kspace"}
    kspace = [d for d in draws if d.kind == "kspace"]
    assert 0.65 < len(kspace) / len(draws) < 0.85
    assert {d.window for d in kspace} == {"none", "hamming", "tukey"}
    assert {d.partial_fourier for d in kspace} == {1.0, 0.75, 0.625}
    noisy = [d.noise_sigma for d in draws if d.noise_sigma > 0]
    assert 0.5 < len(noisy) / len(draws) < 0.7 and min(noisy) >= 0.005 and max(noisy) <= 0.04
    assert all(d.upsampler == "zero-fill" for d in draws)
    hr = _image(32, 32)
    a, b = degrade(hr, spec, seed=3), degrade(hr, spec, seed=3)
    torch.testing.assert_close(a[0], b[0])
    assert a[0].shape == (2, 1, 8, 8) and a[1].shape == hr.shape
    with pytest.raises(ConfigError):
        RandomDegradation(4, kspace_share=1.5)
    with pytest.raises(ConfigError):
        RandomDegradation(4, noise_sigma=(0.0, 0.1))


@pytest.mark.parametrize(
    "deg",
    [
        Degradation("bicubic", 4),
        Degradation("bicubic", 4, upsampler="zero-fill"),
        Degradation("kspace", 4),
        Degradation("kspace", 4, upsampler="bicubic"),
        Degradation("kspace", 4, window="hamming"),
        Degradation("kspace", 4, window="tukey", partial_fourier=0.75),
        Degradation("kspace", 4, partial_fourier=0.625, pf_recon="homodyne"),
    ],
    ids=lambda d: f"{d.label}-{d.upsampler}",
)
def test_every_degradation_and_upsampler_share_one_geometry(deg):
    """LR made from a known HR and put back on the HR grid lines up with the HR within 0.1
    pixel (phase correlation): LR pixel i is centred on HR s*i + (s - 1)/2 for every kind."""
    from skimage.registration import phase_cross_correlation

    hr = _blobs(96, 80)
    _, up = degrade(hr, deg, seed=0)
    shift, _, _ = phase_cross_correlation(
        hr[0, 0].numpy(), up[0, 0].numpy(), upsample_factor=100, normalization=None
    )
    assert abs(shift).max() < 0.1, shift


def _blobs(h: int, w: int) -> torch.Tensor:
    """A smooth head-like phantom on a black background: a few Gaussian blobs."""
    y = torch.arange(h, dtype=torch.float32)[:, None]
    x = torch.arange(w, dtype=torch.float32)[None, :]
    img = torch.zeros(h, w)
    for cy, cx, s, a in [(40, 35, 14, 0.6), (55, 45, 6, 0.3), (30, 50, 4, 0.25), (60, 30, 3, 0.2)]:
        img += a * torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    return img.clamp(0, 1)[None, None]
