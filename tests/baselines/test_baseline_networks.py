"""EDSR and the diffusion UNet: shapes, global residual, stride checks, parameter counts."""

from __future__ import annotations

import pytest
import torch

from wavesr.baselines.edsr import EDSR, RESIDUAL_SCALE, ResBlock, edsr_loss
from wavesr.baselines.pixel_diffusion import build_unet
from wavesr.baselines.unet import UNet
from wavesr.config import load_config
from wavesr.evaluation.metrics import count_parameters


@pytest.mark.parametrize("size", [(17, 23), (32, 32), (5, 9)])
def test_edsr_keeps_any_size(size):
    x = torch.rand(2, 1, *size)
    assert EDSR(blocks=2, channels=8)(x).shape == (2, 1, *size)


def test_edsr_zero_tail_is_the_identity_on_lr_up():
    torch.manual_seed(0)
    model = EDSR(blocks=3, channels=8)
    torch.nn.init.zeros_(model.tail.weight)
    torch.nn.init.zeros_(model.tail.bias)
    x = torch.rand(3, 1, 19, 21)
    assert torch.equal(model(x), x)
    assert edsr_loss(model, x, x)["loss"].item() == 0.0


def test_edsr_resblock_scales_its_residual():
    torch.manual_seed(0)
    block = ResBlock(4)
    x = torch.randn(1, 4, 6, 6)
    branch = block.conv2(torch.relu(block.conv1(x)))
    torch.testing.assert_close(block(x), x + RESIDUAL_SCALE * branch)


def test_cpu_preset_sizes():
    config = load_config("cpu")
    edsr = EDSR.from_config(config.baselines)
    assert len(edsr.body) == config.baselines.edsr_blocks
    assert 0.25e6 < count_parameters(edsr) < 0.35e6
    unet = build_unet(config)
    assert unet.stride == 4
    assert 1e6 < count_parameters(unet) < 3e6


def test_unet_shapes_stride_and_learned_sigma_channels():
    config = load_config("tiny")
    unet = build_unet(config)
    assert unet.stride == 2 ** (len(config.baselines.unet_mults) - 1)
    x, t = torch.randn(2, 1, 12, 20), torch.tensor([0, 999])
    assert unet(x, t, torch.rand_like(x)).shape == (2, 2, 12, 20)
    with pytest.raises(ValueError, match="stride"):
        unet(torch.randn(1, 1, 13, 20), t[:1], torch.rand(1, 1, 13, 20))
    config.diffusion.learn_sigma = False
    assert build_unet(config)(x, t, x).shape == (2, 1, 12, 20)


def test_unet_depends_on_condition_and_timestep():
    torch.manual_seed(0)
    unet = UNet(2, 2, channels=8, mults=(1, 2))
    for p in unet.parameters():  # the zero-initialised output layers would hide everything
        torch.nn.init.normal_(p, std=0.2)
    x, cond = torch.randn(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    base = unet(x, torch.tensor([10]), cond)
    assert not torch.allclose(base, unet(x, torch.tensor([500]), cond))
    assert not torch.allclose(base, unet(x, torch.tensor([10]), cond + 0.5))
    # Convolutional + global attention: a local change of the condition changes the output.
    bumped = cond.clone()
    bumped[..., 0, 0] += 1
    assert not torch.allclose(base, unet(x, torch.tensor([10]), bumped))
