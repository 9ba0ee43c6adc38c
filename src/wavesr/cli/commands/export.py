"""`wavesr export`: combine an LDT run with a (fine-tuned) autoencoder run into one model folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from wavesr.bundle.export import export_model

    out = export_model(
        args.ldt,
        args.out,
        autoencoder_run=args.autoencoder,
        fp16=args.fp16,
        temperature=args.temperature,
        consistency_steps=args.consistency_steps,
        overrides=args.overrides,
        modes={
            mode: {
                "temperature": getattr(args, f"{mode}_temperature"),
                "consistency_steps": getattr(args, f"{mode}_consistency_steps"),
            }
            for mode in ("faithful", "perceptual")
        },
    )
    print(f"model folder written to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="assemble a model folder (LDT run + autoencoder run)")
    p.add_argument(
        "--ldt",
        required=True,
        type=Path,
        help="run folder of `wavesr train ldt` (or of a baseline)",
    )
    p.add_argument(
        "--autoencoder", type=Path, default=None, help="replace the autoencoder (same encoder)"
    )
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (half the size)")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="the model's default sampling temperature in [0, 1] (diffusion.temperature)",
    )
    p.add_argument(
        "--consistency-steps",
        type=int,
        default=None,
        help="the model's default back-projection iterations (diffusion.consistency_steps)",
    )
    defaults = {"faithful": ("0", "--consistency-steps"), "perceptual": ("1", "0")}
    for mode, (temperature, consistency) in defaults.items():
        p.add_argument(
            f"--{mode}-temperature",
            type=float,
            default=None,
            help=f"temperature of `--mode {mode}` (diffusion.modes; default {temperature})",
        )
        p.add_argument(
            f"--{mode}-consistency-steps",
            type=int,
            default=None,
            help=f"back-projection of `--mode {mode}` (default {consistency})",
        )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="diffusion.KEY=VALUE",
        help="another inference default, e.g. diffusion.tile_window=14 or "
        "diffusion.sample_steps=20 (repeatable)",
    )
    p.set_defaults(func=_run)
