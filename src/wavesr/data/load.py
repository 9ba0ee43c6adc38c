"""Pick the reader for a path, slice it, drop near-empty slices and normalise to [0, 1]."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavesr.data import normalize
from wavesr.data.dicom import dicom_files, is_dicom_file, natural_key, read_dicom
from wavesr.data.hdf5 import read_hdf5
from wavesr.data.images import (
    IMAGE_SUFFIXES,
    image_files,
    is_image_file,
    read_image,
    read_image_folder,
)
from wavesr.data.nifti import PLANE_CODES, axis_for_plane, read_nifti
from wavesr.data.npy import check_slice_array, read_npy
from wavesr.data.types import (
    SliceStack,
    check_finite,
    check_slice_size,
    missing_error,
)
from wavesr.errors import ConfigError, InputError

VOLUME_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".h5", ".hdf5", ".npy")
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".nii",
    ".nii.gz",
    ".dcm",
    ".h5",
    ".hdf5",
    *IMAGE_SUFFIXES,
    ".npy",
)
EMPTY_LEVEL = 0.10  # a voxel "has signal" above 10% of the volume's 99.5th percentile
EMPTY_PERCENTILE = 99.5
_AXIS_LETTERS = "xyz"


@dataclass
class _Raw:
    """A reader's output before slicing: a 3-D array, or already a stack of 2-D slices."""

    kind: str
    volume: np.ndarray
    affine: np.ndarray | None = None
    default_axis: int | str | None = 0
    names: list[str] | None = None  # per-slice names along the default axis
    is_volume: bool = True  # False: volume is an (N, H, W) stack of independent 2-D images


def suffix_of(path: Path) -> str:
    """Lower-case suffix, treating ".nii.gz" as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_volume_file(path: Path) -> bool:
    return suffix_of(path) in VOLUME_SUFFIXES and not path.name.startswith(".")


def find_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Expand DATA arguments into loadable units (each one a `load_slices` call).

    A NIfTI / HDF5 / .npy / DICOM / image file is one unit. A folder is searched recursively:
    each volume file is a unit, each folder holding DICOM files is one unit (a series), and
    each folder holding images (and no volumes or DICOM) is one unit (a stack of 2-D slices).
    """
    units: list[Path] = []
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise missing_error(path)
        if path.is_dir():
            found = _walk(path)
            if not found:
                raise InputError(
                    f"folder holds no supported files ({', '.join(SUPPORTED_SUFFIXES)} or DICOM)",
                    path,
                )
            units.extend(found)
        elif suffix_of(path) in SUPPORTED_SUFFIXES or is_dicom_file(path):
            units.append(path)
        else:
            raise InputError(
                f"unsupported file type '{suffix_of(path) or path.name}' "
                f"(supported: {', '.join(SUPPORTED_SUFFIXES)} or DICOM)",
                path,
            )
    return list(dict.fromkeys(units))


def _walk(folder: Path) -> list[Path]:
    entries = sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )
    files = [p for p in entries if p.is_file()]
    volumes = [p for p in files if _is_volume_file(p)]
    has_dicom = any(is_dicom_file(p) for p in files)
    has_images = any(is_image_file(p) for p in files)
    units = [folder] if has_dicom or (has_images and not volumes) else []
    units.extend(volumes)
    for sub in entries:
        if sub.is_dir():
            units.extend(_walk(sub))
    return units


def load_slices(
    path: str | Path,
    *,
    axis: int | str | None = None,
    normalization: str = "slice-minmax",
    skip_empty: bool = True,
    empty_threshold: float = 0.05,
    series: str | None = None,
) -> SliceStack:
    """Read one input unit as normalised 2-D slices.

    axis: voxel axis (int) or plane ("axial", "coronal", "sagittal"). Default: axial for
    NIfTI, the series' own slice axis for DICOM, axis 0 for HDF5 and 3-D .npy. Plane names
    need an orientation, so sources without one (HDF5, .npy) use axis 0 for them; 2-D image
    sources ignore `axis`.
    skip_empty: drop near-empty slices (see `nonempty_slices`); `indices` records the kept ones.
    series: the SeriesInstanceUID to read from a DICOM folder holding several.
    """
    return load_slice_stacks(
        path,
        axes=(axis,),
        normalization=normalization,
        skip_empty=skip_empty,
        empty_threshold=empty_threshold,
        series=series,
    )[0]


def load_slice_stacks(
    path: str | Path,
    *,
    axes: Sequence[int | str | None],
    normalization: str = "slice-minmax",
    skip_empty: bool = True,
    empty_threshold: float = 0.05,
    series: str | None = None,
) -> list[SliceStack]:
    """`load_slices` along each of `axes`, the input read once; a 2-D image source has no
    axes to choose and gives one stack."""
    path, raw = Path(path), _read_checked(path, normalization, empty_threshold, series)
    options = (normalization, skip_empty, empty_threshold)
    if not raw.is_volume:
        return [_slice_stack(raw, path, None, *options)]
    return [_slice_stack(raw, path, _resolve_axis(axis, raw), *options) for axis in axes]


