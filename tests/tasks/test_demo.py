import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from wavesr.cli.main import main

pytest.importorskip("nilearn", reason="the demo sample ships with nilearn (the `demo` extra)")


def test_demo_writes_figure_metrics_and_nifti(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--model", str(tiny_model), "--out", str(out), "--steps", "2", "--slices", "2"]
    assert main([*args, "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"bicubic", "wavesr"}
    for entry in metrics["methods"].values():
        assert len(entry["band_psnr"]) == 10
        assert 0.0 < entry["ssim"] <= 1.0
    assert metrics["methods"]["bicubic"]["psnr"] > 20.0  # bicubic x4 on a smooth template
    with Image.open(out / "comparison.png") as image:
        assert image.size[0] > 3 * image.size[1]  # a row of panels
    sr, hr = nib.load(out / "sr.nii.gz"), nib.load(out / "hr.nii.gz")
    assert sr.shape == hr.shape and sr.shape[2] == 2  # two axial slices on axis 2 (RAS template)
    np.testing.assert_allclose(sr.affine, hr.affine)


def test_demo_slab_affine_points_at_the_template(tiny_model: Path, tmp_path: Path) -> None:
    from wavesr.tasks.demo import demo_sample_path

    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--model",
                str(tiny_model),
                "--out",
                str(out),
                "--steps",
                "1",
                "--slices",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    template = nib.load(demo_sample_path())
    hr = nib.load(out / "hr.nii.gz")
    slice_index = json.loads((out / "metrics.json").read_text())["slices"][0]
    # voxel (0, 0, 0) of the slab lies on the template's grid at the slab's slice
    voxel = np.linalg.solve(template.affine, hr.affine @ np.array([0, 0, 0, 1.0]))[:3]
    assert voxel[2] == pytest.approx(slice_index)
    assert np.allclose(voxel, np.round(voxel))
    data = np.asarray(template.dataobj, dtype=np.float32)
    i, j, k = (int(round(v)) for v in voxel)
    h, w = hr.shape[:2]
    window = data[i : i + h, j : j + w, k]
    lo, hi = window.min(), window.max()
    np.testing.assert_allclose(hr.get_fdata()[..., 0], (window - lo) / (hi - lo), atol=1e-5)
