"""DICOM series output of `wavesr sr` (and `--through-plane`): what the derived series says of
itself, and the writing of the result (and of the std map of `--samples`) as series.

The series text is plain about its origin: the SeriesDescription ends in "WaveSR xN (AI
super-resolution)", the DerivationDescription says that a generative model synthesised the
details, and ContributingEquipmentSequence names WaveSR, its version, the model and the settings.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

import wavesr
from wavesr.data.dicom import SeriesHeader
from wavesr.data.dicom_write import DerivedSeries, write_dicom_series
from wavesr.data.types import SliceStack
from wavesr.data.write import sr_affine, stack_to_volume
from wavesr.errors import InputError

DICOM = "dicom"
SOFTWARE = "WaveSR"
STD_SERIES_OFFSET = 2000  # SeriesNumber of the std map: the source's + this (the SR's: + 1000)
# SROptions fields that change how the run goes, not what it computes.
_NOT_SETTINGS = ("batch", "device", "overwrite", "progress", "output_format", "series")
# SROptions fields whose None means "the model's own": the diffusion config's field of that name.
_MODEL_DEFAULTS = {
    "steps": "sample_steps",
    "temperature": "temperature",
    "consistency_steps": "consistency_steps",
}


def run_settings(opts: Any, pipeline: Any) -> dict:
    """The options (an SROptions) that shape the output, the model's own values filled in."""
    diffusion = getattr(getattr(pipeline, "config", None), "diffusion", None)
    settings = {}
    for name, value in dataclasses.asdict(opts).items():
        if name in _NOT_SETTINGS:
            continue
        if value is None and name in _MODEL_DEFAULTS:
            value = getattr(diffusion, _MODEL_DEFAULTS[name], None)
        if value is not None:
            settings[name] = value
    return settings


def derived_series(
    source: SeriesHeader,
    model_dir: Path | None,
    settings: dict,
    *,
    factor: int,
    kind: str = "",
    std_of: int = 0,
    slice_thickness: float | None = None,
) -> DerivedSeries:
    """The description of a WaveSR series derived from `source`: x`factor`, `kind` (e.g.
    "through-plane") and, with `std_of` samples, the std map of their mean."""
    what = " ".join(part for part in (f"x{factor}", kind) if part)
    if std_of:
        suffix = f"WaveSR {what} std of {std_of} samples (AI)"
    else:
        suffix = f"WaveSR {what} (AI super-resolution)"
    original = str(source.template.get("SeriesDescription", "") or "").strip()
    room = 64 - len(suffix) - 1
    description = f"{original[:room].rstrip()} {suffix}" if original and room > 0 else suffix
    model = "none" if model_dir is None else Path(model_dir).name
    text = ", ".join(f"{name} {value}" for name, value in settings.items())
    made = f"super-resolution {what} by {SOFTWARE} {wavesr.__version__}"
    made = f"Per-voxel standard deviation of {std_of} samples of {made}" if std_of else made
    derivation = (
        f"{made[0].upper()}{made[1:]}, a generative AI model (latent diffusion): details are "
        f"synthesised, not measured. Model {model}; {text}."
    )
    return DerivedSeries(
        description=description,
        derivation=derivation,
        manufacturer=SOFTWARE,
        model_name=model,
        version=wavesr.__version__,
        settings=text,
        series_number_offset=STD_SERIES_OFFSET if std_of else 1000,
        slice_thickness=slice_thickness,
        window_from_data=bool(std_of),
    )


def check_stack(stack: SliceStack, source: Path) -> None:
    """Raise InputError unless the slices of `stack` can be placed in a DICOM series."""
    if stack.affine is None or stack.slice_axis is None:
        raise InputError(
            "the DICOM series lacks ImagePositionPatient, ImageOrientationPatient or "
            "PixelSpacing: its output slices cannot be placed (write NIfTI instead)",
            source,
        )


def source_thickness(source: SeriesHeader, slice_axis: int | None) -> float | None:
    """The source's SliceThickness when its slices stay as they were (in-plane SR of the
    series' own slices, axis 2), else None (the slice spacing)."""
    value = source.template.get("SliceThickness", None)
    if slice_axis != 2:
        return None
    return None if value in (None, "") else float(value)


def write_stack_series(
    source: SeriesHeader,
    stack: SliceStack,
    sr: np.ndarray,
    std: np.ndarray | None,
    output: Path,
    std_output: Path,
    *,
    factor: int,
    model_dir: Path | None,
    settings: dict,
    overwrite: bool,
) -> tuple[int, ...]:
    """Write the super-resolved slices `sr` (N, H, W) of `stack` as a DICOM series `output`,
    and `std` (when given) as a second series `std_output` first; returns the volume shape."""
    affine = sr_affine(stack.affine, stack.slice_axis, factor)
    thickness = source_thickness(source, stack.slice_axis)
    if std is not None:
        std_series = derived_series(
            source,
            model_dir,
            settings,
            factor=factor,
            std_of=settings.get("samples", 0),
            slice_thickness=thickness,
        )
        volume = stack_to_volume(std, stack.slice_axis)
        write_dicom_series(volume, affine, source, std_series, std_output, overwrite=overwrite)
    series = derived_series(source, model_dir, settings, factor=factor, slice_thickness=thickness)
    volume = stack_to_volume(sr, stack.slice_axis)
    write_dicom_series(volume, affine, source, series, output, overwrite=overwrite)
    return tuple(int(n) for n in volume.shape)
