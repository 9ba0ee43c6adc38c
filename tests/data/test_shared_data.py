"""Readers on the real data in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from wavesr.data import find_inputs, load_slices

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

pytestmark = pytest.mark.shared_data


def _require(path: Path) -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/data not present")
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    return path


def test_ixi_volume_axial_slices():
    path = _require(DATA / "test" / "ixi_t1" / "IXI527-HH-2376_T1.nii.gz")
    stack = load_slices(path)
    assert stack.volume_shape == (120, 120, 90)
    assert nib.aff2axcodes(stack.affine) == ("P", "S", "R")
    assert stack.slice_axis == 1  # axis 1 is superior-inferior
    n = len(stack)
    assert stack.slices.shape == (n, 120, 90)  # axial slices are 120 (A-P) x 90 (L-R)
    assert 60 <= n <= 120
    assert stack.indices == sorted(stack.indices)
    assert stack.slices.min() == 0.0 and stack.slices.max() == 1.0
    assert stack.names[0] == f"IXI527-HH-2376_T1.nii.gz:y={stack.indices[0]}"


def test_cheng_jpeg():
    path = _require(DATA / "test" / "cheng_t1ce" / "2721.jpg")
    stack = load_slices(path)
    assert stack.kind == "image"
    assert stack.slices.shape == (1, 512, 512)
    assert stack.names == ["2721.jpg"]
    assert np.isclose(stack.slices.max(), 1.0)


def test_find_inputs_on_test_split():
    _require(DATA / "test" / "ixi_t1")
    units = find_inputs([DATA / "test"])
    names = [u.name for u in units]
    assert "cheng_t1ce" in names  # the JPEG folder is one unit
    assert sum(n.endswith(".nii.gz") for n in names) >= 10
