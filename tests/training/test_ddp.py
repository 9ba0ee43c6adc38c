"""Two CPU processes (torchrun, gloo) train the tiny autoencoder in DDP and stay in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TORCHRUN = Path(sys.executable).parent / "torchrun"
WORKER = Path(__file__).with_name("_ddp_worker.py")


def _skip_reason() -> str | None:
    if not torch.distributed.is_available():
        return "torch.distributed is not available"
    if not torch.distributed.is_gloo_available():
        return "the gloo backend is not available"
    if not TORCHRUN.is_file():
        return f"torchrun not found at {TORCHRUN}"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def test_two_process_ddp_keeps_ranks_identical(disc_volume, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    steps = 3
    command = [
        str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(WORKER),
        str(disc_volume), str(tmp_path / "run"), str(results), str(steps),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]

    infos = [json.loads((results / f"info_{rank}.json").read_text()) for rank in (0, 1)]
    for info in infos:
        assert (info["wrapper"], info["world"], info["step"]) == (
            "DistributedDataParallel",
            2,
            steps,
        )
        # Only rank 1 hit the time limit / a NaN loss; both ranks stopped at the same step.
        assert info["time_limit"] == ["time-limit", 1]
        assert "at step 3" in info["nan"] and "step_0000002" in info["nan"]
    assert "non-finite on another process" in infos[0]["nan"]
    assert "loss became nan" in infos[1]["nan"]
    final = [load_file(str(results / f"final_{rank}.safetensors")) for rank in (0, 1)]
    initial = load_file(str(results / "initial_0.safetensors"))
    assert final[0].keys() == final[1].keys() == initial.keys()
    for key in final[0]:
        assert torch.equal(final[0][key], final[1][key]), key
    changed = [k for k in initial if not torch.equal(initial[k], final[0][k])]
    assert len(changed) > len(initial) // 2  # training moved the weights
    # Only the main process writes the run folder.
    assert (tmp_path / "run" / "wavesr.json").is_file()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == [f"step_{steps:07d}"]
