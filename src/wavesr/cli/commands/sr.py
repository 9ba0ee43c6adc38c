"""`wavesr sr INPUT -o OUTPUT`: super-resolve a scan, a stack of images or one image."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from wavesr.cli.commands import (
    add_device,
    add_max_voxels,
    add_self_ensemble,
    add_threads,
    positive_int,
    seed_int,
)
from wavesr.cli.commands.evaluate import MODE_HELP, MODES
from wavesr.errors import ConfigError

if TYPE_CHECKING:
    from wavesr.tasks.sr import SROptions

DEFAULT_SCALE = 4
DEFAULT_STACKS = 2  # with --through-plane: both reformat stacks


def _run(args: argparse.Namespace) -> int:
    from wavesr.runtime import set_threads
    from wavesr.tasks.sr import SROptions, run_sr

    set_threads(args.threads)
    options = SROptions(
        scale=DEFAULT_SCALE if args.scale is None else args.scale,
        steps=args.steps,
        seed=args.seed,
        batch=args.batch,
        device=args.device,
        input_is_upsampled=args.input_is_upsampled,
        axis=args.axis,
        overwrite=args.overwrite,
        sampler=args.sampler,
        temperature=args.temperature,
        consistency_steps=args.consistency_steps,
        mode=args.mode,
        degradation=args.degradation,
        progress=not args.quiet,
        samples=args.samples,
        output_format=args.output_format,
        series=args.series,
    )
    if args.through_plane:
        return _run_through_plane(args, options)
    only_through_plane = (
        ("--stacks", args.stacks),
        ("--adapt-minutes", args.adapt_minutes),
        ("--self-ensemble", args.self_ensemble),
    )
    for name, value in only_through_plane:
        if value is not None:
            raise ConfigError(f"{name} is an option of --through-plane")
    result = run_sr(
        args.input,
        args.output,
        model=args.model,
        options=options,
        report=report_path(args),
        command=command_line(args),
    )
    print(result.summary())
    if result.report is not None:
        print(f"report: {result.report}")
    return 0


def _run_through_plane(args: argparse.Namespace, options: SROptions) -> int:
    from wavesr.tasks.through_plane.sr import run_through_plane

    result = run_through_plane(
        args.input,
        args.output,
        model=args.model,
        options=options,
        scale=args.scale,
        stacks=DEFAULT_STACKS if args.stacks is None else args.stacks,
        adapt_minutes=args.adapt_minutes or 0.0,
        self_ensemble=args.self_ensemble or 1,
        report=report_path(args),
        command=command_line(args),
    )
    print(result.summary())
    if result.report is not None:
        print(f"report: {result.report}")
    return 0


def report_path(args: argparse.Namespace) -> Path | None:
    """--report's page: the path given, or report.html beside the output; None without it."""
    if args.report is None:
        return None
    return Path(args.report) if args.report else args.output.parent / "report.html"


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out, as the report shows it (with --through-plane,
    --scale only when given: the default is the model's own)."""
    argv = ["wavesr", "sr", str(args.input), "-o", str(args.output)]
    if args.scale is not None or not args.through_plane:
        argv += ["--scale", str(DEFAULT_SCALE if args.scale is None else args.scale)]
    if args.model is not None:
        argv += ["--model", str(args.model)]
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    argv += ["--seed", str(args.seed), "--batch", str(args.batch)]
    argv += ["--device", args.device, "--sampler", args.sampler]
    if args.samples > 1:
        argv += ["--samples", str(args.samples)]
    if args.output_format is not None:
        argv += ["--output-format", args.output_format]
    if args.series is not None:
        argv += ["--series", args.series]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.temperature is not None:
        argv += ["--temperature", repr(args.temperature)]
    if args.consistency_steps is not None:
        argv += ["--consistency-steps", str(args.consistency_steps)]
    if args.mode is not None:
        argv += ["--mode", args.mode]
    if args.degradation != "auto":
        argv += ["--degradation", args.degradation]
    if args.axis is not None:
        argv += ["--axis", str(args.axis)]
    if args.through_plane:
        stacks = DEFAULT_STACKS if args.stacks is None else args.stacks
        argv += ["--through-plane", "--stacks", str(stacks)]
        if args.adapt_minutes:
            argv += ["--adapt-minutes", repr(args.adapt_minutes)]
        if args.self_ensemble:
            argv += ["--self-ensemble", str(args.self_ensemble)]
    if args.max_voxels is not None:
        argv += ["--max-voxels", str(args.max_voxels)]
    flags = ("input_is_upsampled", "overwrite", "quiet")
    argv += [f"--{name.replace('_', '-')}" for name in flags if getattr(args, name)]
    report = report_path(args)
    return shlex.join([*argv, "--report", str(report)] if report else argv)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sr",
        help="super-resolve an MRI input (NIfTI, DICOM, HDF5, .npy, images)",
        description="Super-resolve every slice of INPUT and write OUTPUT in the input's format "
        "(DICOM as NIfTI, or as a DICOM series when OUTPUT is a folder; images as PNG).",
    )
    p.add_argument("input", type=Path, help="NIfTI / DICOM / HDF5 / .npy file, image, or folder")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="output file (.nii.gz, .h5, .npy, .png) or folder (image folders; DICOM inputs: "
        "a DICOM series, one file per slice)",
    )
    p.add_argument(
        "--output-format",
        default=None,
        choices=["nifti", "dicom"],
        help="DICOM inputs: write NIfTI or a DICOM series folder (default: a series when OUTPUT "
        "is a folder or has no suffix, NIfTI for .nii/.nii.gz)",
    )
    p.add_argument(
        "--series",
        default=None,
        metavar="UID",
        help="the SeriesInstanceUID to super-resolve from a DICOM folder holding several series",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=None,
        choices=[2, 4, 8],
        help="SR factor (default 4; with --through-plane: the model's own)",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder from `wavesr train ldt` (default: the bundled model)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="sampling steps (default: the model's own, diffusion.sample_steps)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="starting-noise scale in [0, 1]: lower = fewer invented details (default: model's)",
    )
    p.add_argument(
        "--degradation",
        default="auto",
        choices=["auto", "kspace", "bicubic"],
        help="how the in-plane LR was made: kspace = a scanner's smaller matrix, bicubic = a "
        "bicubic-downsampled image; auto = the model's own assumption (the default model: a "
        "scanner's LR) (default auto)",
    )
    p.add_argument(
        "--consistency-steps",
        type=int,
        default=None,
        help="back-projection iterations onto the LR input after decoding, 0 = off "
        "(default: the model's own)",
    )
    p.add_argument("--mode", choices=MODES, default=None, help=MODE_HELP)
    p.add_argument(
        "--seed", type=seed_int, default=0, help="sampling seed (same seed, same output)"
    )
    p.add_argument(
        "--samples",
        type=positive_int,
        default=1,
        metavar="N",
        help="write the mean of N samples (seeds SEED..SEED+N-1) and, beside it, their "
        "per-voxel standard deviation as NAME_std (default 1: one sample, no std)",
    )
    p.add_argument("--batch", type=int, default=16, help="slices per batch")
    add_device(p, choices=["auto", "cpu", "cuda"])
    add_threads(p)
    p.add_argument(
        "--input-is-upsampled",
        action="store_true",
        help="INPUT is already on the HR grid: no bicubic upsampling, same size out",
    )
    p.add_argument(
        "--axis",
        default=None,
        help="slice axis: axial, coronal, sagittal or a voxel axis 0-2 (volumes); with "
        "--through-plane the thick axis (default: the one with the largest voxel size)",
    )
    p.add_argument(
        "--through-plane",
        action="store_true",
        help="super-resolve a thick-slice volume along its thick axis to the in-plane voxel "
        "size, writing an isotropic NIfTI or DICOM series (docs/through-plane.md)",
    )
    p.add_argument(
        "--stacks",
        type=int,
        default=None,
        choices=[1, 2],
        help="with --through-plane: reformat stacks averaged (default 2, the two orthogonal)",
    )
    p.add_argument(
        "--adapt-minutes",
        type=float,
        default=None,
        metavar="N",
        help="with --through-plane: first fine-tune the model's decoder for N minutes on the "
        "scan's own in-plane slices, thinned like thick slices (self-supervised, SMORE; "
        "default 0: off)",
    )
    add_self_ensemble(p, "with --through-plane")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ancestral"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--report",
        nargs="?",
        const="",
        default=None,
        metavar="HTML",
        help="also write an HTML page with input and output side by side through the volume, "
        "with --through-plane across the thick axis (default file: report.html beside the "
        "output)",
    )
    add_max_voxels(p)
    p.set_defaults(func=_run)
