"""Diffusion process of WaveSR's latent diffusion transformer (guided-diffusion / DiT maths).
Part of model; imports only errors and its own modules.
"""

from __future__ import annotations

from wavesr.model.diffusion.gaussian_diffusion import GaussianDiffusion
from wavesr.model.diffusion.losses import discretized_gaussian_log_likelihood, normal_kl
from wavesr.model.diffusion.respace import SpacedDiffusion, space_timesteps
from wavesr.model.diffusion.schedules import get_named_beta_schedule

__all__ = [
    "GaussianDiffusion",
    "SpacedDiffusion",
    "create_diffusion",
    "discretized_gaussian_log_likelihood",
    "get_named_beta_schedule",
    "normal_kl",
    "space_timesteps",
]


def create_diffusion(
    timestep_respacing: str | int | None = None,
    *,
    noise_schedule: str = "cosine",
    diffusion_steps: int = 1000,
    predict: str = "eps",
    learn_sigma: bool = True,
    vlb_weight: float = 1e-4,
    vlb_scaling: str = "per-dim-bits",
    loss_weighting: str = "uniform",
    min_snr_gamma: float = 5.0,
) -> GaussianDiffusion:
    """Build the diffusion; ``timestep_respacing`` None / "" keeps all ``diffusion_steps``.

    ``50`` or ``"50"``: 50 evenly spaced steps; ``"10,20"``: per-section counts; ``"ddim50"``:
    DDIM's integer striding. The model always receives original timestep indices.
    """
    betas = get_named_beta_schedule(noise_schedule, diffusion_steps)
    kwargs = {
        "predict": predict,
        "learn_sigma": learn_sigma,
        "vlb_weight": vlb_weight,
        "vlb_scaling": vlb_scaling,
        "loss_weighting": loss_weighting,
        "min_snr_gamma": min_snr_gamma,
    }
    if timestep_respacing is None or (
        isinstance(timestep_respacing, str) and not timestep_respacing.strip()
    ):
        return GaussianDiffusion(betas, **kwargs)
    use_timesteps = space_timesteps(diffusion_steps, timestep_respacing)
    return SpacedDiffusion(use_timesteps, betas=betas, **kwargs)
