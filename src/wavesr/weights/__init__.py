"""Bundled weights: the default WaveSR model and the baselines (see docs/model-card.md).
Base layer: imports only errors.
"""

from __future__ import annotations

from pathlib import Path

from wavesr.errors import ConfigError

WEIGHTS_DIR = Path(__file__).parent
DEFAULT_MODEL = "wavesr-cpu-x4"
THROUGH_PLANE_MODEL = "wavesr-through-plane-x4"  # trained with data.degradation=slice-axis


def _bundle_dir(name: str, what: str) -> Path:
    path = WEIGHTS_DIR / name
    if not (path / "wavesr.json").is_file():
        raise ConfigError(f"no --model given and no bundled {what} found at {path}")
    return path


def default_model_dir() -> Path:
    """Folder of the bundled default WaveSR model (autoencoder + LDT)."""
    return _bundle_dir(DEFAULT_MODEL, "default model")


def through_plane_model_dir() -> Path:
    """Folder of the bundled through-plane model; ConfigError when there is none."""
    path = WEIGHTS_DIR / THROUGH_PLANE_MODEL
    if not (path / "wavesr.json").is_file():
        raise ConfigError("no through-plane model: pass --model")
    return path


def baseline_dir(name: str) -> Path:
    """Folder of a bundled baseline (``edsr`` or ``pixel-diffusion``)."""
    return _bundle_dir(f"{name}-cpu-x4", f"{name} baseline")
