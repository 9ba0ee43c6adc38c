from pathlib import Path

import torch

from wavesr.bundle.folder import load_bundle
from wavesr.cli.main import main


def _finetune(tiny_model: Path, train_data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "train",
            "autoencoder",
            "--config",
            "tiny",
            "--data",
            str(train_data),
            "--quiet",
            "--max-steps",
            "2",
            "--init-from",
            str(tiny_model),
            "--out",
            str(out),
            "--set",
            "autoencoder.final_layers=3",
            *extra,
        ]
    )


def test_decoder_finetune_keeps_encoder_and_exports(tiny_model, train_data, tmp_path):
    assert _finetune(tiny_model, train_data, tmp_path / "dec", "--freeze-encoder") == 0
    before = load_bundle(tiny_model).tensors["autoencoder"]
    after = load_bundle(tmp_path / "dec").tensors["autoencoder"]
    enc = [k for k in before if k.startswith("encoder.")]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)
    assert any(k.startswith("final.refine.") for k in after)  # the grown final block
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    out = tmp_path / "model"
    args = ["export", "--ldt", str(tiny_model), "--autoencoder", str(tmp_path / "dec")]
    assert main([*args, "--out", str(out), "--fp16"]) == 0
    bundle = load_bundle(out)
    assert bundle.config.autoencoder.final_layers == 3
    assert bundle.tensors["ldt"]["x_embedder.weight"].dtype == torch.float16
    assert bundle.extras["hf_scale"] == load_bundle(tiny_model).extras["hf_scale"]
    sr = tmp_path / "sr.npy"
    import numpy as np

    np.save(tmp_path / "lr.npy", np.random.default_rng(0).random((1, 12, 12), dtype=np.float32))
    assert (
        main(
            [
                "sr",
                str(tmp_path / "lr.npy"),
                "-o",
                str(sr),
                "--model",
                str(out),
                "--steps",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert np.load(sr).shape == (1, 48, 48)


def test_export_refuses_a_different_encoder(tiny_model, train_data, tmp_path, capsys):
    assert _finetune(tiny_model, train_data, tmp_path / "dec") == 0  # encoder not frozen
    args = ["export", "--ldt", str(tiny_model), "--autoencoder", str(tmp_path / "dec")]
    assert main([*args, "--out", str(tmp_path / "model")]) == 2
    assert "encoder differs" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_freeze_encoder_needs_init_from(train_data, tmp_path, capsys):
    code = main(
        [
            "train",
            "autoencoder",
            "--config",
            "tiny",
            "--data",
            str(train_data),
            "--out",
            str(tmp_path / "x"),
            "--freeze-encoder",
            "--quiet",
        ]
    )
    assert code == 2 and "--init-from" in capsys.readouterr().err


def test_export_sets_the_default_temperature(tiny_model, tmp_path, capsys):
    out = tmp_path / "model"
    assert (
        main(["export", "--ldt", str(tiny_model), "--out", str(out), "--temperature", "0.5"]) == 0
    )
    assert load_bundle(out).config.diffusion.temperature == 0.5
    bad = ["export", "--ldt", str(tiny_model), "--out", str(tmp_path / "bad"), "--temperature", "2"]
    assert main(bad) == 2
    assert "temperature must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_export_sets_inference_defaults_and_refuses_training_settings(tiny_model, tmp_path, capsys):
    out = tmp_path / "model"
    argv = ["export", "--ldt", str(tiny_model), "--out", str(out)]
    sets = ["--set", "diffusion.tile_window=12", "--set", "diffusion.sample_steps=3"]
    assert main([*argv, *sets]) == 0
    diffusion = load_bundle(out).config.diffusion
    assert (diffusion.tile_window, diffusion.sample_steps) == (12, 3)
    for key in ("diffusion.predict=x0", "ldt.depth=1"):
        bad = ["export", "--ldt", str(tiny_model), "--out", str(tmp_path / "bad"), "--set", key]
        assert main(bad) == 2
        assert "only inference settings" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
