"""Tiled against untiled WaveSR on the same slices: PSNR of both, and a seam figure.

    python scripts/tiling_check.py DATA [--model MODEL] [--slices 8] [--window 28] \
        [--overlap 2] [--steps 50] [--figure docs/images/tiling-seams.png]

Reads ``--slices`` evenly spaced slices of DATA at their own size (no resizing: the point is
slices large enough to be tiled and small enough to run untiled too), simulates the model's
LR (its own degradation, x its scale), super-resolves each twice with the same seed and
settings, once with attention over the whole slice and once tiled (``diffusion.tile_window``
= ``--window`` latent pixels, ``--overlap``), and prints the mean PSNR of each against HR,
their difference, and the PSNR between the two outputs. The figure shows one slice: tiled,
untiled and 20 x their absolute difference with the window borders drawn.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch


def super_resolve(pipe, lr_up: torch.Tensor, steps: int) -> np.ndarray:
    with torch.inference_mode():
        return pipe(lr_up, steps=steps, seed=0).squeeze(1).numpy()


def main() -> None:
    from wavesr.bundle.folder import load_bundle, load_pipeline
    from wavesr.data.load import load_slices
    from wavesr.evaluation.methods import _default_model_dir
    from wavesr.evaluation.metrics import psnr
    from wavesr.model.degrade import degrade, pad_to_multiple
    from wavesr.model.tiling import balanced_window, window_starts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--model", default=None)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--window", type=int, default=28)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()

    bundle = load_bundle(args.model or _default_model_dir())
    stack = load_slices(args.data, normalization=bundle.config.data.normalization)
    picks = np.linspace(0, len(stack) - 1, min(args.slices, len(stack))).round().astype(int)
    tiled_bundle = copy.deepcopy(bundle)  # the same weights, another tiling setting
    bundle.config.diffusion.tile_window = 0
    untiled = load_pipeline(bundle)
    tiled_cfg = tiled_bundle.config.diffusion
    tiled_cfg.tile_window, tiled_cfg.tile_overlap = args.window, args.overlap
    tiled = load_pipeline(tiled_bundle)
    scores = {"untiled": [], "tiled": [], "between": []}
    shown = None
    for k in picks:
        hr = torch.from_numpy(np.asarray(stack.slices[k], dtype=np.float32))[None, None]
        hr, _ = pad_to_multiple(hr, untiled.scale)
        _, lr_up = degrade(hr, untiled.degradation)
        a = super_resolve(untiled, lr_up.clamp(0, 1), args.steps)[0]
        b = super_resolve(tiled, lr_up.clamp(0, 1), args.steps)[0]
        truth = hr[0, 0].numpy()
        scores["untiled"].append(psnr(a, truth))
        scores["tiled"].append(psnr(b, truth))
        scores["between"].append(psnr(b, a))
        shown = shown or (stack.names[k] if stack.names else f"slice {k}", a, b)
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    h, w = stack.slices[picks[0]].shape
    print(f"{len(picks)} slices of {args.data} ({h} x {w}), {args.steps} steps, seed 0")
    print(
        f"untiled {mean['untiled']:.3f} dB, tiled (window {args.window}, overlap "
        f"{args.overlap}) {mean['tiled']:.3f} dB, difference "
        f"{mean['tiled'] - mean['untiled']:+.3f} dB; tiled vs untiled output "
        f"{mean['between']:.1f} dB"
    )
    if args.figure is not None and shown is not None:
        import matplotlib.pyplot as plt

        name, a, b = shown
        pixels = 2 * tiled.config.autoencoder.downsample  # image pixels per latent pixel
        lh, lw = (a.shape[0] + pixels - 1) // pixels, (a.shape[1] + pixels - 1) // pixels
        align = tiled.config.ldt.patch_size
        fig, axes = plt.subplots(1, 4, figsize=(15, 4.2), dpi=110, layout="constrained")
        for ax, image, title in (
            (axes[0], b, f"tiled (window {args.window}, overlap {args.overlap} latent px)"),
            (axes[1], a, "untiled"),
            (axes[2], np.abs(b - a) * 20, "20 x |tiled - untiled| + window borders"),
        ):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        borders = []
        for size, draw in ((lh, axes[2].axhline), (lw, axes[2].axvline)):
            window = balanced_window(size, args.window, args.overlap, align)
            edges = [
                e for s in window_starts(size, window, args.overlap, align) for e in (s, s + window)
            ]
            for edge in edges:
                draw(edge * pixels - 0.5, color="tab:red", lw=0.6, alpha=0.7)
            inner = [e * pixels for e in edges if 0 < e < size]
            borders.append(inner[len(inner) // 2] if inner else size * pixels // 2)
        r, c = (max(0, min(b - 64, n - 128)) for b, n in zip(borders, a.shape))
        axes[3].imshow(b[r : r + 128, c : c + 128], cmap="gray", vmin=0, vmax=1)
        axes[3].set_title("tiled, 128 x 128 crop around window borders", fontsize=9)
        axes[3].axis("off")
        fig.suptitle(f"{name}: x{untiled.scale}, {args.steps} steps", fontsize=9)
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
