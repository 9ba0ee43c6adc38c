"""`wavesr train ldt --init-from MODEL`: fine-tuning an LDT keeps its weights and latent scales."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import tiny_train_args

from wavesr.bundle import load_bundle
from wavesr.cli import main


def test_ldt_init_from_starts_at_the_given_weights(
    train_data, tiny_autoencoder, tiny_model, tmp_path
):
    out = tmp_path / "ft"
    argv = ["train", "ldt", *tiny_train_args(train_data), "--autoencoder", str(tiny_autoencoder)]
    # A negligible learning rate: the exported weights must equal the starting ones.
    still = ["--set", "ldt_training.optim.lr=1e-30", "--set", "ldt_training.optim.min_lr=1e-30"]
    assert main([*argv, *still, "--init-from", str(tiny_model), "--out", str(out)]) == 0
    start, tuned = load_bundle(tiny_model), load_bundle(out)
    assert tuned.extras["hf_scale"] == start.extras["hf_scale"]
    assert tuned.extras["cond_scale"] == start.extras["cond_scale"]
    for name, value in start.tensors["ldt"].items():
        torch.testing.assert_close(tuned.tensors["ldt"][name], value)


def test_ldt_init_from_needs_ldt_weights(train_data, tiny_autoencoder, tmp_path: Path, capsys):
    argv = ["train", "ldt", *tiny_train_args(train_data), "--autoencoder", str(tiny_autoencoder)]
    code = main([*argv, "--init-from", str(tiny_autoencoder), "--out", str(tmp_path / "x")])
    assert code == 2
    assert "holds no LDT weights" in capsys.readouterr().err