def load_reformat_stacks(
    path: str | Path,
    *,
    thick: int | str = "axial",
    normalization: str = "slice-minmax",
    skip_empty: bool = True,
    empty_threshold: float = 0.05,
) -> list[SliceStack]:
    """The slices of a volume that contain its `thick` axis, with that axis on their rows: two
    stacks, one along each of the other two axes. These are the reformats `--through-plane`
    super-resolves in a scan whose slices are thick along that axis; `thick` is a voxel axis or
    the plane whose slices would be thick ("axial": the S/I axis). Training data only: the
    slices may be transposed, so a stack does not re-assemble into its volume. A 2-D image
    source gives its one stack, as `load_slice_stacks` does."""
    path, raw = Path(path), _read_checked(path, normalization, empty_threshold)
    options = (normalization, skip_empty, empty_threshold)
    if not raw.is_volume:
        return [_slice_stack(raw, path, None, *options)]
    rows = _resolve_axis(thick, raw)
    return [
        _slice_stack(raw, path, axis, *options, rows_axis=rows) for axis in range(3) if axis != rows
    ]


def array_slices(
    data: np.ndarray,
    *,
    affine: np.ndarray | None = None,
    axis: int | str | None = None,
    normalization: str = "slice-minmax",
    source: Path = Path("array"),
) -> SliceStack:
    """`load_slices` of an array in memory, near-empty slices kept: with `affine`, a volume
    sliced as a NIfTI file is (default axis: axial); without, as a .npy file is (a 3-D array
    along axis 0, a 2-D array as one slice). `source` names the array in the stack."""
    check_slice_array(data)
    data = np.asarray(data, dtype=np.float32)
    check_finite(data, None)
    if affine is not None:
        raw = _Raw("nifti", data, np.asarray(affine, dtype=np.float64), default_axis="axial")
    elif data.ndim == 2:
        raw = _Raw("npy", data[None], names=[source.name], is_volume=False)
    else:
        raw = _Raw("npy", data)
    slice_axis = _resolve_axis(axis, raw) if raw.is_volume else None
    return _slice_stack(raw, source, slice_axis, normalization, False, 0.05)


def _read_checked(
    path: str | Path, normalization: str, empty_threshold: float, series: str | None = None
) -> _Raw:
    if normalization not in normalize.METHODS:
        raise ConfigError(
            f"unknown normalization {normalization!r} (choose from {', '.join(normalize.METHODS)})"
        )
    if not 0.0 <= empty_threshold <= 1.0:
        raise ConfigError(f"empty_threshold must lie in [0, 1], got {empty_threshold}")
    with _quiet_readers():
        return _read(Path(path), series)


def _slice_stack(
    raw: _Raw,
    path: Path,
    slice_axis: int | None,
    normalization: str,
    skip_empty: bool,
    empty_threshold: float,
    rows_axis: int | None = None,
) -> SliceStack:
    """The slices of `raw` along `slice_axis` (None: a 2-D source), near-empty ones dropped
    if `skip_empty`, normalised; with `rows_axis`, transposed where needed to put that voxel
    axis on their rows."""
    if slice_axis is not None:
        in_plane = [a for a in range(3) if a != slice_axis]
        if rows_axis == in_plane[1]:
            in_plane.reverse()
        slices = np.ascontiguousarray(np.transpose(raw.volume, (slice_axis, *in_plane)))
        volume_shape: tuple[int, ...] | None = tuple(int(n) for n in raw.volume.shape)
        if raw.names is not None and slice_axis == raw.default_axis:
            names = list(raw.names)
        elif raw.affine is None:
            names = [f"{path.name}:{i}" for i in range(slices.shape[0])]
        else:
            names = [f"{path.name}:{_AXIS_LETTERS[slice_axis]}={i}" for i in range(len(slices))]
    else:
        slices, volume_shape = raw.volume, None
        names = list(raw.names or [path.name] * len(slices))
    check_slice_size(int(slices.shape[1]), int(slices.shape[2]), path)
    keep = (
        np.flatnonzero(nonempty_slices(slices, empty_threshold))
        if skip_empty
        else np.arange(len(slices))
    )
    if keep.size == 0:
        raise InputError(
            f"all {len(slices)} slices are near-empty (fewer than {empty_threshold:.0%} of "
            f"voxels above {EMPTY_LEVEL:.0%} of the {EMPTY_PERCENTILE}th percentile)",
            path,
        )
    normed, params = normalize.normalize_stack(slices, normalization)
    kept = [int(i) for i in keep]
    return SliceStack(
        slices=np.ascontiguousarray(normed[keep]),
        source=path,
        kind=raw.kind,
        indices=kept,
        affine=None if raw.affine is None else raw.affine.copy(),
        slice_axis=slice_axis,
        volume_shape=volume_shape,
        normalization=normalize.select(params, kept),
        names=[names[i] for i in kept],
    )


