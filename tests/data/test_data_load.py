from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from wavesr.data import SUPPORTED_SUFFIXES, find_inputs, load_slices, nonempty_slices
from wavesr.errors import ConfigError, InputError


def _png(path):
    Image.fromarray(np.full((10, 10), 50, np.uint8)).save(path)


def _nii(path):
    nib.save(nib.Nifti1Image(np.ones((9, 9, 9), np.float32), np.eye(4)), str(path))


def test_supported_suffixes():
    assert set(SUPPORTED_SUFFIXES) == {
        ".nii",
        ".nii.gz",
        ".dcm",
        ".h5",
        ".hdf5",
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".npy",
    }


def test_find_inputs_units(tmp_path):
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for k in (1, 2):
        _png(pngs / f"{k}.png")
    vols = tmp_path / "vols"
    (vols / "sub").mkdir(parents=True)
    _nii(vols / "b10.nii.gz")
    _nii(vols / "b2.nii")
    _png(vols / "preview.png")  # a folder holding volumes is not an image stack
    np.save(vols / "sub" / "a.npy", np.ones((9, 9)))
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    (dcm / "x.dcm").write_bytes(b"x")
    (dcm / ".hidden.dcm").write_bytes(b"x")
    units = find_inputs([pngs, vols, dcm, pngs / "1.png", pngs])
    assert units == [
        pngs,
        vols / "b2.nii",
        vols / "b10.nii.gz",
        vols / "sub" / "a.npy",
        dcm,
        pngs / "1.png",
    ]


def test_find_inputs_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        find_inputs([tmp_path / "missing.nii"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no supported files"):
        find_inputs([tmp_path / "empty"])
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported file type '.txt'"):
        find_inputs([tmp_path / "a.txt"])


def test_load_folder_of_volumes_and_unknown_file(tmp_path):
    _nii(tmp_path / "a.nii")
    with pytest.raises(InputError, match="1 volume files"):
        load_slices(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported file type"):
        load_slices(tmp_path / "a.txt")


def test_bad_options(tmp_path):
    _nii(tmp_path / "a.nii")
    with pytest.raises(ConfigError):
        load_slices(tmp_path / "a.nii", normalization="zscore")
    with pytest.raises(ConfigError):
        load_slices(tmp_path / "a.nii", empty_threshold=2.0)


def test_nonempty_rule():
    stack = np.zeros((4, 10, 10), np.float32)
    stack[1, :5, :] = 100.0  # 50% bright
    stack[2, 0, :4] = 100.0  # 4% bright: empty at the 5% threshold
    stack[3, 0, :5] = 100.0  # 5%: kept
    stack[3, 5:, :] = 9.0  # below 10% of the 99.5th percentile: no signal
    np.testing.assert_array_equal(nonempty_slices(stack), [False, True, False, True])
    np.testing.assert_array_equal(nonempty_slices(stack, 0.0), [True] * 4)
    assert not nonempty_slices(np.ones((2, 9, 9), np.float32)).any()


def test_load_slice_stacks_reads_once_and_slices_each_axis(tmp_path, monkeypatch):
    volume = np.random.default_rng(0).random((12, 10, 8)).astype(np.float32) + 0.2
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(tmp_path / "v.nii.gz"))
    _png(tmp_path / "a.png")
    from wavesr.data import load

    reads = []
    real_read = load._read
    monkeypatch.setattr(
        load, "_read", lambda path, *rest: reads.append(path) or real_read(path, *rest)
    )
    stacks = load.load_slice_stacks(tmp_path / "v.nii.gz", axes=(0, 1, 2))
    assert len(reads) == 1
    for axis, stack in enumerate(stacks):
        alone = load_slices(tmp_path / "v.nii.gz", axis=axis)
        assert stack.slice_axis == axis
        assert np.array_equal(stack.slices, alone.slices)
        assert stack.names == alone.names and stack.indices == alone.indices
    # a 2-D image has no axes to choose: one stack, whatever was asked
    image = load.load_slice_stacks(tmp_path / "a.png", axes=(0, 1, 2), skip_empty=False)
    assert len(image) == 1 and image[0].slice_axis is None


def test_load_reformat_stacks_puts_the_thick_axis_on_the_rows(tmp_path):
    # voxel axis 1 runs S/I (orientation P, S, R, as the IXI volumes): the axial slices' normal
    affine = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    volume = np.random.default_rng(0).random((12, 10, 8)).astype(np.float32) + 0.2
    nib.save(nib.Nifti1Image(volume, affine), str(tmp_path / "v.nii.gz"))
    from wavesr.data import load
    from wavesr.tasks.through_plane.reformat import reformat

    stacks = load.load_reformat_stacks(tmp_path / "v.nii.gz", normalization="volume-percentile")
    assert [s.slice_axis for s in stacks] == [0, 2]
    whole = load.load_slice_stacks(
        tmp_path / "v.nii.gz", axes=(0, 2), normalization="volume-percentile"
    )
    for stack, plain in zip(stacks, whole):
        assert stack.slices.shape[1] == 10  # the S/I axis on the rows
        partner = 3 - 1 - stack.slice_axis
        cut = reformat(volume, 1, partner)  # as `--through-plane` cuts its reformats
        lo, hi = stack.normalization["lo"][0], stack.normalization["hi"][0]
        assert np.array_equal(stack.slices.shape, cut.shape)
        np.testing.assert_allclose(stack.slices, np.clip((cut - lo) / (hi - lo), 0, 1), atol=1e-6)
        turned = plain.slices if stack.slice_axis == 0 else plain.slices.transpose(0, 2, 1)
        assert np.array_equal(stack.slices, turned)
    image = tmp_path / "a.png"
    _png(image)
    assert len(load.load_reformat_stacks(image, skip_empty=False)) == 1
