"""Self-supervised decoder adaptation (`sr --through-plane --adapt-minutes`)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from wavesr.bundle.folder import load_pipeline
from wavesr.cli.main import main
from wavesr.errors import ConfigError
from wavesr.tasks.self_supervised import (
    adapt_decoder,
    adaptation_config,
    check_adapt_minutes,
    in_plane_slices,
    kept_weights,
)


def _volume(shape=(32, 32, 6), seed: int = 0) -> np.ndarray:
    """Smooth blobs, bright enough in every slice along axis 2."""
    rng = np.random.default_rng(seed)
    idx = np.indices(shape).astype(np.float64)
    out = np.full(shape, 10.0)
    for _ in range(3):
        c = rng.uniform(0.3, 0.7, 3) * np.array(shape)
        out += 100 * np.exp(-((idx[0] - c[0]) ** 2 + (idx[1] - c[1]) ** 2) / 60)
    return out.astype(np.float32)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_in_plane_slices_are_normalised_and_also_transposed():
    vol = _volume((32, 24, 5))
    slices = in_plane_slices(vol, 2, "slice-minmax")
    assert len(slices) == 10
    first = vol[:, :, 0]
    np.testing.assert_allclose(slices[0], (first - first.min()) / np.ptp(first), atol=1e-6)
    assert slices[0].shape == (32, 24) and slices[1].shape == (24, 32)
    np.testing.assert_array_equal(slices[1], slices[0].T)


def test_adaptation_config_thins_rows_and_keeps_the_learning_rate(tiny_model):
    pipe = load_pipeline(tiny_model)  # an in-plane (bicubic) model
    config = adaptation_config(pipe.config, 7)
    assert config.data.degradation == "slice-axis" and config.data.scale == 4
    train = config.autoencoder_training
    assert (train.train.max_steps, train.train.checkpoint_every) == (7, 7)
    assert train.optim.schedule == "constant"
    assert pipe.config.data.degradation == "bicubic"  # the model's own config is untouched


def test_adapting_changes_only_the_decoder(tiny_through_plane_model):
    pipe = load_pipeline(tiny_through_plane_model)
    before, ldt_before = _state(pipe.autoencoder), _state(pipe.ldt)
    done = adapt_decoder(pipe, _volume(), 2, minutes=10, max_steps=2, progress=False)
    assert (done.steps, done.slices) == (2, 12)
    after = pipe.autoencoder.state_dict()
    encoder = [k for k in before if k.startswith("encoder.")]
    others = [k for k in before if not k.startswith("encoder.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in others)
    assert all(torch.equal(v, pipe.ldt.state_dict()[k]) for k, v in ldt_before.items())


def test_kept_weights_restores_the_model():
    net = torch.nn.Linear(3, 2)
    before = _state(net)
    with kept_weights(net):
        torch.nn.init.zeros_(net.weight)
    assert torch.equal(net.weight, before["weight"])


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "2"])
def test_adapt_minutes_must_be_a_finite_number_at_least_0(bad):
    with pytest.raises(ConfigError, match="--adapt-minutes"):
        check_adapt_minutes(bad)
    assert check_adapt_minutes(0) == 0.0


def _thick(path: Path) -> Path:
    nib.save(nib.Nifti1Image(_volume(), np.diag([1.0, 1.0, 4.0, 1.0])), str(path))
    return path


def test_cli_adapts_then_super_resolves(tmp_path, capsys, tiny_through_plane_model):
    src, out = _thick(tmp_path / "thick.nii.gz"), tmp_path / "iso.nii.gz"
    argv = ["sr", str(src), "-o", str(out), "--through-plane", "--model"]
    argv += [str(tiny_through_plane_model), "--steps", "1", "--stacks", "1", "--quiet"]
    assert main([*argv, "--adapt-minutes", "1e-6"]) == 0
    assert nib.load(str(out)).shape == (32, 32, 24)
    assert "decoder adapted on 12 in-plane slices: 1 steps" in capsys.readouterr().out


def test_cli_refuses_bad_adapt_minutes_with_exit_2(tmp_path, capsys):
    src, out = _thick(tmp_path / "thick.nii.gz"), tmp_path / "iso.nii.gz"
    for extra, message in (
        (["--through-plane", "--adapt-minutes", "-1"], "--adapt-minutes must be a finite"),
        (["--adapt-minutes", "1"], "--adapt-minutes is an option of --through-plane"),
    ):
        assert main(["sr", str(src), "-o", str(out), *extra, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not out.exists()
