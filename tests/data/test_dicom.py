from __future__ import annotations

from functools import partial

import nibabel as nib
import numpy as np
import pytest
from helpers import dicom_dataset, write_dicom
from pydicom.uid import generate_uid

from wavesr.data import load_slices, stack_to_volume, write_nifti
from wavesr.data.dicom import read_dicom, read_series_header
from wavesr.data.types import voxel_limit
from wavesr.errors import InputError

SERIES = generate_uid()


# Series/spacing defaults of this module; any tag can still be passed per call.
write_dcm = partial(write_dicom, spacing=(0.5, 0.8), series=SERIES)


def _slice(k: int, shape=(10, 12)) -> np.ndarray:
    base = np.arange(shape[0] * shape[1]).reshape(shape) % 50
    return (base + 100 * (k + 1)).astype(np.uint16)


def _series(folder, n=4, order=(2, 0, 3, 1), **kw):
    folder.mkdir()
    for file_no, k in enumerate(order[:n]):
        write_dcm(folder / f"im{file_no}.dcm", _slice(k), ipp=(-100, -120, 10 + 2 * k), **kw)
    return folder


def test_series_sorted_by_position_and_rescaled(tmp_path):
    folder = _series(tmp_path / "s", slope=2.0, intercept=-5.0)
    stack = load_slices(folder, skip_empty=False)
    assert stack.kind == "dicom"
    assert stack.slice_axis == 2
    assert stack.volume_shape == (10, 12, 4)
    assert stack.names == ["im1.dcm", "im3.dcm", "im0.dcm", "im2.dcm"]
    for k in range(4):
        raw = _slice(k)
        assert stack.normalization["lo"][k] == pytest.approx(2.0 * raw.min() - 5.0)
        assert stack.normalization["hi"][k] == pytest.approx(2.0 * raw.max() - 5.0)


def test_affine_matches_dicom_geometry(tmp_path):
    folder = _series(tmp_path / "s")
    stack = load_slices(folder)
    aff = stack.affine
    # DICOM (LPS): P(r, c, k) = IPP_k + r*dr*col_dir + c*dc*row_dir; RAS flips x and y.
    for r, c, k in [(0, 0, 0), (9, 0, 1), (0, 11, 2), (9, 11, 3)]:
        lps = np.array([-100.0, -120.0, 10.0 + 2 * k]) + r * 0.5 * np.array([0, 1, 0])
        lps = lps + c * 0.8 * np.array([1, 0, 0])
        ras = lps * np.array([-1, -1, 1])
        np.testing.assert_allclose(aff @ [r, c, k, 1], [*ras, 1], atol=1e-9)
    assert nib.aff2axcodes(aff)[2] == "S"


def test_dicom_to_nifti_round_trip(tmp_path):
    stack = load_slices(_series(tmp_path / "s"), skip_empty=False)
    out = tmp_path / "out.nii.gz"
    write_nifti(stack_to_volume(stack.slices, stack.slice_axis), stack.affine, out)
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, stack.affine, atol=1e-5)
    np.testing.assert_allclose(np.asarray(img.dataobj)[:, :, 1], stack.slices[1], atol=1e-6)


