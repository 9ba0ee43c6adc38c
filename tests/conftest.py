"""Fixtures shared by the whole suite: small synthetic data and one tiny trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import blobs, tiny_train_args

from wavesr.cli.main import main

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    """A folder of two small .npy stacks, valid training data."""
    data = tmp_path_factory.mktemp("train_data")
    for k in range(2):
        np.save(data / f"v{k}.npy", blobs(3, 64, 64, seed=k))
    return data


@pytest.fixture(scope="session")
def disc_volume(tmp_path_factory) -> Path:
    """One .npy stack of three 48x48 striped discs (training data with sharp edges)."""
    yy, xx = np.mgrid[:48, :48]
    disc = ((xx - 24) ** 2 + (yy - 24) ** 2 < 400).astype(np.float32)
    slices = [(np.sin(xx / (3 + i)) * np.cos(yy / 4) + 1) / 2 * disc for i in range(3)]
    path = tmp_path_factory.mktemp("disc_volume") / "vol.npy"
    np.save(path, np.stack(slices).astype(np.float32))
    return path


@pytest.fixture(scope="session")
def tiny_autoencoder(tmp_path_factory, train_data) -> Path:
    """A tiny x4 autoencoder bundle, one training step (seconds)."""
    out = tmp_path_factory.mktemp("tiny_model") / "ae"
    assert main(["train", "autoencoder", *tiny_train_args(train_data), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_model(train_data, tiny_autoencoder) -> Path:
    """A tiny x4 WaveSR bundle (autoencoder + LDT), one training step per stage (seconds)."""
    out = tiny_autoencoder.parent / "ldt"
    ldt = ["train", "ldt", *tiny_train_args(train_data), "--autoencoder", str(tiny_autoencoder)]
    assert main([*ldt, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_through_plane_model(tmp_path_factory, train_data) -> Path:
    """A tiny x4 through-plane bundle (data.degradation=slice-axis), one step per stage."""
    root = tmp_path_factory.mktemp("tiny_through_plane")
    args = [*tiny_train_args(train_data), "--set", "data.degradation=slice-axis"]
    args += ["--set", "autoencoder.lr_condition=bands"]  # as the bundled through-plane model
    assert main(["train", "autoencoder", *args, "--out", str(root / "ae")]) == 0
    ldt = ["train", "ldt", *args, "--autoencoder", str(root / "ae"), "--out", str(root / "ldt")]
    assert main(ldt) == 0
    return root / "ldt"


@pytest.fixture(scope="session")
def tiny_baselines(tmp_path_factory, train_data) -> dict[str, Path]:
    """Tiny x4 EDSR and pixel-diffusion bundles, one training step each, by method name."""
    root = tmp_path_factory.mktemp("tiny_baselines")
    runs = {name: root / name for name in ("edsr", "pixel-diffusion")}
    for name, out in runs.items():
        assert main(["train", name, *tiny_train_args(train_data), "--out", str(out)]) == 0
    return runs


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real MRI of ../shared/data (present in CI, absent in a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present (real-MRI tests run in CI only)")
    return SHARED_DATA
