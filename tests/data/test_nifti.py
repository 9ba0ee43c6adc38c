from __future__ import annotations

import gzip
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from wavesr.data import load_slices
from wavesr.data.nifti import axis_for_plane
from wavesr.data.types import voxel_limit
from wavesr.errors import ConfigError, InputError

# IXI-like "PSR" orientation: voxel axis 1 runs inferior -> superior.
PSR = np.array([[0, 0, 2, -90], [-2, 0, 0, 120], [0, 2, 0, -100], [0, 0, 0, 1]], dtype=float)


def _volume(shape=(12, 10, 9), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(10, 100, size=shape).astype(np.float32)


def _save(path, data, affine=PSR):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_axial_default_follows_orientation(tmp_path):
    vol = _volume()
    stack = load_slices(_save(tmp_path / "v.nii.gz", vol))
    assert stack.kind == "nifti"
    assert stack.slice_axis == 1
    assert stack.volume_shape == (12, 10, 9)
    assert stack.slices.shape == (10, 12, 9)
    assert stack.slices.dtype == np.float32
    np.testing.assert_allclose(stack.affine, PSR)
    i = 3
    sl = vol.take(i, axis=1)
    expected = (sl - sl.min()) / (sl.max() - sl.min())
    np.testing.assert_allclose(stack.slices[i], expected, atol=1e-6)
    assert stack.names[i] == "v.nii.gz:y=3"
    assert stack.indices == list(range(10))


@pytest.mark.parametrize(("axis", "expected"), [("coronal", 0), ("sagittal", 2), (2, 2), (-1, 2)])
def test_axis_choice(tmp_path, axis, expected):
    stack = load_slices(_save(tmp_path / "v.nii", _volume()), axis=axis)
    assert stack.slice_axis == expected
    assert stack.slices.shape[0] == (12, 10, 9)[expected]


def test_axis_for_plane_ras():
    assert axis_for_plane(np.eye(4), "axial") == 2
    assert axis_for_plane(np.eye(4), "sagittal") == 0
    with pytest.raises(ConfigError):
        axis_for_plane(np.eye(4), "oblique")


def test_bad_axis_is_config_error(tmp_path):
    path = _save(tmp_path / "v.nii", _volume())
    with pytest.raises(ConfigError):
        load_slices(path, axis=3)
    with pytest.raises(ConfigError):
        load_slices(path, axis="upwards")


def test_empty_slices_skipped(tmp_path):
    vol = _volume((10, 10, 6))
    vol[:, :, :2] = 0.0
    vol[:2, :2, 5] = 0.0  # still mostly full: kept
    stack = load_slices(_save(tmp_path / "v.nii", vol, np.eye(4)))
    assert stack.slice_axis == 2
    assert stack.indices == [2, 3, 4, 5]
    assert len(stack.normalization["lo"]) == 4
    assert stack.names[0] == "v.nii:z=2"
    kept_all = load_slices(tmp_path / "v.nii", skip_empty=False)
    assert kept_all.indices == list(range(6))
    np.testing.assert_array_equal(kept_all.slices[0], 0.0)


def test_four_d_single_volume_is_squeezed(tmp_path):
    vol = _volume((9, 9, 9, 1))
    stack = load_slices(_save(tmp_path / "v.nii", vol, np.eye(4)))
    assert stack.volume_shape == (9, 9, 9)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((9, 9, 9, 2), "3-D"), ((50,), "3-D"), ((4, 4, 4), "smaller than")],
)
def test_bad_shapes(tmp_path, shape, match):
    path = _save(tmp_path / "v.nii", _volume(shape), np.eye(4))
    with pytest.raises(InputError, match=match):
        load_slices(path)


def test_nan_rejected(tmp_path):
    vol = _volume()
    vol[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load_slices(_save(tmp_path / "v.nii", vol))


@pytest.mark.parametrize("size", [0.0, -1.0])
def test_bad_voxel_size_rejected(tmp_path, size):
    img = nib.Nifti1Image(_volume(), np.eye(4))
    img.header["pixdim"][2] = size
    nib.save(img, str(tmp_path / "v.nii"))
    with pytest.raises(InputError, match="voxel sizes"):
        load_slices(tmp_path / "v.nii")


def test_all_empty_rejected(tmp_path):
    path = _save(tmp_path / "v.nii", np.zeros((9, 9, 9), np.float32))
    with pytest.raises(InputError, match="near-empty"):
        load_slices(path)


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="no such"):
        load_slices(tmp_path / "nope.nii.gz")
    (tmp_path / "zero.nii").write_bytes(b"")
    with pytest.raises(InputError, match="0 bytes"):
        load_slices(tmp_path / "zero.nii")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 30))
    with pytest.raises(InputError, match="not a readable NIfTI") as info:
        load_slices(tmp_path / "junk.nii.gz")
    assert info.value.path == str(tmp_path / "junk.nii.gz")


def test_truncated_file_rejected(tmp_path):
    path = _save(tmp_path / "v.nii.gz", _volume((40, 40, 40)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_slices(path)


def test_absurd_header_rejected_before_reading(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((4096, 4096, 4096))
    path = tmp_path / "huge.nii"
    with path.open("wb") as fh:
        header.write_to(fh)
        fh.write(b"\0" * 1024)
    with pytest.raises(InputError, match="above the limit of 268,435,456"):
        load_slices(path)


def _header_only(path, shape):
    """A NIfTI file whose header promises a float32 array of ``shape`` and holds no data."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    raw = header.binaryblock + b"\0" * 4
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def test_voxel_limit_is_the_default_and_can_be_raised(tmp_path):
    """1200^3 is refused by default; with a higher limit the next check (the gzip file cannot
    hold that much data) refuses it, still before nibabel allocates anything."""
    path = _header_only(tmp_path / "big.nii.gz", (1200, 1200, 1200))
    with pytest.raises(InputError, match="1,728,000,000 voxels, above the limit"):
        load_slices(path)
    with voxel_limit(2 * 10**9), pytest.raises(InputError, match="more than a .*gzip file can"):
        load_slices(path)
    with voxel_limit(1000), pytest.raises(InputError, match="above the limit of 1,000"):
        load_slices(_save(tmp_path / "v.nii.gz", _volume((16, 16, 8))))


def test_gzip_promising_more_than_it_can_hold_is_refused_unread(tmp_path):
    """A 256 MiB array promised by a file of a few hundred bytes: refused with a small peak."""
    path = _header_only(tmp_path / "liar.nii.gz", (512, 512, 256))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="the file is truncated: its header promises"):
            load_slices(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
