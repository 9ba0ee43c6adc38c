"""The training engine: schedule, faults (NaN, SIGTERM, time limit), pruning, determinism."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from wavesr.bundle.checkpoint_io import PICKLE_SUFFIXES, checkpoint_dirs, save_tensors
from wavesr.bundle.folder import load_bundle
from wavesr.cli import main as cli
from wavesr.config import OptimConfig, StageConfig, TrainConfig
from wavesr.errors import WaveSRError
from wavesr.training.engine import TrainingError, learning_rate, train


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class ToyTask:
    """Linear regression y = sum(x); optionally a NaN loss from step ``nan_at`` on."""

    name = "toy"

    def __init__(self, nan_at: int | None = None) -> None:
        self.nan_at = nan_at
        self.exported: int | None = None

    def build_model(self) -> nn.Module:
        return nn.Linear(4, 1)

    def compute_loss(self, model: nn.Module, step: int, rank: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(1000 * step + rank)
        x = torch.randn(8, 4, generator=gen)
        loss = F.mse_loss(model(x), x.sum(1, keepdim=True))
        if self.nan_at is not None and step >= self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mse": loss.detach()}

    def export(self, model: nn.Module, run_dir: Path, step: int) -> None:
        save_tensors(model.state_dict(), run_dir / "toy.safetensors")
        self.exported = step


def _stage(max_steps: int = 10, keep_last: int = 2, **optim) -> StageConfig:
    return StageConfig(
        optim=OptimConfig(**{"lr": 0.05, "min_lr": 0.001, "warmup_steps": 2, **optim}),
        train=TrainConfig(
            batch_size=8, max_steps=max_steps, checkpoint_every=2, keep_last=keep_last, log_every=1
        ),
    )


def _train(task, stage, run_dir, **kwargs):
    return train(task, stage, run_dir, config_dict={}, progress=False, **kwargs)


def _steps(run_dir: Path) -> list[int]:
    return [int(p.name.split("_")[1]) for p in checkpoint_dirs(run_dir)]


# --------------------------------------------------------------------------- learning rate


def test_learning_rate_warmup_then_cosine_at_known_steps():
    stage = _stage(max_steps=110, lr=1e-3, min_lr=1e-5, warmup_steps=10)
    assert learning_rate(0, stage) == 0.0
    assert learning_rate(5, stage) == pytest.approx(5e-4)
    assert learning_rate(10, stage) == pytest.approx(1e-3)
    assert learning_rate(60, stage) == pytest.approx((1e-3 + 1e-5) / 2)  # half-way: cos = 0
    quarter = 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 0.25))
    assert learning_rate(35, stage) == pytest.approx(quarter)
    assert learning_rate(110, stage) == pytest.approx(1e-5)
    assert learning_rate(500, stage) == pytest.approx(1e-5)  # past the end: stays at min_lr


def test_learning_rate_constant_and_no_warmup():
    constant = _stage(max_steps=100, lr=2e-4, warmup_steps=4, schedule="constant")
    assert learning_rate(2, constant) == pytest.approx(1e-4)
    assert learning_rate(50, constant) == pytest.approx(2e-4)
    assert learning_rate(100, constant) == pytest.approx(2e-4)
    cosine = _stage(max_steps=100, lr=2e-4, min_lr=0.0, warmup_steps=0)
    assert learning_rate(0, cosine) == pytest.approx(2e-4)
    assert learning_rate(100, cosine) == pytest.approx(0.0)


def test_engine_applies_the_schedule_and_logs_metrics(tmp_path):
    stage = _stage(max_steps=6)
    result = _train(ToyTask(), stage, tmp_path)
    assert (result.status, result.step) == ("finished", 6)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for row in rows:
        assert float(row["lr"]) == pytest.approx(learning_rate(int(row["step"]), stage))
        assert float(row["mse"]) == pytest.approx(float(row["loss"]))
    torch.manual_seed(stage.train.seed)
    initial = ToyTask().build_model().weight.detach()
    final = load_file(str(tmp_path / "toy.safetensors"))["weight"]
    target = torch.ones(1, 4)  # it does learn: the weights move towards the solution
    assert (final - target).norm() < (initial - target).norm() - 0.1


# --------------------------------------------------------------------------- faults


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    task = ToyTask(nan_at=5)
    with pytest.raises(TrainingError, match=r"loss became nan at step 5") as info:
        _train(task, _stage(max_steps=10, keep_last=2), tmp_path)
    assert isinstance(info.value, WaveSRError)  # the CLI reports it in one line, exit 2
    assert "step_0000004" in str(info.value)
    assert _steps(tmp_path) == [2, 4]
    weights = load_file(str(checkpoint_dirs(tmp_path)[-1] / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert task.exported is None  # a broken run exports no model


def test_max_minutes_stops_cleanly_with_checkpoint_and_resume_matches(tmp_path):
    stopped = tmp_path / "stopped"
    task = ToyTask()
    result = _train(task, _stage(max_steps=7), stopped, max_minutes=1e-9)
    assert (result.status, result.step) == ("time-limit", 1)
    assert _steps(stopped) == [1]
    assert task.exported == 1 and (stopped / "toy.safetensors").is_file()

    resumed = _train(ToyTask(), _stage(max_steps=7), stopped, resume=True)
    assert (resumed.status, resumed.step) == ("finished", 7)
    straight = tmp_path / "straight"
    _train(ToyTask(), _stage(max_steps=7), straight)
    a, b = load_file(str(stopped / "toy.safetensors")), load_file(str(straight / "toy.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_of_a_finished_run_trains_nothing_and_longer_runs_continue(tmp_path):
    _train(ToyTask(), _stage(max_steps=4), tmp_path)
    before = (checkpoint_dirs(tmp_path)[-1] / "state.json").read_text()
    task = ToyTask()
    result = _train(task, _stage(max_steps=4), tmp_path, resume=True)
    assert (result.status, result.step, task.exported) == ("finished", 4, 4)
    assert (checkpoint_dirs(tmp_path)[-1] / "state.json").read_text() == before
    assert _train(ToyTask(), _stage(max_steps=6), tmp_path, resume=True).step == 6
    assert _steps(tmp_path) == [4, 6]


def test_keep_last_prunes_old_checkpoints(tmp_path):
    _train(ToyTask(), _stage(max_steps=10, keep_last=3), tmp_path)
    assert _steps(tmp_path) == [6, 8, 10]
    assert not any(p.name.startswith(".step_") for p in (tmp_path / "checkpoints").iterdir())


# --------------------------------------------------------------------------- real models


def _ae_args(data: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return [
        "train", "autoencoder", "--config", "tiny", "--data", str(data), "--out", str(out),
        "--quiet", "--set", f"autoencoder_training.train.max_steps={steps}", *extra,
    ]  # fmt: skip


def test_fixed_seed_gives_identical_weights(disc_volume, tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        seed_arg = f"autoencoder_training.train.seed={seed}"
        assert cli.main(_ae_args(disc_volume, tmp_path / name, 3, "--set", seed_arg)) == 0
        runs[name] = load_file(str(tmp_path / name / "autoencoder.safetensors"))
    assert runs["a"].keys() == runs["b"].keys()
    for key in runs["a"]:
        assert torch.equal(runs["a"][key], runs["b"][key]), key
    assert any(not torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def _looks_pickled(path: Path) -> bool:
    head = path.read_bytes()[:4]
    return (
        head[:1] == b"\x80"
        and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        or (
            head == b"PK\x03\x04"  # torch.save's zip container
        )
    )


def test_sigterm_saves_checkpoint_and_exits_cleanly(disc_volume, tmp_path):
    out, steps = tmp_path / "run", 40
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavesr.cli.main", *_ae_args(disc_volume, out, steps)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not checkpoint_dirs(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-800:]
    assert "autoencoder: interrupted at step" in stdout, stdout
    reached = int(stdout.split("interrupted at step ")[1].split(",")[0])
    assert reached < steps
    assert _steps(out)[-1] == reached
    assert load_bundle(out).step == reached

    # Checkpoints are safetensors + JSON only; nothing in the run folder is a pickle.
    for ckpt in checkpoint_dirs(out):
        assert {p.name for p in ckpt.iterdir()} == {
            "model.safetensors", "optimizer.safetensors", "state.json"
        }  # fmt: skip
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    for path in files:
        assert path.suffix not in PICKLE_SUFFIXES, path
        assert not _looks_pickled(path), path


def test_ema_follows_the_model_to_another_device() -> None:
    """EMA shadows are made before accelerate moves the model; update() must follow it."""
    from wavesr.training.engine import EMA

    model = torch.nn.Linear(2, 2)
    ema = EMA(model, 0.5)
    model.to("meta")  # stands for the GPU: a device other than the shadows'
    ema.update(model)
    assert all(v.device.type == "meta" for v in ema.shadow.values())


def test_ema_decay_warms_up_with_the_step() -> None:
    """Step 0 copies the model ((1 + 0) / (10 + 0) = 0.1 decay); late steps use the set decay."""
    from wavesr.training.engine import EMA

    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, 0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=0)
    assert float(ema.shadow["weight"]) == pytest.approx(0.9)
    ema.update(model, step=100_000)  # decay 0.999: moves 0.1% of the remaining gap
    assert float(ema.shadow["weight"]) == pytest.approx(0.9 + 0.1 * 0.001)
