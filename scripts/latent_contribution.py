"""How much the generated latents contribute: decode the same slices with different latents.

    python scripts/latent_contribution.py ../shared/data/test/ixi_t1 \
        ../shared/data/test/cheng_t1ce --max-slices 16

For each folder, the mean PSNR (dB, data range 1) of the model's decoder fed with all-zero
high-frequency latents, with the LDT's latents (default sampling), and with the encoded HR latents
(the autoencoder oracle), all without back-projection; then WaveSR as the model runs by default.
Default model: the bundled one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from wavesr.bundle.folder import load_pipeline
from wavesr.evaluation.evaluate import flatten_slices, load_eval_set
from wavesr.evaluation.metrics import psnr
from wavesr.evaluation.shared import EvalSettings, _batches, _degrade_batch
from wavesr.model.degrade import Degradation
from wavesr.model.pipeline import WaveSRPipeline


@torch.no_grad()
def folder_scores(pipe: WaveSRPipeline, folder: Path, max_slices: int) -> dict[str, float]:
    eval_set = load_eval_set(folder, folder.name, EvalSettings(max_slices=max_slices))
    slices = flatten_slices([eval_set], seed=0)
    deg = Degradation("bicubic", pipe.scale)
    scores: dict[str, list[float]] = {}
    for group in _batches(slices, 16):
        _, lr_up, hr = _degrade_batch([slices[i] for i in group], deg)
        ll_lr, ll_latent, size = pipe.encode_condition(lr_up)
        sampled = pipe.sample_high_frequency_latents(
            ll_latent, steps=None, seed=0, sampler=None, progress=False
        )
        outputs = {
            "bicubic": lr_up,
            "zero latents": pipe.decode(ll_lr, ll_latent, torch.zeros_like(sampled), size),
            "LDT latents": pipe.decode(ll_lr, ll_latent, sampled, size),
            "oracle": pipe.oracle(lr_up, hr),
            "WaveSR (default)": pipe(lr_up, seed=0),
        }
        for name, out in outputs.items():
            scores.setdefault(name, []).extend(
                psnr(out[j, 0].numpy(), hr[j, 0].numpy(), data_range=1.0) for j in range(len(hr))
            )
    return {name: float(np.mean(v)) for name, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--max-slices", type=int, default=16)
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    args = parser.parse_args()
    if args.model is None:
        from wavesr.weights import default_model_dir

        args.model = Path(default_model_dir())
    pipe = load_pipeline(args.model)
    for folder in args.data:
        scores = folder_scores(pipe, folder, args.max_slices)
        print(folder.name, "  ".join(f"{k}: {v:.2f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
