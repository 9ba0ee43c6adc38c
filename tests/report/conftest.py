"""Runs whose report.html the report tests read: a tiny evaluate, benchmark, sr and
sr --through-plane."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import blobs, phantom
from PIL import Image

from wavesr.cli.main import main

SIZE = 32
AFFINE = np.array([[1.5, 0, 0, -10], [0, 2.0, 0, 5], [0, 0, 3.0, 7], [0, 0, 0, 1]])
THICK_AFFINE = np.array([[1.0, 0, 0, -8], [0, 1.5, 0, 4], [0, 0, 6.0, 2], [0, 0, 0, 1]])


@pytest.fixture(scope="session")
def report_data(tmp_path_factory) -> dict[str, Path]:
    """Two datasets: an .npy volume (5 slices, 32x20 prepared) and 3 PNGs (32x32 prepared)."""
    root = tmp_path_factory.mktemp("report_data")
    rng = np.random.default_rng(0)
    (root / "vol").mkdir()
    np.save(root / "vol" / "v.npy", np.stack([phantom(rng, 40, 28) for _ in range(5)]))
    (root / "png").mkdir()
    for i in range(3):
        img = (phantom(rng, 36, 36) / 1.3 * 255).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "png" / f"s{i}.png")
    return {"vol": root / "vol", "png": root / "png"}


@pytest.fixture(scope="session")
def evaluate_args(report_data) -> Callable[..., list[str]]:
    """`evaluate_args(out, *extra)`: `wavesr evaluate` of bicubic on both datasets into `out`."""

    def args(out: Path, *extra: str) -> list[str]:
        data = [str(report_data["vol"]), str(report_data["png"])]
        options = ["--methods", "bicubic", "--out", str(out), "--size", str(SIZE)]
        return ["evaluate", *data, *options, "--no-fid", "--quiet", *extra]

    return args


@pytest.fixture(scope="session")
def eval_report(tmp_path_factory, evaluate_args) -> Path:
    """The output folder of `wavesr evaluate` (bicubic, 8 slices)."""
    out = tmp_path_factory.mktemp("eval_report") / "out"
    assert main(evaluate_args(out)) == 0
    return out


@pytest.fixture(scope="session")
def bench_report(tmp_path_factory, report_data) -> Path:
    """The output folder of `wavesr benchmark` (bicubic only, one Fig. 3 slice)."""
    out = tmp_path_factory.mktemp("bench_report") / "out"
    args = ["benchmark", str(report_data["vol"]), "--methods", "bicubic", "--out", str(out)]
    args += ["--size", str(SIZE), "--no-fid", "--quiet", "--steps", "1", "--figure-slices", "1"]
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def lr_volume(tmp_path_factory) -> Path:
    """A 12x10x4 NIfTI (1.5 x 2 x 3 mm voxels, axial slices along axis 2)."""
    path = tmp_path_factory.mktemp("report_sr") / "lr.nii.gz"
    slices = blobs(4, 12, 10) * 1000.0
    nib.save(nib.Nifti1Image(np.moveaxis(slices, 0, 2), AFFINE), str(path))
    return path


@pytest.fixture(scope="session")
def sr_report(lr_volume, tiny_model) -> Path:
    """report.html of `wavesr sr --report` on `lr_volume` (beside sr.nii.gz)."""
    out = lr_volume.parent / "out" / "sr.nii.gz"
    args = ["sr", str(lr_volume), "-o", str(out), "--model", str(tiny_model), "--steps", "1"]
    assert main([*args, "--quiet", "--report"]) == 0
    return out.parent / "report.html"


@pytest.fixture(scope="session")
def thick_volume(tmp_path_factory) -> Path:
    """A 16x10x3 NIfTI of thick axial slices (1 x 1.5 x 6 mm voxels, thick axis 2)."""
    path = tmp_path_factory.mktemp("report_tp") / "thick.nii.gz"
    slices = blobs(3, 16, 10, seed=3) * 1000.0
    nib.save(nib.Nifti1Image(np.moveaxis(slices, 0, 2), THICK_AFFINE), str(path))
    return path


@pytest.fixture(scope="session")
def tp_report(thick_volume, tiny_through_plane_model) -> Path:
    """report.html of `wavesr sr --through-plane --report` on `thick_volume` (beside
    iso.nii.gz): 6 mm over 1.25 mm with a x4 model, so 12 slices resampled to 14."""
    out = thick_volume.parent / "out" / "iso.nii.gz"
    args = ["sr", str(thick_volume), "-o", str(out), "--through-plane"]
    args += ["--model", str(tiny_through_plane_model), "--steps", "1", "--quiet", "--report"]
    assert main(args) == 0
    return out.parent / "report.html"
