"""EDSR-style residual CNN (Lim et al. 2017) on the bicubic-upsampled LR slice.

No up-sampling layer: the network works on the HR grid and learns the residual to bicubic,
``sr = lr_up + net(lr_up)``, trained with an L1 loss.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from wavesr.config import BaselineConfig

RESIDUAL_SCALE = 0.1


class ResBlock(nn.Module):
    """conv-ReLU-conv, the output scaled by ``RESIDUAL_SCALE`` before the skip (no batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + RESIDUAL_SCALE * self.conv2(F.relu(self.conv1(x)))


class EDSR(nn.Module):
    """(B, 1, H, W) bicubic LR on the HR grid -> (B, 1, H, W) SR, any H, W."""

    def __init__(self, blocks: int = 16, channels: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, in_channels, 3, padding=1)

    @classmethod
    def from_config(cls, config: BaselineConfig) -> EDSR:
        return cls(config.edsr_blocks, config.edsr_channels)

    def forward(self, lr_up: Tensor) -> Tensor:
        features = self.head(lr_up)
        features = features + self.body_tail(self.body(features))
        return lr_up + self.tail(features)


def edsr_loss(model: nn.Module, lr_up: Tensor, hr: Tensor) -> dict[str, Tensor]:
    l1 = F.l1_loss(model(lr_up), hr)
    return {"loss": l1, "l1": l1.detach()}
