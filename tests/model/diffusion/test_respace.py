from __future__ import annotations

import numpy as np
import pytest

from wavesr.errors import ConfigError
from wavesr.model.diffusion import GaussianDiffusion, SpacedDiffusion, create_diffusion
from wavesr.model.diffusion.respace import space_timesteps
from wavesr.model.diffusion.schedules import get_named_beta_schedule


def test_ddim_striding() -> None:
    steps = space_timesteps(1000, "ddim50")
    assert steps == set(range(0, 1000, 20))
    assert len(steps) == 50 and 0 in steps
    assert space_timesteps(1000, "ddim7") == set(range(0, 1000, 143))


def test_even_spacing_int_and_string_agree() -> None:
    steps = space_timesteps(1000, 50)
    assert steps == space_timesteps(1000, "50") == space_timesteps(1000, [50])
    assert len(steps) == 50 and {0, 999} <= steps
    assert space_timesteps(10, 4) == {0, 3, 6, 9}


def test_sections() -> None:
    steps = space_timesteps(300, "10,15,20")
    assert len(steps) == 45
    assert {0, 99, 100, 199, 200, 299} <= steps
    assert len([s for s in steps if s < 100]) == 10
    assert len([s for s in steps if 100 <= s < 200]) == 15


@pytest.mark.parametrize("bad", ["ddim0", "abc", "2000", "0", "ddimx", [5, 0]])
def test_invalid_respacing(bad: object) -> None:
    with pytest.raises(ConfigError):
        space_timesteps(1000, bad)  # type: ignore[arg-type]


def test_respaced_alpha_bars_equal_originals() -> None:
    base = create_diffusion(None, diffusion_steps=1000)
    for respacing in ("ddim50", "25", "5,10"):
        spaced = create_diffusion(respacing, diffusion_steps=1000)
        assert isinstance(spaced, SpacedDiffusion)
        kept = spaced.timestep_map
        assert spaced.num_timesteps == len(kept) and np.all(np.diff(kept) > 0)
        np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[kept], rtol=1e-9)


def test_no_respacing_keeps_all_steps() -> None:
    for respacing in (None, "", "  "):
        diffusion = create_diffusion(respacing, diffusion_steps=100, noise_schedule="linear")
        assert type(diffusion) is GaussianDiffusion and diffusion.num_timesteps == 100
    full = SpacedDiffusion(range(100), betas=get_named_beta_schedule("cosine", 100))
    np.testing.assert_allclose(full.betas, get_named_beta_schedule("cosine", 100), rtol=1e-10)
