"""`wavesr benchmark DATA... --out DIR`: the paper's tables and figures, one run, one machine."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from wavesr.cli.commands.evaluate import (
    add_evaluation_options,
    check_fid_weights,
    eval_settings,
    evaluation_argv,
    parse_methods,
    parse_weights,
    report_slices,
)
from wavesr.errors import ConfigError

DEFAULT_METHODS = [
    "bicubic",
    "autoencoder-oracle",
    "wavesr",
    "wavesr-zero-latents",
    "edsr",
    "pixel-diffusion",
]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="Table 1, Table 2, speed table and Fig. 3/4 for all methods in one run",
        description=(
            "Run every method on the same degraded slices on this machine and write "
            "benchmark.json, benchmark.md, bands.png, fig3_slice_K.png and report.html."
        ),
    )
    p.add_argument("data", nargs="+", type=Path, metavar="DATA", help="files or folders")
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
    p.add_argument("--figure-slices", type=int, default=3, help="Fig. 3/4 panels (default 3)")
    p.add_argument(
        "--speed-slices",
        type=int,
        default=8,
        metavar="N",
        help="slices timed for the smaller step counts (default 8; 0 = all)",
    )
    add_evaluation_options(p)
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
        "--steps",
        ",".join(map(str, steps)),
        "--methods",
        ",".join(methods),
        "--figure-slices",
        str(args.figure_slices),
        "--speed-slices",
        str(args.speed_slices),
    ]
    if args.skip_missing:
        argv.append("--skip-missing")
    return shlex.join(argv + evaluation_argv(args))


def run(args: argparse.Namespace) -> int:
    from wavesr.evaluation.benchmark import BenchmarkSettings, benchmark, write_benchmark
    from wavesr.io_atomic import check_output_path
    from wavesr.report import fmt
    from wavesr.runtime import set_threads

    set_threads(args.threads)
    methods = parse_methods(args.methods)
    weights = parse_weights(args.weights, methods)
    steps = parse_steps(args.steps)
    check_fid_weights(args)
    check_output_path(args.out / "benchmark.json", inputs=args.data, overwrite=True)
    settings = eval_settings(args, steps[-1])
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
        report_slices=report_slices(args),
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
