"""Seconds per output megapixel and peak memory of WaveSR at several slice sizes.

    python scripts/sr_speed.py [--model MODEL] [--sizes 224,448,896] [--tile 0,14] \
        [--steps 50] [--batch 16] [--threads 2] [--slices 16]

For every (size, tile window) it starts a fresh Python process (so that the peak resident
memory, ``ru_maxrss``, belongs to that setting alone), super-resolves ``--slices`` random
x4 LR slices whose output is ``size`` x ``size`` in batches of ``--batch``, after one warm-up
batch, and prints one markdown row: seconds per slice, seconds per output megapixel, peak
memory. Tile window 0 means the model's own setting with tiling off (attention over the whole
slice); other values set ``diffusion.tile_window`` (latent pixels; overlap ``--overlap``).
Default model: the bundled one.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def one_setting(args: argparse.Namespace) -> dict:
    from wavesr.bundle.folder import load_bundle, load_pipeline
    from wavesr.evaluation.methods import _default_model_dir

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model or _default_model_dir())
    bundle.config.diffusion.tile_window = args.tile
    bundle.config.diffusion.tile_overlap = args.overlap
    pipe = load_pipeline(bundle)
    scale = bundle.config.data.scale
    side = args.size // scale
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(args.slices, 1, side, side, generator=gen)
    with torch.inference_mode():
        pipe.super_resolve(lr[: args.batch], steps=args.steps)  # warm-up
        started = time.perf_counter()
        for i in range(0, args.slices, args.batch):
            pipe.super_resolve(lr[i : i + args.batch], steps=args.steps)
        seconds = time.perf_counter() - started
    per_slice = seconds / args.slices
    return {
        "size": args.size,
        "tile": args.tile,
        "s_per_slice": per_slice,
        "s_per_mpix": per_slice / (args.size * args.size / 1e6),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--sizes", default="224,448,896")
    parser.add_argument("--tile", default="0,14", help="tile windows to time (0 = untiled)")
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)  # one setting (child)
    args = parser.parse_args()
    if args.size is not None:
        args.tile = int(args.tile)
        print(json.dumps(one_setting(args)))
        return
    print(f"steps {args.steps}, batch {args.batch}, {args.threads} threads, float32")
    print("| output | tile window | s/slice | s/megapixel | peak memory (MB) |")
    print("| --: | --: | --: | --: | --: |")
    for tile in [int(t) for t in args.tile.split(",")]:
        for size in [int(s) for s in args.sizes.split(",")]:
            batch = max(1, min(args.batch, args.batch * 224 * 224 // (size * size)))
            slices = max(batch, args.slices * 224 * 224 // (size * size))
            child = [sys.executable, __file__, "--size", str(size), "--tile", str(tile)]
            child += ["--steps", str(args.steps), "--batch", str(batch), "--slices", str(slices)]
            child += ["--threads", str(args.threads), "--overlap", str(args.overlap)]
            if args.model:
                child += ["--model", args.model]
            row = json.loads(subprocess.run(child, check=True, capture_output=True).stdout)
            print(
                f"| {size} x {size} | {tile or 'off'} | {row['s_per_slice']:.3f} | "
                f"{row['s_per_mpix']:.2f} | {row['peak_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
