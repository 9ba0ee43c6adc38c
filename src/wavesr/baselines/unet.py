"""A small diffusion UNet (DDPM / SR3 / guided-diffusion layout) for pixel-space SR.

Input: concat(x_t, condition) on the HR grid; output: the diffusion's prediction channels.
ResBlocks get the timestep embedding; one self-attention block sits at the lowest resolution.
Sizes must be multiples of :attr:`UNet.stride` (pad before, crop after).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavesr.model.transformer import TimestepEmbedder


def norm(channels: int) -> nn.GroupNorm:
    groups = min(32, max(1, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


def zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb, cout))
        self.out_layers = nn.Sequential(
            norm(cout), nn.SiLU(), nn.Dropout(dropout), zero(nn.Conv2d(cout, cout, 3, padding=1))
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention over all pixels, residual, output projection zero-initialised."""

    def __init__(self, channels: int, head_channels: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """``forward(x, t, cond)``: (B, C_x, H, W), (B,), (B, C_c, H, W) -> (B, out_channels, H, W)."""

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        channels: int = 32,
        mults: tuple[int, ...] | list[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        mults = tuple(mults)
        if not mults:
            raise ValueError("the UNet needs at least one level (mults)")
        self.stride = 2 ** (len(mults) - 1)
        emb = 4 * channels
        self.time_embed = TimestepEmbedder(emb, frequency_size=channels)
        self.input = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, cur = [channels], channels
        for level, mult in enumerate(mults):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(cur, channels * mult, emb, dropout))
                cur = channels * mult
                skips.append(cur)
            if level < len(mults) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
        self.mid = nn.ModuleList(
            [ResBlock(cur, cur, emb, dropout), Attention(cur), ResBlock(cur, cur, emb, dropout)]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(cur + skips.pop(), channels * mult, emb, dropout))
                cur = channels * mult
            if level > 0:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(cur, cur, 3, padding=1),
                    )
                )
        self.out = nn.Sequential(
            norm(cur), nn.SiLU(), zero(nn.Conv2d(cur, out_channels, 3, padding=1))
        )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f"UNet input {h}x{w} is not a multiple of its stride {self.stride}")
        emb = self.time_embed(t)
        h = self.input(torch.cat([x, cond.to(x.dtype)], dim=1))
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.out(h)
