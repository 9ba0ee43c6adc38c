"""Killing training with SIGKILL and resuming it gives the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wavesr.bundle.checkpoint_io import checkpoint_dirs
from wavesr.cli import main as cli

STEPS = 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread, as the subprocesses get: same float reductions, and no
    oversubscription of the small test machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _args(stage: str, data: Path, out: Path, extra: list[str]) -> list[str]:
    key = f"{stage}_training.train"
    return [
        "train", stage, "--config", "tiny", "--data", str(data), "--out", str(out), "--quiet",
        "--set", f"{key}.max_steps={STEPS}", "--set", f"{key}.checkpoint_every=2", *extra,
    ]  # fmt: skip


def _run_inline(args: list[str]) -> None:
    assert cli.main(args) == 0


def _kill_after_first_checkpoint(args: list[str], out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavesr.cli.main", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while not checkpoint_dirs(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"run ended on its own: {err.decode()[-500:]}"
    done = checkpoint_dirs(out)
    assert done and int(done[-1].name.split("_")[1]) < STEPS
    assert not (out / "wavesr.json").exists()  # the killed run never exported


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=key)


def _last_model(run: Path) -> Path:
    return checkpoint_dirs(run)[-1] / "model.safetensors"


@pytest.fixture(scope="module")
def ae_reference(disc_volume, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ae") / "reference"
    _run_inline(_args("autoencoder", disc_volume, out, []))
    return out


def test_autoencoder_resume_after_sigkill_matches_uninterrupted(
    disc_volume, ae_reference, tmp_path
):
    out = tmp_path / "killed"
    args = _args("autoencoder", disc_volume, out, [])
    _kill_after_first_checkpoint(args, out)
    _run_inline([*args, "--resume"])
    assert checkpoint_dirs(out)[-1].name == f"step_{STEPS:07d}"
    _same_weights(out / "autoencoder.safetensors", ae_reference / "autoencoder.safetensors")
    _same_weights(_last_model(out), _last_model(ae_reference))
    ref_opt = load_file(str(checkpoint_dirs(ae_reference)[-1] / "optimizer.safetensors"))
    got_opt = load_file(str(checkpoint_dirs(out)[-1] / "optimizer.safetensors"))
    for key in ref_opt:
        torch.testing.assert_close(got_opt[key], ref_opt[key], rtol=0, atol=1e-6, msg=key)


def test_ldt_resume_after_sigkill_matches_uninterrupted(disc_volume, ae_reference, tmp_path):
    extra = ["--autoencoder", str(ae_reference)]
    reference = tmp_path / "reference"
    _run_inline(_args("ldt", disc_volume, reference, extra))
    out = tmp_path / "killed"
    args = _args("ldt", disc_volume, out, extra)
    _kill_after_first_checkpoint(args, out)
    _run_inline([*args, "--resume"])
    # ldt.safetensors holds the EMA weights (tiny preset: ema_decay 0.9), so this also checks
    # that the EMA state survives the restart.
    _same_weights(out / "ldt.safetensors", reference / "ldt.safetensors")
    _same_weights(_last_model(out), _last_model(reference))
    raw = load_file(str(_last_model(reference)))
    ema = load_file(str(reference / "ldt.safetensors"))
    assert any(not torch.equal(raw[k], ema[k]) for k in ema)  # the export is the EMA


def test_training_into_a_used_folder_without_resume_is_refused(disc_volume, ae_reference, capsys):
    code = cli.main(_args("autoencoder", disc_volume, ae_reference, []))
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "already holds checkpoints" in err and "--resume" in err
    assert len(err.splitlines()) == 1
