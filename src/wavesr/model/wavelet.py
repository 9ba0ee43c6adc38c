"""Single-level orthonormal Haar DWT / IDWT on batched torch tensors.

Sub-bands are returned in the order ``SUBBANDS = ("LL", "LH", "HL", "HH")``:
``LH`` is low-pass along the width and high-pass along the height (horizontal edges),
``HL`` is high-pass along the width (vertical edges), ``HH`` is diagonal detail.
The transform is orthonormal, so ``||x||^2 == ||dwt(x)||^2`` (Parseval) and LL of an image in
[0, 1] lies in [0, 2].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SUBBANDS: tuple[str, ...] = ("LL", "LH", "HL", "HH")


def _haar_filters(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The four 2x2 analysis filters, shape (4, 1, 2, 2)."""
    f = torch.tensor(
        [
            [[1.0, 1.0], [1.0, 1.0]],  # LL
            [[1.0, 1.0], [-1.0, -1.0]],  # LH: high-pass along height
            [[1.0, -1.0], [1.0, -1.0]],  # HL: high-pass along width
            [[1.0, -1.0], [-1.0, 1.0]],  # HH
        ],
        dtype=dtype,
        device=device,
    )
    return (f / 2.0).unsqueeze(1)


def dwt2(x: Tensor) -> Tensor:
    """Haar DWT of (B, C, H, W) with even H, W -> (B, 4*C, H/2, W/2), bands grouped per channel.

    For C == 1 the output channels are LL, LH, HL, HH.
    """
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"dwt2 needs even height and width, got {h}x{w}; use pad_even first")
    filters = _haar_filters(x.dtype, x.device).repeat(c, 1, 1, 1)
    return F.conv2d(x, filters, stride=2, groups=c)


def idwt2(bands: Tensor) -> Tensor:
    """Inverse of :func:`dwt2`: (B, 4*C, h, w) -> (B, C, 2h, 2w)."""
    b, c4, h, w = bands.shape
    if c4 % 4:
        raise ValueError(f"idwt2 needs a multiple of 4 channels, got {c4}")
    filters = _haar_filters(bands.dtype, bands.device).repeat(c4 // 4, 1, 1, 1)
    return F.conv_transpose2d(bands, filters, stride=2, groups=c4 // 4)


def pad_even(x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad the bottom/right edge to even size; returns the padded tensor and old size."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if (h % 2 or w % 2) else x
    return padded, (h, w)


def dwt2_any(x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """DWT of any-size input: pads to even size first. Returns bands and the original size."""
    padded, size = pad_even(x)
    return dwt2(padded), size


def idwt2_any(bands: Tensor, size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`dwt2_any`: reconstructs and crops back to ``size``."""
    return idwt2(bands)[..., : size[0], : size[1]]


def split_bands(bands: Tensor) -> dict[str, Tensor]:
    """(B, 4, h, w) -> {"LL": (B, 1, h, w), ...} for single-channel images."""
    return {name: bands[:, i : i + 1] for i, name in enumerate(SUBBANDS)}