def read_volume(
    path: str | Path, series: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(3-D array, 4x4 affine or None) of a volume input, unsliced and unnormalised; an input
    of independent 2-D images (PNG, TIFF, a 2-D .npy) raises InputError. `series`: the
    SeriesInstanceUID to read from a DICOM folder holding several."""
    path = Path(path)
    with _quiet_readers():
        raw = _read(path, series)
    if not raw.is_volume:
        raise InputError("a 2-D image, not a 3-D volume", path)
    return raw.volume, None if raw.affine is None else raw.affine.copy()


def nonempty_slices(slices: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Boolean mask of slices that are not near-empty.

    A slice is near-empty (skipped) when fewer than `threshold` (default 5%) of its voxels
    exceed 10% of the volume's 99.5th-percentile intensity. The 10% level is measured from
    the volume minimum, which is the same rule for the usual zero-background MRI data and
    still works for data with a negative background. A constant volume is all empty.
    On large stacks the percentile is estimated from at most 4M evenly strided voxels.
    """
    lo = float(slices.min())
    flat = slices.reshape(-1)
    sample = flat[:: max(1, flat.size // 4_000_000)]
    ref = float(np.percentile(sample, EMPTY_PERCENTILE))
    if ref <= lo:
        return np.zeros(len(slices), dtype=bool)
    level = lo + EMPTY_LEVEL * (ref - lo)
    fraction = (slices > level).mean(axis=(1, 2))
    return fraction >= threshold


@contextmanager
def _quiet_readers() -> Iterator[None]:
    """Silence the libraries' own stderr chatter while reading: nibabel's header-fix log lines
    and numpy / pydicom / PIL warnings. The problems they hint at are checked by the readers
    and raised as one InputError, so the CLI's single error line stays single."""
    log = logging.getLogger("nibabel.global")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _read(path: Path, series: str | None = None) -> _Raw:
    if not path.exists():
        raise missing_error(path)
    if path.is_dir():
        return _read_folder(path, series)
    suffix = suffix_of(path)
    if suffix in (".nii", ".nii.gz"):
        volume, affine = read_nifti(path)
        return _Raw("nifti", volume, affine, default_axis="axial")
    if suffix in (".h5", ".hdf5"):
        return _Raw("hdf5", read_hdf5(path))
    if suffix == ".npy":
        data = read_npy(path)
        if data.ndim == 2:
            return _Raw("npy", data[None], names=[path.name], is_volume=False)
        return _Raw("npy", data)
    if suffix in IMAGE_SUFFIXES:
        data = read_image(path)
        names = [path.name] if len(data) == 1 else [f"{path.name}:{i}" for i in range(len(data))]
        return _Raw("image", data, names=names, is_volume=False)
    if suffix == ".dcm" or is_dicom_file(path):
        return _dicom(path, series)
    raise InputError(
        f"unsupported file type '{suffix or path.name}' "
        f"(supported: {', '.join(SUPPORTED_SUFFIXES)} or DICOM)",
        path,
    )


def _read_folder(path: Path, series: str | None = None) -> _Raw:
    if dicom_files(path):
        return _dicom(path, series)
    if image_files(path):
        data, names = read_image_folder(path)
        return _Raw("image", data, names=names, is_volume=False)
    volumes = [p for p in path.iterdir() if _is_volume_file(p)]
    if volumes:
        raise InputError(
            f"folder holds {len(volumes)} volume files; pass each file (or expand the folder "
            "with find_inputs)",
            path,
        )
    raise InputError("folder holds no DICOM or image files", path)


def _dicom(path: Path, series: str | None = None) -> _Raw:
    dcm = read_dicom(path, series)
    return _Raw("dicom", dcm.volume, dcm.affine, default_axis=2, names=dcm.names)


def _resolve_axis(axis: int | str | None, raw: _Raw) -> int:
    ndim = raw.volume.ndim
    choice = raw.default_axis if axis is None else axis
    if isinstance(choice, str) and choice.strip().lstrip("-").isdigit():
        choice = int(choice)
    if isinstance(choice, bool) or not isinstance(choice, int | str):
        raise ConfigError(f"slice axis must be an integer or a plane name, got {choice!r}")
    if isinstance(choice, str):
        plane = choice.strip().lower()
        if plane not in PLANE_CODES:
            raise ConfigError(
                f"unknown slice axis {choice!r} (0, 1, 2, axial, coronal or sagittal)"
            )
        if raw.affine is None:
            # No orientation known: the source's own slice axis.
            return raw.default_axis if isinstance(raw.default_axis, int) else 0
        found = axis_for_plane(raw.affine, plane)
        return 2 if found is None else found
    if not -ndim <= choice < ndim:
        raise ConfigError(f"slice axis {choice} is out of range for a {ndim}-D volume")
    return choice % ndim
