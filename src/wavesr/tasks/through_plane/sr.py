"""`wavesr sr --through-plane`: super-resolve a thick-slice volume along its thick axis.

Reads the volume and its affine, finds the thick axis and the factor (`through_plane`), runs a
2-D row upsampler on the reformats that contain the thick axis, and writes an isotropic NIfTI
over the same physical extent. The upsampler is the WaveSR pipeline by default: each reformat
slice is normalised, cubic-interpolated along its rows onto the HR grid and super-resolved as an
already-upsampled input (`super_resolve_stack` with ``input_is_upsampled``). With `report`,
an HTML page shows input and output side by side (`report.volume.through_plane_report_page`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from wavesr.data.dicom import read_series_header
from wavesr.data.dicom_write import write_dicom_series
from wavesr.data.images import IMAGE_SUFFIXES
from wavesr.data.load import nonempty_slices, read_volume, suffix_of
from wavesr.data.nifti import axis_for_plane
from wavesr.data.normalize import normalize_stack
from wavesr.data.types import SliceStack, missing_error
from wavesr.data.write import voxel_sizes, write_nifti
from wavesr.errors import ConfigError, InputError, OutputError
from wavesr.model.degrade import slice_upsample
from wavesr.runtime import resolve_device
from wavesr.tasks.dicom_output import DICOM, derived_series, run_settings
from wavesr.tasks.self_supervised import Adaptation, adapt_decoder, check_adapt_minutes
from wavesr.tasks.sr import (
    NIFTI,
    SROptions,
    check_options,
    check_output,
    check_report_path,
    load_pipeline,
    output_kind,
    sampling_settings,
    super_resolve_stack,
)
from wavesr.tasks.through_plane.reformat import (
    SUPPORTED_FACTORS,
    AxisFactor,
    RowUpsample,
    partner_axes,
    super_resolve_volume,
    thick_axis,
    through_plane_factor,
)
from wavesr.tasks.through_plane.self_ensemble import check_ensemble_size, flip_ensemble
from wavesr.weights import through_plane_model_dir

NEEDS_VOLUME = "--through-plane needs a 3-D volume with voxel sizes (NIfTI or DICOM)"
NO_SPACING = (*IMAGE_SUFFIXES, ".npy", ".h5", ".hdf5")  # inputs without voxel sizes
MIN_IN_PLANE = 8


@dataclass
class ThroughPlaneResult:
    output: Path
    shape: tuple[int, ...]
    voxel_size: tuple[float, ...]
    axis: int
    factor: AxisFactor
    n_in: int  # input voxels along the axis
    stacks: int
    slices: int  # reformat slices upsampled, all stacks
    super_resolved: int  # of which went through the model (the rest: near-empty, or no model)
    method: str  # "wavesr", or the name of the upsampler passed in
    seconds: float
    adaptation: Adaptation | None = None  # --adapt-minutes: the decoder's fine-tuning
    self_ensemble: int = 1  # flips of each reformat averaged
    report: Path | None = None  # report.html, when one was asked for

    def summary(self) -> str:
        """One line: the axis and sizes, the factor, the slices, the output and its voxel."""
        f, resampling = self.factor, self.resampling()
        resample = f", then {resampling}" if resampling else ""
        filled = self.slices - self.super_resolved
        near_empty = f", {filled} near-empty" if self.method == "wavesr" and filled else ""
        shape = "x".join(str(n) for n in self.shape)
        voxel = " x ".join(f"{v:.4g}" for v in self.voxel_size)
        adapted = "" if self.adaptation is None else f"; {self.adaptation.summary()}"
        flips = f", {self.self_ensemble} flips" if self.self_ensemble > 1 else ""
        return (
            f"sr --through-plane: axis {self.axis}, {f.thick:.4g} -> {f.fine:.4g} mm: "
            f"x{f.model} {self.method} on {self.slices} slices ({self.stacks} stacks"
            f"{flips}{near_empty}){resample} -> {self.output} ({shape}, voxel {voxel} mm) "
            f"in {self.seconds:.1f} s{adapted}"
        )

    def resampling(self) -> str:
        """The resampling along the axis after the model, "cubic N -> M" (N = n_in x factor),
        or "" when the ratio was the factor."""
        upsampled, n_out = self.n_in * self.factor.model, self.shape[self.axis]
        return f"cubic {upsampled} -> {n_out}" if n_out != upsampled else ""


class ModelRows:
    """A `RowUpsample` running the WaveSR pipeline on row-interpolated slices.

    Each call normalises the slices as the model was trained (``data.normalization``), upsamples
    their rows (cubic, clamped to [0, 1]) and super-resolves the non-empty ones; near-empty
    slices keep the interpolation. Results are in the input's intensity scale.
    """

    def __init__(self, pipeline, factor: int, opts: SROptions, bar) -> None:
        self.pipeline, self.factor, self.bar = pipeline, factor, bar
        self.opts = replace(opts, scale=factor, input_is_upsampled=True)
        self.super_resolved = 0

    def __call__(self, slices: np.ndarray) -> np.ndarray:
        normed, params = normalize_stack(slices, self.pipeline.config.data.normalization)
        lr_up = slice_upsample(torch.from_numpy(normed).unsqueeze(1), self.factor)
        stack = SliceStack(
            slices=lr_up[:, 0].numpy(),
            source=Path(),
            kind="nifti",
            indices=list(range(len(normed))),
            affine=None,
            slice_axis=None,
            volume_shape=None,
            normalization=params,
        )
        keep = nonempty_slices(slices)
        sr, _ = super_resolve_stack(self.pipeline, stack, keep, self.opts, self.bar)
        self.bar.update(int((~keep).sum()))
        self.super_resolved += int(keep.sum())
        return sr


def run_through_plane(
    source: str | Path,
    output: str | Path,
    *,
    model: str | Path | None = None,
    options: SROptions | None = None,
    scale: int | None = None,
    stacks: int = 2,
    upsampler: Callable[[int], RowUpsample] | None = None,
    adapt_minutes: float = 0.0,
    self_ensemble: int = 1,
    report: str | Path | None = None,
    command: str = "",
) -> ThroughPlaneResult:
    """Super-resolve the thick axis of `source` and write the isotropic NIfTI `output`.

    `options.axis` names the thick axis (0-2 or a plane name; default: found from the voxel
    sizes). `scale` is the model factor (default: the model's own). `upsampler`, a factory
    factor -> `RowUpsample`, replaces the model (e.g. `through_plane.cubic_rows`); with it the
    factor defaults to the nearest of 2, 4, 8. `adapt_minutes` > 0 first fine-tunes the
    model's decoder on the volume's own in-plane slices (`self_supervised.adapt_decoder`).
    `self_ensemble` 2 or 4 averages the model over that many flips of each reformat
    (`self_ensemble.flip_ensemble`; that many times the time).
    With `report`, also write that HTML page: input and output side by side, reformats across
    the thick axis (`command` is shown on it).
    """
    opts = options or SROptions()
    opts = replace(opts, device=resolve_device(opts.device))
    source, output = Path(source), Path(output)
    report = None if report is None else Path(report)
    start = time.perf_counter()
    self_ensemble, adapt_minutes = check_through_plane_options(
        opts, scale, stacks, self_ensemble, adapt_minutes
    )
    if adapt_minutes and upsampler is not None:
        raise ConfigError("--adapt-minutes fine-tunes the model: it needs no upsampler")
    kind = _check_paths(source, output, opts)
    if report is not None:
        check_report_path(report, source, output, opts.overwrite)
    dicom_header = read_series_header(source, opts.series) if kind == DICOM else None
    volume, affine = read_3d(source, opts.series)
    axis = find_thick_axis(affine, opts.axis, source)
    pipeline = model_dir = None
    if upsampler is None:
        model_dir = Path(model) if model is not None else through_plane_model_dir()
        pipeline = load_pipeline(model_dir, scale, opts.device)
        opts = in_plane_options(pipeline, model_dir, opts)
    run = through_plane_volume(
        volume,
        affine,
        axis,
        ThickAxisMethod(pipeline, model_dir, upsampler),
        opts,
        scale=scale,
        stacks=stacks,
        self_ensemble=self_ensemble,
        adapt_minutes=adapt_minutes,
    )
    sr, new_affine = run.volume, run.affine
    result = ThroughPlaneResult(
        output=output,
        shape=tuple(int(n) for n in sr.shape),
        voxel_size=tuple(float(v) for v in voxel_sizes(new_affine)),
        axis=axis,
        factor=run.factor,
        n_in=int(volume.shape[axis]),
        stacks=stacks,
        slices=run.slices,
        super_resolved=run.super_resolved,
        method="wavesr" if upsampler is None else getattr(upsampler, "__name__", "custom"),
        seconds=time.perf_counter() - start,
        adaptation=run.adaptation,
        self_ensemble=self_ensemble,
        report=report,
    )
    page = None
    if report is not None:  # before writing: a page that fails leaves no output either
        from wavesr.report.volume import through_plane_report_page

        run = _report_run(result, source, model_dir, opts, adapt_minutes)
        page = through_plane_report_page(
            volume, affine, sr, new_affine, axis, run, command, opts.device
        )
    if dicom_header is not None:
        settings = run_settings(opts, pipeline) | _dicom_settings(result)
        series = derived_series(
            dicom_header, model_dir, settings, factor=run.factor.model, kind="through-plane"
        )
        write_dicom_series(sr, new_affine, dicom_header, series, output, overwrite=opts.overwrite)
    else:
        write_nifti(sr, new_affine, output, overwrite=opts.overwrite)
    if page is not None:
        from wavesr.report.html import write_page

        write_page(report, page)
    result.seconds = time.perf_counter() - start
    return result


@dataclass(frozen=True)
class ThickAxisMethod:
    """What upsamples the reformats: the WaveSR `pipeline` (of bundle `model_dir`), or the
    model-free `upsampler` (a factory factor -> `RowUpsample`) when there is no pipeline."""

    pipeline: object | None
    model_dir: Path | None = None
    upsampler: Callable[[int], RowUpsample] | None = None


@dataclass
class ThickAxisRun:
    """A through-plane super-resolution in memory: the isotropic volume and how it was made."""

    volume: np.ndarray
    affine: np.ndarray
    factor: AxisFactor
    slices: int  # reformat slices upsampled, all stacks
    super_resolved: int  # of which went through the model
    adaptation: Adaptation | None = None


def find_thick_axis(affine: np.ndarray, axis: int | str | None, source: Path | None) -> int:
    """The thick axis of a volume with `affine`: `axis` (--axis) if given, else the largest
    voxel size; errors name `source`."""
    return thick_axis(voxel_sizes(affine), axis_option(axis, affine), path=source)


def through_plane_volume(
    volume: np.ndarray,
    affine: np.ndarray,
    axis: int,
    method: ThickAxisMethod,
    opts: SROptions,
    *,
    scale: int | None = None,
    stacks: int = 2,
    self_ensemble: int = 1,
    adapt_minutes: float = 0.0,
) -> ThickAxisRun:
    """Super-resolve `volume` along its thick `axis` with `method` (options checked by the
    caller): the core of `run_through_plane` and of the Python API. `adapt_minutes` > 0
    fine-tunes the pipeline's decoder in place first."""
    pipeline = method.pipeline
    supported = SUPPORTED_FACTORS if pipeline is None else (pipeline.scale,)
    factor = through_plane_factor(voxel_sizes(affine), axis, scale, supported)
    adaptation = None
    if adapt_minutes:
        adaptation = adapt_decoder(
            pipeline,
            volume,
            axis,
            adapt_minutes,
            model_dir=method.model_dir,
            progress=opts.progress,
        )
    total = sum(volume.shape[3 - axis - p] for p in partner_axes(axis, stacks))
    with _bar(total * self_ensemble, opts.progress) as bar:
        if method.upsampler is None:
            rows = ModelRows(pipeline, factor.model, opts, bar)
        else:
            rows = _counted(method.upsampler(factor.model), bar)
        ensemble = flip_ensemble(rows, self_ensemble)
        sr, new_affine = super_resolve_volume(volume, affine, axis, factor, ensemble, stacks)
    super_resolved = rows.super_resolved // self_ensemble if isinstance(rows, ModelRows) else 0
    return ThickAxisRun(sr, new_affine, factor, total, super_resolved, adaptation)


def _report_run(
    result: ThroughPlaneResult,
    source: Path,
    model_dir: Path | None,
    opts: SROptions,
    adapt_minutes: float,
) -> dict:
    """The settings and counts report.html lists (the sampler's only when a model ran)."""
    f = result.factor
    adapted = "0 (off)"
    if result.adaptation is not None:
        adapted = f"{adapt_minutes:g} ({result.adaptation.summary()})"
    run = {
        "input": str(source),
        "output": str(result.output),
        "model": f"none ({result.method})" if model_dir is None else str(model_dir),
        "thick_axis": f"{result.axis}: {f.thick:.4g} -> {f.fine:.4g} mm (ratio {f.ratio:.4g})",
        "factor": f"x{f.model}",
        "resampling": result.resampling() or "none (the ratio is the factor)",
        "stacks": f"{result.stacks} (averaged)" if result.stacks > 1 else "1",
        "adapt_minutes": adapted,
        "self_ensemble": f"{n} flips (averaged)" if (n := result.self_ensemble) > 1 else "1 (off)",
    }
    if model_dir is not None:
        run |= sampling_settings(opts)
    return run | {
        "batch": opts.batch,
        "device": opts.device,
        "slices": result.slices,
        "super_resolved": result.super_resolved,
        "seconds (load and super-resolve)": f"{result.seconds:.1f}",
    }


def check_through_plane_options(
    opts: SROptions, scale: int | None, stacks: int, self_ensemble: int, adapt_minutes: float
) -> tuple[int, float]:
    """Raise ConfigError for options --through-plane cannot run; returns the checked
    (self_ensemble, adapt_minutes)."""
    if opts.samples > 1:
        raise ConfigError("--through-plane does not support --samples yet")
    if opts.input_is_upsampled:
        raise ConfigError("--through-plane and --input-is-upsampled exclude each other")
    partner_axes(0, stacks)  # validates stacks
    check_options(replace(opts, scale=4 if scale is None else scale))
    return check_ensemble_size(self_ensemble), check_adapt_minutes(adapt_minutes)


def _dicom_settings(result: ThroughPlaneResult) -> dict:
    """What a DICOM output records of the through-plane run, beside the sampler's settings."""
    return {
        "method": result.method,
        "thick_axis": result.axis,
        "stacks": result.stacks,
        "self_ensemble": result.self_ensemble,
        "adapted": "no" if result.adaptation is None else result.adaptation.summary(),
    }


def _check_paths(source: Path, output: Path, opts: SROptions) -> str:
    """The output kind, NIFTI or DICOM (a series, for DICOM input written to a folder)."""
    series_out = opts.output_format == DICOM or output.is_dir() or suffix_of(output) == ""
    if suffix_of(output) not in (".nii", ".nii.gz") and not series_out:
        raise OutputError(
            "--through-plane writes NIfTI (the output must end in .nii(.gz)) or, for DICOM "
            "input, a DICOM series (an output folder)",
            output,
        )
    if not source.exists():
        raise missing_error(source)
    if suffix_of(source) in NO_SPACING:
        raise InputError(NEEDS_VOLUME, source)
    kind = output_kind(source, output, opts.output_format, opts.series)
    if kind not in (NIFTI, DICOM):
        raise InputError(NEEDS_VOLUME, source)
    check_output(output, kind, source, opts.overwrite)
    return kind


def read_3d(source: Path, series: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The volume and its affine (of DICOM series `series`, when given); InputError for 2-D
    inputs and thin in-plane sizes."""
    try:
        volume, affine = read_volume(source, series)
    except InputError as exc:
        if "2-D image" in str(exc):
            raise InputError(f"a 2-D image: {NEEDS_VOLUME}", source) from exc
        raise
    check_thick_volume(volume, affine, source)
    return volume, affine


def check_thick_volume(volume: np.ndarray, affine: np.ndarray | None, source: Path | None) -> None:
    """Raise InputError unless `volume` is 3-D (no axis under 2 voxels) with an affine."""
    shape = "x".join(str(n) for n in volume.shape)
    if min(volume.shape) < 2:
        raise InputError(f"a 2-D image (shape {shape}): {NEEDS_VOLUME}", source)
    if affine is None:
        raise InputError(NEEDS_VOLUME, source)


def axis_option(axis: int | str | None, affine: np.ndarray) -> int | None:
    """--axis as a voxel axis: 0-2 as given, a plane name through the affine's orientation."""
    if axis is None or isinstance(axis, int):
        return axis
    text = str(axis).strip().lower()
    if text.lstrip("-").isdigit():
        return int(text)
    found = axis_for_plane(affine, text)
    if found is None:
        raise ConfigError(f"no voxel axis of this volume is normal to the {text} plane")
    return found


def in_plane_options(pipeline, model_dir: Path, opts: SROptions, *, warn: bool = True) -> SROptions:
    """`opts` for `pipeline` (a one-line warning with `warn` when it is in-plane): an in-plane
    model still runs, without back-projection: its degradation would blur the columns the
    input has at full resolution."""
    kind = pipeline.config.data.degradation
    if kind == "slice-axis":
        return opts
    if warn:
        print(
            f"wavesr: warning: {model_dir} is an in-plane model (data.degradation={kind}), not "
            "trained on thick slices (slice-axis); back-projection is off",
            file=sys.stderr,
        )
    return replace(opts, consistency_steps=0)


def _bar(total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sr", unit="slice", disable=not show)


def _counted(rows: RowUpsample, bar) -> RowUpsample:
    def run(slices: np.ndarray) -> np.ndarray:
        out = rows(slices)
        bar.update(len(slices))
        return out

    return run
