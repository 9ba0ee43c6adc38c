"""DICOM (pydicom): a single file or a folder holding one series, stacked into a 3-D volume.

Slices are ordered by ImagePositionPatient projected on the slice normal (falling back to
InstanceNumber, then file name); RescaleSlope/Intercept are applied. The volume is indexed
(row, column, slice), so slices lie along axis 2, and its affine maps those voxel indices to
RAS world coordinates (DICOM's LPS flipped), ready for NIfTI output. A folder holding several
series is refused with a listing of them, unless `series` names one (SeriesInstanceUID).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wavesr.data.types import check_finite, check_voxel_count, reason, require_file
from wavesr.errors import InputError

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class DicomVolume:
    volume: np.ndarray  # (rows, columns, slices) float32
    affine: np.ndarray | None  # 4x4 voxel -> RAS, None when the geometry tags are missing
    names: list[str]  # one name per slice (file name, or file:frame=i)


@dataclass
class _Slice:
    pixels: np.ndarray  # (rows, columns) float32, rescaled
    position: np.ndarray | None  # ImagePositionPatient
    orientation: np.ndarray | None  # ImageOrientationPatient (6 values)
    spacing: np.ndarray | None  # PixelSpacing (between rows, between columns)
    instance: int | None
    name: str


def natural_key(text: str) -> list:
    """Sort key that orders "img2" before "img10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def is_dicom_file(path: Path) -> bool:
    """True for *.dcm files and files carrying the DICM magic at byte 128."""
    if path.name.startswith(".") or path.name.upper() == "DICOMDIR" or not path.is_file():
        return False
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def dicom_files(folder: Path) -> list[Path]:
    """DICOM files directly inside `folder`, naturally sorted."""
    return sorted(
        (p for p in folder.iterdir() if is_dicom_file(p)), key=lambda p: natural_key(p.name)
    )


def read_dicom(path: Path, series: str | None = None) -> DicomVolume:
    """Read a DICOM file or a folder holding one series (or the series `series` names)."""
    try:
        return _read_dicom(path, series)
    except InputError:
        raise
    except Exception as exc:  # pydicom decodes values lazily: damage shows on first use
        raise InputError(f"damaged DICOM header or data ({reason(exc)})", path) from exc


@dataclass
class SeriesHeader:
    """What a derived series needs of its source: one header (no pixel data) as the template,
    and the source's instances to reference."""

    template: Any  # pydicom Dataset of one file of the series, without pixel data
    series_uid: str | None
    instances: list[tuple[str, str]]  # (SOPClassUID, SOPInstanceUID) of each file


def read_series_header(path: Path, series: str | None = None) -> SeriesHeader:
    """The headers of the series `read_dicom(path, series)` reads, without their pixel data."""
    import pydicom

    files = [path] if path.is_file() else dicom_files(path)
    if not files:
        raise InputError("folder holds no DICOM files", path)
    try:
        datasets = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in files]
    except Exception as exc:
        raise InputError(f"not a readable DICOM file ({reason(exc)})", path) from exc
    datasets, _ = pick_series(datasets, files, path, series)
    uid = datasets[0].get("SeriesInstanceUID", None)
    instances = [
        (str(ds.SOPClassUID), str(ds.SOPInstanceUID))
        for ds in datasets
        if "SOPClassUID" in ds and "SOPInstanceUID" in ds
    ]
    return SeriesHeader(datasets[0], None if uid is None else str(uid), instances)


def pick_series(
    datasets: list, files: list[Path], path: Path, series: str | None
) -> tuple[list, list[Path]]:
    """The datasets (and files) of the one series in `path`, or of `series` when given.

    Several series and no choice, or a choice not among them: InputError listing the series
    (UID, description, slice count), so the user can pick one.
    """
    uids = [str(ds.get("SeriesInstanceUID", "")) for ds in datasets]
    found = list(dict.fromkeys(uids))
    if series is None and len(found) <= 1:
        return datasets, files
    if series is None:
        raise InputError(
            f"folder holds {len(found)} DICOM series: {_listing(datasets, uids, found)}; "
            "choose one with `wavesr sr --series UID`, or point at a folder with one series",
            path,
        )
    if series not in found:
        raise InputError(
            f"no DICOM series {series} here; it holds {_listing(datasets, uids, found)}", path
        )
    chosen = [i for i, uid in enumerate(uids) if uid == series]
    return [datasets[i] for i in chosen], [files[i] for i in chosen]


