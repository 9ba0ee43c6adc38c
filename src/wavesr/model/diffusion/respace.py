"""Sampling with a subset of the training timesteps (guided-diffusion's respacing)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from wavesr.errors import ConfigError
from wavesr.model.diffusion.gaussian_diffusion import GaussianDiffusion


def _ddim_steps(num_timesteps: int, desired: int) -> set[int]:
    # The DDIM paper's even striding: the smallest integer stride giving exactly `desired` steps.
    for stride in range(1, num_timesteps + 1):
        if len(range(0, num_timesteps, stride)) == desired:
            return set(range(0, num_timesteps, stride))
    raise ConfigError(
        f"cannot take exactly {desired} steps from {num_timesteps} with an integer stride"
    )


def _parse_counts(section_counts: str | int | Sequence[int]) -> list[int] | str:
    if isinstance(section_counts, bool):
        raise ConfigError(f"invalid timestep respacing {section_counts!r}")
    if isinstance(section_counts, int):
        return [section_counts]
    if isinstance(section_counts, str):
        text = section_counts.strip()
        if text.startswith("ddim"):
            return text
        try:
            return [int(part) for part in text.split(",")]
        except ValueError:
            raise ConfigError(
                f"invalid timestep respacing {section_counts!r}: use e.g. '50', '10,15,20' "
                "or 'ddim50'"
            ) from None
    return [int(c) for c in section_counts]


def space_timesteps(num_timesteps: int, section_counts: str | int | list[int]) -> set[int]:
    """Original timesteps to keep.

    The T steps are cut into ``len(section_counts)`` equal sections and each section is strided
    evenly (fractional stride, rounded) to its count, first and last step of a section included.
    ``"ddimN"`` instead keeps ``range(0, T, stride)`` with the integer stride giving N steps.
    """
    counts = _parse_counts(section_counts)
    if isinstance(counts, str):
        try:
            desired = int(counts[len("ddim") :])
        except ValueError:
            raise ConfigError(f"invalid timestep respacing {counts!r}: use e.g. 'ddim50'") from None
        if desired < 1:
            raise ConfigError(f"invalid timestep respacing {counts!r}: need at least 1 step")
        return _ddim_steps(num_timesteps, desired)
    if not counts or any(c < 1 for c in counts):
        raise ConfigError(f"invalid timestep respacing {section_counts!r}: counts must be >= 1")
    size_per, extra = divmod(num_timesteps, len(counts))
    start = 0
    steps: list[int] = []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ConfigError(f"cannot take {count} steps from a section of {size} timesteps")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        steps += [start + round(k * stride) for k in range(count)]
        start += size
    return set(steps)


class SpacedDiffusion(GaussianDiffusion):
    """A diffusion over the kept steps of a base process with ``betas``.

    The new betas reproduce the base alpha_bar at every kept step; the model still receives
    the original timestep indices (``timestep_map``).
    """

    def __init__(
        self,
        use_timesteps: Iterable[int],
        *,
        betas: np.ndarray | Sequence[float],
        **kwargs: object,
    ) -> None:
        base_betas = np.asarray(betas, dtype=np.float64)
        self.original_num_steps = int(base_betas.shape[0])
        keep = sorted(set(int(t) for t in use_timesteps))
        if not keep or keep[0] < 0 or keep[-1] >= self.original_num_steps:
            raise ConfigError(
                f"kept timesteps must be a non-empty subset of 0..{self.original_num_steps - 1}"
            )
        self.use_timesteps = set(keep)
        alphas_cumprod = np.cumprod(1.0 - base_betas)
        kept = alphas_cumprod[keep]
        new_betas = 1.0 - kept / np.append(1.0, kept[:-1])
        super().__init__(new_betas, **kwargs)  # type: ignore[arg-type]
        self.timestep_map = np.asarray(keep, dtype=np.int64)
