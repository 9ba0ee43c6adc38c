"""Bring slices to the working size, the same way in training and in evaluation.

Slices larger than ``size`` on either side are reduced to fit: ``area`` keeps the aspect ratio
with an anti-aliased (area-average) downscale, ``center-crop`` cuts the centre as the paper does.
Smaller slices keep their size. Then both sides are cropped down to a multiple of ``multiple``
(the SR scale), so that LR and HR grids line up exactly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RESIZE_MODES = ("area", "center-crop")


def fit_to_size(image: np.ndarray, size: int, mode: str = "area") -> np.ndarray:
    """(H, W) float32 -> at most (size, size), aspect kept (area) or centre-cropped."""
    h, w = image.shape
    if max(h, w) <= size:
        return image
    if mode == "center-crop":
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
        return image[top : top + size, left : left + size]
    if mode != "area":
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    factor = size / max(h, w)
    new = (max(1, round(h * factor)), max(1, round(w * factor)))
    t = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    return F.interpolate(t, size=new, mode="area")[0, 0].numpy()


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Centre-crop (H, W) so both sides are multiples of ``multiple``."""
    h, w = image.shape
    nh, nw = h - h % multiple, w - w % multiple
    top, left = (h - nh) // 2, (w - nw) // 2
    return image[top : top + nh, left : left + nw]


def prepare_slice(image: np.ndarray, size: int, mode: str, multiple: int) -> np.ndarray:
    return np.ascontiguousarray(crop_to_multiple(fit_to_size(image, size, mode), multiple))


def select_evenly(n: int, k: int | None) -> list[int]:
    """k indices spread evenly over range(n) (the centre of k equal parts); all if k >= n."""
    if k is None or k >= n:
        return list(range(n))
    return [((2 * i + 1) * n) // (2 * k) for i in range(k)]
