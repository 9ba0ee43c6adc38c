"""`wavesr demo`: one command that shows WaveSR working on a bundled real MRI sample."""

from __future__ import annotations

import argparse
from pathlib import Path

from wavesr.cli.commands import positive_int, seed_int


def _run(args: argparse.Namespace) -> int:
    from wavesr.tasks.demo import run_demo

    metrics = run_demo(
        Path(args.out),
        model=args.model,
        steps=args.steps,
        n_slices=args.slices,
        seed=args.seed,
        progress=not args.quiet,
    )
    b, w = metrics["methods"]["bicubic"], metrics["methods"]["wavesr"]
    print(f"demo: {len(metrics['slices'])} slices of the MNI152 T1 template, x{metrics['scale']}")
    print(f"  bicubic: PSNR {b['psnr']:.2f} dB  SSIM {b['ssim']:.4f}")
    print(
        f"  WaveSR : PSNR {w['psnr']:.2f} dB  SSIM {w['ssim']:.4f}  "
        f"({w['seconds_per_slice']:.2f} s/slice, {metrics['steps']} steps)"
    )
    print(
        f"  wrote {args.out}/comparison.png, metrics.json, sr.nii.gz "
        f"({metrics['total_seconds']:.0f} s)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="super-resolve a bundled real MRI sample and show the result")
    p.add_argument("--out", default="out/demo", type=Path, help="output folder")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: bundled)")
    p.add_argument("--steps", type=positive_int, default=50, help="sampling steps")
    p.add_argument("--slices", type=positive_int, default=8, help="number of central axial slices")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run)
