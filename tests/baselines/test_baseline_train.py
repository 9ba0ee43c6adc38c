"""Baseline tasks on the shared engine: EDSR learns, diffusion loss, sampling, config checks."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from wavesr.baselines.pixel_diffusion import (
    PixelDiffusionSampler,
    build_unet,
    diffusion_target,
    from_diffusion_space,
    image_from_target,
    to_diffusion_space,
)
from wavesr.baselines.train import EDSRTask, PixelDiffusionTask, train_baseline
from wavesr.config import load_config
from wavesr.data.bank import SliceBank
from wavesr.errors import ConfigError
from wavesr.training.engine import train


def _bank(n: int = 4, size: int = 48) -> SliceBank:
    y, x = np.mgrid[:size, :size].astype(np.float32)
    slices = [
        (0.5 + 0.4 * np.sin(x / (2.0 + i)) * np.cos(y / (3.0 + i))).astype(np.float32)
        for i in range(n)
    ]
    return SliceBank(slices, [f"s{i}" for i in range(n)])


def test_edsr_loss_falls_through_the_engine(tmp_path):
    config = load_config(
        "tiny",
        [
            "baseline_training.train.max_steps=20",
            "baseline_training.train.batch_size=4",
            "baseline_training.optim.schedule=constant",
            "baseline_training.train.checkpoint_every=100",
        ],
    )
    result = train(
        EDSRTask(config, _bank()),
        config.baseline_training,
        tmp_path / "run",
        config_dict=config.to_dict(),
        progress=False,
    )
    assert result.status == "finished" and result.step == 20
    with open(tmp_path / "run" / "metrics.csv") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert (tmp_path / "run" / "wavesr.json").is_file()


def test_pixel_diffusion_task_loss_is_finite_deterministic_and_trains_the_unet():
    config = load_config("tiny")
    task = PixelDiffusionTask(config, _bank())
    model = task.build_model()
    torch.manual_seed(0)
    first = task.compute_loss(model, step=3, rank=0)
    assert set(first) == {"loss", "mse", "vb"}
    assert all(torch.isfinite(v) for v in first.values())
    # A zero-initialised output predicts eps = 0: the MSE is E[noise^2], about 1.
    assert 0.7 < first["mse"].item() < 1.3
    again = task.compute_loss(model, step=3, rank=0)
    assert torch.equal(first["loss"], again["loss"])  # batch, t and noise depend on the step only
    first["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_diffusion_space_round_trip():
    x = torch.rand(2, 1, 5, 5)
    assert to_diffusion_space(torch.tensor([0.0, 1.0])).tolist() == [-1.0, 1.0]
    torch.testing.assert_close(from_diffusion_space(to_diffusion_space(x)), x)


def test_residual_target_is_what_bicubic_misses_scaled():
    config = load_config("tiny", ["baselines.pixel_target=residual", "baselines.residual_scale=5"])
    hr = torch.tensor([[[[0.5, 0.9]]]])
    lr_up = torch.tensor([[[[0.4, 0.9]]]])
    x0 = diffusion_target(config, hr, lr_up)
    torch.testing.assert_close(x0, torch.tensor([[[[0.5, 0.0]]]]))
    torch.testing.assert_close(image_from_target(config, x0, lr_up), hr)
    # A zero residual gives back bicubic; the image target maps 0 to mid-grey.
    torch.testing.assert_close(image_from_target(config, torch.zeros_like(hr), lr_up), lr_up)
    image = load_config("tiny")
    torch.testing.assert_close(diffusion_target(image, hr, lr_up), 2 * hr - 1)
    with pytest.raises(ConfigError, match="pixel_target"):
        load_config("tiny", ["baselines.pixel_target=noise"])


def _random_sampler(config) -> PixelDiffusionSampler:
    torch.manual_seed(0)
    unet = build_unet(config)
    for p in unet.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return PixelDiffusionSampler(config, unet)


def test_sampling_is_seeded_and_keeps_odd_sizes():
    config = load_config("tiny")
    sampler = _random_sampler(config)
    lr_up = torch.rand(2, 1, 13, 19)
    a = sampler(lr_up, steps=3, seed=5)
    b = sampler(lr_up, steps=3, seed=5)
    c = sampler(lr_up, steps=3, seed=6)
    assert a.shape == lr_up.shape
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_temperature_zero_sampling_ignores_the_seed():
    config = load_config("tiny", ["diffusion.predict=x0", "baselines.pixel_target=residual"])
    sampler = _random_sampler(config)
    lr_up = torch.rand(1, 1, 12, 12)
    a = sampler(lr_up, steps=3, seed=1, temperature=0.0)
    b = sampler(lr_up, steps=3, seed=2, temperature=0.0)
    c = sampler(lr_up, steps=3, seed=2, temperature=1.0)
    assert torch.equal(a, b)
    assert not torch.allclose(b, c)


def test_sampling_calls_the_unet_once_per_step():
    config = load_config("tiny")
    sampler = _random_sampler(config)
    calls = []
    sampler.network.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    sampler(torch.rand(1, 1, 9, 9), steps=4, seed=0)
    assert calls == [torch.Size([1, 1, 10, 10])] * 4  # padded to the UNet stride (2)


def test_train_baseline_rejects_bad_names_and_crops(tmp_path):
    config = load_config("tiny")
    config.data.paths = [str(tmp_path)]
    with pytest.raises(ConfigError, match="unknown baseline"):
        train_baseline("srgan", config, tmp_path / "out")
    config.baselines.unet_mults = [1, 2, 2, 2, 2, 2, 2]  # stride 64 > crop 32
    with pytest.raises(ConfigError, match="UNet stride 64"):
        train_baseline("pixel-diffusion", config, tmp_path / "out")
    config.data.paths = []
    with pytest.raises(ConfigError, match="no training data"):
        train_baseline("edsr", config, tmp_path / "out")
