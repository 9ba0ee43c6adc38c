from __future__ import annotations

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from wavesr.config import DataConfig
from wavesr.data.bank import SliceBank, slicing_axes, step_generator


def _volume(path, shape=(24, 20, 16)):
    """A NIfTI volume whose every slice along every axis is non-empty."""
    rng = np.random.default_rng(0)
    data = (0.2 + rng.random(shape)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return shape


def test_slicing_axes():
    assert slicing_axes("all") == (0, 1, 2)
    assert slicing_axes(None) == (None,)
    assert slicing_axes("coronal") == ("coronal",)


def test_all_axes_takes_every_slice_of_a_volume_and_images_once(tmp_path):
    shape = _volume(tmp_path / "v.nii.gz")
    (tmp_path / "images").mkdir()
    pixels = np.random.default_rng(2).integers(60, 250, (32, 28), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "images" / "a.png")
    one = SliceBank.from_paths([tmp_path], DataConfig(scale=4, axis=None), progress=False)
    every = SliceBank.from_paths([tmp_path], DataConfig(scale=4, axis="all"), progress=False)
    # one PNG plus the axial slices, against one PNG plus the slices along all three axes
    assert len(every) == 1 + sum(shape)
    assert len(one) == 1 + shape[2]  # identity affine: axial is voxel axis 2
    shapes = {s.shape for s in every.slices}
    assert shapes == {(32, 28), (20, 16), (24, 16), (24, 20)}


def _bank(transpose: bool) -> SliceBank:
    rng = np.random.default_rng(1)
    slices = [rng.random((20, 20)).astype(np.float32) for _ in range(3)]
    return SliceBank(slices, ["a", "b", "c"], transpose=transpose)


def test_transpose_keeps_the_draws_and_transposes_about_half():
    plain, turned = _bank(False), _bank(True)
    transposed = 0
    for step in range(40):
        a = plain.crop(step % 3, 8, step_generator(0, step))
        b = turned.crop(step % 3, 8, step_generator(0, step))
        # the index, offsets and flips are drawn before the transpose bit: same patch or its .T
        assert torch.equal(a, b) or torch.equal(a.t(), b)
        transposed += int(not torch.equal(a, b))
    assert 8 <= transposed <= 32


def test_banks_without_transpose_draw_nothing_extra():
    gen = step_generator(0, 5)
    _bank(False).crop(0, 8, gen)
    reference = step_generator(0, 5)
    torch.randint(0, 20 - 8 + 1, (1,), generator=reference)
    torch.randint(0, 20 - 8 + 1, (1,), generator=reference)
    torch.randint(0, 2, (2,), generator=reference)
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=reference))


def test_transpose_comes_from_the_config(tmp_path):
    _volume(tmp_path / "v.nii.gz")
    bank = SliceBank.from_paths([tmp_path], DataConfig(transpose=True), progress=False)
    assert bank.transpose


def test_reformats_takes_the_slices_holding_the_si_axis_on_their_rows(tmp_path):
    shape = _volume(tmp_path / "v.nii.gz")  # identity affine: S/I is voxel axis 2
    bank = SliceBank.from_paths(
        [tmp_path / "v.nii.gz"], DataConfig(scale=4, axis="reformats"), progress=False
    )
    assert len(bank) == shape[0] + shape[1]  # the sagittal and coronal slices, no axial ones
    assert {s.shape for s in bank.slices} == {(shape[2], shape[1]), (shape[2], shape[0])}
