"""Checkpoints as safetensors + JSON, written atomically (temp directory, then rename).

Layout of a checkpoint directory ``RUN/checkpoints/step_0000123/``:
``model.safetensors``, ``optimizer.safetensors`` (flattened optimizer state), optional
``ema.safetensors`` and ``extra.safetensors`` (a task's own state, e.g. a discriminator), and
``state.json`` (step, elapsed time, optimizer hyper-parameters, config).
Nothing is pickled, so loading a checkpoint cannot execute code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from wavesr.bundle.checkpoint_io import (
    checkpoint_dirs,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)


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


def save_checkpoint(
    run_dir: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict,
    state: dict,
    ema_state: dict[str, torch.Tensor] | None = None,
    keep_last: int = 3,
    extra_state: dict[str, torch.Tensor] | None = None,
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
        if extra_state:
            save_tensors(extra_state, tmp / "extra.safetensors")
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
    if (path / "extra.safetensors").is_file():
        out["extra"] = load_tensors(path / "extra.safetensors")
    return out
