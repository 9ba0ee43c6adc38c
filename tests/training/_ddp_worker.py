"""Worker for test_ddp.py, run under ``torchrun --nproc_per_node 2``.

Trains the tiny autoencoder for a few steps through the engine (which builds its own
Accelerator from the torchrun environment) and saves, per rank, the final weights, the
initial weights and the class name of the model the engine handed to the task.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from wavesr.config import load_config
from wavesr.data.bank import SliceBank
from wavesr.training.engine import train
from wavesr.training.tasks import AutoencoderTask


class RecordingTask(AutoencoderTask):
    """The autoencoder task, remembering the (wrapped) model the engine trains."""

    seen: torch.nn.Module | None = None

    def compute_loss(self, model, step, rank):
        self.seen = model
        return super().compute_loss(model, step, rank)


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
    save_file({k: v.contiguous() for k, v in inner.state_dict().items()}, root / f"final_{rank}.safetensors")
    save_file({k: v.contiguous() for k, v in initial.items()}, root / f"initial_{rank}.safetensors")
    info = {"wrapper": type(model).__name__, "world": world, "step": result.step}
    (root / f"info_{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
