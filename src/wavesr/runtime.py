"""Where torch runs: `--device auto` (a CUDA GPU when torch sees one, else the CPU) and
`--threads N` (torch's CPU threads)."""

from __future__ import annotations

import torch

from wavesr.errors import ConfigError

__all__ = ["AUTO", "resolve_device", "set_threads"]

AUTO = "auto"


def resolve_device(device: str) -> str:
    """The device to use: "auto" gives "cuda" when torch sees a CUDA GPU, else "cpu"."""
    if device == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def set_threads(threads: int | None) -> None:
    """Use `threads` CPU threads inside torch operations (None: leave torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
