"""`wavesr train ldt --init-from MODEL`: fine-tuning an LDT keeps its weights and latent scales."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_train_args

from wavesr.bundle.folder import load_bundle
from wavesr.cli.main import main
from wavesr.errors import ConfigError
from wavesr.training.tasks import LDTStandIn


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


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_ldt_stand_in_replaces_the_given_share_of_the_batch(tiny_model, fraction: float):
    bundle = load_bundle(tiny_model)
    stand_in = LDTStandIn(bundle, fraction=fraction)
    stand_in.generator.manual_seed(0)
    cond_channels = bundle.config.autoencoder.latent_channels
    generated = torch.randn(64, bundle.config.ldt.in_channels, 4, 4)
    out = stand_in(torch.randn(64, cond_channels, 4, 4), generated)
    replaced = sum(not torch.equal(o, g) for o, g in zip(out, generated))
    if fraction == 1.0:
        assert replaced == 64
    else:
        assert 20 <= replaced <= 44  # binomial(64, 0.5): outside this range has p < 1e-3


def test_sampled_stand_in_is_the_inference_sample_whatever_the_encoded_latents(tiny_model):
    bundle = load_bundle(tiny_model)
    stand_in = LDTStandIn(bundle, fraction=1.0, mode="sampled", steps=3, temperature=0.0)
    cond_channels = bundle.config.autoencoder.latent_channels
    ll_latent = torch.randn(2, cond_channels, 4, 4)
    first = stand_in(ll_latent, torch.randn(2, bundle.config.ldt.in_channels, 4, 4))
    second = stand_in(ll_latent, torch.randn(2, bundle.config.ldt.in_channels, 4, 4))
    # At temperature 0 the DDIM run is deterministic and never looks at the encoded latents.
    torch.testing.assert_close(first, second)
    calls = []
    stand_in.ldt.register_forward_hook(lambda *_: calls.append(1))
    stand_in(ll_latent, torch.randn(2, bundle.config.ldt.in_channels, 4, 4))
    assert len(calls) == 3  # one LDT call per DDIM step
    with pytest.raises(ConfigError, match="one-step or sampled"):
        LDTStandIn(bundle, mode="ancestral")


def test_robust_fraction_must_be_a_share(train_data, tiny_model, tmp_path: Path, capsys):
    argv = ["train", "autoencoder", *tiny_train_args(train_data), "--init-from", str(tiny_model)]
    robust = ["--freeze-encoder", "--robust-to", str(tiny_model), "--robust-fraction", "1.5"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, *robust, "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "must be in (0, 1]" in capsys.readouterr().err
