"""Checkpoints: safetensors + JSON round trips, pruning, pickle refusal, architecture checks."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from wavesr.bundle.checkpoint_io import (
    checkpoint_dirs,
    load_state_into,
    load_tensors,
    read_json,
    save_tensors,
)
from wavesr.errors import CheckpointError
from wavesr.training.checkpoint import (
    flatten_optimizer,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer,
)


class _Touch:
    """Unpickling this creates a file: proof that a loader executed pickle code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _trained(seed: int = 0, steps: int = 2) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(steps):
        _step(model, optimizer, step)
    return model, optimizer


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(step))
    optimizer.zero_grad()
    model(x).square().mean().backward()
    optimizer.step()


def test_tensors_round_trip_exactly(tmp_path):
    tensors = {
        "w": torch.randn(3, 4),
        "half": torch.randn(2).half(),
        "idx": torch.arange(5),
        "view": torch.randn(4, 4).t(),  # non-contiguous input
    }
    save_tensors(tensors, tmp_path / "a.safetensors", metadata={"step": 3})
    loaded = load_tensors(tmp_path / "a.safetensors")
    assert loaded.keys() == tensors.keys()
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temp file left


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin", ".pkl"])
def test_pickle_checkpoints_are_refused_without_running_them(tmp_path, suffix):
    marker = tmp_path / "executed"
    path = tmp_path / f"weights{suffix}"
    torch.save({"w": torch.ones(2), "payload": _Touch(marker)}, path)
    with pytest.raises(CheckpointError, match="pickle") as info:
        load_tensors(path)
    assert info.value.path == str(path)
    assert not marker.exists()


def test_pickle_disguised_as_safetensors_is_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_tensors(path)
    assert not marker.exists()


def test_missing_weights_and_bad_json_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_tensors(tmp_path / "nothing.safetensors")
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        read_json(tmp_path / "state.json")


def test_optimizer_state_flattens_and_restores(tmp_path):
    _, optimizer = _trained()
    tensors, groups = flatten_optimizer(optimizer.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    restored = unflatten_optimizer(tensors, groups)
    original = optimizer.state_dict()
    assert restored["state"].keys() == original["state"].keys()
    for index, entry in original["state"].items():
        for key, value in entry.items():
            assert torch.equal(restored["state"][index][key], torch.as_tensor(value))


def test_checkpoint_resume_continues_exactly(tmp_path):
    model, optimizer = _trained()
    path = save_checkpoint(
        tmp_path, 2, model.state_dict(), optimizer.state_dict(), {"elapsed_s": 1.5, "task": "t"}
    )
    assert path == tmp_path / "checkpoints" / "step_0000002"
    assert sorted(p.name for p in path.iterdir()) == [
        "model.safetensors", "optimizer.safetensors", "state.json"
    ]  # fmt: skip
    ckpt = load_checkpoint(path)
    assert ckpt["state"]["step"] == 2 and ckpt["state"]["task"] == "t"
    assert ckpt["state"]["elapsed_s"] == 1.5

    fresh, fresh_opt = _trained(seed=1, steps=0)
    load_state_into(fresh, ckpt["model"], path)
    fresh_opt.load_state_dict(ckpt["optimizer"])
    _step(model, optimizer, 2)
    _step(fresh, fresh_opt, 2)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_ema_weights_are_saved_when_given(tmp_path):
    model, optimizer = _trained()
    ema = {k: v + 1 for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path, 1, model.state_dict(), optimizer.state_dict(), {}, ema)
    loaded = load_checkpoint(path)["ema"]
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)


def test_keep_last_prunes_and_same_step_overwrites(tmp_path):
    model, optimizer = _trained()
    for step in (1, 2, 3, 4, 5):
        save_checkpoint(tmp_path, step, model.state_dict(), optimizer.state_dict(), {}, keep_last=2)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_0000004", "step_0000005"]
    save_checkpoint(
        tmp_path, 5, model.state_dict(), optimizer.state_dict(), {"elapsed_s": 9.0}, keep_last=2
    )
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_0000004", "step_0000005"]
    assert load_checkpoint(checkpoint_dirs(tmp_path)[-1])["state"]["elapsed_s"] == 9.0
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_0000004", "step_0000005"
    ]  # fmt: skip


def test_architecture_mismatch_is_a_clear_error(tmp_path):
    model = nn.Linear(3, 4)
    with pytest.raises(CheckpointError, match="do not match the model architecture") as info:
        load_state_into(model, {"weight": torch.zeros(4, 5), "bias": torch.zeros(4)}, tmp_path)
    assert "1 wrong-shape" in str(info.value) and info.value.path == str(tmp_path)
    with pytest.raises(CheckpointError, match="1 missing, 1 unexpected"):
        load_state_into(model, {"weight": torch.zeros(4, 3), "other": torch.zeros(4)}, tmp_path)
    load_state_into(
        model, {"weight": torch.ones(4, 3, dtype=torch.float64), "bias": torch.ones(4)}, tmp_path
    )
    assert model.weight.dtype == torch.float32 and torch.equal(model.weight, torch.ones(4, 3))
