"""`wavesr train edsr|pixel-diffusion` bundles, and the baselines as evaluation methods."""

from __future__ import annotations

import json

import pytest
import torch

import wavesr.weights
from wavesr.baselines.edsr import EDSR
from wavesr.baselines.pixel_diffusion import build_unet
from wavesr.bundle.checkpoint_io import load_state_into
from wavesr.bundle.folder import load_bundle
from wavesr.errors import ConfigError
from wavesr.evaluation.methods import MethodContext, build_method, known_methods
from wavesr.model.degrade import Degradation, upsample


@pytest.fixture
def runs(tiny_baselines) -> dict:
    return tiny_baselines


def _ctx(runs, **kwargs) -> MethodContext:
    values = dict(scale=4, degradation=Degradation(), weights=dict(runs), steps=3, seed=1)
    return MethodContext(**{**values, **kwargs})


def test_cli_training_writes_loadable_bundles(runs):
    edsr = load_bundle(runs["edsr"])
    assert edsr.kind == "edsr" and edsr.step == 1
    assert edsr.extras["degradation"] == "bicubic-x4"
    load_state_into(EDSR.from_config(edsr.config.baselines), edsr.tensors["network"], edsr.root)
    diff = load_bundle(runs["pixel-diffusion"])
    assert diff.kind == "pixel-diffusion" and diff.step == 1
    load_state_into(build_unet(diff.config), diff.tensors["network"], diff.root)
    manifest = json.loads((runs["edsr"] / "wavesr.json").read_text())
    assert list(manifest["files"]) == ["network"]


def test_baselines_are_registered():
    assert {"edsr", "pixel-diffusion"} <= set(known_methods())


def test_edsr_method_runs_the_trained_network(runs):
    method = build_method("edsr", _ctx(runs))
    lr = torch.rand(2, 1, 4, 6)
    lr_up = upsample(lr, 4)  # the baseline's training grid (bicubic)
    sr = method(lr, torch.rand(2, 1, 16, 24), torch.zeros_like(lr_up))
    assert method.name == "edsr" and sr.shape == lr_up.shape
    expected = method.network()(lr_up).clamp(0, 1)
    torch.testing.assert_close(sr, expected)
    assert method.info["model_kind"] == "edsr"
    torch.testing.assert_close(method.flops_call(lr_up[:1])(), expected[:1])


def test_pixel_diffusion_method_is_seeded(runs):
    method = build_method("pixel-diffusion", _ctx(runs))
    lr = torch.rand(2, 1, 4, 5)
    lr_up = upsample(lr, 4)
    a = method(lr, lr_up, lr_up)
    b = method(lr, lr_up, torch.zeros_like(lr_up))  # hr is ignored
    assert a.shape == lr_up.shape and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    other = build_method("pixel-diffusion", _ctx(runs, seed=2))(lr, lr_up, lr_up)
    assert not torch.equal(a, other)
    assert method.info["steps"] == 3


def test_scale_kind_and_missing_weights_errors(runs, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="x4, asked for x2"):
        build_method("edsr", _ctx(runs, scale=2))
    swapped = {"edsr": runs["pixel-diffusion"]}
    with pytest.raises(ConfigError, match="needs a 'edsr' bundle"):
        build_method("edsr", _ctx(runs, weights=swapped))
    empty = tmp_path / "no_bundled_weights"
    empty.mkdir()
    monkeypatch.setattr(wavesr.weights, "WEIGHTS_DIR", empty)  # as if none were installed
    with pytest.raises(ConfigError, match="--weights edsr=RUN.*no bundled edsr baseline"):
        build_method("edsr", _ctx(runs, weights={}))
