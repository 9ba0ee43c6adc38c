"""Weights against their config, from the safetensors headers, before anything is allocated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wavesr.bundle.checkpoint_io import save_tensors
from wavesr.bundle.folder import MANIFEST, load_bundle, sha256_of
from wavesr.bundle.weights_check import (
    AUTOENCODER,
    LDT,
    check_network_size,
    check_training_start,
    check_weights,
    expected_shapes,
    network_of,
)
from wavesr.cli.main import main
from wavesr.config import config_from_dict, load_config
from wavesr.errors import CheckpointError, ConfigError
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.weights import WEIGHTS_DIR

BUNDLES = ("wavesr-cpu-x4", "edsr-cpu-x4", "pixel-diffusion-cpu-x4")


def _linked_copy(name: str, dst: Path, edit=None) -> Path:
    """The bundled model ``name`` in ``dst``: weights linked (not copied), manifest edited."""
    dst.mkdir()
    manifest = json.loads((WEIGHTS_DIR / name / MANIFEST).read_text())
    for entry in manifest["files"].values():
        (dst / entry["file"]).symlink_to(WEIGHTS_DIR / name / entry["file"])
    if edit is not None:
        edit(manifest)
    (dst / MANIFEST).write_text(json.dumps(manifest))
    return dst


def _set(section: str, **values):
    return lambda manifest: manifest["config"][section].update(values)


@pytest.fixture
def no_tensor_reads(monkeypatch):
    """Loading a tensor fails the test: every refusal must come from the headers alone."""
    monkeypatch.setattr(
        "wavesr.bundle.folder.load_tensors", lambda path: pytest.fail(f"read {path}")
    )


@pytest.mark.parametrize("name", BUNDLES)
def test_bundled_models_match_their_configs(name):
    manifest = json.loads((WEIGHTS_DIR / name / MANIFEST).read_text())
    config = config_from_dict(manifest["config"])
    for entry_name, entry in manifest["files"].items():
        network = network_of(manifest["kind"], entry_name)
        assert network is not None
        check_weights(WEIGHTS_DIR / name, network, WEIGHTS_DIR / name / entry["file"], config, "x")


@pytest.mark.parametrize(
    ("name", "edit", "field", "ours", "theirs", "file"),
    [
        ("wavesr-cpu-x4", _set("ldt", hidden_size=384), "ldt.hidden_size", 384, 192, "ldt"),
        ("wavesr-cpu-x4", _set("ldt", hidden_size=4096), "ldt.hidden_size", 4096, 192, "ldt"),
        ("wavesr-cpu-x4", _set("ldt", depth=12), "ldt.depth", 12, 8, "ldt"),
        ("wavesr-cpu-x4", _set("ldt", mlp_ratio=2.0), "ldt.mlp_ratio", 2.0, 4.0, "ldt"),
        (
            "wavesr-cpu-x4",
            _set("ldt", conditioning="concat"),
            "ldt.conditioning",
            "concat",
            "cross-attention",
            "ldt",
        ),
        (
            "wavesr-cpu-x4",
            _set("autoencoder", base_channels=64),
            "autoencoder.base_channels",
            64,
            32,
            "autoencoder",
        ),
        (
            "wavesr-cpu-x4",
            _set("autoencoder", mid_attention=False),
            "autoencoder.mid_attention",
            False,
            True,
            "autoencoder",
        ),
        (
            "edsr-cpu-x4",
            _set("baselines", edsr_blocks=8),
            "baselines.edsr_blocks",
            8,
            16,
            "network",
        ),
        (
            "pixel-diffusion-cpu-x4",
            _set("baselines", unet_channels=64),
            "baselines.unet_channels",
            64,
            48,
            "network",
        ),
    ],
)
def test_a_config_edited_by_hand_names_the_field(
    tmp_path, no_tensor_reads, name, edit, field, ours, theirs, file
):
    bundle = _linked_copy(name, tmp_path / "edited", edit)
    with pytest.raises(CheckpointError) as info:
        load_bundle(bundle)
    assert str(info.value) == (
        f"{bundle}: config and weights disagree: {field} is {ours} in wavesr.json "
        f"but {theirs} in {file}.safetensors"
    )


def test_two_fields_edited_name_a_tensor(tmp_path, no_tensor_reads):
    edit = _set("ldt", hidden_size=256, mlp_ratio=2.0)
    bundle = _linked_copy("wavesr-cpu-x4", tmp_path / "edited", edit)
    with pytest.raises(CheckpointError, match=r"weights do not match the model architecture in "):
        load_bundle(bundle)


def test_a_manifest_pointing_at_the_wrong_file(tmp_path, no_tensor_reads):
    def swap(manifest):
        manifest["files"]["ldt"] = dict(manifest["files"]["autoencoder"])

    bundle = _linked_copy("wavesr-cpu-x4", tmp_path / "swapped", swap)
    with pytest.raises(CheckpointError) as info:
        load_bundle(bundle)
    assert str(info.value) == (
        f"{bundle}: autoencoder.safetensors holds the autoencoder's weights, not the LDT's "
        "(the manifest points at the wrong file)"
    )


def test_a_truncated_weights_header(tmp_path, no_tensor_reads):
    bundle = _linked_copy("wavesr-cpu-x4", tmp_path / "cut")
    raw = (bundle / "ldt.safetensors").read_bytes()[:1000]
    (bundle / "ldt.safetensors").unlink()
    (bundle / "ldt.safetensors").write_bytes(raw)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"]["ldt"]["sha256"] = sha256_of(bundle / "ldt.safetensors")
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"ldt.safetensors: not a readable safetensors file"):
        load_bundle(bundle)


def test_expected_shapes_allocate_nothing():
    config = load_config("paper", ["ldt.hidden_size=4096", "ldt.depth=128", "ldt.num_heads=8"])
    shapes = expected_shapes(LDT, config)  # ~60 GB of float32 if it were real
    assert shapes["x_embedder.weight"][0] == 4096


def test_network_size_is_bounded():
    config = load_config("paper", ["ldt.hidden_size=4096", "ldt.depth=128", "ldt.num_heads=8"])
    with pytest.raises(ConfigError, match=r"the LDT would have [\d,]+ parameters .* above the"):
        check_network_size(LDT, config)
    check_network_size(AUTOENCODER, load_config("paper"))


def test_train_refuses_a_network_too_large_to_build(tmp_path, capsys):
    out = tmp_path / "run"
    overrides = [
        "--set",
        "ldt.hidden_size=4096",
        "--set",
        "ldt.depth=128",
        "--set",
        "ldt.num_heads=8",
    ]
    argv = ["train", "ldt", "--config", "paper", *overrides, "--out", str(out)]
    assert main([*argv, "--autoencoder", str(tmp_path / "ae"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the LDT would have" in err[0], err
    assert not out.exists()


def _run_with_checkpoint(out: Path, config, sub: str = "") -> Path:
    model = FrequencyAutoencoder(config.autoencoder)
    step = out / sub / "checkpoints" / "step_0000001"
    step.mkdir(parents=True)
    save_tensors(model.state_dict(), step / "model.safetensors")
    return step


def test_resume_checks_the_latest_checkpoint_first(tmp_path, capsys):
    step = _run_with_checkpoint(tmp_path / "run", load_config("tiny"))
    config = load_config("tiny", ["autoencoder.base_channels=16"])
    with pytest.raises(CheckpointError) as info:
        check_training_start("autoencoder", config, tmp_path / "run", resume=True)
    assert str(info.value) == (
        f"{step}: config and weights disagree: autoencoder.base_channels is 16 in the config "
        "but 8 in model.safetensors"
    )
    check_training_start("autoencoder", config, tmp_path / "run", resume=False)
    check_training_start("autoencoder", load_config("tiny"), tmp_path / "run", resume=True)
    # The same through the command line: one line, exit 2, the run folder untouched.
    before = sorted(p.name for p in (tmp_path / "run").rglob("*"))
    argv = ["train", "autoencoder", "--config", "tiny", "--set", "autoencoder.base_channels=16"]
    argv += ["--data", str(tmp_path / "none"), "--out", str(tmp_path / "run"), "--resume"]
    assert main(argv) == 2
    assert "autoencoder.base_channels is 16 in the config" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").rglob("*")) == before


def test_resume_of_a_whole_model_checks_each_stage(tmp_path):
    _run_with_checkpoint(tmp_path / "run", load_config("tiny"), "autoencoder")
    config = load_config("tiny", ["autoencoder.layers_per_block=2"])
    with pytest.raises(CheckpointError, match="autoencoder.layers_per_block is 2 in the config"):
        check_training_start("wavesr", config, tmp_path / "run", resume=True)
