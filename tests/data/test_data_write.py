from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from helpers import fov_corners
from PIL import Image

from wavesr.data import (
    SliceStack,
    assemble_volume,
    sr_affine,
    stack_to_volume,
    write_nifti,
    write_png_slices,
)
from wavesr.data.write import png_name
from wavesr.errors import OutputError


def _oblique_affine() -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array(
        [[0, 0, 1], [-1, 0, 0], [0, 1, 0]]
    )
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([1.2, 2.0, 3.0])
    aff[:3, 3] = [-90.0, 120.0, -40.0]
    return aff


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_sr_affine_preserves_field_of_view(scale, axis):
    aff = _oblique_affine()
    shape = (10, 12, 7)
    new_shape = tuple(n if a == axis else n * scale for a, n in enumerate(shape))
    new = sr_affine(aff, axis, scale)
    np.testing.assert_allclose(fov_corners(new, new_shape), fov_corners(aff, shape), atol=1e-9)
    np.testing.assert_allclose(new[:3, axis], aff[:3, axis])
    zooms = np.linalg.norm(new[:3, :3], axis=0)
    for a in range(3):
        expected = np.linalg.norm(aff[:3, a]) / (1 if a == axis else scale)
        assert zooms[a] == pytest.approx(expected)


def test_sr_affine_known_origin():
    new = sr_affine(np.diag([2.0, 2.0, 3.0, 1.0]), 2, 4)
    np.testing.assert_allclose(new[:3, 3], [-0.75, -0.75, 0.0])
    np.testing.assert_allclose(np.diag(new)[:3], [0.5, 0.5, 3.0])


def test_stack_to_volume_inverts_slicing():
    vol = np.arange(60).reshape(3, 4, 5)
    for axis in range(3):
        slices = np.moveaxis(vol, axis, 0)
        np.testing.assert_array_equal(stack_to_volume(slices, axis), vol)


def test_write_nifti_round_trip(tmp_path):
    vol = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    aff = _oblique_affine()
    path = tmp_path / "sub" / "out.nii.gz"
    write_nifti(vol, aff, path)
    img = nib.load(str(path))
    np.testing.assert_allclose(img.get_fdata(), vol, atol=1e-7)
    np.testing.assert_allclose(img.affine, aff, atol=1e-5)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    with pytest.raises(OutputError, match="exists"):
        write_nifti(vol, aff, path)
    write_nifti(vol * 0, aff, path, overwrite=True)
    assert nib.load(str(path)).get_fdata().max() == 0.0
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.nii.gz"]
    with pytest.raises(OutputError, match=".nii"):
        write_nifti(vol, aff, tmp_path / "out.png")


def test_assemble_volume_fills_skipped_slices():
    stack = SliceStack(
        slices=np.zeros((2, 3, 4), np.float32),
        source=__import__("pathlib").Path("v.nii"),
        kind="nifti",
        indices=[1, 3],
        affine=np.eye(4),
        slice_axis=1,
        volume_shape=(3, 5, 4),
        normalization={},
        names=["a", "b"],
    )
    sr = np.stack([np.full((6, 8), 0.25), np.full((6, 8), 0.75)]).astype(np.float32)
    vol, aff = assemble_volume(stack, sr, 2)
    assert vol.shape == (6, 5, 8)
    np.testing.assert_array_equal(vol[:, [0, 2, 4], :], 0.0)
    np.testing.assert_array_equal(vol[:, 1, :], 0.25)
    np.testing.assert_array_equal(vol[:, 3, :], 0.75)
    np.testing.assert_allclose(aff, sr_affine(np.eye(4), 1, 2))
    with pytest.raises(ValueError):
        assemble_volume(stack, sr[:, :5], 2)


def test_png_names():
    assert png_name("IXI527-HH-2376_T1.nii.gz:z=45") == "IXI527-HH-2376_T1_z45.png"
    assert png_name("2758.jpg") == "2758.png"
    assert png_name("file.h5:3") == "file_3.png"
    assert png_name("a b/c.png") == "a_b_c.png"


@pytest.mark.parametrize(("bits", "peak", "mode"), [(8, 255, "L"), (16, 65535, "I;16")])
def test_write_png_slices(tmp_path, bits, peak, mode):
    slices = np.stack([np.linspace(-0.1, 1.1, 80).reshape(8, 10)] * 2).astype(np.float32)
    paths = write_png_slices(slices, tmp_path / "png", ["a.jpg", "b.jpg"], bits=bits)
    assert [p.name for p in paths] == ["a.png", "b.png"]
    with Image.open(paths[0]) as img:
        assert img.mode == mode
        arr = np.asarray(img).astype(np.int64)
    expected = np.round(np.clip(slices[0], 0, 1) * peak)
    np.testing.assert_array_equal(arr, expected)
    with pytest.raises(OutputError, match="exists"):
        write_png_slices(slices, tmp_path / "png", ["a.jpg", "b.jpg"], bits=bits)
    with pytest.raises(OutputError, match="duplicate"):
        write_png_slices(slices, tmp_path / "png2", ["a.jpg", "a.png"])
