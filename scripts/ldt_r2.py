"""The stage-2 validation of a model bundle, on the training-split slices its training held out.

    python scripts/ldt_r2.py --data ../shared/data/train [--model MODEL] [--slices 16]

Rebuilds the slice bank of ``--data`` with the model's data settings, takes the same evenly
spaced held-out slices as `wavesr train ldt` (``--slices``: its validation_slices), and prints
the LDT's temperature-0 R^2 per generated band (relative to zero latents), the explained
variance, and the decoded PSNR of zeros / the LDT's estimate / the encoded latents: the line
stage 2 logs. Default model: the bundled one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wavesr.bundle.folder import load_autoencoder, load_bundle, load_ldt
from wavesr.evaluation.methods import _default_model_dir
from wavesr.training.run import slice_bank
from wavesr.training.validation import LDTValidator, validation_indices, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="the training data folders")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: bundled)")
    parser.add_argument("--slices", type=int, default=16, help="held-out slices (default 16)")
    args = parser.parse_args()
    bundle = load_bundle(args.model or _default_model_dir())
    config = bundle.config
    config.data.paths = [str(p) for p in args.data]
    bank = slice_bank(config, progress=True)
    held_out = validation_indices(len(bank), min(args.slices, len(bank) // 5))
    validator = LDTValidator.from_bank(load_autoencoder(bundle), bank, held_out, config)
    ldt = load_ldt(bundle)
    print(f"{bundle.root}: {len(held_out)} held-out training slices of {len(bank)}")
    print(verdict(validator(ldt.model, ldt.hf, ldt.cond)))


if __name__ == "__main__":
    main()
