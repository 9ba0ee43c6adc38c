"""Write a volume as a derived DICOM series (pydicom): one file per slice.

The volume is indexed (row, column, slice) like `read_dicom`'s, and its affine (voxel -> RAS)
gives every slice its ImagePositionPatient, ImageOrientationPatient and PixelSpacing, so
`read_dicom` of the written series gives back the same affine. Patient, study, frame of
reference and every other tag of the source header are copied as the source had them; what
describes one image (UIDs, geometry, pixels) is replaced, and the series is marked DERIVED,
with the software that made it in ContributingEquipmentSequence and a reference to the source.

Intensities are stored as 16-bit integers with RescaleSlope/Intercept: the source's own when
every value fits, else a slope spreading the volume's whole range over the integers (nothing is
clipped). The series is written into a temp folder beside the output, then renamed onto it.
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from wavesr.data.dicom import SeriesHeader, is_dicom_file
from wavesr.errors import OutputError
from wavesr.io_atomic import check_output_path

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])  # its own inverse
_UINT16, _INT16 = (0, 65535), (-32768, 32767)
_FIT_LEVELS = 65000  # a fitted slope spreads the range over this many steps: room for rounding
_LO_LENGTH, _ST_LENGTH = 64, 1024  # longest LO and ST values

# Per-image or pixel-describing tags of the source that would be wrong on the derived images
# (they are set anew, or dropped where the new pixels make them meaningless).
_DROPPED = (
    "PixelData",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelAspectRatio",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "ModalityLUTSequence",
    "VOILUTSequence",
    "RescaleSlope",
    "RescaleIntercept",
    "NumberOfFrames",
    "FrameIncrementPointer",
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
    "IconImageSequence",
    "SourceImageSequence",
    "DerivationCodeSequence",
    "ImagesInAcquisition",
    "SliceLocation",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "InstanceNumber",
    "SOPInstanceUID",
    "SeriesInstanceUID",
)
# Multi-frame SOP classes and the single-frame class each derived slice is written as.
_SINGLE_FRAME = {
    "1.2.840.10008.5.1.4.1.1.4.1": "1.2.840.10008.5.1.4.1.1.4",  # Enhanced MR -> MR
    "1.2.840.10008.5.1.4.1.1.4.4": "1.2.840.10008.5.1.4.1.1.4",  # Legacy Converted MR -> MR
    "1.2.840.10008.5.1.4.1.1.2.1": "1.2.840.10008.5.1.4.1.1.2",  # Enhanced CT -> CT
    "1.2.840.10008.5.1.4.1.1.2.2": "1.2.840.10008.5.1.4.1.1.2",  # Legacy Converted CT -> CT
}
_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
_MODIFYING_EQUIPMENT = ("109103", "DCM", "Modifying Equipment")


@dataclass
class DerivedSeries:
    """How the written series describes itself."""

    description: str  # SeriesDescription (cut to 64 characters)
    derivation: str  # DerivationDescription: how the images were made (up to 1024)
    manufacturer: str  # ContributingEquipmentSequence: the software ...
    model_name: str  # ... the model it ran ...
    version: str  # ... its version ...
    settings: str  # ... and the settings (ContributionDescription)
    series_number_offset: int = 1000  # SeriesNumber = the source's + this
    slice_thickness: float | None = None  # SliceThickness; None: the slice spacing
    window_from_data: bool = False  # WindowCenter/Width from the data, not the source's


@dataclass
class Geometry:
    """Slice geometry in DICOM terms (LPS, mm) of a (row, column, slice) volume's affine."""

    orientation: np.ndarray  # ImageOrientationPatient: row direction, then column direction
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    positions: np.ndarray  # (slices, 3) ImagePositionPatient of each slice
    slice_spacing: float


def series_geometry(affine: np.ndarray, n_slices: int) -> Geometry:
    """The DICOM geometry whose `read_dicom` affine is `affine` (the inverse of its `_affine`)."""
    lps = _LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)[:3, :]
    down, across, step, origin = lps[:, 0], lps[:, 1], lps[:, 2], lps[:, 3]
    spacing = (float(np.linalg.norm(down)), float(np.linalg.norm(across)))
    if min(spacing) <= 0:
        raise ValueError("the affine has a zero-length in-plane axis")
    orientation = np.concatenate([across / spacing[1], down / spacing[0]])
    positions = origin + np.arange(n_slices)[:, None] * step
    return Geometry(orientation, spacing, positions, float(np.linalg.norm(step)))


