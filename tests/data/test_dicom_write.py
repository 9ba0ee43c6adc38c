from __future__ import annotations

import numpy as np
import pydicom
import pytest
from helpers import dicom_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from wavesr.data.dicom import read_dicom, read_series_header
from wavesr.data.dicom_write import (
    DerivedSeries,
    series_geometry,
    stored_values,
    write_dicom_series,
)
from wavesr.errors import OutputError

# An oblique orientation: rows and columns turned 30 degrees about z, then 20 about x.
_C30, _S30, _C20, _S20 = np.cos(np.pi / 6), np.sin(np.pi / 6), np.cos(np.pi / 9), np.sin(np.pi / 9)
ROW_DIR = np.array([_C30, _S30 * _C20, _S30 * _S20])
COL_DIR = np.array([-_S30, _C30 * _C20, _C30 * _S20])
NORMAL = np.cross(ROW_DIR, COL_DIR)
ORIGIN = np.array([-100.0, -120.5, 30.25])
SERIES = DerivedSeries(
    description="T1 WaveSR x4 (AI super-resolution)",
    derivation="made by a test",
    manufacturer="WaveSR",
    model_name="tiny",
    version="9.9",
    settings="seed 0",
)


def _source(
    folder, n=3, shape=(6, 5), slope=2.0, intercept=-100.0, syntax=ImplicitVRLittleEndian, **tags
):
    """An oblique MR series with patient, study, frame of reference and a private tag."""
    folder.mkdir()
    series = generate_uid()
    for k in range(n):
        raw = (np.arange(shape[0] * shape[1]).reshape(shape) * 7 + 50 * k).astype(np.uint16)
        ipp = ORIGIN + k * 3.0 * NORMAL
        iop = [*ROW_DIR, *COL_DIR]
        ds = dicom_dataset(raw, ipp=ipp, iop=iop, spacing=(0.9, 1.1), transfer_syntax=syntax)
        ds.SeriesInstanceUID = series
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PatientID, ds.PatientName = "P-123", "Doe^Jane"
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = "1.2.3.4", "1.2.3.5"
        ds.SeriesDescription, ds.SeriesNumber, ds.SliceThickness = "T1", 7, "2.5"
        ds.add_new(0x00291010, "LO", "vendor private")
        ds.LargestImagePixelValue = int(raw.max())  # true of the source's pixels only
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(str(folder / f"{k}.dcm"), enforce_file_format=True)
    return folder


def _written(folder) -> list:
    return [pydicom.dcmread(str(p)) for p in sorted(folder.iterdir())]


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_series_reads_back_with_the_same_affine_and_values(tmp_path, syntax):
    src = read_dicom(_source(tmp_path / "src", syntax=syntax))
    volume = src.volume * 1.5 - 40.0  # still inside the source's integer range
    write_dicom_series(
        volume, src.affine, read_series_header(tmp_path / "src"), SERIES, out := tmp_path / "out"
    )
    back = read_dicom(out)
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-6)
    np.testing.assert_allclose(back.volume, volume, atol=1.0 + 1e-3)  # half the slope of 2
    first = _written(out)[0]
    assert (float(first.RescaleSlope), float(first.RescaleIntercept)) == (2.0, -100.0)


def test_geometry_tags_follow_the_affine(tmp_path):
    affine = np.eye(4)
    affine[:3, 0] = np.diag([-1.0, -1.0, 1.0]) @ COL_DIR * 0.25
    affine[:3, 1] = np.diag([-1.0, -1.0, 1.0]) @ ROW_DIR * 0.5
    affine[:3, 2] = np.diag([-1.0, -1.0, 1.0]) @ NORMAL * 3.0
    affine[:3, 3] = np.diag([-1.0, -1.0, 1.0]) @ ORIGIN
    geometry = series_geometry(affine, 4)
    np.testing.assert_allclose(geometry.orientation, [*ROW_DIR, *COL_DIR], atol=1e-12)
    np.testing.assert_allclose(geometry.pixel_spacing, (0.25, 0.5))
    np.testing.assert_allclose(geometry.positions[3], ORIGIN + 9.0 * NORMAL)
    assert geometry.slice_spacing == pytest.approx(3.0)


