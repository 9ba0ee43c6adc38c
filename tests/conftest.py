"""Fixtures shared by the whole suite: small synthetic data and one tiny trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wavesr.cli import main

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def blobs(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w) float32 smooth bright blobs on a dark background, in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w].astype(np.float32)
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        r2 = (rng.uniform(0.2, 0.35) * min(h, w)) ** 2
        out.append(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r2) + 0.05 * rng.random((h, w)))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    """A folder of two small .npy stacks, valid training data."""
    data = tmp_path_factory.mktemp("train_data")
    for k in range(2):
        np.save(data / f"v{k}.npy", blobs(3, 64, 64, seed=k))
    return data


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, train_data) -> Path:
    """A tiny x4 WaveSR bundle (autoencoder + LDT), one training step per stage (seconds)."""
    root = tmp_path_factory.mktemp("tiny_model")
    common = ["--config", "tiny", "--data", str(train_data), "--quiet", "--max-steps", "1"]
    assert main(["train", "autoencoder", *common, "--out", str(root / "ae")]) == 0
    ldt = ["train", "ldt", *common, "--autoencoder", str(root / "ae"), "--out", str(root / "ldt")]
    assert main(ldt) == 0
    return root / "ldt"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real MRI of ../shared/data (present in CI, absent in a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present (real-MRI tests run in CI only)")
    return SHARED_DATA
