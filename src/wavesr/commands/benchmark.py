"""`wavesr benchmark DATA... --out DIR`: the paper's tables and figures, one run, one machine."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from wavesr.commands.evaluate import parse_methods, parse_weights
from wavesr.errors import ConfigError, InputError

DEFAULT_METHODS = ["bicubic", "autoencoder-oracle", "wavesr", "edsr", "pixel-diffusion"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="Table 1, Table 2, speed table and Fig. 3/4 for all methods in one run",
        description=(
            "Run every method on the same degraded slices on this machine and write "
            "benchmark.json, benchmark.md, bands.png and fig3_slice_K.png."
        ),
    )
    p.add_argument("data", nargs="+", type=Path, metavar="DATA", help="files or folders")
    p.add_argument("--scale", type=int, default=4, help="SR scale: 2, 4 or 8 (default 4)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--steps",
        nargs="+",
        default=["20,50"],
        metavar="N",
        help="sampling step counts for the speed table, e.g. 20,50; Table 1 uses the largest",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=[",".join(DEFAULT_METHODS)],
        metavar="METHOD",
        help=f"methods (space- or comma-separated; default {','.join(DEFAULT_METHODS)})",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="skip (and note) methods without weights instead of failing",
    )
    p.add_argument("--max-slices", type=int, default=None, metavar="N", help="per DATA argument")
    p.add_argument("--model", type=Path, default=None, help="WaveSR model folder")
    p.add_argument(
        "--weights",
        action="append",
        nargs="+",
        default=[],
        metavar="METHOD=DIR",
        help="model folder for one method, e.g. edsr=runs/edsr",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16, help="slices per SR call (default 16)")
    p.add_argument("--degradation", default="bicubic", choices=["bicubic", "kspace"])
    p.add_argument("--noise-sigma", type=float, default=0.0, help="Rician noise on the LR")
    p.add_argument("--size", type=int, default=224, help="reduce larger slices to this size")
    p.add_argument("--resize", default="area", choices=["area", "center-crop"])
    p.add_argument("--no-fid", action="store_true", help="skip FID")
    p.add_argument("--fid-slices", type=int, default=64, help="FID on at most N slices (0 = all)")
    p.add_argument("--fid-weights", type=Path, default=None, metavar="PATH")
    p.add_argument("--figure-slices", type=int, default=3, help="Fig. 3/4 panels (default 3)")
    p.add_argument(
        "--speed-slices",
        type=int,
        default=8,
        metavar="N",
        help="slices timed for the smaller step counts (default 8; 0 = all)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def parse_steps(values: list[str]) -> list[int]:
    """["20,50"] or ["20", "50"] -> [20, 50] (sorted, unique)."""
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    try:
        steps = sorted({int(v) for v in items})
    except ValueError:
        raise ConfigError(
            f"--steps expects integers like 20,50, got {' '.join(values)!r}"
        ) from None
    if not steps or steps[0] < 1:
        raise ConfigError(f"--steps must be integers >= 1, got {' '.join(values)!r}")
    return steps


def command_line(args: argparse.Namespace, methods: list[str], steps: list[int]) -> str:
    """The full command with every option spelled out."""
    argv = [
        "wavesr",
        "benchmark",
        *map(str, args.data),
        "--scale",
        str(args.scale),
        "--out",
        str(args.out),
        "--steps",
        ",".join(map(str, steps)),
        "--methods",
        ",".join(methods),
        "--seed",
        str(args.seed),
        "--batch",
        str(args.batch),
        "--degradation",
        args.degradation,
        "--size",
        str(args.size),
        "--resize",
        args.resize,
        "--figure-slices",
        str(args.figure_slices),
        "--speed-slices",
        str(args.speed_slices),
        "--device",
        args.device,
    ]
    if args.noise_sigma:
        argv += ["--noise-sigma", repr(args.noise_sigma)]
    if args.max_slices is not None:
        argv += ["--max-slices", str(args.max_slices)]
    if args.model is not None:
        argv += ["--model", str(args.model)]
    for group in args.weights:
        argv += ["--weights", *group]
    if args.skip_missing:
        argv.append("--skip-missing")
    if args.no_fid:
        argv.append("--no-fid")
    else:
        argv += ["--fid-slices", str(args.fid_slices)]
        if args.fid_weights is not None:
            argv += ["--fid-weights", str(args.fid_weights)]
    return shlex.join(argv)


def run(args: argparse.Namespace) -> int:
    from wavesr.benchmark import BenchmarkSettings, benchmark, write_benchmark
    from wavesr.evaluate import EvalSettings
    from wavesr.io_atomic import check_output_path
    from wavesr.report import fmt

    methods = parse_methods(args.methods)
    weights = parse_weights(args.weights, methods)
    steps = parse_steps(args.steps)
    if args.fid_weights is not None and not args.no_fid and not args.fid_weights.is_file():
        raise InputError("FID weights file not found", args.fid_weights)
    check_output_path(args.out / "benchmark.json", inputs=args.data, overwrite=True)
    settings = EvalSettings(
        scale=args.scale,
        degradation=args.degradation,
        noise_sigma=args.noise_sigma,
        size=args.size,
        resize=args.resize,
        max_slices=args.max_slices,
        seed=args.seed,
        steps=steps[-1],
        batch=args.batch,
        device=args.device,
        fid=not args.no_fid,
        fid_slices=args.fid_slices,
        fid_weights=args.fid_weights,
    )
    options = BenchmarkSettings(
        steps=tuple(steps),
        figure_slices=args.figure_slices,
        speed_slices=args.speed_slices,
        skip_missing=args.skip_missing,
    )
    result = benchmark(
        args.data,
        methods,
        settings,
        options,
        model=args.model,
        weights=weights,
        progress=not args.quiet,
    )
    write_benchmark(result, args.out, command_line(args, methods, steps))
    doc = result.doc
    summary = ", ".join(f"{n} {fmt(m['psnr'])} dB" for n, m in doc["methods"].items())
    skipped = f"; skipped {', '.join(doc['skipped'])}" if doc["skipped"] else ""
    print(
        f"benchmarked {sum(d['n_slices'] for d in doc['datasets'])} slices: {summary}{skipped}; "
        f"report in {args.out / 'benchmark.md'}"
    )
    return 0
