"""What a perfect LDT could reach under each reading of the paper (docs/design.md).

    python scripts/dwt_bounds.py ../shared/data/test/ixi_t1 --max-slices 64

Prints the PSNR of images rebuilt from mixes of LR and HR Haar bands: bicubic; LL_LR with the
exact HR detail bands (the paper's literal reading); a two-level DWT whose LL2 comes from LR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from wavesr.evaluation.evaluate import load_eval_set
from wavesr.evaluation.metrics import psnr
from wavesr.evaluation.shared import EvalSettings
from wavesr.model.degrade import Degradation, degrade
from wavesr.model.wavelet import dwt2, idwt2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--max-slices", type=int, default=64)
    args = parser.parse_args()
    eval_set = load_eval_set(args.data, args.data.name, EvalSettings(max_slices=args.max_slices))
    hr = torch.cat([torch.from_numpy(h)[None, None] for h in eval_set.hr])
    _, up = degrade(hr, Degradation(scale=4), seed=0)
    hr_bands, lr_bands = dwt2(hr), dwt2(up)

    def score(x: torch.Tensor) -> float:
        x = x.clamp(0, 1)
        return float(
            np.mean(
                [psnr(x[i, 0].numpy(), hr[i, 0].numpy(), data_range=1.0) for i in range(len(x))]
            )
        )

    ll2 = idwt2(torch.cat([dwt2(lr_bands[:, :1])[:, :1], dwt2(hr_bands[:, :1])[:, 1:]], 1))
    rows = {
        "bicubic": up,
        "LL_LR + exact HR LH/HL/HH": idwt2(torch.cat([lr_bands[:, :1], hr_bands[:, 1:]], 1)),
        "HR LL + LR detail bands": idwt2(torch.cat([hr_bands[:, :1], lr_bands[:, 1:]], 1)),
        "two-level: LL2_LR + every HR detail band": idwt2(torch.cat([ll2, hr_bands[:, 1:]], 1)),
    }
    for name, image in rows.items():
        print(f"{name:45s} {score(image):6.2f} dB")


if __name__ == "__main__":
    main()