def stored_values(
    volume: np.ndarray, slope: float = 1.0, intercept: float = 0.0
) -> tuple[np.ndarray, float, float]:
    """(16-bit integers, slope, intercept) with integers * slope + intercept = `volume` to half
    a slope. The given slope and intercept (the source's) are kept when every value fits an
    unsigned or signed 16-bit integer; otherwise they are chosen to fit the whole range."""
    lo, hi = float(np.min(volume)), float(np.max(volume))
    slope, intercept = _ds_float(slope), _ds_float(intercept)
    for bounds, dtype in ((_UINT16, np.uint16), (_INT16, np.int16)):
        if slope > 0 and _fits(lo, hi, slope, intercept, bounds):
            return _quantised(volume, slope, intercept, dtype), slope, intercept
    span = hi - lo
    slope = _ds_float(span / _FIT_LEVELS) if span > 0 else 1.0
    intercept = _ds_float(lo)
    return _quantised(volume, slope, intercept, np.uint16), slope, intercept


def _fits(lo: float, hi: float, slope: float, intercept: float, bounds: tuple[int, int]) -> bool:
    low, high = round((lo - intercept) / slope), round((hi - intercept) / slope)
    return bounds[0] <= low and high <= bounds[1]


def _quantised(volume: np.ndarray, slope: float, intercept: float, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    ints = np.round((np.asarray(volume, dtype=np.float64) - intercept) / slope)
    # Only float rounding can reach past the bounds here: the range was checked (or fitted).
    return np.clip(ints, info.min, info.max).astype(dtype)


def _ds(value: float) -> str:
    """`value` as a DICOM decimal string (at most 16 characters)."""
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def _ds_float(value: float) -> float:
    return float(_ds(value))


def check_series_folder(folder: Path, *, inputs: list[Path], overwrite: bool) -> None:
    """Raise OutputError unless a DICOM series may be written as `folder`: a new or empty
    folder, or with `overwrite` one holding only DICOM files (a series written before)."""
    folder = Path(folder)
    if folder.is_file():
        raise OutputError("the output is a file; a DICOM series is written as a folder", folder)
    entries = list(folder.iterdir()) if folder.is_dir() else []
    if entries and not overwrite:
        raise OutputError("output folder is not empty (use --overwrite to replace it)", folder)
    if entries and not all(is_dicom_file(p) for p in entries):
        raise OutputError(
            "output folder holds files other than DICOM; --overwrite replaces only a DICOM "
            "series folder",
            folder,
        )
    check_output_path(folder, inputs=inputs, overwrite=True)


def write_dicom_series(
    volume: np.ndarray,
    affine: np.ndarray,
    source: SeriesHeader,
    series: DerivedSeries,
    folder: Path,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write `volume` (rows, columns, slices) as a DICOM series in `folder`, one file per
    slice, derived from `source`; returns the files. `folder` appears complete or not at all."""
    data = np.asarray(volume)
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {data.shape}")
    folder = Path(folder)
    check_series_folder(folder, inputs=[], overwrite=overwrite)
    datasets = derived_datasets(data, affine, source, series)
    width = max(4, len(str(len(datasets))))
    names = [f"{i + 1:0{width}d}.dcm" for i in range(len(datasets))]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{secrets.token_hex(4)}")
    try:
        tmp.mkdir()
        for name, ds in zip(names, datasets):
            ds.save_as(str(tmp / name), enforce_file_format=True)
        _move_into_place(tmp, folder)
    except OSError as exc:
        raise OutputError(f"cannot write the DICOM series ({exc.strerror or exc})", folder) from exc
    except (ValueError, TypeError) as exc:  # pydicom cannot encode a value of the source's
        raise OutputError(f"cannot write the DICOM series ({exc})", folder) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [folder / name for name in names]


def _move_into_place(tmp: Path, folder: Path) -> None:
    """Rename `tmp` onto `folder`; an older series there is set aside first, removed after."""
    if not folder.exists() or not any(folder.iterdir()):
        os.replace(tmp, folder)  # replaces an empty folder too
        return
    old = folder.with_name(f".{folder.name}.old-{secrets.token_hex(4)}")
    os.replace(folder, old)
    try:
        os.replace(tmp, folder)
    except OSError:
        os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def derived_datasets(
    volume: np.ndarray, affine: np.ndarray, source: SeriesHeader, series: DerivedSeries
) -> list:
    """One pydicom dataset per slice of `volume` (rows, columns, slices), ready to save."""
    from pydicom.uid import generate_uid

    geometry = series_geometry(affine, volume.shape[2])
    slope, intercept = _source_rescale(source.template)
    ints, slope, intercept = stored_values(volume, slope, intercept)
    base = _series_base(source, series, geometry, volume)
    base.SeriesInstanceUID = generate_uid()
    _set_pixel_module(base, ints, slope, intercept)
    normal = np.cross(geometry.orientation[:3], geometry.orientation[3:])
    out = []
    for k in range(volume.shape[2]):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta = _file_meta(ds)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in geometry.positions[k]]
        ds.SliceLocation = _ds(float(np.dot(geometry.positions[k], normal)))
        ds.PixelData = np.ascontiguousarray(ints[:, :, k]).tobytes()
        ds["PixelData"].VR = "OW"  # 16-bit pixels; pydicom leaves "OB or OW" open otherwise
        out.append(ds)
    return out


def _source_rescale(template) -> tuple[float, float]:
    slope, intercept = template.get("RescaleSlope", None), template.get("RescaleIntercept", None)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    return (slope, intercept) if slope > 0 else (1.0, 0.0)


def _series_base(source: SeriesHeader, series: DerivedSeries, geometry: Geometry, volume):
    """The source header with its per-image tags dropped and the series' own set."""
    ds = copy.deepcopy(source.template)
    for keyword in _DROPPED:
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = _sop_class(ds)
    now = datetime.now()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SeriesDescription = series.description[:_LO_LENGTH]
    ds.SeriesNumber = int(ds.get("SeriesNumber", 0) or 0) + series.series_number_offset
    ds.DerivationDescription = series.derivation[:_ST_LENGTH]
    for prefix in ("Series", "Content", "InstanceCreation"):
        setattr(ds, f"{prefix}Date", now.strftime("%Y%m%d"))
        setattr(ds, f"{prefix}Time", now.strftime("%H%M%S"))
    ds.ContributingEquipmentSequence = [
        *ds.get("ContributingEquipmentSequence", []),
        _contributing_equipment(series, now),
    ]
    ds.ReferencedSeriesSequence = [_referenced_series(source)]
    ds.ImageOrientationPatient = [_ds(v) for v in geometry.orientation]
    ds.PixelSpacing = [_ds(v) for v in geometry.pixel_spacing]
    ds.SpacingBetweenSlices = _ds(geometry.slice_spacing)
    thickness = series.slice_thickness
    ds.SliceThickness = _ds(geometry.slice_spacing if thickness is None else thickness)
    if series.window_from_data or "WindowCenter" not in ds:
        _set_window(ds, volume)
    return ds


def _sop_class(ds) -> str:
    current = str(ds.get("SOPClassUID", ""))
    if current in _SINGLE_FRAME:
        return _SINGLE_FRAME[current]
    return current or _MR_IMAGE


def _contributing_equipment(series: DerivedSeries, now: datetime):
    from pydicom.dataset import Dataset

    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = _MODIFYING_EQUIPMENT
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = [purpose]
    item.Manufacturer = series.manufacturer[:_LO_LENGTH]
    item.ManufacturerModelName = series.model_name[:_LO_LENGTH]
    item.SoftwareVersions = series.version[:_LO_LENGTH]
    item.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
    item.ContributionDescription = series.settings[:_ST_LENGTH]
    return item


def _referenced_series(source: SeriesHeader):
    from pydicom.dataset import Dataset

    item = Dataset()
    if source.series_uid:
        item.SeriesInstanceUID = source.series_uid
    instances = []
    for sop_class, sop_instance in source.instances:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, sop_instance
        instances.append(ref)
    item.ReferencedInstanceSequence = instances
    return item


def _set_pixel_module(ds, ints: np.ndarray, slope: float, intercept: float) -> None:
    ds.Rows, ds.Columns = int(ints.shape[0]), int(ints.shape[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if ints.dtype == np.int16 else 0
    ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)


def _set_window(ds, volume: np.ndarray) -> None:
    lo, hi = (float(v) for v in np.percentile(volume, [0.5, 99.5]))
    ds.WindowCenter = _ds((lo + hi) / 2)
    ds.WindowWidth = _ds(max(hi - lo, 1e-6))


def _file_meta(ds):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta
