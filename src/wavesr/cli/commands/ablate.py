"""`wavesr ablate`: the paper's Table 3 (or any set of design variants) under one equal budget."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from wavesr.cli.commands import add_config_args, add_max_voxels, positive_float, positive_int

EXIT_INTERRUPTED = 130


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate",
        help="train and evaluate design variants under one equal budget (the paper's Table 3)",
        description="Train every variant (overrides on one config, or a baseline method) for the "
        "same minutes / steps on the same data, evaluate each on the same slices, and write "
        "ablation.json, ablation.md (Table 3 layout) and curves.png.",
    )
    add_config_args(
        p, "override a baseline config value for every variant, e.g. --set data.crop=96"
    )
    p.add_argument(
        "--data", nargs="+", type=Path, required=True, metavar="DIR", help="training data"
    )
    p.add_argument(
        "--eval",
        dest="eval_data",
        nargs="+",
        type=Path,
        required=True,
        metavar="DIR",
        help="evaluation data, the same slices for every variant",
    )
    p.add_argument("--out", required=True, type=Path, help="ablation folder")
    p.add_argument(
        "--minutes-per-variant",
        type=positive_float,
        required=True,
        metavar="N",
        help="training minutes of each variant's network (and of each shared stage-1 run)",
    )
    p.add_argument(
        "--steps-per-variant",
        type=positive_int,
        default=None,
        metavar="S",
        help="max_steps of each variant's network (default: the config's)",
    )
    p.add_argument(
        "--variants",
        default="table3",
        metavar="table3|FILE.yaml",
        help="the built-in Table 3 (ids 0-8, default) or a YAML file of variants",
    )
    p.add_argument(
        "--autoencoder",
        type=Path,
        default=None,
        metavar="RUN",
        help="reuse this stage-1 run for every variant whose autoencoder config matches it",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue an ablation in --out; done work is kept"
    )
    p.add_argument(
        "--max-slices",
        type=positive_int,
        default=16,
        metavar="N",
        help="evaluate on at most N slices per --eval argument, evenly spaced (default 16)",
    )
    p.add_argument(
        "--eval-steps", type=positive_int, default=20, help="sampling steps at evaluation (20)"
    )
    p.add_argument("--no-fid", action="store_true", help="skip FID")
    p.add_argument("--device", default="cpu", help="evaluation device (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_max_voxels(p)
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The full command with every option spelled out."""
    argv = ["wavesr", "ablate", "--config", str(args.config)]
    for text in args.overrides:
        argv += ["--set", text]
    argv += ["--data", *map(str, args.data), "--eval", *map(str, args.eval_data)]
    argv += ["--out", str(args.out), "--minutes-per-variant", f"{args.minutes_per_variant:g}"]
    if args.steps_per_variant is not None:
        argv += ["--steps-per-variant", str(args.steps_per_variant)]
    argv += ["--variants", str(args.variants)]
    if args.autoencoder is not None:
        argv += ["--autoencoder", str(args.autoencoder)]
    argv += ["--max-slices", str(args.max_slices), "--eval-steps", str(args.eval_steps)]
    argv += ["--device", args.device]
    if args.max_voxels is not None:
        argv += ["--max-voxels", str(args.max_voxels)]
    for flag in ("resume", "no_fid", "quiet"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    return shlex.join(argv)


def run(args: argparse.Namespace) -> int:
    from wavesr.evaluation.ablation.run import (
        AblationSettings,
        load_variants,
        plan_ablation,
        run_ablation,
    )

    variants, file_baseline = load_variants(args.variants)
    plan = plan_ablation(
        args.config,
        args.overrides,
        variants,
        args.data,
        args.out,
        file_baseline=file_baseline,
        steps=args.steps_per_variant,
        autoencoder=args.autoencoder,
    )
    settings = AblationSettings(
        minutes=args.minutes_per_variant,
        eval_paths=list(args.eval_data),
        max_slices=args.max_slices,
        eval_steps=args.eval_steps,
        fid=not args.no_fid,
        device=args.device,
        resume=args.resume,
        progress=not args.quiet,
    )
    result = run_ablation(plan, settings, args.out, command_line(args))
    report = args.out / "ablation.md"
    if result.interrupted:
        print(f"ablate: interrupted; {report} shows what is done, rerun with --resume to finish")
        return EXIT_INTERRUPTED
    print(f"ablate: done, {len(result.doc['variants'])} variant(s); table in {report}")
    return 0
