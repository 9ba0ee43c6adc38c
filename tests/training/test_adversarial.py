"""The adversarial and focal-frequency terms of the autoencoder stages: losses by hand, the
warm-up, the discriminator's own optimizer, resume, and the default staying what it was."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import blobs
from safetensors.torch import load_file

from wavesr.bundle.checkpoint_io import checkpoint_dirs
from wavesr.config import load_config
from wavesr.data.bank import SliceBank
from wavesr.errors import ConfigError
from wavesr.model.autoencoder import autoencoder_losses
from wavesr.model.perceptual import (
    Discriminator,
    DiscriminatorConfig,
    adaptive_weight,
    focal_frequency_loss,
    hinge_d_loss,
    hinge_g_loss,
)
from wavesr.training.engine import train
from wavesr.training.tasks import AutoencoderTask

ADV = "autoencoder_training.perceptual"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def bank() -> SliceBank:
    slices = list(blobs(3, 64, 64, seed=3))
    return SliceBank(slices, [f"s{i}" for i in range(3)])


def _config(*sets: str):
    return load_config("tiny", [f"{ADV}.{s}" for s in sets])


# ---- losses by hand ------------------------------------------------------------------------


def test_hinge_losses_by_hand() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # relu(1 - real) = [0, 0.5] -> 0.25; relu(1 + fake) = [0, 1.5] -> 0.75; half the sum
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.5)
    assert float(hinge_g_loss(fake)) == pytest.approx(0.75)


def test_adaptive_weight_is_the_ratio_of_gradient_norms() -> None:
    w = torch.ones(4, requires_grad=True)
    rec = (3.0 * w).sum()  # grad 3 per element: norm 6
    adv = (w**2).sum()  # grad 2 per element: norm 4
    assert float(adaptive_weight(rec, adv, w)) == pytest.approx(6.0 / (4.0 + 1e-4))
    assert float(adaptive_weight(rec, 1e-9 * adv, w, max_weight=10.0)) == 10.0
    assert not adaptive_weight(rec, adv, w).requires_grad


def test_focal_frequency_loss_of_one_pixel_by_hand() -> None:
    pred, target = torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8)
    target[0, 0, 1, 2] = 0.5
    # an impulse has a flat spectrum: |F|^2 = 0.25 / 32 everywhere (orthonormal FFT), so every
    # weight is 1 and the loss is the mean of that
    assert float(focal_frequency_loss(pred, target)) == pytest.approx(0.25 / 32)
    assert float(focal_frequency_loss(target, target)) == 0.0


def test_focal_frequency_weights_the_worst_frequency_most() -> None:
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    target = torch.zeros(1, 1, 8, 8)
    pred = (0.1 * torch.cos(math.pi * xx / 2) + 0.01 * torch.cos(math.pi * yy))[None, None]
    plain = float((torch.fft.fft2(pred, norm="ortho").abs() ** 2).mean())
    focal = float(focal_frequency_loss(pred, target))
    # orthonormal FFT: the strong error is two bins of magnitude 0.1 * 8 / 2 = 0.4 (weight 1),
    # the weak one one bin (the Nyquist row) of 0.01 * 8 = 0.08 (weight 0.08 / 0.4 = 0.2)
    assert 0 < focal < plain
    strong, weak = 2 * 0.4**2 / 64, 0.08**2 / 64
    assert focal == pytest.approx(strong + 0.2 * weak, rel=1e-4)


def test_discriminator_views_and_patch_logits() -> None:
    d = Discriminator(DiscriminatorConfig(channels=8, layers=2, inputs="image+bands"))
    logits = d({"image": torch.zeros(2, 1, 32, 32), "bands": torch.zeros(2, 3, 16, 16)})
    assert set(logits) == {"image", "bands"}
    assert logits["image"].shape[:2] == (2, 1) and logits["image"].shape[-1] > 1
    with pytest.raises(ValueError):
        Discriminator(DiscriminatorConfig(inputs="pixels"))


# ---- the task: warm-up, gradients, default -------------------------------------------------


def test_term_starts_at_its_step_and_trains_the_discriminator(bank) -> None:
    config = _config("adversarial_weight=0.5", "adversarial_start=2", "discriminator_channels=8")
    task = AutoencoderTask(config, bank)
    model = task.build_model()
    before = {k: v.clone() for k, v in task.adversarial.discriminator.state_dict().items()}
    early = task.compute_loss(model, 1, 0)
    assert "adv_g" not in early
    assert all(
        torch.equal(v, task.adversarial.discriminator.state_dict()[k]) for k, v in before.items()
    )
    late = task.compute_loss(model, 2, 0)
    moved = [
        not torch.equal(v, task.adversarial.discriminator.state_dict()[k])
        for k, v in before.items()
    ]
    assert any(moved)  # one optimizer step of its own
    base = late["freq"] + late["pixel"] + late["cycle"] + 1e-6 * late["kl"]
    assert float(late["adv_weight"]) > 0
    expected = base + late["adv_weight"] * late["adv_g"]
    assert float(late["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    # the generator's backward reaches the decoder through the discriminator, not the
    # discriminator's own weights
    model.zero_grad()
    late["loss"].backward()
    assert model.final.out.weight.grad is not None
    assert all(p.grad is None for p in task.adversarial.discriminator.parameters())


def test_discriminator_gradient_flows_into_the_generator_term(bank) -> None:
    config = _config("adversarial_weight=1.0", "adaptive_weight=false", "discriminator_channels=8")
    task = AutoencoderTask(config, bank)
    model = task.build_model()
    losses = task.compute_loss(model, 1, 0)
    assert float(losses["adv_weight"]) == 1.0
    base = losses["freq"] + losses["pixel"] + losses["cycle"] + 1e-6 * losses["kl"]
    term = losses["loss"] - base
    assert float(term.detach()) == pytest.approx(float(losses["adv_g"]), abs=1e-6)
    (grad,) = torch.autograd.grad(term, [model.final.out.weight])
    assert grad.abs().sum() > 0


def test_focal_frequency_term_joins_the_loss(bank) -> None:
    task = AutoencoderTask(_config("focal_frequency_weight=2.0"), bank)
    losses = task.compute_loss(task.build_model(), 1, 0)
    base = losses["freq"] + losses["pixel"] + losses["cycle"] + 1e-6 * losses["kl"]
    expected = base + 2.0 * losses["focal_frequency"]
    assert float(losses["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_default_config_leaves_the_losses_unchanged(bank) -> None:
    config = load_config("tiny")
    assert config.autoencoder_training.perceptual.adversarial_weight == 0.0
    task = AutoencoderTask(config, bank)
    model = task.build_model()
    assert task.adversarial is None and task.extra_state() == {}
    torch.manual_seed(5)
    losses = task.compute_loss(model, 1, 0)
    assert set(losses) == {"loss", "freq", "pixel", "cycle", "kl"}
    # the same computation as before the terms existed
    from wavesr.data.bank import step_generator
    from wavesr.model.build import degradation_of
    from wavesr.model.degrade import degrade

    train_cfg = config.autoencoder_training.train
    hr = bank.batch(1, train_cfg.batch_size, config.data.crop, train_cfg.seed, 0)
    _, lr_up = degrade(hr, degradation_of(config), generator=step_generator(train_cfg.seed, 1, 0))
    torch.manual_seed(5)
    direct = autoencoder_losses(model(lr_up, hr), hr)
    assert all(torch.equal(losses[k], direct[k]) for k in direct)


def test_other_stages_refuse_the_terms() -> None:
    with pytest.raises(ConfigError, match="only the autoencoder stages"):
        load_config("tiny", ["ldt_training.perceptual.adversarial_weight=1.0"])
    with pytest.raises(ConfigError, match="discriminator_input"):
        _config("discriminator_input=pixels")
    load_config("tiny", ["decoder_training.perceptual.adversarial_weight=0.1"])


# ---- checkpoints and resume ----------------------------------------------------------------


def _run(bank, out, *, max_minutes=None, resume=False):
    config = _config("adversarial_weight=0.5", "adversarial_start=1", "discriminator_channels=8")
    config.autoencoder_training.train.max_steps = 4
    config.autoencoder_training.train.checkpoint_every = 1
    stage = config.autoencoder_training
    return train(
        AutoencoderTask(config, bank),
        stage,
        out,
        config_dict=config.to_dict(),
        max_minutes=max_minutes,
        resume=resume,
        progress=False,
    )


def test_resume_restores_the_discriminator(bank, tmp_path) -> None:
    _run(bank, tmp_path / "whole")
    stopped = _run(bank, tmp_path / "split", max_minutes=0.0)  # stops after step 1
    assert stopped.status == "time-limit" and stopped.step == 1
    _run(bank, tmp_path / "split", resume=True)
    _run_more = checkpoint_dirs(tmp_path / "split")[-1]
    whole = checkpoint_dirs(tmp_path / "whole")[-1]
    assert _run_more.name == whole.name == "step_0000004"
    a, b = load_file(whole / "extra.safetensors"), load_file(_run_more / "extra.safetensors")
    assert set(a) == set(b) and any(k.startswith("discriminator_optimizer.") for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    ma, mb = load_file(whole / "model.safetensors"), load_file(_run_more / "model.safetensors")
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    exported = [load_file(f) for f in (tmp_path / "whole").glob("*.safetensors")]
    assert exported and not any(k.startswith("discriminator") for t in exported for k in t)


def test_resume_without_discriminator_state_loses_it(bank, tmp_path) -> None:
    """The control: a resumed run whose discriminator starts fresh does not match."""
    _run(bank, tmp_path / "whole")
    _run(bank, tmp_path / "split", max_minutes=0.0)
    for ckpt in checkpoint_dirs(tmp_path / "split"):
        (ckpt / "extra.safetensors").unlink(missing_ok=True)
    _run(bank, tmp_path / "split", resume=True)
    a = load_file(checkpoint_dirs(tmp_path / "whole")[-1] / "extra.safetensors")
    b = load_file(checkpoint_dirs(tmp_path / "split")[-1] / "extra.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)
