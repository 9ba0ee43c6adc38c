"""Watching stage 2 learn: R^2 per band, the verdict line, the held-out slices, the curves."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from wavesr.training.engine import MetricsLog
from wavesr.training.tasks import LatentCache
from wavesr.training.validation import (
    band_r2,
    plot_validation,
    read_validation,
    validation_indices,
    verdict,
)


def test_band_r2_against_zeros_by_hand() -> None:
    target = torch.zeros(1, 6, 1, 2)
    target[0, :3] = torch.tensor([[1.0, -1.0], [2.0, 0.0], [0.0, 0.0]]).view(3, 1, 2)
    target[0, 3:] = 1.0  # second band: a constant 1 everywhere
    estimate = torch.zeros_like(target)
    estimate[0, 0, 0, 0] = 1.0  # one exact value in band 1: SSE = 1 + 4, energy = 1 + 1 + 4
    estimate[0, 3:] = 2.0  # band 2: SSE = 6 * 1, energy = 6
    r2 = band_r2(estimate, target)
    assert r2 == {"LH": pytest.approx(1 - 5 / 6), "HL": pytest.approx(0.0)}
    assert band_r2(target, target) == {"LH": 1.0, "HL": 1.0}
    assert band_r2(torch.zeros_like(target), target) == {"LH": 0.0, "HL": 0.0}


def test_explained_variance_scores_a_constant_at_zero() -> None:
    target = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0)) + 3.0
    mean = target.mean(dim=(0, 2, 3), keepdim=True).expand_as(target)
    assert band_r2(mean, target)["LH"] > 0.5  # against zeros the mean looks good...
    assert band_r2(mean, target, about_mean=True)["LH"] == pytest.approx(0.0, abs=1e-6)


def test_verdict_names_the_bands_at_or_below_zero() -> None:
    values = {"val_r2_LH": 0.3, "val_r2_HH": -0.1, "val_r2_mean": 0.1, "val_ev_mean": 0.05}
    values |= {"val_psnr_zero": 20.0, "val_psnr_estimate": 21.0, "val_psnr_oracle": 25.0}
    line = verdict(values)
    assert "WARNING" in line and "HH" in line.split("WARNING")[1]
    assert "LH" not in line.split("WARNING")[1]
    assert "WARNING" not in verdict({**values, "val_r2_HH": 0.01})


def test_validation_indices_are_spread_and_distinct() -> None:
    assert validation_indices(100, 4) == [12, 37, 62, 87]
    assert validation_indices(3, 8) == [0, 1, 2]


def test_validation_rows_join_metrics_csv_and_plot(tmp_path) -> None:
    log = MetricsLog(tmp_path, enabled=True)
    log.log(1, {"loss": 1.0})
    values = {"val_r2_LH": 0.2, "val_r2_mean": 0.2, "val_psnr_zero": 20.0}
    values |= {"val_psnr_estimate": 21.0, "val_psnr_oracle": 24.0}
    log.log(2, values)
    log.log(3, {"loss": 0.5})
    log.close()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["loss"] == "1.0" and rows[1]["val_r2_LH"] == "0.2" and rows[2]["loss"] == "0.5"
    assert read_validation(tmp_path / "metrics.csv")["val_r2_LH"] == [0.2]
    assert plot_validation(tmp_path / "metrics.csv", tmp_path / "v.png").stat().st_size > 0


def test_latent_cache_windows_equal_slicing_for_mixed_shapes() -> None:
    gen = torch.Generator().manual_seed(0)
    latents = [torch.randn(15, 8, 8, generator=gen) for _ in range(3)]
    latents += [torch.randn(15, 6, 10, generator=gen) for _ in range(2)]
    cache = LatentCache(latents, "per-channel")
    picks, tops, lefts = (
        torch.tensor([4, 0, 3, 0]),
        torch.tensor([1, 0, 2, 4]),
        torch.tensor([5, 3, 0, 4]),
    )
    windows = cache.windows(picks, tops, lefts, 4)
    for k in range(4):
        z = latents[int(picks[k])]
        t, left = int(tops[k]), int(lefts[k])
        assert torch.equal(windows[k], z[:, t : t + 4, left : left + 4])
    x0, cond = cache.batch(step=1, batch_size=64, size=4, seed=0, rank=0)
    assert x0.shape == (64, 12, 4, 4) and cond.shape == (64, 3, 4, 4)
    assert abs(float(x0.mean())) < 0.3  # standardised per channel


def test_pooled_band_energy_is_the_metrics_band_energy() -> None:
    from wavesr.evaluation.metrics import band_energy
    from wavesr.training.validation import pooled_band_energy

    images = torch.rand(3, 1, 24, 40, generator=torch.Generator().manual_seed(0))
    by_metrics = sum(np.asarray(band_energy(x[0].numpy())) for x in images)
    np.testing.assert_allclose(pooled_band_energy(images).numpy(), by_metrics, rtol=1e-9)


def test_validation_logs_band_energy_of_samples_and_noise_control(tmp_path) -> None:
    from wavesr.config import load_config
    from wavesr.model.autoencoder import FrequencyAutoencoder
    from wavesr.model.latent_scaling import LatentScaling
    from wavesr.model.transformer import LatentDiffusionTransformer
    from wavesr.training.validation import LDTValidator

    torch.manual_seed(0)
    config = load_config("tiny")
    hr = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    validator = LDTValidator(FrequencyAutoencoder(config.autoencoder), hr, config)
    ldt = LatentDiffusionTransformer(config.ldt).eval()
    channels = config.ldt.in_channels
    hf = LatentScaling(torch.full((channels,), 2.0), torch.zeros(channels))
    values = validator(ldt, hf, LatentScaling.identity(3))
    for source in ("ldt", "noise"):
        ratios = [values[f"val_energy_{source}_B{k}"] for k in range(4, 9)]
        assert all(np.isfinite(r) and r >= 0 for r in ratios), ratios
    # the control is the sample's starting noise, decoded without the LDT
    noise = validator.noise_control(hf)
    expected = torch.randn(noise.shape, generator=torch.Generator().manual_seed(0)) / 2.0
    torch.testing.assert_close(noise, expected)
    log = MetricsLog(tmp_path, enabled=True)
    log.log(1, {"loss": 1.0})
    log.log(2, values)
    log.close()
    columns = read_validation(tmp_path / "metrics.csv")
    assert columns["val_energy_noise_B8"] == [pytest.approx(values["val_energy_noise_B8"])]
    assert plot_validation(tmp_path / "metrics.csv", tmp_path / "v.png").stat().st_size > 0