def _listing(datasets: list, uids: list[str], found: list[str]) -> str:
    """'UID "description" (N slices), ...' for each series in `found`."""
    parts = []
    for uid in found:
        members = [ds for ds, u in zip(datasets, uids) if u == uid]
        count = sum(int(getattr(ds, "NumberOfFrames", 1) or 1) for ds in members)
        description = str(members[0].get("SeriesDescription", "") or "no description")
        slices = "slice" if count == 1 else "slices"
        parts.append(f'{uid or "(no UID)"} "{description}" ({count} {slices})')
    return ", ".join(parts)


def _read_dicom(path: Path, series: str | None) -> DicomVolume:
    files = [path] if path.is_file() else dicom_files(path)
    if not files:
        raise InputError("folder holds no DICOM files", path)
    datasets = [_read_header(f) for f in files]
    datasets, files = pick_series(datasets, files, path, series)
    _check_series(datasets, files, path)
    if len(files) == 1 and int(getattr(datasets[0], "NumberOfFrames", 1) or 1) > 1:
        slices = _frames(datasets[0], files[0])
    elif any(int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 for ds in datasets):
        raise InputError("folder mixes multi-frame DICOM files; point at one file", path)
    else:
        slices = [_single(ds, f) for ds, f in zip(datasets, files)]
    slices = _order(slices, path)
    volume = np.stack([s.pixels for s in slices], axis=-1)
    check_finite(volume, path)
    return DicomVolume(volume, _affine(slices, datasets[0], path), [s.name for s in slices])


def _read_header(file: Path):
    import pydicom

    require_file(file)
    try:
        ds = pydicom.dcmread(str(file))
    except Exception as exc:
        raise InputError(f"not a readable DICOM file ({reason(exc)})", file) from exc
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise InputError("DICOM file has no pixel data", file)
    return ds


def _check_series(datasets: list, files: list[Path], path: Path) -> None:
    sizes = sorted({(int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) for ds in datasets})
    if len(sizes) > 1:
        listed = ", ".join(f"{r}x{c}" for r, c in sizes)
        raise InputError(f"DICOM series mixes slice sizes ({listed})", path)
    rows, cols = sizes[0]
    frames = sum(int(getattr(ds, "NumberOfFrames", 1) or 1) for ds in datasets)
    check_voxel_count((rows, cols, frames), path)
    for ds, file in zip(datasets, files):
        _check_pixel_bytes(ds, file)


