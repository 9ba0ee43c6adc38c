"""`wavesr sr` DICOM in, DICOM out: read back with pydicom and compared with the NIfTI output."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from helpers import blobs, dicom_dataset
from pydicom.uid import generate_uid

import wavesr
from wavesr.cli.main import main
from wavesr.data.dicom import read_dicom

STEPS = ["--steps", "2", "--quiet"]
SLOPE, INTERCEPT = 2.0, -100.0
# An oblique series: rows and columns turned 30 degrees about z.
ROW_DIR = [np.cos(np.pi / 6), np.sin(np.pi / 6), 0.0]
COL_DIR = [-np.sin(np.pi / 6), np.cos(np.pi / 6), 0.0]


def _series(folder: Path, n: int = 3, *, description: str = "T1 axial", uid=None) -> Path:
    """An MR series of `n` 8 x 10 slices, 0.5 x 0.8 mm, 2 mm apart, rescaled, identified."""
    folder.mkdir(exist_ok=True)
    uid = uid or generate_uid()
    raw = np.round(blobs(n, 8, 10, seed=len(description)) * 3000).astype(np.uint16)
    for k in range(n):
        ds = dicom_dataset(
            raw[k], ipp=(-100.0, -120.0, 10.0 + 2 * k), iop=[*ROW_DIR, *COL_DIR], series=uid
        )
        ds.PixelSpacing = [0.5, 0.8]
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
        ds.PatientID, ds.PatientName, ds.StudyInstanceUID = "P-1", "Doe^Jane", "1.2.3.4"
        ds.FrameOfReferenceUID, ds.SeriesDescription = "1.2.3.5", description
        ds.SliceThickness, ds.SeriesNumber = "1.5", 3
        ds.save_as(str(folder / f"{uid[-6:]}_{k}.dcm"), enforce_file_format=True)
    return folder


def _sr(model: Path, src: Path, out: Path, *extra: str) -> int:
    return main(["sr", str(src), "-o", str(out), "--model", str(model), *STEPS, *extra])


def _files(folder: Path) -> list:
    return [pydicom.dcmread(str(p)) for p in sorted(folder.iterdir())]


def _nifti_volume(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


@pytest.fixture
def dicom_and_nifti(tiny_model, tmp_path) -> tuple[Path, Path, Path]:
    """(source series, its DICOM output, its NIfTI output), same run settings."""
    src = _series(tmp_path / "series")
    assert _sr(tiny_model, src, out := tmp_path / "sr_dicom") == 0
    assert _sr(tiny_model, src, nifti := tmp_path / "sr.nii.gz") == 0
    return src, out, nifti


def test_same_affine_and_values_as_the_nifti_output(dicom_and_nifti):
    src, out, nifti = dicom_and_nifti
    written = read_dicom(out)
    img = nib.load(str(nifti))
    assert written.volume.shape == img.shape == (32, 40, 3)
    np.testing.assert_allclose(written.affine, img.affine, atol=1e-3)
    np.testing.assert_allclose(written.volume, _nifti_volume(nifti), atol=SLOPE / 2 + 1e-3)


def test_one_file_per_slice_with_geometry_and_units(dicom_and_nifti):
    src, out, _ = dicom_and_nifti
    files = _files(out)
    assert len(files) == 3
    for k, ds in enumerate(files):
        assert (ds.Rows, ds.Columns) == (32, 40)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.125, 0.2])
        np.testing.assert_allclose(
            [float(v) for v in ds.ImageOrientationPatient], [*ROW_DIR, *COL_DIR], atol=1e-9
        )
        # The first voxel centre moves half an old voxel minus half a new one along each axis.
        shift = np.array(COL_DIR) * (0.5 - 0.125) / 2 + np.array(ROW_DIR) * (0.8 - 0.2) / 2
        expected = np.array([-100.0, -120.0, 10.0 + 2 * k]) - shift
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-6)
        assert float(ds.SliceThickness) == 1.5  # in-plane SR leaves the slices as thick
        assert float(ds.SpacingBetweenSlices) == pytest.approx(2.0)
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (SLOPE, INTERCEPT)
        assert ds.BitsStored == 16 and ds.InstanceNumber == k + 1


def test_identifiers_marking_and_reference(tiny_model, dicom_and_nifti):
    src, out, _ = dicom_and_nifti
    sources, files = _files(src), _files(out)
    source_uids = {ds.SOPInstanceUID for ds in sources}
    assert {ds.SeriesInstanceUID for ds in files} != {sources[0].SeriesInstanceUID}
    assert len({ds.SeriesInstanceUID for ds in files}) == 1
    assert len({ds.SOPInstanceUID for ds in files} - source_uids) == 3
    for ds in files:
        assert (ds.PatientID, str(ds.PatientName)) == ("P-1", "Doe^Jane")
        assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID) == ("1.2.3.4", "1.2.3.5")
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert ds.SeriesDescription == "T1 axial WaveSR x4 (AI super-resolution)"
        assert ds.SeriesNumber == 1003
        for text in ("WaveSR", wavesr.__version__, tiny_model.name, "seed 0", "steps 2"):
            assert text in ds.DerivationDescription
        assert "generative AI" in ds.DerivationDescription
        equipment = ds.ContributingEquipmentSequence[-1]
        assert (equipment.Manufacturer, equipment.SoftwareVersions) == (
            "WaveSR",
            wavesr.__version__,
        )
        assert equipment.ManufacturerModelName == tiny_model.name
        assert "sampler ddim" in equipment.ContributionDescription
        ref = ds.ReferencedSeriesSequence[0]
        assert ref.SeriesInstanceUID == sources[0].SeriesInstanceUID
        assert {r.ReferencedSOPInstanceUID for r in ref.ReferencedInstanceSequence} == source_uids


def test_samples_write_the_std_map_as_a_second_series(tiny_model, tmp_path):
    src = _series(tmp_path / "series")
    assert _sr(tiny_model, src, out := tmp_path / "sr", "--samples", "2") == 0
    assert _sr(tiny_model, src, nifti := tmp_path / "sr.nii.gz", "--samples", "2") == 0
    std_files = _files(tmp_path / "sr_std")
    assert len(std_files) == 3
    assert "std of 2 samples" in std_files[0].SeriesDescription
    assert "standard deviation of 2 samples" in std_files[0].DerivationDescription
    assert std_files[0].SeriesInstanceUID != _files(out)[0].SeriesInstanceUID
    std = read_dicom(tmp_path / "sr_std")
    slope = float(std_files[0].RescaleSlope)
    expected = _nifti_volume(tmp_path / "sr_std.nii.gz")
    assert expected.max() > 0
    np.testing.assert_allclose(std.volume, expected, atol=slope / 2 + 1e-3)
    np.testing.assert_allclose(std.affine, nib.load(str(nifti)).affine, atol=1e-3)


def test_two_series_refused_with_a_listing_or_picked(tiny_model, tmp_path, capsys):
    t1, t2 = generate_uid(), generate_uid()
    folder = _series(tmp_path / "mixed", 3, description="T1 axial", uid=t1)
    _series(folder, 2, description="T2 axial", uid=t2)
    out = tmp_path / "sr"
    capsys.readouterr()
    assert _sr(tiny_model, folder, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 2 DICOM series" in err
    assert f'{t1} "T1 axial" (3 slices)' in err and f'{t2} "T2 axial" (2 slices)' in err
    assert not out.exists()
    assert _sr(tiny_model, folder, out, "--series", t2) == 0
    files = _files(out)
    assert len(files) == 2 and files[0].SeriesDescription.startswith("T2 axial WaveSR")
    assert files[0].ReferencedSeriesSequence[0].SeriesInstanceUID == t2


def test_output_choice_and_refusals(tiny_model, tmp_path, capsys):
    src = _series(tmp_path / "series")
    out = tmp_path / "sr.v2"  # a suffix: a series only when asked for
    assert _sr(tiny_model, src, out) == 2
    assert "--output-format dicom" in capsys.readouterr().err
    assert _sr(tiny_model, src, out, "--output-format", "dicom") == 0
    assert len(list(out.iterdir())) == 3
    before = sorted(p.read_bytes() for p in out.iterdir())
    assert _sr(tiny_model, src, out, "--output-format", "dicom", "--seed", "5") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.read_bytes() for p in out.iterdir()) == before
    nifti_in = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2), np.float32), np.eye(4)), str(nifti_in))
    assert _sr(tiny_model, nifti_in, tmp_path / "x", "--output-format", "dicom") == 2
    assert "needs a DICOM input" in capsys.readouterr().err
    assert _sr(tiny_model, nifti_in, tmp_path / "y.nii.gz", "--series", "1.2") == 2
    assert "not DICOM" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y.nii.gz").exists()


def test_through_plane_dicom_series_matches_its_nifti(tiny_through_plane_model, tmp_path):
    src = _series(tmp_path / "series", 4)
    argv = ["--through-plane", "--model", str(tiny_through_plane_model), "--stacks", "1"]
    assert _sr(tiny_through_plane_model, src, out := tmp_path / "iso", *argv) == 0
    assert _sr(tiny_through_plane_model, src, nifti := tmp_path / "iso.nii.gz", *argv) == 0
    img = nib.load(str(nifti))
    written = read_dicom(out)
    assert written.volume.shape == img.shape and img.shape[2] > 4
    np.testing.assert_allclose(written.affine, img.affine, atol=1e-3)
    slope = float(_files(out)[0].RescaleSlope)
    np.testing.assert_allclose(written.volume, _nifti_volume(nifti), atol=slope / 2 + 1e-3)
    first = _files(out)[0]
    assert "through-plane" in first.SeriesDescription
    assert "thick_axis 2" in first.DerivationDescription
