"""The inference pipeline: sampling temperature and seeds."""

from __future__ import annotations

import torch

from wavesr.bundle.folder import load_pipeline
from wavesr.config import load_config
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.degrade import Degradation, degrade, slice_downsample
from wavesr.model.pipeline import WaveSRPipeline
from wavesr.model.tiling import balanced_window, window_starts
from wavesr.model.transformer import LatentDiffusionTransformer


def _lr_up(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, 32, 32, generator=gen)


def test_temperature_zero_makes_the_sample_independent_of_the_seed(tiny_model) -> None:
    pipe = load_pipeline(tiny_model)
    x = _lr_up()
    pipe.config.diffusion.temperature = 1.0
    a, b = pipe(x, seed=1), pipe(x, seed=2)
    assert not torch.equal(a, b)  # the starting noise matters at temperature 1
    pipe.config.diffusion.temperature = 0.0
    a, b = pipe(x, seed=1), pipe(x, seed=2)
    torch.testing.assert_close(a, b)


def test_temperature_scales_the_starting_noise(tiny_model, monkeypatch) -> None:
    """Half temperature equals sampling from half the noise of the same seed."""
    pipe = load_pipeline(tiny_model)
    cond = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    kwargs = dict(steps=3, seed=4, sampler="ddim", progress=False)
    pipe.config.diffusion.temperature = 0.5
    half = pipe.sample_high_frequency_latents(cond, **kwargs)
    pipe.config.diffusion.temperature = 1.0
    full = pipe.sample_high_frequency_latents(cond, **kwargs)
    assert not torch.allclose(half, full)  # the temperature matters
    seed_noise = pipe.starting_noise

    def half_of_the_seed_noise(shape, seed):
        noise, generator = seed_noise(shape, seed)
        torch.testing.assert_close(noise, torch.randn(shape, generator=_seeded(seed)))
        return 0.5 * noise, generator

    monkeypatch.setattr(pipe, "starting_noise", half_of_the_seed_noise)
    torch.testing.assert_close(half, pipe.sample_high_frequency_latents(cond, **kwargs))


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_out_of_range_temperature_is_a_config_error(tiny_model) -> None:
    import pytest

    from wavesr.errors import ConfigError

    pipe = load_pipeline(tiny_model)
    with pytest.raises(ConfigError, match="temperature"):
        pipe(_lr_up(), temperature=1.5)


def test_sr_command_passes_the_temperature(tiny_model, tmp_path) -> None:
    """`wavesr sr --temperature 0` gives the same output for two seeds."""
    import numpy as np

    from wavesr.cli.main import main

    lr = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    np.save(tmp_path / "lr.npy", lr)
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"sr{seed}.npy"
        argv = ["sr", str(tmp_path / "lr.npy"), "-o", str(out), "--model", str(tiny_model)]
        assert main([*argv, "--temperature", "0", "--seed", seed, "--steps", "2", "--quiet"]) == 0
        outs.append(np.load(out))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_consistency_steps_make_the_sr_agree_with_its_input(tiny_model) -> None:
    from wavesr.model.degrade import downsample

    pipe = load_pipeline(tiny_model)
    hr = _lr_up(3)
    lr = downsample(hr, 4)
    lr_up = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    plain = pipe(lr_up, steps=2, consistency_steps=0)
    pipe.config.diffusion.consistency_steps = 3  # the model's default, used when not given
    consistent = pipe(lr_up, steps=2)
    assert not torch.equal(plain, consistent)
    err_plain = (downsample(plain, 4) - lr).abs().mean()
    err_consistent = (downsample(consistent, 4) - lr).abs().mean()
    assert err_consistent < 0.5 * err_plain


def test_out_of_range_consistency_steps_is_a_config_error(tiny_model) -> None:
    import pytest

    from wavesr.errors import ConfigError

    pipe = load_pipeline(tiny_model)
    with pytest.raises(ConfigError, match="consistency-steps"):
        pipe(_lr_up(), consistency_steps=-1)