def _check_pixel_bytes(ds, file: Path) -> None:
    """Uncompressed pixel data must hold what Rows x Columns x frames promise; checked before
    pydicom decodes (and allocates) the promised array."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" not in ds or (syntax is not None and syntax.is_compressed):
        return
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.get("BitsAllocated", 8))
    promised = math.ceil(rows * cols * frames * samples * bits / 8)
    held = len(ds.PixelData)
    if held < promised:
        raise InputError(
            f"DICOM header promises {rows}x{cols}x{frames} pixels ({promised:,} bytes), "
            f"the file holds {held:,} bytes of pixel data",
            file,
        )


def _pixels(ds, file: Path) -> np.ndarray:
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise InputError(
            f"cannot decode DICOM pixel data ({exc.__class__.__name__}: {exc})", file
        ) from exc
    arr = arr.astype(np.float32)
    if int(ds.get("SamplesPerPixel", 1)) == 3 and arr.shape[-1] == 3:
        arr = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return arr


def _floats(value, count: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (count,) and np.isfinite(arr).all() else None


def _rescale(ds) -> tuple[float, float]:
    slope, intercept = ds.get("RescaleSlope", None), ds.get("RescaleIntercept", None)
    if slope is None:
        for group in _groups(ds, "PixelValueTransformationSequence"):
            slope, intercept = group.get("RescaleSlope", None), group.get("RescaleIntercept", None)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    return slope, intercept


def _groups(ds, sequence: str, frame: int | None = None) -> list:
    """Items of `sequence` in the per-frame (when given) and shared functional groups."""
    found = []
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds:
        per_frame = ds.PerFrameFunctionalGroupsSequence
        if frame < len(per_frame) and sequence in per_frame[frame]:
            found.extend(per_frame[frame][sequence])
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence):
        shared = ds.SharedFunctionalGroupsSequence[0]
        if sequence in shared:
            found.extend(shared[sequence])
    return found


def _single(ds, file: Path) -> _Slice:
    slope, intercept = _rescale(ds)
    pixels = _pixels(ds, file)
    if pixels.ndim != 2:
        raise InputError(f"expected a 2-D DICOM image, got pixel array {pixels.shape}", file)
    instance = ds.get("InstanceNumber", None)
    return _Slice(
        pixels=pixels * slope + intercept,
        position=_floats(ds.get("ImagePositionPatient", None), 3),
        orientation=_floats(ds.get("ImageOrientationPatient", None), 6),
        spacing=_floats(ds.get("PixelSpacing", None), 2),
        instance=None if instance in (None, "") else int(instance),
        name=file.name,
    )


def _frames(ds, file: Path) -> list[_Slice]:
    slope, intercept = _rescale(ds)
    pixels = _pixels(ds, file)
    if pixels.ndim != 3:
        raise InputError(f"expected a multi-frame pixel array, got {pixels.shape}", file)
    out = []
    for i in range(pixels.shape[0]):

        def first(seq: str, tag: str, i: int = i):
            items = [g for g in _groups(ds, seq, i) if tag in g]
            return items[0].get(tag) if items else ds.get(tag, None)

        out.append(
            _Slice(
                pixels=pixels[i] * slope + intercept,
                position=_floats(first("PlanePositionSequence", "ImagePositionPatient"), 3),
                orientation=_floats(
                    first("PlaneOrientationSequence", "ImageOrientationPatient"), 6
                ),
                spacing=_floats(first("PixelMeasuresSequence", "PixelSpacing"), 2),
                instance=i,
                name=f"{file.name}:frame={i}",
            )
        )
    return out


def _normal(orientation: np.ndarray) -> np.ndarray:
    return np.cross(orientation[:3], orientation[3:])


def _order(slices: list[_Slice], path: Path) -> list[_Slice]:
    if all(s.position is not None and s.orientation is not None for s in slices):
        normal = _normal(slices[0].orientation)
        depth = [float(np.dot(s.position, normal)) for s in slices]
        if len(slices) > 1 and len(set(np.round(depth, 4))) < len(slices):
            raise InputError(
                "several DICOM slices share one position (multiple echoes or time points?); "
                "point at a folder holding a single 3-D series",
                path,
            )
        return [s for _, s in sorted(zip(depth, slices), key=lambda t: t[0])]
    if all(s.instance is not None for s in slices):
        return sorted(slices, key=lambda s: s.instance)
    return slices


def _affine(slices: list[_Slice], ds, path: Path) -> np.ndarray | None:
    first = slices[0]
    if any(s.position is None for s in slices) or first.orientation is None:
        return None
    if first.spacing is None:
        return None
    if (first.spacing <= 0).any():
        raise InputError(f"PixelSpacing must be positive, got {tuple(first.spacing)}", path)
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    lps = np.zeros((3, 4))
    lps[:, 0] = col_dir * first.spacing[0]  # moving down one row follows the column direction
    lps[:, 1] = row_dir * first.spacing[1]
    if len(slices) > 1:
        lps[:, 2] = (slices[-1].position - first.position) / (len(slices) - 1)
    else:
        thickness = ds.get("SpacingBetweenSlices", None) or ds.get("SliceThickness", None)
        step = float(thickness) if thickness not in (None, "") else 1.0
        if step <= 0:
            raise InputError(f"slice spacing must be positive, got {step}", path)
        lps[:, 2] = _normal(first.orientation) * step
    lps[:, 3] = first.position
    affine = np.eye(4)
    affine[:3, :] = _LPS_TO_RAS @ lps
    return affine
