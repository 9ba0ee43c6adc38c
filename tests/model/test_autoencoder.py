"""Frequency autoencoder: shapes, shared band encoder, LL residual, the stage-1 loss terms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wavesr.config import load_config
from wavesr.model.autoencoder import (
    AutoencoderConfig,
    AutoencoderLossWeights,
    FrequencyAutoencoder,
    autoencoder_losses,
    autoencoder_preset,
)
from wavesr.model.transformer import LatentDiffusionTransformer
from wavesr.model.wavelet import dwt2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _tiny(**overrides) -> FrequencyAutoencoder:
    torch.manual_seed(0)
    return FrequencyAutoencoder(autoencoder_preset("tiny", **overrides)).eval()


def _images(b: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(b, 1, size, size, generator=gen)
    lr_up = F.avg_pool2d(hr, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    return lr_up, hr


@pytest.mark.parametrize(("s", "size"), [(4, 32), (8, 64), (4, 48)])
def test_shapes_latent_is_h_over_2s(s, size):
    model = _tiny(downsample=s)
    assert model.stride == 2 * s
    lr_up, hr = _images(2, size)
    with torch.no_grad():
        out = model(lr_up, hr, sample=False)
    h = size // 2 // s
    assert out["bands_hat"].shape == (2, 4, size // 2, size // 2)
    assert out["hr_bands"].shape == (2, 4, size // 2, size // 2)
    assert out["sr"].shape == (2, 1, size, size)
    assert out["kl"].shape == (2,)
    bands = torch.cat([dwt2(lr_up)[:, :1], dwt2(hr)[:, 1:]], dim=1)
    with torch.no_grad():
        latent = model.encode_bands(bands).mode()
    assert latent.shape == (2, 12, h, h)


def test_block_widths_and_bad_downsample():
    config = AutoencoderConfig(base_channels=8, channel_mult_last=2, downsample=8)
    assert config.block_out_channels() == (8, 16, 16, 16)
    with pytest.raises(ValueError, match="power of 2"):
        AutoencoderConfig(downsample=3).block_out_channels()


def test_encode_bands_equals_per_band_encode_band():
    model = _tiny()
    gen = torch.Generator().manual_seed(1)
    bands = torch.randn(3, 4, 16, 16, generator=gen) * torch.tensor([1.0, 0.1, 0.1, 0.1]).view(
        1, 4, 1, 1
    )
    with torch.no_grad():
        joint = model.encode_bands(bands)
        parts = [model.encode_band(bands[:, i : i + 1], i) for i in range(4)]
    lc = model.config.latent_channels
    assert joint.mode().shape == (3, 4 * lc, 4, 4)
    torch.testing.assert_close(
        joint.mode(), torch.cat([p.mode() for p in parts], 1), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        joint.logvar, torch.cat([p.logvar for p in parts], 1), atol=1e-5, rtol=1e-5
    )
    # The band scale matters: encoding the LL band as if it were a detail band differs.
    with torch.no_grad():
        wrong = model.encode_band(bands[:, :1], 1).mode()
    assert not torch.allclose(wrong, parts[0].mode())
    # A tensor of band indices (one per sample) gives the same as the integer form.
    with torch.no_grad():
        by_tensor = model.encode_band(bands[:, 2:3], torch.tensor([2, 2, 2])).mode()
    torch.testing.assert_close(by_tensor, parts[2].mode())


def test_decode_returns_four_bands():
    model = _tiny()
    ll_latent, high = torch.randn(2, 3, 4, 4), torch.randn(2, 9, 4, 4)
    ll_lr = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        bands = model.decode(ll_latent, high, ll_lr)
    assert bands.shape == (2, 4, 16, 16)
    assert torch.isfinite(bands).all()


def _zero_final_conv(model: FrequencyAutoencoder) -> None:
    with torch.no_grad():
        model.final.out.weight.zero_()
        model.final.out.bias.zero_()


def test_ll_residual_passes_the_lr_ll_band_through():
    model = _tiny()
    _zero_final_conv(model)
    lr_up, hr = _images(2, 32)
    with torch.no_grad():
        out = model(lr_up, hr)
    torch.testing.assert_close(out["bands_hat"][:, :1], dwt2(lr_up)[:, :1])
    assert torch.equal(out["bands_hat"][:, 1:], torch.zeros_like(out["bands_hat"][:, 1:]))
    # Without the residual the LL output is the (zero) network output.
    plain = _tiny(ll_residual=False)
    _zero_final_conv(plain)
    with torch.no_grad():
        assert torch.equal(plain(lr_up, hr)["bands_hat"], torch.zeros(2, 4, 16, 16))


def test_lr_condition_bands_passes_every_lr_band_through():
    model = _tiny(lr_condition="bands")
    _zero_final_conv(model)
    lr_up, hr = _images(2, 32)
    lr_up = lr_up + 0.1 * torch.rand(2, 1, 32, 32)  # detail in the LR's high bands too
    with torch.no_grad():
        out = model(lr_up, hr)
    torch.testing.assert_close(out["bands_hat"], dwt2(lr_up))


def test_only_a_bands_decoder_sees_the_lr_detail_bands():
    ll_latent, high = torch.randn(2, 3, 4, 4), torch.randn(2, 9, 4, 4)
    lr_bands = torch.rand(2, 4, 16, 16)
    other = lr_bands.clone()
    other[:, 2] += 0.5  # another HL band, the same LL band
    for condition, sees_detail in (("ll", False), ("bands", True)):
        model = _tiny(lr_condition=condition)
        with torch.no_grad():
            a = model.decode(ll_latent, high, lr_bands)
            b = model.decode(ll_latent, high, other)
        # Residual aside, the network's own output changes only if it sees the band.
        n = model.config.condition_band_count
        a[:, :n] -= lr_bands[:, :n]
        b[:, :n] -= other[:, :n]
        assert torch.allclose(a, b) is not sees_detail


def test_a_bands_decoder_refuses_the_ll_band_alone():
    model = _tiny(lr_condition="bands")
    with pytest.raises(ValueError, match="sees 4 LR bands"):
        model.decode(torch.randn(1, 3, 4, 4), torch.randn(1, 9, 4, 4), torch.rand(1, 1, 16, 16))


def test_condition_dropout_hides_the_lr_from_dropped_samples_in_training_only():
    model = _tiny(condition_dropout=0.5)
    ll_latent, high = torch.randn(2, 3, 4, 4), torch.randn(2, 9, 4, 4)
    ll_lr, other_lr = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    keep = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)
    with torch.no_grad():
        a = model.decode(ll_latent, high, ll_lr, keep)
        b = model.decode(ll_latent * 2.0, high, other_lr, keep)
    # The dropped sample sees neither the LR LL latent nor the band; only the residual differs.
    torch.testing.assert_close(a[1, 1:], b[1, 1:])
    torch.testing.assert_close(a[1, :1] - ll_lr[1], b[1, :1] - other_lr[1])
    assert not torch.allclose(a[0], b[0])
    # Off in eval mode, and the mask draws about the configured share in training mode.
    assert model.condition_keep_mask(ll_lr) is None
    model.train()
    torch.manual_seed(0)
    mask = model.condition_keep_mask(torch.zeros(4000, 1, 2, 2))
    assert mask.shape == (4000, 1, 1, 1) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert abs(mask.mean().item() - 0.5) < 0.03
    assert _tiny().train().condition_keep_mask(ll_lr) is None


def test_band_scales_are_undone_after_the_decoder():
    model = _tiny(ll_residual=False)
    with torch.no_grad():
        model.final.out.weight.zero_()
        model.final.out.bias.copy_(torch.ones(4))
        bands = model.decode(
            torch.zeros(1, 3, 2, 2), torch.zeros(1, 9, 2, 2), torch.zeros(1, 1, 8, 8)
        )
    expected = 1.0 / torch.tensor(model.config.band_scales)
    torch.testing.assert_close(bands[0, :, 0, 0], expected)


def _perfect(hr: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "bands_hat": dwt2(hr),
        "hr_bands": dwt2(hr),
        "sr": hr.clone(),
        "kl": torch.zeros(hr.shape[0]),
    }


def test_losses_vanish_for_a_perfect_prediction():
    hr = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    terms = autoencoder_losses(_perfect(hr), hr)
    assert set(terms) == {"loss", "freq", "pixel", "cycle", "kl"}
    for name, value in terms.items():
        assert float(value) < 1e-10, name


def test_loss_terms_and_weights():
    hr = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    out = _perfect(hr)
    out["sr"] = hr + 0.1  # every pixel 0.1 off
    out["bands_hat"] = out["hr_bands"] + 0.2
    out["kl"] = torch.tensor([3.0, 5.0])
    terms = autoencoder_losses(out, hr)
    assert float(terms["pixel"]) == pytest.approx(0.01, rel=1e-5)
    assert float(terms["freq"]) == pytest.approx(0.04, rel=1e-5)
    assert float(terms["kl"]) == pytest.approx(4.0)
    # The cycle term re-analyses the clamped SR image.
    cycle = F.mse_loss(dwt2((hr + 0.1).clamp(0, 1)), out["hr_bands"])
    assert float(terms["cycle"]) == pytest.approx(float(cycle), rel=1e-5)
    default_total = 0.04 + 0.01 + float(cycle) + 1e-6 * 4.0
    assert float(terms["loss"]) == pytest.approx(default_total, rel=1e-5)
    weights = AutoencoderLossWeights(freq=2.0, pixel=0.0, cycle=0.0, kl=0.5)
    weighted = autoencoder_losses(out, hr, weights)
    assert float(weighted["loss"]) == pytest.approx(2.0 * 0.04 + 0.5 * 4.0, rel=1e-5)


def test_gradients_reach_encoder_and_decoder():
    model = _tiny().train()
    lr_up, hr = _images(2, 32)
    autoencoder_losses(model(lr_up, hr), hr)["loss"].backward()
    for part in (model.encoder, model.decoder, model.final):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", ["cpu", "paper"])
def test_named_autoencoder_sizes_match_the_yaml_presets(name: str) -> None:
    from wavesr.model.autoencoder import AUTOENCODER_PRESETS

    from_yaml = load_config(name).autoencoder
    for key, value in AUTOENCODER_PRESETS[name].items():
        assert getattr(from_yaml, key) == value, key


def test_paper_preset_size_and_one_training_step():
    config = load_config("paper")
    torch.manual_seed(0)
    autoencoder = FrequencyAutoencoder(config.autoencoder)
    ldt = LatentDiffusionTransformer(config.ldt)
    count = sum(p.numel() for m in (autoencoder, ldt) for p in m.parameters())
    assert abs(count - 46.3e6) <= 0.15 * 46.3e6, count

    lr_up, hr = _images(1, 32)
    loss = autoencoder_losses(autoencoder(lr_up, hr), hr)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert autoencoder.encoder.conv_in.weight.grad.abs().sum() > 0

    # adaLN-Zero: the output starts at zero, so the first step only reaches the final layer;
    # after one SGD step the gradient flows back to the patch embedding.
    optimizer = torch.optim.SGD(ldt.parameters(), lr=1e-2)
    x = torch.randn(2, config.ldt.in_channels, 4, 4)
    cond = torch.randn(2, config.ldt.cond_channels, 4, 4)
    t = torch.tensor([10, 500])
    for _ in range(2):
        optimizer.zero_grad()
        y = ldt(x, t, cond=cond)
        assert y.shape == (2, config.ldt.out_channels, 4, 4)
        (y - 1).square().mean().backward()
        assert ldt.final_layer.linear.weight.grad.abs().sum() > 0
        optimizer.step()
    assert ldt.x_embedder.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in ldt.parameters() if p.grad is not None)


def test_ll_detail_band_is_encoded_and_generated():
    model = _tiny(ll_detail=True, band_scales=(0.5, 8.0, 8.0, 12.0, 5.0))
    assert model.config.encoded_bands == 5 and model.config.generated_channels == 12
    lr_up, hr = _images(2, 32)
    lr_bands, hr_bands = dwt2(lr_up), dwt2(hr)
    inputs = model.encoder_inputs(lr_bands, hr_bands)
    torch.testing.assert_close(inputs[:, 4], hr_bands[:, 0] - lr_bands[:, 0])
    torch.testing.assert_close(inputs[:, :4], torch.cat([lr_bands[:, :1], hr_bands[:, 1:]], 1))
    with torch.no_grad():
        latents = model.encode_pair(lr_up, hr).mode()
        assert latents.shape == (2, 15, 4, 4)
        ll_latent, generated = model.split_latents(latents)
        bands = model.decode(ll_latent, generated, lr_bands[:, :1])
        # The LL detail latent (the last 3 channels) reaches the decoded LL band.
        changed = generated.clone()
        changed[:, -3:] += 1.0
        other = model.decode(ll_latent, changed, lr_bands[:, :1])
    assert bands.shape == (2, 4, 16, 16)
    assert (other[:, 0] - bands[:, 0]).abs().max() > 1e-4


def test_ll_detail_needs_twelve_ldt_channels():
    from wavesr.errors import ConfigError

    with pytest.raises(ConfigError, match="ldt.in_channels must be 12"):
        load_config("tiny", overrides=["ldt.in_channels=9"])
    config = load_config("tiny", overrides=["autoencoder.ll_detail=false", "ldt.in_channels=9"])
    assert config.autoencoder.generated_channels == 9
