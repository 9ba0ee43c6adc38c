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


def test_robust_decoder_fine_tuning_keeps_the_encoder(train_data, tiny_model, tmp_path: Path):
    """`--robust-to MODEL` trains the decoder on LDT-predicted latents; the encoder is unchanged."""
    out = tmp_path / "robust"
    argv = ["train", "autoencoder", *tiny_train_args(train_data), "--max-steps", "2"]
    tuned_args = [
        "--init-from",
        str(tiny_model),
        "--freeze-encoder",
        "--robust-to",
        str(tiny_model),
    ]
    assert main([*argv, *tuned_args, "--out", str(out)]) == 0
    start, tuned = load_bundle(tiny_model).tensors["autoencoder"], load_bundle(out)
    changed = 0
    for name, value in tuned.tensors["autoencoder"].items():
        if name.startswith("encoder."):
            torch.testing.assert_close(value, start[name])
        else:
            changed += int(not torch.equal(value, start[name]))
    assert changed > 0  # the decoder did train


def test_robust_to_needs_a_frozen_encoder(train_data, tiny_model, tmp_path: Path, capsys):
    argv = ["train", "autoencoder", *tiny_train_args(train_data), "--init-from", str(tiny_model)]
    code = main([*argv, "--robust-to", str(tiny_model), "--out", str(tmp_path / "x")])
    assert code == 2
    assert "--robust-to needs --freeze-encoder" in capsys.readouterr().err
