"""Beta schedules (float64), as in guided-diffusion / IDDPM."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from wavesr.errors import ConfigError

SCHEDULES = ("linear", "cosine")


def betas_for_alpha_bar(
    num_diffusion_timesteps: int,
    alpha_bar: Callable[[float], float],
    max_beta: float = 0.999,
) -> np.ndarray:
    """Discretise a continuous alpha_bar(t), t in [0, 1], into T betas (clipped at max_beta)."""
    steps = np.arange(num_diffusion_timesteps, dtype=np.float64)
    t1 = steps / num_diffusion_timesteps
    t2 = (steps + 1) / num_diffusion_timesteps
    ab1 = np.array([alpha_bar(t) for t in t1], dtype=np.float64)
    ab2 = np.array([alpha_bar(t) for t in t2], dtype=np.float64)
    return np.minimum(1.0 - ab2 / ab1, max_beta)


def cosine_alpha_bar(t: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal's f(t) = cos((t + s) / (1 + s) * pi / 2)^2 (unnormalised)."""
    return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def get_named_beta_schedule(name: str, num_diffusion_timesteps: int) -> np.ndarray:
    """Return the float64 betas of schedule ``name`` ("linear" or "cosine") for T steps."""
    if num_diffusion_timesteps < 1:
        raise ConfigError(f"diffusion_steps must be >= 1, got {num_diffusion_timesteps}")
    if name == "linear":
        # Ho et al.'s 1e-4..0.02 at T=1000, rescaled so the schedule keeps its shape for any T.
        scale = 1000 / num_diffusion_timesteps
        betas = np.linspace(scale * 1e-4, scale * 0.02, num_diffusion_timesteps, dtype=np.float64)
    elif name == "cosine":
        betas = betas_for_alpha_bar(num_diffusion_timesteps, cosine_alpha_bar)
    else:
        raise ConfigError(f"unknown noise schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if not ((betas > 0).all() and (betas <= 1).all()):
        raise ConfigError(
            f"schedule {name!r} with {num_diffusion_timesteps} steps gives betas outside (0, 1]"
        )
    return betas
