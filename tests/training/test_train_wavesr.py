"""`wavesr train wavesr`: both stages, validation, the bundle in the run folder, resume."""

from __future__ import annotations

import csv

import torch
from helpers import tiny_train_args

from wavesr.bundle.folder import load_bundle
from wavesr.cli.main import main


def test_train_wavesr_runs_both_stages_and_writes_the_bundle(train_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "wavesr", *tiny_train_args(train_data), "--out", str(out)]
    valid = [
        "--set",
        "ldt_training.train.validate_every=1",
        "--set",
        "diffusion.latent_scaling=per-channel",
    ]
    assert main([*args, *valid]) == 0
    bundle = load_bundle(out)
    assert bundle.kind == "wavesr" and {"autoencoder", "ldt"} <= set(bundle.tensors)
    assert len(bundle.extras["hf_shift"]) == bundle.config.ldt.in_channels
    assert (out / "autoencoder" / "wavesr.json").is_file() and (
        out / "ldt" / "validation.png"
    ).is_file()
    rows = list(csv.DictReader((out / "ldt" / "metrics.csv").open()))
    assert any(r.get("val_r2_mean") for r in rows)
    assert "validation R^2 per band" in capsys.readouterr().out
    # --resume of a finished run trains nothing more and keeps the same weights.
    before = (out / "ldt.safetensors").read_bytes()
    assert main([*args, *valid, "--resume"]) == 0
    assert (out / "ldt.safetensors").read_bytes() == before
    assert load_bundle(out).step == bundle.step


def test_train_wavesr_refuses_a_used_run_folder_without_resume(train_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "wavesr", *tiny_train_args(train_data), "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err


def test_train_wavesr_robust_decoder_stage_fine_tunes_only_the_decoder(train_data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "wavesr", *tiny_train_args(train_data), "--out", str(out)]
    args += ["--set", "autoencoder.condition_dropout=0.5"]
    assert main([*args, "--set", "wavesr_training.robust_decoder=true"]) == 0
    bundle, ldt_run = load_bundle(out), load_bundle(out / "ldt")
    decoder_run = load_bundle(out / "decoder")
    # condition dropout shapes stage 1 only; the stage-3 decoder always sees the LR
    assert load_bundle(out / "autoencoder").config.autoencoder.condition_dropout == 0.5
    assert decoder_run.config.autoencoder.condition_dropout == 0.0
    ae, before = bundle.tensors["autoencoder"], ldt_run.tensors["autoencoder"]
    encoder = [k for k in ae if k.startswith("encoder.")]
    decoder = [k for k in ae if k.startswith("decoder.")]
    assert encoder and decoder
    assert all(torch.equal(ae[k], before[k]) for k in encoder)
    assert any(not torch.equal(ae[k], before[k]) for k in decoder)
    assert all(torch.equal(ae[k], decoder_run.tensors["autoencoder"][k]) for k in ae)
    assert all(torch.equal(v, ldt_run.tensors["ldt"][k]) for k, v in bundle.tensors["ldt"].items())
    assert bundle.extras["hf_scale"] == ldt_run.extras["hf_scale"]
    # stage 3 resumes like the others: nothing is trained again
    saved = (out / "autoencoder.safetensors").read_bytes()
    assert main([*args, "--set", "wavesr_training.robust_decoder=true", "--resume"]) == 0
    assert (out / "autoencoder.safetensors").read_bytes() == saved


def test_train_wavesr_init_from_fine_tunes_a_model_on_the_random_mix(
    train_data, tiny_model, tmp_path
):
    """--init-from starts both stages from a bundle (its LDT's latent scales kept);
    --freeze-encoder keeps its encoder, so that its LDT stays valid."""
    out = tmp_path / "run"
    args = ["train", "wavesr", *tiny_train_args(train_data), "--out", str(out)]
    args += ["--init-from", str(tiny_model), "--freeze-encoder"]
    assert main([*args, "--set", "data.degradation=random"]) == 0
    init, tuned = load_bundle(tiny_model), load_bundle(out)
    assert tuned.config.data.degradation == "random"
    old_ae, new_ae = init.tensors["autoencoder"], tuned.tensors["autoencoder"]
    encoder = [k for k in old_ae if k.startswith("encoder.")]
    decoder = [k for k in old_ae if k.startswith("decoder.")]
    assert encoder and all(torch.equal(old_ae[k], new_ae[k]) for k in encoder)
    assert any(not torch.equal(old_ae[k], new_ae[k]) for k in decoder)  # one step trained it
    assert init.extras["hf_scale"] == tuned.extras["hf_scale"]
