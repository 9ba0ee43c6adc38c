"""Tiled latent denoising: window layout, blend weights, equality with the untiled model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wavesr.model.tiling import TiledDenoiser, balanced_window, blend_weight, window_starts
from wavesr.model.transformer import LatentDiffusionTransformer, ldt_preset


def test_window_starts_cover_the_size_with_the_overlap() -> None:
    assert window_starts(20, 28, 8) == [0]
    assert window_starts(56, 28, 8, align=4) == [0, 20, 28]
    starts = window_starts(100, 28, 8, align=4)
    assert starts[0] == 0 and starts[-1] == 100 - 28
    assert all(b - a <= 28 - 8 for a, b in zip(starts, starts[1:]))  # neighbours share >= 8
    assert all(s % 4 == 0 for s in starts[:-1])


def test_balanced_window_keeps_the_window_count_with_less_overlap() -> None:
    assert window_starts(112, 28, 4, align=2) == [0, 24, 48, 72, 84]  # 5 windows of 28
    assert balanced_window(112, 28, 4, align=2) == 26  # 5 windows of 26 cover it too
    assert len(window_starts(112, 26, 4, align=2)) == 5
    assert len(window_starts(112, 24, 4, align=2)) == 6
    assert balanced_window(20, 28, 4) == 20  # fits in one window
    assert balanced_window(56, 28, 8, align=4) == 24  # 3 windows of 24 (20 would need 4)


def test_blend_weight_ramps_smoothly_and_stays_positive() -> None:
    w = blend_weight(10, 4)
    assert torch.all(w > 0) and torch.all(w <= 1)
    assert torch.equal(w[4:6], torch.ones(2, dtype=w.dtype))
    torch.testing.assert_close(w, w.flip(0))
    assert torch.all(w[:4].diff() > 0)
    assert torch.equal(blend_weight(6, 0), torch.ones(6, dtype=torch.float64))


class Pointwise(nn.Module):
    """A per-pixel model: tiling must reproduce it exactly, whatever the windows."""

    def forward(self, x, t, cond):
        return torch.cat([x * 2 + cond.mean(1, keepdim=True), x - t.view(-1, 1, 1, 1)], dim=1)


def test_tiled_pointwise_model_is_exact_and_small_inputs_pass_through() -> None:
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(2, 3, 37, 50, generator=g), torch.randn(2, 2, 37, 50, generator=g)
    t = torch.tensor([5, 900])
    tiled = TiledDenoiser(Pointwise(), window=16, overlap=6, align=2, max_batch=5)
    torch.testing.assert_close(tiled(x, t, cond), Pointwise()(x, t, cond))
    small = x[..., :16, :16], cond[..., :16, :16]
    torch.testing.assert_close(tiled(small[0], t, small[1]), Pointwise()(small[0], t, small[1]))


def test_tiled_ldt_matches_per_window_calls_where_only_one_window_covers() -> None:
    torch.manual_seed(0)
    ldt = LatentDiffusionTransformer(ldt_preset("tiny", in_channels=3, cond_channels=3))
    with torch.no_grad():
        for p in ldt.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, cond, t = torch.randn(1, 3, 8, 24), torch.randn(1, 3, 8, 24), torch.tensor([300])
    out = TiledDenoiser(ldt, window=8, overlap=2, align=2)(x, t, cond)
    assert out.shape == (1, 6, 8, 24)
    # Columns 0-5 lie in the first window alone: they equal the first window's own output.
    first = ldt(x[..., :8], t, cond[..., :8])
    torch.testing.assert_close(out[..., :5], first[..., :5])


def test_bad_tiling_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        TiledDenoiser(Pointwise(), window=8, overlap=8)