def test_instance_number_fallback_without_positions(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    for file_no, k in enumerate([3, 1, 2, 0]):
        write_dcm(folder / f"f{file_no}.dcm", _slice(k), instance=k + 1)
    dcm = read_dicom(folder)
    assert dcm.affine is None
    assert dcm.names == ["f3.dcm", "f1.dcm", "f2.dcm", "f0.dcm"]
    np.testing.assert_array_equal(dcm.volume[:, :, 0], _slice(0))


def test_files_found_by_magic_and_single_file(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    write_dcm(folder / "IM0001", _slice(0), ipp=(0, 0, 0))
    (folder / "notes.txt").write_text("hello")
    stack = load_slices(folder)
    assert stack.names == ["IM0001"]
    single = load_slices(folder / "IM0001")
    assert single.kind == "dicom" and single.slices.shape == (1, 10, 12)
    assert single.affine[2, 2] == pytest.approx(1.0)  # default slice spacing


@pytest.mark.parametrize(
    "case", ["no-pixels", "mixed-sizes", "two-series", "not-dicom", "truncated"]
)
def test_bad_series(tmp_path, case):
    folder = tmp_path / "s"
    folder.mkdir()
    write_dcm(folder / "a.dcm", _slice(0), ipp=(0, 0, 0))
    if case == "no-pixels":
        write_dcm(folder / "b.dcm", _slice(1), ipp=(0, 0, 2), pixel_data=False)
        match = "no pixel data"
    elif case == "mixed-sizes":
        write_dcm(folder / "b.dcm", _slice(1, (8, 12)), ipp=(0, 0, 2))
        match = "mixes slice sizes"
    elif case == "two-series":
        write_dcm(folder / "b.dcm", _slice(1), ipp=(0, 0, 2), series=generate_uid())
        match = "2 DICOM series"
    elif case == "not-dicom":
        (folder / "b.dcm").write_bytes(b"hello, not a DICOM file" * 20)
        match = "not a readable DICOM"
    else:
        data = write_dcm(folder / "b.dcm", _slice(1), ipp=(0, 0, 2)).read_bytes()
        (folder / "b.dcm").write_bytes(data[:-50])
        match = "promises 10x12x1 pixels \\(240 bytes\\), the file holds 190 bytes"
    with pytest.raises(InputError, match=match):
        load_slices(folder)


def test_header_promising_more_than_the_files_is_refused_unread(tmp_path):
    """Rows x Columns x files beyond the voxel limit, or beyond the pixel data a file holds:
    refused before pydicom decodes (and allocates) the promised array."""
    folder = _series(tmp_path / "s")
    with voxel_limit(400), pytest.raises(InputError, match="480 voxels, above the limit of 400"):
        load_slices(folder)
    ds = dicom_dataset(_slice(0), name="big.dcm")
    ds.Rows, ds.Columns = 4096, 4096
    ds.save_as(str(path := tmp_path / "big.dcm"), enforce_file_format=True)
    with pytest.raises(InputError, match=r"promises 4096x4096x1 pixels \(33,554,432 bytes\)"):
        load_slices(path)


def _two_series(folder):
    """Three T1 slices and two T2 slices in one folder, each series described."""
    folder.mkdir()
    t1, t2 = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    for k in range(3):
        ds = dicom_dataset(_slice(k), ipp=(0, 0, 2 * k), series=t1)
        ds.SeriesDescription = "T1 axial"
        ds.save_as(str(folder / f"a{k}.dcm"), enforce_file_format=True)
    for k in range(2):
        ds = dicom_dataset(_slice(k, (8, 8)), ipp=(0, 0, 3 * k), series=t2)
        ds.SeriesDescription = "T2 axial"
        ds.save_as(str(folder / f"b{k}.dcm"), enforce_file_format=True)
    return folder, t1, t2


def test_several_series_are_listed_never_merged(tmp_path):
    folder, t1, t2 = _two_series(tmp_path / "s")
    with pytest.raises(InputError) as info:
        read_dicom(folder)
    message = str(info.value)
    assert "holds 2 DICOM series" in message and "--series UID" in message
    assert f'{t1} "T1 axial" (3 slices)' in message
    assert f'{t2} "T2 axial" (2 slices)' in message
    assert "\n" not in message


def test_series_option_picks_one(tmp_path):
    folder, t1, t2 = _two_series(tmp_path / "s")
    assert read_dicom(folder, series=t1).volume.shape == (10, 12, 3)
    stack = load_slices(folder, series=t2, skip_empty=False)
    assert stack.volume_shape == (8, 8, 2)
    header = read_series_header(folder, series=t2)
    assert header.series_uid == t2 and len(header.instances) == 2
    with pytest.raises(InputError, match=r"no DICOM series 1\.2\.3 here; it holds .*T2 axial"):
        read_dicom(folder, series="1.2.3")
