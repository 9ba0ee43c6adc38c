"""`wavesr sr`: super-resolve one input (NIfTI, DICOM, HDF5, .npy, images) and write it back.

Output format follows the input: NIfTI -> NIfTI (affine from `sr_affine`), DICOM -> NIfTI
(an output ending in .nii/.nii.gz) or a DICOM series (an output folder, `tasks.dicom_output`),
HDF5 -> HDF5 ("reconstruction_rss"), .npy -> .npy, image folder -> PNG folder, one image ->
one PNG (8-bit, or 16-bit when the input was 16-bit or float). Intensities are mapped back to
the input's scale with the per-slice normalisation parameters (`denormalize`).

Near-empty slices (see `nonempty_slices`) are not run through the model: they are filled with
the bicubic upsampling of the original slice, so every output is complete.

With `samples` > 1 the output is the mean of that many samples (seeds seed, seed + 1, ...) and
the per-voxel standard deviation is written beside it (`std_path`): `<name>_std` with the same
suffix, a `<folder>_std` PNG folder or DICOM series, or a second HDF5 dataset. The samples
are stacked into one model call where `batch` leaves room, and summed on the fly
(`RunningMoments`), so memory does not grow with their number.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from wavesr.config import check_consistency_steps, check_mode, check_temperature
from wavesr.config import sampling_settings as resolve_sampling
from wavesr.data.dicom import dicom_files, is_dicom_file, read_series_header
from wavesr.data.dicom_write import check_series_folder
from wavesr.data.hdf5 import DATASET as HDF5_DATASET
from wavesr.data.images import IMAGE_SUFFIXES, image_files
from wavesr.data.load import VOLUME_SUFFIXES, load_slices, nonempty_slices, suffix_of
from wavesr.data.normalize import denormalize, rescale, select
from wavesr.data.types import SliceStack, missing_error
from wavesr.data.write import (
    sr_affine,
    stack_to_volume,
    voxel_sizes,
    write_nifti,
    write_png_slices,
)
from wavesr.errors import CheckpointError, ConfigError, InputError, OutputError
from wavesr.evaluation.sampling_stats import STD_DDOF, RunningMoments
from wavesr.io_atomic import atomic_write, check_output_path
from wavesr.model.degrade import Degradation
from wavesr.runtime import resolve_device
from wavesr.tasks.dicom_output import DICOM, check_stack, run_settings, write_stack_series

# Output kinds, decided from the input before any work.
NIFTI, HDF5, NPY, PNG_FILE, PNG_FOLDER = "nifti", "hdf5", "npy", "png-file", "png-folder"
_SUFFIXES = {NIFTI: (".nii", ".nii.gz"), HDF5: (".h5", ".hdf5"), NPY: (".npy",)}
_LABELS = {NIFTI: "NIfTI", HDF5: "HDF5", NPY: ".npy"}
SAMPLERS = ("ddim", "ancestral")
STD_DATASET = f"{HDF5_DATASET}_std"


@dataclass
class SROptions:
    scale: int = 4
    steps: int | None = None  # None: the model's own diffusion.sample_steps
    seed: int = 0
    batch: int = 16
    device: str = "auto"  # "auto": cuda when torch sees a GPU, else cpu
    input_is_upsampled: bool = False
    axis: int | str | None = None
    overwrite: bool = False
    sampler: str = "ddim"
    temperature: float | None = None  # None: the model's own diffusion.temperature
    consistency_steps: int | None = None  # None: the model's own diffusion.consistency_steps
    mode: str | None = None  # "faithful" / "perceptual" (diffusion.modes); explicit values win
    # How the LR was acquired: "auto" (the model's own assumption: a scanner's k-space LR for
    # the default model), "kspace" (a smaller matrix) or "bicubic" (a bicubic-made LR)
    degradation: str = "auto"
    progress: bool = True
    samples: int = 1  # > 1: write the mean of this many samples and their std
    output_format: str | None = None  # "nifti" or "dicom" (DICOM inputs); None: from the output
    series: str | None = None  # the SeriesInstanceUID to read from a multi-series DICOM folder


@dataclass
class SRResult:
    output: Path
    slices: int  # slices written
    super_resolved: int  # of which went through the model (the rest were near-empty)
    shape: tuple[int, ...]  # shape of the written array (volume, or (N, H, W) for images)
    seconds: float
    report: Path | None = None  # report.html, when one was asked for
    std_output: Path | None = None  # the std beside the mean (--samples > 1); HDF5: the output
    samples: int = 1
    sr_seconds: float = 0.0  # of `seconds`, the super-resolution of the slices (all samples)
    voxel_size: tuple[float, ...] | None = None  # mm along the output's axes; None: unknown

    def summary(self) -> str:
        """One line: slices, seconds per slice, the output, its shape and voxel size."""
        filled = self.slices - self.super_resolved
        extra = f" ({filled} near-empty, bicubic)" if filled else ""
        if self.samples > 1:
            extra += f", mean of {self.samples} samples"
        if self.super_resolved:
            extra += f", {self.sr_seconds / self.super_resolved:.3g} s/slice"
        shape = "x".join(str(n) for n in self.shape)
        if self.voxel_size is None:
            voxel = "voxel size unknown"
        else:
            voxel = "voxel " + " x ".join(f"{v:.4g}" for v in self.voxel_size) + " mm"
        std = ""
        if self.samples > 1:
            std = f", std in {self.std_output}"
            if self.std_output == self.output:
                std = f", std in dataset {STD_DATASET}"
        return (
            f"sr: {self.slices} slices{extra} -> {self.output} ({shape}, {voxel}){std} "
            f"in {self.seconds:.1f} s"
        )


def output_kind(
    source: Path, output: Path, output_format: str | None = None, series: str | None = None
) -> str:
    """Which writer `output` gets for `source`; raises OutputError for a mismatched suffix.

    A DICOM input gives a DICOM series for an output folder (an existing one, or a name
    without suffix) or with `output_format` "dicom"; `series` (a UID) needs a DICOM input.
    """
    if not source.exists():
        raise missing_error(source)
    if source.is_dir():
        kind = NIFTI if dicom_files(source) else PNG_FOLDER if image_files(source) else None
        if kind is None:
            volumes = [p for p in source.iterdir() if suffix_of(p) in VOLUME_SUFFIXES]
            hint = f" (it holds {len(volumes)} volume files: pass one file)" if volumes else ""
            raise InputError(f"folder holds no DICOM or image files{hint}", source)
    else:
        suffix = suffix_of(source)
        if (
            suffix in _SUFFIXES[NIFTI]
            or suffix == ".dcm"
            or (
                suffix not in IMAGE_SUFFIXES + _SUFFIXES[HDF5] + _SUFFIXES[NPY]
                and is_dicom_file(source)
            )
        ):
            kind = NIFTI
        elif suffix in _SUFFIXES[HDF5]:
            kind = HDF5
        elif suffix in _SUFFIXES[NPY]:
            kind = NPY
        elif suffix in IMAGE_SUFFIXES:
            kind = PNG_FILE if suffix_of(output) == ".png" else PNG_FOLDER
        else:
            raise InputError(f"unsupported file type '{suffix or source.name}'", source)
    kind = _dicom_or(kind, source, output, output_format, series)
    _check_output_suffix(kind, source, output)
    return kind


def _dicom_or(
    kind: str, source: Path, output: Path, output_format: str | None, series: str | None
) -> str:
    """DICOM where a DICOM input is to be written as a series, else `kind`."""
    dicom_in = kind == NIFTI and suffix_of(source) not in _SUFFIXES[NIFTI]
    if series is not None and not dicom_in:
        raise ConfigError("--series picks a series of a DICOM input; this input is not DICOM")
    if output_format == DICOM and not dicom_in:
        raise ConfigError("--output-format dicom needs a DICOM input (the new series' template)")
    if output_format == NIFTI and kind != NIFTI:
        raise ConfigError("--output-format nifti needs a NIfTI or DICOM input")
    if output_format is not None:
        return output_format
    if dicom_in and (output.is_dir() or suffix_of(output) == ""):
        return DICOM
    return kind


def _check_output_suffix(kind: str, source: Path, output: Path) -> None:
    suffix = suffix_of(output)
    if kind == DICOM:
        _check_series_output(output)
        return
    dicom_in = suffix_of(source) not in _SUFFIXES[NIFTI]
    if kind == NIFTI and dicom_in and suffix not in _SUFFIXES[NIFTI]:
        raise OutputError(
            "DICOM input is written as NIfTI (an output ending in .nii or .nii.gz) or as a "
            "DICOM series (an output folder, or --output-format dicom)",
            output,
        )
    if kind in _SUFFIXES and suffix not in _SUFFIXES[kind]:
        label = _LABELS[kind]
        wanted = " or ".join(_SUFFIXES[kind])
        raise OutputError(
            f"{label} input is written as {label}: the output must end in {wanted}", output
        )
    if kind == PNG_FOLDER and source.is_dir() and suffix == ".png":
        raise OutputError("a folder of images is written as a folder of PNGs, not one .png", output)
    if kind == PNG_FOLDER and output.is_file():
        raise OutputError("the output must be a folder (it is a file)", output)
    if kind != PNG_FOLDER and output.is_dir():
        raise OutputError("the output is a folder, expected a file", output)


def _check_series_output(output: Path) -> None:
    if suffix_of(output) in _SUFFIXES[NIFTI]:
        raise OutputError(
            "a DICOM series is written as a folder: the output must not end in .nii(.gz)", output
        )
    if output.is_file():
        raise OutputError("a DICOM series is written as a folder: the output is a file", output)


def check_output(path: Path, kind: str, source: Path, overwrite: bool) -> None:
    """Raise OutputError unless `path` may be written as a `kind` output of `source`."""
    if kind == DICOM:
        check_series_folder(path, inputs=[source], overwrite=overwrite)
    else:
        check_output_path(path, inputs=[source], overwrite=overwrite)


def std_path(output: Path, kind: str) -> Path:
    """Where the std of `--samples` goes: `<name>_std` with the output's suffix, `<folder>_std`
    for a PNG folder or DICOM series; for HDF5 the output itself (dataset `STD_DATASET`)."""
    if kind == HDF5:
        return output
    if kind in (PNG_FOLDER, DICOM):
        return output.with_name(f"{output.name}_std")
    n = len(output.name) - len(suffix_of(output))
    return output.with_name(f"{output.name[:n]}_std{output.name[n:]}")


def resolve_model_dir(model: str | Path | None) -> Path:
    if model is not None:
        return Path(model)
    try:
        from wavesr.weights import default_model_dir
    except ImportError as exc:
        raise ConfigError("no --model given and no bundled default model") from exc
    path = default_model_dir()
    if path is None or not Path(path).is_dir():
        raise ConfigError("no --model given and no bundled default model")
    return Path(path)


def load_pipeline(model_dir: Path, scale: int | None, device: str):
    """Load a full WaveSR bundle (autoencoder + LDT) trained for `scale` (None: any)."""
    from wavesr.bundle.folder import load_bundle, load_pipeline

    bundle = load_bundle(model_dir)
    if "ldt" not in bundle.tensors:
        raise CheckpointError(
            f"this is an {bundle.kind!r} model without an LDT; pass a `wavesr train ldt` run",
            model_dir,
        )
    check_trained_scale(int(bundle.config.data.scale), scale, model_dir)
    return load_pipeline(bundle, device=device)


def check_trained_scale(trained: int, scale: int | None, model_dir: Path) -> None:
    """Raise ConfigError unless `scale` is None or the factor the model was trained for."""
    if scale is not None and trained != int(scale):
        raise ConfigError(
            f"the model was trained for x{trained} but --scale is {scale} (x{scale}); "
            f"use --scale {trained} or a x{scale} model",
            model_dir,
        )


def check_in_plane_model(pipeline, model_dir: Path, opts: SROptions) -> None:
    """Refuse a through-plane (slice-axis) model for in-plane slices not already upsampled."""
    if pipeline.degradation.kind == "slice-axis" and not opts.input_is_upsampled:
        raise ConfigError(
            "this is a through-plane (slice-axis) model: use `wavesr sr --through-plane` "
            "(or --input-is-upsampled for 2-D slices already interpolated along their rows)",
            model_dir,
        )


def check_options(opts: SROptions) -> None:
    if opts.scale not in (2, 4, 8):
        raise ConfigError(f"--scale must be 2, 4 or 8, got {opts.scale}")
    if opts.steps is not None and opts.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {opts.steps}")
    if opts.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {opts.batch}")
    if opts.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {opts.samples}")
    check_temperature(opts.temperature)
    check_consistency_steps(opts.consistency_steps)
    check_mode(opts.mode)
    if opts.sampler not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {opts.sampler!r}")
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda given but no CUDA GPU is available")


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def super_resolve_stack(
    pipeline, stack: SliceStack, keep: np.ndarray, opts: SROptions, bar=None
) -> tuple[np.ndarray, np.ndarray | None]:
    """All slices of `stack` -> (mean, std): (N, H*s, W*s) float32 in the input's intensity
    scale; std is None for one sample, and 0 on the near-empty slices.

    Slices flagged in `keep` go through the model in batches of `opts.batch`; the others are
    bicubic-upsampled only. A stack's slices share one size, so a batch is one tensor. Sample k
    of a batch is seeded with `opts.seed` + k + its first slice index (same seed and batch size
    give the same output; sample k is what `--seed` seed + k gives alone, up to float rounding,
    under DDIM with eta 0). One progress bar (with its ETA) covers every slice and sample;
    `bar`, a tqdm bar of a larger job, replaces it.
    """
    factor = 1 if opts.input_is_upsampled else opts.scale
    n, h, w = stack.slices.shape
    out = np.empty((n, h * factor, w * factor), dtype=np.float32)
    std = np.zeros_like(out) if opts.samples > 1 else None
    device = torch.device(resolve_device(opts.device))
    model_idx = np.flatnonzero(keep)
    other_idx = np.flatnonzero(~keep)
    unit = "slice" if opts.samples == 1 else "sample"
    total = len(model_idx) * opts.samples
    with _progress(bar, total, unit, opts.progress) as bar:
        for part in batches(len(model_idx), opts.batch):
            idx = model_idx[part]
            x = _to_grid(pipeline, stack.slices[idx], factor, device, opts)
            moments = _sample(pipeline, x, opts.seed + int(idx[0]), opts, bar)
            params = select(stack.normalization, [int(i) for i in idx])
            out[idx] = denormalize(moments.mean, params)
            if std is not None:
                std[idx] = rescale(moments.std(STD_DDOF), params)
    for part in batches(len(other_idx), opts.batch):
        idx = other_idx[part]
        grid = _to_grid(pipeline, stack.slices[idx], factor, device, opts)
        out[idx] = _denormalized(grid.clamp(0.0, 1.0), stack, idx)
    return out, std


def super_resolve_slices(
    pipeline, stack: SliceStack, opts: SROptions
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(mean, std, keep) of `super_resolve_stack` over every slice of `stack`, `keep` marking
    the slices that are not near-empty (the others are bicubic only)."""
    # Same rule as load_slices' skipping, on the original intensities.
    keep = nonempty_slices(denormalize(stack.slices, stack.normalization))
    sr, std = super_resolve_stack(pipeline, stack, keep, opts)
    return sr, std, keep