def test_evaluate_command_rejects_bad_consistency_steps(tiny_model, tmp_path, capsys) -> None:
    import numpy as np

    from wavesr.cli.main import main

    np.save(tmp_path / "hr.npy", np.random.default_rng(0).random((1, 32, 32)).astype(np.float32))
    argv = ["evaluate", str(tmp_path / "hr.npy"), "--methods", "wavesr", "--model", str(tiny_model)]
    assert main([*argv, "--consistency-steps", "1000", "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--consistency-steps must be in [0, 100]" in err[0]
    assert not (tmp_path / "ev").exists()


def test_back_projection_uses_the_given_degradation(tiny_model) -> None:
    """Back-projecting with the input's own (k-space) degradation makes the SR consistent with
    it in k-space; the model's own (bicubic) operator does not."""
    from wavesr.model.degrade import Degradation, degrade

    pipe = load_pipeline(tiny_model)
    kspace = Degradation("kspace", 4)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = 0.5 + 0.2 * torch.cos(2 * torch.pi * yy / 32) + 0.1 * torch.sin(2 * torch.pi * xx / 32)
    _, lr_up = degrade(smooth[None, None], kspace)

    def kspace_error(sr: torch.Tensor) -> float:
        return float((degrade(sr, kspace)[1] - lr_up).abs().mean())

    plain = kspace_error(pipe(lr_up, steps=2, consistency_steps=0))
    given = kspace_error(pipe(lr_up, steps=2, consistency_steps=10, degradation=kspace))
    own = kspace_error(pipe(lr_up, steps=2, consistency_steps=10))
    assert given < 0.1 * min(plain, own), (given, plain, own)


def test_tiled_sampling_matches_whole_slice_when_one_window_covers(tiny_model) -> None:
    from wavesr.model.tiling import TiledDenoiser

    pipe = load_pipeline(tiny_model)
    assert pipe.denoiser is pipe.ldt  # tile_window 0 in the tiny preset: no tiling
    cond = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    kwargs = dict(steps=3, seed=4, sampler="ddim", progress=False)
    whole = pipe.sample_high_frequency_latents(cond, **kwargs)
    pipe.config.diffusion.tile_window, pipe.config.diffusion.tile_overlap = 6, 2
    assert isinstance(pipe.denoiser, TiledDenoiser)
    torch.testing.assert_close(pipe.sample_high_frequency_latents(cond, **kwargs), whole)


class _PerPixelDenoiser(torch.nn.Module):
    """A denoiser that sees only its own latent pixel and cond pixel: windows blended with
    weights that add up to one reproduce it exactly, wherever the windows lie."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        eps = 0.5 * x + 0.2 * cond.mean(1, keepdim=True) + 1e-3 * t.view(-1, 1, 1, 1)
        return torch.cat([eps, torch.zeros_like(x)], dim=1)  # [eps, variance]


def test_tiled_sampling_with_2x2_windows_matches_whole_slice_for_a_per_pixel_denoiser(
    tiny_model,
) -> None:
    """6 x 6 latents in 2 x 2 overlapping windows of 4: the sample equals the whole-slice one
    (to 1e-5) when the denoiser is per-pixel; a misplaced window or cond crop, or a blend not
    divided by its weights, moves it by far more."""
    pipe = load_pipeline(tiny_model)
    pipe.ldt = _PerPixelDenoiser()
    cond = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    kwargs = dict(steps=3, seed=4, sampler="ddim", progress=False)
    whole = pipe.sample_high_frequency_latents(cond, **kwargs)
    pipe.config.diffusion.tile_window, pipe.config.diffusion.tile_overlap = 4, 2
    align = pipe.denoiser.align
    assert window_starts(6, balanced_window(6, 4, 2, align), 2, align) == [0, 2]  # 2 x 2 windows
    tiled = pipe.sample_high_frequency_latents(cond, **kwargs)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_slice_axis_model_takes_thick_slices_and_back_projects_with_its_profile() -> None:
    """A slice-axis model (profile and gap from its config) upsamples the rows only and
    back-projects with its own slice profile."""
    overrides = ["data.degradation=slice-axis", "data.slice_profile=box", "data.slice_gap=0.25"]
    config = load_config("tiny", [*overrides, "data.noise_sigma=0.02"])
    torch.manual_seed(0)
    autoencoder = FrequencyAutoencoder(config.autoencoder)
    pipe = WaveSRPipeline(config, autoencoder, LatentDiffusionTransformer(config.ldt))
    assert pipe.degradation == Degradation("slice-axis", 4, profile="box", gap=0.25)
    hr = _lr_up(1) * 0.8 + 0.1
    lr, _ = degrade(hr, pipe.degradation)
    assert lr.shape == (1, 1, 8, 32)
    sr = pipe.super_resolve(lr, steps=2, consistency_steps=20)
    assert sr.shape == (1, 1, 32, 32)
    raw = pipe.super_resolve(lr, steps=2, consistency_steps=0)

    def residual(x: torch.Tensor) -> float:
        return float((slice_downsample(x, 4, "box", 0.25) - lr).abs().mean())

    assert residual(sr) < residual(raw) / 20


def test_a_random_trained_model_assumes_a_scanner_lr_and_keeps_its_upsampler(tiny_model) -> None:
    """A model trained on the random mix puts every LR on its grid by zero-filling and, not
    told otherwise, back-projects as for a k-space LR; a single-degradation model follows the
    degradation it is told (or its own)."""
    from wavesr.model.degrade import Degradation, zero_fill_upsample

    pipe = load_pipeline(tiny_model)
    assert pipe.degradation == Degradation("bicubic", 4)
    assert pipe.input_degradation(Degradation("kspace", 4, 0.02)) == Degradation("kspace", 4)
    pipe.config.data.degradation = "random"
    assert pipe.degradation == Degradation("kspace", 4, upsampler="zero-fill")
    told = pipe.input_degradation(Degradation("bicubic", 4, 0.02))
    assert told == Degradation("bicubic", 4, upsampler="zero-fill")
    lr = torch.rand(2, 1, 4, 6)
    expected = zero_fill_upsample(lr, 4).clamp(0, 1)
    torch.testing.assert_close(pipe.to_hr_grid(lr), expected)
    torch.testing.assert_close(pipe.to_hr_grid(lr, Degradation("bicubic", 4)), expected)
