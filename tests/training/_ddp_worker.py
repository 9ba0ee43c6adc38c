"""Worker for test_ddp.py, run under ``torchrun --nproc_per_node 2``.

Trains the tiny autoencoder for a few steps through the engine (which builds its own
Accelerator from the torchrun environment) and saves, per rank, the final weights, the
initial weights and the class name of the model the engine handed to the task. Then two toy
runs where only rank 1 hits the time limit / a NaN loss: both ranks must stop together.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from wavesr.config import OptimConfig, StageConfig, TrainConfig, load_config
from wavesr.data.bank import SliceBank
from wavesr.training.engine import TrainingError, shutdown_distributed, train
from wavesr.training.tasks import AutoencoderTask


class RecordingTask(AutoencoderTask):
    """The autoencoder task, remembering the (wrapped) model the engine trains."""

    seen: torch.nn.Module | None = None

    def compute_loss(self, model, step, rank):
        self.seen = model
        return super().compute_loss(model, step, rank)


class ToyTask:
    """Linear regression; rank 1 alone sees a NaN loss from step ``nan_at`` on."""

    name = "toy"

    def __init__(self, nan_at: int | None = None) -> None:
        self.nan_at = nan_at

    def build_model(self) -> nn.Module:
        return nn.Linear(4, 1)

    def compute_loss(self, model, step, rank):
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(100 * step + rank))
        loss = F.mse_loss(model(x), x.sum(1, keepdim=True))
        if self.nan_at is not None and rank == 1 and step >= self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss}

    def export(self, model, run_dir, step) -> None:
        pass


def toy_runs(out: Path, rank: int) -> dict:
    stage = StageConfig(
        optim=OptimConfig(lr=0.01), train=TrainConfig(max_steps=5, checkpoint_every=2, log_every=1)
    )
    timed = train(
        ToyTask(), stage, out / "toy_time", config_dict={}, progress=False,
        max_minutes=1e-9 if rank == 1 else None,
    )  # fmt: skip
    try:
        train(ToyTask(nan_at=3), stage, out / "toy_nan", config_dict={}, progress=False)
        nan_message = "no error"
    except TrainingError as exc:
        nan_message = str(exc)
    return {"time_limit": [timed.status, timed.step], "nan": nan_message}


def main(data: str, out: str, results: str, max_steps: int) -> None:
    config = load_config(
        "tiny",
        [
            f"autoencoder_training.train.max_steps={max_steps}",
            f"autoencoder_training.train.checkpoint_every={max_steps}",
        ],
    )
    config.data.paths = [data]
    bank = SliceBank.from_paths(config.data.paths, config.data, progress=False)
    task = RecordingTask(config, bank)
    torch.manual_seed(config.autoencoder_training.train.seed)
    initial = task.build_model().state_dict()
    result = train(
        task, config.autoencoder_training, Path(out), config_dict=config.to_dict(), progress=False
    )
    model = task.seen
    inner = model.module if hasattr(model, "module") else model
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    root = Path(results)
    save_file(
        {k: v.contiguous() for k, v in inner.state_dict().items()},
        root / f"final_{rank}.safetensors",
    )
    save_file({k: v.contiguous() for k, v in initial.items()}, root / f"initial_{rank}.safetensors")
    info = {"wrapper": type(model).__name__, "world": world, "step": result.step}
    info.update(toy_runs(Path(out), rank))
    (root / f"info_{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
    finally:
        shutdown_distributed()
