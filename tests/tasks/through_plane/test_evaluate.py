"""`wavesr evaluate --through-plane`: thick slices, held-back slices, scores, outputs, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from tqdm.auto import tqdm

import wavesr.weights
from wavesr.cli.main import main
from wavesr.errors import ConfigError
from wavesr.model.degrade import Degradation
from wavesr.tasks.through_plane.evaluate import (
    ThroughPlaneSettings,
    evaluate_through_plane,
    held_back_slices,
    load_volume,
    run_volume,
    sample_slices,
    thick_slices,
)

SHAPE = (24, 24, 16)  # axis 2 is S/I under the RAS affine below
RAS = np.diag([2.0, 2.0, 2.0, 1.0])


def _save(path: Path, volume: np.ndarray, affine: np.ndarray = RAS) -> Path:
    nib.save(nib.Nifti1Image(volume.astype(np.float32), affine), str(path))
    return path


def _along_axis(profile) -> np.ndarray:
    """In-plane ramp (x) plus `profile(j)` along axis 2: every slice non-empty."""
    x, _, j = np.indices(SHAPE).astype(np.float64)
    return 100 * x / (SHAPE[0] - 1) + profile(j)


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = np.indices(SHAPE).astype(np.float64)
    out = np.full(SHAPE, 0.05)
    for _ in range(4):
        c = rng.uniform([5, 5, 3], [19, 19, 13])
        r = rng.uniform(3, 6)
        out += np.exp(-sum((idx[k] - c[k]) ** 2 for k in range(3)) / (2 * r * r))
    return out


def test_sample_slices_are_the_middle_of_each_thick_slice():
    assert sample_slices(8, 4).tolist() == [False, True, True, False] * 2
    assert np.flatnonzero(held_back_slices(16, 8)).tolist() == [
        0,
        1,
        2,
        5,
        6,
        7,
        8,
        9,
        10,
        13,
        14,
        15,
    ]
    assert not held_back_slices(6, 2).any()  # x2: the centre touches both slices


def test_thick_slices_are_the_slice_profile_average_along_the_axis(tmp_path):
    vol = np.random.default_rng(0).random((12, 11, 8)).astype(np.float32)
    box = Degradation("slice-axis", 4, profile="box")
    for axis in range(3):
        v = np.moveaxis(vol, 2, axis)  # 8 voxels along `axis`
        lr = thick_slices(v, axis, box)
        expected = np.moveaxis(vol.reshape(12, 11, 2, 4).mean(axis=3), 2, axis)
        np.testing.assert_allclose(lr, expected, atol=1e-6)


def test_trilinear_is_exact_inside_a_ramp_and_off_by_its_clamping_at_the_ends(tmp_path):
    src = _save(tmp_path / "ramp.nii.gz", _along_axis(lambda j: 3 * j))
    settings = ThroughPlaneSettings(slice_profile="box", device="cpu")
    result = evaluate_through_plane([src], ["trilinear"], settings, progress=False)
    psnr = result.runs[0].scores["trilinear"].psnr
    step = 3 / (100 + 3 * 15)  # the ramp's slope after min-max normalisation
    # Box slices sample the ramp exactly at 4i + 1.5; linear interpolation clamps outside
    # [1.5, 13.5]: slices 0 and 15 are 1.5 steps off, 1 and 14 half a step.
    np.testing.assert_allclose(psnr[[0, 15]], -20 * math.log10(1.5 * step), atol=1e-3)
    np.testing.assert_allclose(psnr[[1, 14]], -20 * math.log10(0.5 * step), atol=1e-3)
    assert (psnr[2:14] > 90).all()
    held = result.metrics["volumes"][0]["methods"]["trilinear"]["held_back"]
    assert held["n_slices"] == 8
    assert held["psnr"] == pytest.approx(np.mean(psnr[held_back_slices(16, 4)]))


def test_bicubic_axis_beats_trilinear_on_a_curved_profile(tmp_path):
    src = _save(tmp_path / "wave.nii.gz", _along_axis(lambda j: 30 * np.sin(2 * np.pi * j / 24)))
    settings = ThroughPlaneSettings(device="cpu")
    result = evaluate_through_plane([src], ["trilinear", "bicubic-axis"], settings, progress=False)
    m = result.metrics["methods"]
    for part in ("held_back", "all"):
        assert m["bicubic-axis"][part]["psnr"] > m["trilinear"][part]["psnr"] + 1
        assert m["bicubic-axis"][part]["ssim"] > m["trilinear"][part]["ssim"]


def test_held_back_scores_leave_the_sample_slices_out(tmp_path):
    vol = load_volume(_save(tmp_path / "b.nii.gz", _blobs(0)), "d", ThroughPlaneSettings())
    deg = Degradation("slice-axis", 4)
    held = held_back_slices(16, 4)

    def off_on_held_back(v, lr):  # exact on the sample slices, 0.1 off (unclamped) elsewhere
        return v.hr + held[None, None, :] * np.where(v.hr > 0.9, -0.1, 0.1)

    run, _, _ = run_volume(vol, deg, {"m": off_on_held_back}, tqdm(disable=True))
    scores = run.entry()["methods"]["m"]
    assert scores["held_back"]["psnr"] == pytest.approx(20.0, abs=1e-4)
    assert scores["all"]["psnr"] is None  # inf: the sample slices are exact
    assert (scores["held_back"]["n_slices"], scores["all"]["n_slices"]) == (8, 16)


def test_cli_writes_metrics_report_and_figure(tmp_path, tiny_model, tiny_through_plane_model):
    data = tmp_path / "vols"
    data.mkdir()
    for k in range(3):
        _save(data / f"v{k}.nii.gz", 1000 * _blobs(k))
    out = tmp_path / "eval"
    methods = "trilinear,bicubic-axis,wavesr,wavesr-inplane,wavesr-adapted"
    argv = ["evaluate", str(data), "--through-plane", "--methods", methods, "--out", str(out)]
    argv += ["--model", str(tiny_through_plane_model), "--max-volumes", "2", "--steps", "1"]
    argv += ["--weights", f"wavesr-inplane={tiny_model}", "--adapt-minutes", "0.001", "--quiet"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "report.md",
        "through_plane.png",
    ]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["settings"]["degradation"] == "slice-axis-x4"
    assert doc["settings"]["models"]["wavesr-inplane"] == str(tiny_model)
    assert [v["name"] for v in doc["volumes"]] == ["v0.nii.gz", "v2.nii.gz"]
    for v in doc["volumes"]:
        assert (v["axis"], v["n_slices"], v["n_held_back"]) == (2, 16, 8)
        assert v["methods"]["wavesr-adapted"]["adaptation"]["steps"] >= 1
        for m in v["methods"].values():
            assert m["held_back"]["n_slices"] == 8 and len(m["all"]["band_psnr"]) == 10
    for m in doc["methods"].values():
        assert m["held_back"]["n_volumes"] == 2 and 0 < m["held_back"]["ssim"] <= 1
    report = (out / "report.md").read_text()
    assert "held-back" in report and "](through_plane.png)" in report
    assert "| v2.nii.gz | wavesr-adapted |" in report


def test_self_ensemble_reaches_the_model_methods(tmp_path, tiny_through_plane_model):
    vol = _save(tmp_path / "v.nii.gz", 1000 * _blobs(3))
    scores = {}
    for size in (1, 2):
        settings = ThroughPlaneSettings(steps=1, self_ensemble=size)
        result = evaluate_through_plane(
            [vol], ["wavesr"], settings, model=tiny_through_plane_model, progress=False
        )
        assert result.metrics["settings"]["self_ensemble"] == size
        scores[size] = result.metrics["methods"]["wavesr"]["held_back"]["psnr"]
    # An untrained model is not flip-equivariant, so the option changes its output (that the
    # flips are undone is tested in test_self_ensemble.py and by the sr CLI test).
    assert scores[1] != scores[2]
    with pytest.raises(ConfigError, match="--self-ensemble must be one of"):
        ThroughPlaneSettings(self_ensemble=3).validate()


def _fails(argv: list[str], out: Path, capsys, message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, capsys, monkeypatch):
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for k in range(2):
        Image.fromarray(np.full((24, 24), 60 * k, np.uint8)).save(pngs / f"{k}.png")
    thin = _save(tmp_path / "thin.nii.gz", _blobs(0)[:, :, :7])
    ok = _save(tmp_path / "ok.nii.gz", _blobs(1))
    out = tmp_path / "eval"
    tp = ["--through-plane", "--out", str(out), "--quiet"]
    _fails(["evaluate", str(pngs), *tp, "--methods", "trilinear"], out, capsys, "a 2-D image")
    _fails(["evaluate", str(thin), *tp, "--methods", "trilinear"], out, capsys, "7 slices along")
    _fails(["evaluate", str(ok), *tp, "--methods", "bicubic"], out, capsys, "unknown through")
    _fails(["evaluate", str(ok), *tp, "--max-slices", "3"], out, capsys, "--max-slices is not")
    _fails(["evaluate", str(ok), "--out", str(out), "--axis", "1"], out, capsys, "--axis is an")
    _fails(["evaluate", str(ok), "--out", str(out), "--self-ensemble", "2"], out, capsys, "--self")
    no_model = [*tp, "--methods", "bicubic-axis", "--self-ensemble", "2"]
    _fails(["evaluate", str(ok), *no_model], out, capsys, "--self-ensemble averages a model")
    monkeypatch.setattr(wavesr.weights, "WEIGHTS_DIR", tmp_path)
    _fails(["evaluate", str(ok), *tp, "--methods", "wavesr"], out, capsys, "no through-plane model")
