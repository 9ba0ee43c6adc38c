"""The bundled models: checksums verified at load, and they super-resolve a slice."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from wavesr.bundle import load_bundle, sha256_of
from wavesr.errors import CheckpointError
from wavesr.pipeline import WaveSRPipeline
from wavesr.weights import baseline_dir, default_model_dir


def test_default_model_checksums_match_the_manifest() -> None:
    root = default_model_dir()
    manifest = json.loads((root / "wavesr.json").read_text())
    assert set(manifest["files"]) == {"autoencoder", "ldt"}
    for entry in manifest["files"].values():
        assert sha256_of(root / entry["file"]) == entry["sha256"]
    bundle = load_bundle(root)
    assert bundle.kind == "wavesr" and bundle.config.data.scale == 4


def test_default_model_super_resolves_a_small_slice() -> None:
    pipeline = WaveSRPipeline.from_pretrained(default_model_dir())
    y, x = torch.meshgrid(torch.linspace(-1, 1, 12), torch.linspace(-1, 1, 10), indexing="ij")
    lr = ((x**2 + y**2) < 0.6).float()[None, None] * 0.8
    sr = pipeline.super_resolve(lr, steps=2, seed=0)
    assert sr.shape == (1, 1, 48, 40)
    assert sr.min() >= 0 and sr.max() <= 1
    # inside the disc is brighter than outside: the model reproduces the content
    assert sr[0, 0, 20:28, 16:24].mean() > sr[0, 0, :4, :4].mean() + 0.5


def test_a_changed_weight_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(default_model_dir(), copy)
    with open(copy / "ldt.safetensors", "r+b") as handle:
        handle.seek(-8, 2)
        handle.write(b"\x00" * 8)
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_bundle(copy)


@pytest.mark.parametrize("name", ["edsr", "pixel-diffusion"])
def test_bundled_baselines_load(name: str) -> None:
    bundle = load_bundle(baseline_dir(name))
    assert bundle.kind == name and bundle.config.data.scale == 4
