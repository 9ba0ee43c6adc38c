from __future__ import annotations

import math

import numpy as np
import pytest

from wavesr.errors import ConfigError
from wavesr.model.diffusion.schedules import get_named_beta_schedule


def _cosine_closed_form(t: float, s: float = 0.008) -> float:
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t) / f(0.0)


def test_cosine_alpha_bar_matches_closed_form() -> None:
    T = 1000
    betas = get_named_beta_schedule("cosine", T)
    alpha_bar = np.cumprod(1.0 - betas)
    assert betas.dtype == np.float64 and betas.shape == (T,)
    # Index i holds alpha_bar at continuous time (i + 1) / T.
    for i in (0, 1, 99, 499, 899, 980):
        assert alpha_bar[i] == pytest.approx(_cosine_closed_form((i + 1) / T), rel=1e-10)
    assert betas.max() == pytest.approx(0.999)
    assert betas[-1] == pytest.approx(0.999)


def test_linear_endpoints_scale_with_steps() -> None:
    betas = get_named_beta_schedule("linear", 1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    assert np.allclose(np.diff(betas), (0.02 - 1e-4) / 999)
    half = get_named_beta_schedule("linear", 500)
    assert half[0] == pytest.approx(2e-4) and half[-1] == pytest.approx(0.04)


def test_invalid_schedules_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown noise schedule"):
        get_named_beta_schedule("sigmoid", 100)
    with pytest.raises(ConfigError, match="outside"):
        get_named_beta_schedule("linear", 10)  # beta_end = 2.0
    with pytest.raises(ConfigError):
        get_named_beta_schedule("cosine", 0)