def _progress(bar, total: int, unit: str, show: bool):
    """The caller's bar (left open), or a new one over `total` units."""
    from tqdm.auto import tqdm

    if bar is not None:
        return nullcontext(bar)
    return tqdm(total=total, desc="sr", unit=unit, disable=not show)


def _sample(pipeline, x: torch.Tensor, seed: int, opts: SROptions, bar) -> RunningMoments:
    """`opts.samples` samples of the slices `x`, seeds `seed`, `seed` + 1, ...: their moments.

    Samples share a model call, stacked along the batch, while they fit in `opts.batch`.
    """
    b = x.shape[0]
    per_call = max(1, opts.batch // b)
    moments = RunningMoments()
    temperature, consistency_steps = pipeline_sampling(pipeline, opts)
    for first in range(0, opts.samples, per_call):
        seeds = list(range(seed + first, seed + min(first + per_call, opts.samples)))
        sr = pipeline(
            x if len(seeds) == 1 else x.repeat(len(seeds), 1, 1, 1),
            steps=opts.steps,
            seed=seeds[0] if len(seeds) == 1 else seeds,
            sampler=opts.sampler,
            temperature=temperature,
            consistency_steps=consistency_steps,
            degradation=told_degradation(opts),
        )
        for one in sr.split(b):
            moments.update(one[:, 0].float().cpu().numpy())
        bar.update(b * len(seeds))
    return moments


def _to_grid(
    pipeline, slices: np.ndarray, factor: int, device: torch.device, opts: SROptions
) -> torch.Tensor:
    """(B, h, w) [0, 1] slices -> (B, 1, h*factor, w*factor) on the HR grid, as the model's
    training put its LR there (`WaveSRPipeline.to_hr_grid`)."""
    x = torch.from_numpy(np.ascontiguousarray(slices)).unsqueeze(1).to(device)
    return x if factor == 1 else pipeline.to_hr_grid(x, told_degradation(opts))


SR_DEGRADATIONS = ("auto", "kspace", "bicubic")


def told_degradation(opts: SROptions) -> Degradation | None:
    """What `--degradation` tells the model of the LR; None for auto (its own assumption)."""
    if opts.degradation not in SR_DEGRADATIONS:
        raise ConfigError(
            f"--degradation must be one of {', '.join(SR_DEGRADATIONS)}, got {opts.degradation!r}"
        )
    return None if opts.degradation == "auto" else Degradation(opts.degradation, opts.scale)


def _denormalized(x: torch.Tensor, stack: SliceStack, idx: np.ndarray) -> np.ndarray:
    arr = x[:, 0].float().cpu().numpy()
    return denormalize(arr, select(stack.normalization, [int(i) for i in idx]))


def run_sr(
    source: str | Path,
    output: str | Path,
    *,
    model: str | Path | None = None,
    options: SROptions | None = None,
    report: str | Path | None = None,
    command: str = "",
) -> SRResult:
    """Check paths, load the model, super-resolve every slice of `source`, write `output`.

    With `report`, also write that HTML page: input and output side by side through the
    volume (`command` is shown on it).
    """
    opts = options or SROptions()
    opts = replace(opts, device=resolve_device(opts.device))
    source, output = Path(source), Path(output)
    report = None if report is None else Path(report)
    start = time.perf_counter()
    check_options(opts)
    kind = output_kind(source, output, opts.output_format, opts.series)
    check_output(output, kind, source, opts.overwrite)
    std_output = std_path(output, kind) if opts.samples > 1 else None
    if std_output is not None and std_output != output:
        check_output(std_output, kind, source, opts.overwrite)
    dicom_header = read_series_header(source, opts.series) if kind == DICOM else None
    if report is not None:
        check_report_path(report, source, output, opts.overwrite)
    model_dir = resolve_model_dir(model)
    pipeline = load_pipeline(model_dir, opts.scale, opts.device)
    check_in_plane_model(pipeline, model_dir, opts)
    stack = load_slices(
        source,
        axis=opts.axis,
        normalization=pipeline.config.data.normalization,
        skip_empty=False,
        series=opts.series,
    )
    if kind == DICOM:
        check_stack(stack, source)
    if kind == PNG_FILE and len(stack) != 1:
        raise OutputError(
            f"the input holds {len(stack)} images; give a folder (no .png suffix) as output",
            output,
        )
    sr_start = time.perf_counter()
    sr, std, keep = super_resolve_slices(pipeline, stack, opts)
    sr_seconds = time.perf_counter() - sr_start
    page = None
    if report is not None:  # before writing: the PNG writer rescales `sr` in place
        from wavesr.report.volume import sr_report_page

        run = _report_run(source, output, model_dir, opts, stack, keep, time.perf_counter() - start)
        factor = 1 if opts.input_is_upsampled else opts.scale
        page = sr_report_page(stack, sr, keep, factor, run, command, opts.device, std)
    if kind == DICOM:
        shape = write_stack_series(
            dicom_header,
            stack,
            sr,
            std,
            output,
            std_path(output, kind),
            factor=1 if opts.input_is_upsampled else opts.scale,
            model_dir=model_dir,
            settings=run_settings(opts, pipeline),
            overwrite=opts.overwrite,
        )
    else:
        shape = _write(kind, stack, sr, std, output, opts)
    if page is not None:
        from wavesr.report.html import write_page

        write_page(report, page)
    seconds = time.perf_counter() - start
    return SRResult(
        output,
        len(stack),
        int(keep.sum()),
        shape,
        seconds,
        report,
        std_output=std_output,
        samples=opts.samples,
        sr_seconds=sr_seconds,
        voxel_size=_output_voxel_size(kind, stack, opts),
    )


def _output_voxel_size(kind: str, stack: SliceStack, opts: SROptions) -> tuple[float, ...] | None:
    """The output's voxel edge lengths (mm), for outputs that carry an affine (NIfTI, DICOM)."""
    if kind not in (NIFTI, DICOM) or stack.affine is None or stack.slice_axis is None:
        return None
    return tuple(float(v) for v in voxel_sizes(output_affine(stack, opts)))


def output_affine(stack: SliceStack, opts: SROptions) -> np.ndarray:
    """The affine of the super-resolved volume of `stack` (which must have one)."""
    factor = 1 if opts.input_is_upsampled else opts.scale
    return sr_affine(stack.affine, stack.slice_axis, factor)


def check_report_path(report: Path, source: Path, output: Path, overwrite: bool) -> None:
    """Raise OutputError unless `report` can be written as the run's HTML page."""
    if report.suffix.lower() not in (".html", ".htm"):
        raise OutputError("the report is an HTML page: its name must end in .html", report)
    if report.absolute() == output.absolute():
        raise OutputError("the report and the output are the same file", report)
    check_output_path(report, inputs=[source], overwrite=overwrite)


def pipeline_sampling(pipeline, opts: SROptions) -> tuple[float | None, int | None]:
    """(temperature, consistency steps): the options', else --mode's; None: the model's own."""
    if opts.mode is None:
        return opts.temperature, opts.consistency_steps
    return resolve_sampling(
        pipeline.config.diffusion, opts.mode, opts.temperature, opts.consistency_steps
    )


def sampling_settings(opts: SROptions) -> dict:
    """The sampler's settings as report.html lists them (None: the model's own)."""
    default = f"the model's {opts.mode} mode" if opts.mode else "the model's own"
    return {
        "steps": default if opts.steps is None else opts.steps,
        "sampler": opts.sampler,
        "temperature": default if opts.temperature is None else opts.temperature,
        "consistency_steps": default if opts.consistency_steps is None else opts.consistency_steps,
        "seed": opts.seed,
    }


def _report_run(
    source: Path,
    output: Path,
    model_dir: Path,
    opts: SROptions,
    stack: SliceStack,
    keep: np.ndarray,
    seconds: float,
) -> dict:
    """The settings and counts report.html lists."""
    return {
        "input": str(source),
        "output": str(output),
        "model": str(model_dir),
        "scale": f"x{opts.scale}"
        + (" (input already upsampled)" if opts.input_is_upsampled else ""),
        **sampling_settings(opts),
        "samples": opts.samples,
        "batch": opts.batch,
        "device": opts.device,
        "slices": len(stack),
        "super_resolved": int(keep.sum()),
        "seconds (load and super-resolve)": f"{seconds:.1f}",
    }


def _write(
    kind: str,
    stack: SliceStack,
    sr: np.ndarray,
    std: np.ndarray | None,
    output: Path,
    opts: SROptions,
) -> tuple[int, ...]:
    """Write `sr` (and `std` beside it, first: an output that exists is complete)."""
    std_output = std_path(output, kind)
    if kind in (PNG_FILE, PNG_FOLDER):
        if std is not None:
            _write_pngs(stack, std, std_output, kind, opts.overwrite)
        _write_pngs(stack, sr, output, kind, opts.overwrite)
        return tuple(sr.shape)
    data = as_written(sr, stack)
    std_data = None if std is None else as_written(std, stack)
    if kind == NIFTI:
        affine = output_affine(stack, opts)
        if std_data is not None:
            write_nifti(std_data, affine, std_output, overwrite=opts.overwrite)
        write_nifti(data, affine, output, overwrite=opts.overwrite)
    elif kind == HDF5:
        datasets = {HDF5_DATASET: data}
        if std_data is not None:
            datasets[STD_DATASET] = std_data
        atomic_write(output, lambda tmp: _save_hdf5(tmp, datasets), overwrite=opts.overwrite)
    else:
        if std_data is not None:
            atomic_write(std_output, lambda tmp: np.save(tmp, std_data), overwrite=opts.overwrite)
        atomic_write(output, lambda tmp: np.save(tmp, data), overwrite=opts.overwrite)
    return tuple(data.shape)


def as_written(slices: np.ndarray, stack: SliceStack) -> np.ndarray:
    """(N, H, W) slices as the input's layout: one 2-D slice, or a volume along its axis."""
    if stack.slice_axis is None:  # a 2-D .npy: one slice
        return slices[0]
    return stack_to_volume(slices, stack.slice_axis)


def _save_hdf5(path: Path, datasets: dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(path, "w") as fh:
        for name, data in datasets.items():
            fh.create_dataset(name, data=np.ascontiguousarray(data, dtype=np.float32))


def png_depth(source: Path, stack: SliceStack) -> tuple[int, float]:
    """(bits, peak) for writing: 8-bit / 255 for 8-bit inputs, 16-bit / 65535 for wider
    integer inputs, 16-bit / 1.0 for float images whose values lie in [0, 1]."""
    files = image_files(source) if source.is_dir() else [source]
    dtypes = [_image_dtype(f) for f in files]
    if all(d == np.uint8 for d in dtypes):
        return 8, 255.0
    if any(np.issubdtype(d, np.floating) for d in dtypes) and max(stack.normalization["hi"]) <= 1:
        return 16, 1.0
    return 16, 65535.0


def _image_dtype(path: Path) -> np.dtype:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return np.dtype(tif.series[0].dtype)
    from PIL import Image

    with Image.open(path) as img:
        mode = img.mode
    if mode == "F":
        return np.dtype(np.float32)
    return np.dtype(np.uint16 if mode.startswith("I") else np.uint8)


def _write_pngs(
    stack: SliceStack, sr: np.ndarray, output: Path, kind: str, overwrite: bool
) -> None:
    """Write the PNGs into a temp folder beside `output`, then move them in place."""
    bits, peak = png_depth(stack.source, stack)
    sr /= peak  # in place: the preallocated output is not copied
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{secrets.token_hex(4)}")
    try:
        paths = write_png_slices(sr, tmp, stack.names, bits=bits)
        if kind == PNG_FILE:
            os.replace(paths[0], output)
        elif not output.exists():
            os.replace(tmp, output)
        else:
            for path in paths:
                os.replace(path, output / path.name)
    except OSError as exc:
        raise OutputError(f"cannot write PNGs ({exc.strerror or exc})", output) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
