"""Checkpoints as safetensors + JSON, written atomically (temp directory, then rename).

Layout of a checkpoint directory ``RUN/checkpoints/step_0000123/``:
``model.safetensors``, ``optimizer.safetensors`` (flattened optimizer state), optional
``ema.safetensors``, and ``state.json`` (step, elapsed time, optimizer hyper-parameters, config).
Nothing is pickled, so loading a checkpoint cannot execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

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


def flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{index}.{key}"] = tensor
    groups = [{k: v for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, groups


def unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    return {"state": state, "param_groups": groups}


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("step_*") if p.is_dir()) if root.is_dir() else []


def save_checkpoint(
    run_dir: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict,
    state: dict,
    ema_state: dict[str, torch.Tensor] | None = None,
    keep_last: int = 3,
) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step_{step:07d}.", dir=root))
    try:
        save_tensors(model_state, tmp / "model.safetensors")
        opt_tensors, groups = flatten_optimizer(optimizer_state)
        save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        if ema_state is not None:
            save_tensors(ema_state, tmp / "ema.safetensors")
        write_json({**state, "step": step, "param_groups": groups}, tmp / "state.json")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path) -> dict[str, Any]:
    state = read_json(path / "state.json")
    out = {
        "state": state,
        "model": load_tensors(path / "model.safetensors"),
        "optimizer": unflatten_optimizer(
            load_tensors(path / "optimizer.safetensors"), state["param_groups"]
        ),
    }
    if (path / "ema.safetensors").is_file():
        out["ema"] = load_tensors(path / "ema.safetensors")
    return out


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
