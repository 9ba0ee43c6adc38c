from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from wavesr.model.diffusion.losses import discretized_gaussian_log_likelihood, normal_kl


def test_normal_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    m1, m2 = (
        torch.randn(50, generator=g, dtype=torch.float64),
        torch.randn(50, generator=g, dtype=torch.float64),
    )
    lv1, lv2 = (
        torch.randn(50, generator=g, dtype=torch.float64),
        torch.randn(50, generator=g, dtype=torch.float64),
    )
    expected = kl_divergence(Normal(m1, torch.exp(0.5 * lv1)), Normal(m2, torch.exp(0.5 * lv2)))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected)
    assert torch.all(normal_kl(m1, lv1, m1, lv1).abs() < 1e-12)


def test_normal_kl_to_standard_normal_with_float_args() -> None:
    mean, logvar = torch.tensor([0.5, -1.0]), torch.tensor([0.0, math.log(2.0)])
    closed = 0.5 * (mean**2 + torch.exp(logvar) - 1.0 - logvar)
    torch.testing.assert_close(normal_kl(mean, logvar, 0.0, 0.0), closed)


def test_discretized_likelihood_bins_sum_to_one() -> None:
    x = torch.linspace(-1, 1, 256, dtype=torch.float64)
    for mean, log_scale in ((0.0, math.log(0.1)), (0.3, math.log(0.5)), (-0.9, math.log(0.02))):
        ll = discretized_gaussian_log_likelihood(
            x, means=torch.full_like(x, mean), log_scales=torch.full_like(x, log_scale)
        )
        assert ll.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
        assert torch.all(ll <= 0)


def test_discretized_likelihood_close_to_exact_normal_cdf() -> None:
    x = torch.tensor([-1.0, -0.5, 0.0, 0.2, 1.0], dtype=torch.float64)
    means = torch.tensor([-0.8, -0.45, 0.05, 0.2, 0.9], dtype=torch.float64)
    scales = torch.tensor([0.3, 0.1, 0.2, 0.05, 0.4], dtype=torch.float64)
    dist = Normal(means, scales)
    exact = torch.log(dist.cdf(x + 1 / 255) - dist.cdf(x - 1 / 255))
    exact[0] = torch.log(dist.cdf(x + 1 / 255))[0]
    exact[-1] = torch.log(1 - dist.cdf(x - 1 / 255))[-1]
    ll = discretized_gaussian_log_likelihood(x, means=means, log_scales=torch.log(scales))
    torch.testing.assert_close(ll, exact, rtol=2e-3, atol=2e-3)


def test_discretized_likelihood_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        discretized_gaussian_log_likelihood(
            torch.zeros(3), means=torch.zeros(4), log_scales=torch.zeros(3)
        )
