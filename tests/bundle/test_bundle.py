"""Model bundles: manifest + safetensors round trip, SHA-256 verification, missing pieces."""

from __future__ import annotations

import json

import pytest
import torch

from wavesr.bundle.folder import MANIFEST, load_bundle, save_bundle, sha256_of
from wavesr.config import load_config
from wavesr.errors import CheckpointError
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.transformer import LatentDiffusionTransformer


def _networks() -> dict[str, dict[str, torch.Tensor]]:
    """The tiny preset's networks (the bundle's config must build exactly these tensors)."""
    config = load_config("tiny")
    torch.manual_seed(0)
    return {
        "autoencoder": FrequencyAutoencoder(config.autoencoder).state_dict(),
        "ldt": LatentDiffusionTransformer(config.ldt).state_dict(),
    }


@pytest.fixture()
def bundle_dir(tmp_path):
    config = load_config("tiny", ["data.crop=64"])
    save_bundle(tmp_path, "wavesr", config, _networks(), extras={"hf_scale": 1.25}, step=42)
    return tmp_path


def test_round_trip(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert (bundle.kind, bundle.step, bundle.extras) == ("wavesr", 42, {"hf_scale": 1.25})
    assert bundle.config.to_dict() == load_config("tiny", ["data.crop=64"]).to_dict()
    assert bundle.root == bundle_dir
    expected = _networks()
    assert bundle.tensors.keys() == expected.keys()
    for name, state in expected.items():
        assert bundle.tensors[name].keys() == state.keys()
        for key, value in state.items():
            got = bundle.tensors[name][key]
            assert got.dtype == value.dtype and torch.equal(got, value)
    # The manifest itself may be passed instead of the folder.
    assert load_bundle(bundle_dir / MANIFEST).step == 42


def test_manifest_records_each_files_sha256(bundle_dir):
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    assert manifest["format"] == "wavesr-bundle/1"
    for name in ("autoencoder", "ldt"):
        entry = manifest["files"][name]
        assert entry["file"] == f"{name}.safetensors"
        assert entry["sha256"] == sha256_of(bundle_dir / entry["file"])
    files = sorted(p.name for p in bundle_dir.iterdir())
    assert files == sorted(["autoencoder.safetensors", "ldt.safetensors", MANIFEST])


def test_half_precision_export_keeps_integer_tensors(tmp_path):
    networks = {"autoencoder": _networks()["autoencoder"], "counters": {"steps": torch.arange(3)}}
    save_bundle(tmp_path, "autoencoder", load_config("tiny"), networks, dtype=torch.float16)
    tensors = load_bundle(tmp_path).tensors
    weight = tensors["autoencoder"]["encoder.conv_in.weight"]
    assert weight.dtype == torch.float16
    assert tensors["counters"]["steps"].dtype == torch.int64
    torch.testing.assert_close(
        weight.float(), networks["autoencoder"]["encoder.conv_in.weight"], atol=1e-3, rtol=1e-3
    )


def test_sha256_mismatch_names_the_file(bundle_dir):
    path = bundle_dir / "ldt.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor value: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch for ldt.safetensors") as info:
        load_bundle(bundle_dir)
    assert info.value.path == str(path)
    changed, original = load_bundle(bundle_dir, verify=False).tensors["ldt"], _networks()["ldt"]
    assert any(not torch.equal(changed[k], original[k]) for k in original)


def test_missing_manifest(tmp_path):
    (tmp_path / "autoencoder.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"no {MANIFEST}") as info:
        load_bundle(tmp_path)
    assert info.value.path == str(tmp_path)


def test_missing_weights_file_is_named(bundle_dir):
    (bundle_dir / "autoencoder.safetensors").unlink()
    with pytest.raises(CheckpointError, match="autoencoder.safetensors"):
        load_bundle(bundle_dir)


def test_bad_manifest_content(bundle_dir):
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["config"]["data"]["scale"] = 3
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="invalid config in bundle"):
        load_bundle(bundle_dir)
    manifest["format"] = "something-else/9"
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="unknown bundle format"):
        load_bundle(bundle_dir)


def test_config_edited_against_its_weights_is_refused_before_loading(bundle_dir, monkeypatch):
    """The config must build exactly the tensors the headers list; no tensor is read first."""
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["config"]["ldt"]["hidden_size"] = 64
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(
        "wavesr.bundle.folder.load_tensors", lambda path: pytest.fail(f"read {path}")
    )
    with pytest.raises(CheckpointError) as info:
        load_bundle(bundle_dir)
    assert str(info.value) == (
        f"{bundle_dir}: config and weights disagree: ldt.hidden_size is 64 in wavesr.json "
        "but 32 in ldt.safetensors"
    )