def test_identifiers_kept_and_new_uids(tmp_path):
    header = read_series_header(_source(tmp_path / "src"))
    src = read_dicom(tmp_path / "src")
    write_dicom_series(src.volume, src.affine, header, SERIES, tmp_path / "out")
    written = _written(tmp_path / "out")
    sources = _written(tmp_path / "src")
    assert len(written) == 3
    for ds in written:
        assert (ds.PatientID, str(ds.PatientName)) == ("P-123", "Doe^Jane")
        assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID) == ("1.2.3.4", "1.2.3.5")
        assert ds[0x00291010].value == sources[0][0x00291010].value  # as the input had it
        assert "LargestImagePixelValue" not in ds
        assert ds.SeriesInstanceUID == written[0].SeriesInstanceUID != header.series_uid
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SeriesNumber == 1007
        assert ds.SliceThickness == 3.0  # none given: the slice spacing
        assert ds.SpacingBetweenSlices == pytest.approx(3.0)
    uids = {ds.SOPInstanceUID for ds in written}
    assert len(uids) == 3 and not uids & {ds.SOPInstanceUID for ds in sources}
    assert [ds.InstanceNumber for ds in written] == [1, 2, 3]


def test_marked_as_derived_with_its_software_and_source(tmp_path):
    header = read_series_header(_source(tmp_path / "src"))
    src = read_dicom(tmp_path / "src")
    write_dicom_series(src.volume, src.affine, header, SERIES, tmp_path / "out")
    ds = _written(tmp_path / "out")[0]
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.SeriesDescription == "T1 WaveSR x4 (AI super-resolution)"
    assert ds.DerivationDescription == "made by a test"
    equipment = ds.ContributingEquipmentSequence[-1]
    assert (equipment.Manufacturer, equipment.ManufacturerModelName) == ("WaveSR", "tiny")
    assert (equipment.SoftwareVersions, equipment.ContributionDescription) == ("9.9", "seed 0")
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109103"
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == header.series_uid
    referenced = {item.ReferencedSOPInstanceUID for item in ref.ReferencedInstanceSequence}
    assert referenced == {uid for _, uid in header.instances} and len(referenced) == 3


def test_values_beyond_the_source_range_are_not_clipped():
    volume = np.array([-5e5, -1.0, 0.0, 123.4, 2e6]).reshape(5, 1, 1)
    ints, slope, intercept = stored_values(volume, 1.0, 0.0)
    assert ints.dtype == np.uint16
    np.testing.assert_allclose(ints * slope + intercept, volume, atol=slope / 2 + 1e-6)
    signed, slope, intercept = stored_values(np.array([-20.0, 300.0]), 1.0, 0.0)
    assert signed.dtype == np.int16 and (slope, intercept) == (1.0, 0.0)
    assert signed.tolist() == [-20, 300]


def test_existing_series_is_kept_unless_overwrite(tmp_path):
    header = read_series_header(_source(tmp_path / "src"))
    src = read_dicom(tmp_path / "src")
    out = tmp_path / "out"
    write_dicom_series(src.volume, src.affine, header, SERIES, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match="not empty"):
        write_dicom_series(src.volume + 2, src.affine, header, SERIES, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    write_dicom_series(src.volume + 2, src.affine, header, SERIES, out, overwrite=True)
    assert read_dicom(out).volume.min() == pytest.approx(src.volume.min() + 2, abs=1.0)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="other than DICOM"):
        write_dicom_series(src.volume, src.affine, header, SERIES, out, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    header = read_series_header(_source(tmp_path / "src"))
    src = read_dicom(tmp_path / "src")
    saved = []
    real_save = pydicom.dataset.Dataset.save_as

    def save_twice_then_fail(self, *args, **kwargs):
        if len(saved) == 2:
            raise OSError(28, "No space left on device")
        saved.append(args[0])
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", save_twice_then_fail)
    with pytest.raises(OutputError, match="No space left"):
        write_dicom_series(src.volume, src.affine, header, SERIES, tmp_path / "out")
    assert len(saved) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no temp folder


def test_enhanced_mr_template_becomes_single_frame_mr(tmp_path):
    _source(tmp_path / "src", n=2, SOPClassUID="1.2.840.10008.5.1.4.1.1.4.1")
    src = read_dicom(tmp_path / "src")
    write_dicom_series(
        src.volume, src.affine, read_series_header(tmp_path / "src"), SERIES, tmp_path / "out"
    )
    assert {ds.SOPClassUID for ds in _written(tmp_path / "out")} == {"1.2.840.10008.5.1.4.1.1.4"}
