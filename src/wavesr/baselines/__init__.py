"""Baselines (EDSR, SR3-style pixel diffusion): networks and their training.
May import training, bundle, model, data and the base; not evaluation, tasks or cli.

The baselines of the paper's comparison: EDSR (discriminative CNN) and SR3-style pixel diffusion.

Both work on the bicubic-upsampled LR slice (the HR grid), train through the WaveSR engine
(`wavesr train edsr|pixel-diffusion`) and are exported as bundles of kind ``edsr`` /
``pixel-diffusion`` with one network, ``network``.
"""

from __future__ import annotations

BASELINES = ("edsr", "pixel-diffusion")

__all__ = ["BASELINES"]
