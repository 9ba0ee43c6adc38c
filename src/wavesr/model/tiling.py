"""Tiled latent denoising: cost linear in the slice area, memory bounded, no seams.

The LDT attends over every token of its input, so one call on a whole slice costs the square of
its area. :class:`TiledDenoiser` wraps the LDT: a latent larger than ``window`` is cut into
overlapping windows (the LDT's training crop by default), all windows go through the LDT as one
batch, and the outputs are blended with weights that fall smoothly to the window edges
(MultiDiffusion, Bar-Tal et al. 2023: the average of the windows' denoiser outputs at every step).
The diffusion samplers call it like the LDT itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def window_starts(size: int, window: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of windows of ``window`` covering ``size`` with at least ``overlap``
    shared pixels between neighbours; starts are multiples of ``align`` except the last, which
    ends at ``size``."""
    if size <= window:
        return [0]
    stride = max(align, (window - overlap) // align * align)
    starts = list(range(0, size - window, stride))
    return starts + [size - window]


def balanced_window(size: int, window: int, overlap: int, align: int = 1) -> int:
    """The smallest window (a multiple of ``align``, at most ``window``) that covers ``size`` with
    no more windows than ``window`` itself needs: the same number of LDT calls with less
    overlap, so the cost stays close to linear in the area (a 112-pixel latent needs 5 windows
    of 28 with overlap 4, but 5 of 26 do too)."""
    if size <= window:
        return size
    needed = len(window_starts(size, window, overlap, align))
    smallest = (overlap // align + 1) * align
    for candidate in range(smallest, window, align):
        if len(window_starts(size, candidate, overlap, align)) <= needed:
            return candidate
    return window


def blend_weight(window: int, overlap: int) -> Tensor:
    """(window,) weights: a raised-cosine ramp over ``overlap`` pixels at both ends, 1 inside.

    Strictly positive everywhere, so a pixel covered by one window alone keeps its value.
    """
    weight = torch.ones(window, dtype=torch.float64)
    ramp = min(overlap, window // 2)
    if ramp > 0:
        pos = (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp
        weight[:ramp] = 0.5 - 0.5 * torch.cos(torch.pi * pos)
        weight[-ramp:] = weight[:ramp].flip(0)
    return weight


class TiledDenoiser(nn.Module):
    """``model(x, t, cond)`` on overlapping windows of x and cond, blended; a pass-through
    when the latent fits in one window."""

    def __init__(
        self, model: nn.Module, window: int, overlap: int, *, align: int = 1, max_batch: int = 64
    ) -> None:
        super().__init__()
        if window < 1 or not 0 <= overlap < window:
            raise ValueError(
                f"tiling needs window >= 1, 0 <= overlap < window: {window}, {overlap}"
            )
        self.model, self.window, self.overlap = model, window, overlap
        self.align, self.max_batch = align, max_batch

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h <= self.window and w <= self.window:
            return self.model(x, t, cond)
        wh = balanced_window(h, self.window, self.overlap, self.align)
        ww = balanced_window(w, self.window, self.overlap, self.align)
        rows = window_starts(h, wh, self.overlap, self.align)
        cols = window_starts(w, ww, self.overlap, self.align)
        boxes = [(r, c) for r in rows for c in cols]
        weight = blend_weight(wh, self.overlap)[:, None] * blend_weight(ww, self.overlap)[None]
        weight = weight.to(device=x.device, dtype=x.dtype)
        total, norm = None, torch.zeros(h, w, device=x.device, dtype=x.dtype)
        b = x.shape[0]
        per_call = max(1, self.max_batch // b)
        for start in range(0, len(boxes), per_call):
            chunk = boxes[start : start + per_call]
            xs = torch.cat([x[..., r : r + wh, c : c + ww] for r, c in chunk])
            cs = torch.cat([cond[..., r : r + wh, c : c + ww] for r, c in chunk])
            out = self.model(xs, t.repeat(len(chunk)), cs).split(b)
            if total is None:
                total = x.new_zeros(b, out[0].shape[1], h, w)
            for (r, c), part in zip(chunk, out):
                total[..., r : r + wh, c : c + ww] += part * weight
                norm[r : r + wh, c : c + ww] += weight
        return total / norm
