"""Checkpoint and bundle tensor I/O: safetensors and JSON written atomically, strict state loads.

Nothing is pickled, so loading cannot execute code. Training checkpoints (training/checkpoint.py)
and model bundles (bundle/folder.py) both read and write through these helpers.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wavesr.errors import CheckpointError

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")


def save_tensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict | None = None
) -> None:
    """Atomic safetensors write (contiguous CPU copies, temp file in the same folder)."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(data, tmp, metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; refuses pickle formats with the reason."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(
            "refusing a pickle checkpoint: loading it could run arbitrary code; "
            "WaveSR loads weights only from .safetensors",
            path,
        )
    if not path.is_file():
        raise CheckpointError("weights file not found", path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"not a readable safetensors file ({exc})", path) from exc


def write_json(data: dict, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise CheckpointError("file not found", path) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not a readable JSON file ({exc})", path) from exc


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("step_*") if p.is_dir()) if root.is_dir() else []


def load_state_into(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path
) -> None:
    """Strict load that turns architecture mismatches into a clear CheckpointError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    bad_shape = [k for k in own if k in tensors and own[k].shape != tensors[k].shape]
    if missing or unexpected or bad_shape:
        detail = (
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(bad_shape)} wrong-shape "
            f"tensors (e.g. {(missing + unexpected + bad_shape)[0]})"
        )
        raise CheckpointError(f"weights do not match the model architecture: {detail}", source)
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
