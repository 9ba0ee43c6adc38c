from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from wavesr.bundle.folder import load_pipeline, save_bundle
from wavesr.config import load_config
from wavesr.errors import CheckpointError, ConfigError
from wavesr.evaluation import methods
from wavesr.evaluation.methods import (
    MethodContext,
    build_method,
    check_model_scale,
    known_methods,
    model_dir_for,
    register_method,
    unregister_method,
)
from wavesr.evaluation.metrics import count_parameters
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.degrade import (
    Degradation,
    back_project,
    slice_upsample,
    upsample,
    zero_fill_upsample,
)
from wavesr.model.latent_scaling import LatentScaling
from wavesr.model.transformer import LatentDiffusionTransformer


def _ctx(**kwargs) -> MethodContext:
    scale = kwargs.pop("scale", 4)
    degradation = kwargs.pop("degradation", Degradation("bicubic", scale))
    return MethodContext(scale=scale, degradation=degradation, **kwargs)


@pytest.fixture
def fake_method():
    calls = []

    class Half:
        name = "test-half"

        def network(self):
            return None

        def flops_call(self, lr_up):
            return None

        def __call__(self, lr, lr_up, hr):
            calls.append(lr.shape)
            return lr_up * 0.5

    @register_method("test-half")
    def factory(ctx: MethodContext) -> Half:
        calls.append(ctx.scale)
        return Half()

    yield factory, calls
    unregister_method("test-half")


def _bundle(root: Path, *, scale: int = 4, with_ldt: bool = False) -> Path:
    """A randomly initialised tiny bundle (no training needed to test loading rules)."""
    config = load_config("tiny")
    config.data.scale = scale
    nets = {"autoencoder": FrequencyAutoencoder(config.autoencoder).state_dict()}
    if with_ldt:
        nets["ldt"] = LatentDiffusionTransformer(config.ldt).state_dict()
    save_bundle(root, "wavesr" if with_ldt else "autoencoder", config, nets)
    return root


def test_builtins_are_registered() -> None:
    assert {"bicubic", "autoencoder-oracle", "wavesr", "wavesr-zero-latents"} <= set(
        known_methods()
    )
    assert known_methods() == sorted(known_methods())


def test_registering_a_method_makes_it_buildable(fake_method) -> None:
    factory, calls = fake_method
    assert "test-half" in known_methods()
    method = build_method("test-half", _ctx(scale=2))
    assert calls == [2]  # the factory got the context
    lr_up = torch.full((2, 1, 8, 8), 0.8)
    out = method(torch.zeros(2, 1, 4, 4), lr_up, lr_up)
    assert torch.allclose(out, torch.full_like(lr_up, 0.4))
    register_method("test-half")(factory)  # re-registering the same factory is harmless
    with pytest.raises(ValueError, match="already registered"):
        register_method("test-half")(lambda ctx: None)


def test_unregister_removes_the_method(fake_method) -> None:
    unregister_method("test-half")
    assert "test-half" not in known_methods()
    with pytest.raises(ConfigError, match="unknown method 'test-half'"):
        build_method("test-half", _ctx())


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        build_method("nope", _ctx())
    message = str(info.value)
    assert "unknown method 'nope'" in message
    for name in ("autoencoder-oracle", "bicubic", "wavesr"):
        assert name in message


def test_bicubic_upsamples_the_lr_and_has_no_network() -> None:
    method = build_method("bicubic", _ctx())
    lr = torch.rand(3, 1, 2, 3)
    lr_up = torch.rand(3, 1, 8, 12)  # what the degradation put on the grid is not used
    torch.testing.assert_close(method(lr, lr_up, lr_up), upsample(lr, 4))
    assert method.network() is None and method.flops_call(lr_up) is None
    rows_only = build_method("bicubic", _ctx(degradation=Degradation("slice-axis", 4)))
    torch.testing.assert_close(rows_only(lr, lr_up, lr_up), slice_upsample(lr, 4))


def test_zero_fill_is_sinc_interpolation_and_in_plane_only() -> None:
    method = build_method("zero-fill", _ctx(degradation=Degradation("kspace", 4)))
    lr = torch.rand(2, 1, 4, 6)
    sr = method(lr, lr, lr)
    torch.testing.assert_close(sr, zero_fill_upsample(lr, 4).clamp(0, 1))
    assert sr.shape == (2, 1, 16, 24) and method.network() is None
    with pytest.raises(ConfigError, match="in-plane"):
        build_method("zero-fill", _ctx(degradation=Degradation("slice-axis", 4)))


def test_model_dir_prefers_the_method_weights() -> None:
    ctx = _ctx(model=Path("general"), weights={"wavesr": Path("own")})
    assert model_dir_for("wavesr", ctx) == Path("own")
    assert model_dir_for("autoencoder-oracle", ctx) == Path("general")
    assert model_dir_for("wavesr", _ctx()) is None


def test_check_model_scale_message() -> None:
    check_model_scale(4, _ctx(scale=4), None)
    with pytest.raises(ConfigError, match="model trained for x4, asked for x2"):
        check_model_scale(4, _ctx(scale=2), Path("m"))


def test_oracle_defaults_to_the_bundled_model(monkeypatch, tmp_path: Path) -> None:
    import wavesr.weights

    monkeypatch.setattr(wavesr.weights, "default_model_dir", lambda: _bundle(tmp_path / "ae"))
    method = build_method("autoencoder-oracle", _ctx())
    assert method.info["model"] == str(tmp_path / "ae")


def test_oracle_loads_an_autoencoder_bundle(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "ae")
    method = build_method("autoencoder-oracle", _ctx(weights={"autoencoder-oracle": root}))
    net = method.network()
    assert count_parameters(net) == count_parameters(
        FrequencyAutoencoder(load_config("tiny").autoencoder)
    )
    assert method.info["model_kind"] == "autoencoder"
    assert method.info["trained_degradation"] == "bicubic-x4"
    hr = torch.rand(2, 1, 24, 16)
    sr = method(torch.rand(2, 1, 6, 4), hr, hr)
    assert sr.shape == hr.shape and float(sr.min()) >= 0.0 and float(sr.max()) <= 1.0


def test_scale_mismatch_is_one_clear_error(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "ae", scale=4)
    with pytest.raises(ConfigError, match="model trained for x4, asked for x2"):
        build_method("autoencoder-oracle", _ctx(scale=2, model=root))


def test_wavesr_needs_a_full_bundle(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "ae")
    with pytest.raises(ConfigError, match="needs a full wavesr model"):
        build_method("wavesr", _ctx(model=root))


def test_wavesr_counts_autoencoder_and_ldt(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "full", with_ldt=True)
    method = build_method("wavesr", _ctx(model=root, steps=2))
    config = load_config("tiny")
    expected = count_parameters(FrequencyAutoencoder(config.autoencoder)) + count_parameters(
        LatentDiffusionTransformer(config.ldt)
    )
    assert count_parameters(method.network()) == expected
    assert method.info["steps"] == 2
    lr = torch.rand(1, 1, 4, 4)
    lr_up = method.pipeline.to_hr_grid(lr)
    a, b = method(lr, lr_up, lr_up), method.flops_call(lr_up)()
    assert torch.equal(a, b)  # same seed, same output


def test_wavesr_without_model_or_bundled_default(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wavesr.weights", None)  # import fails as if absent
    with pytest.raises(ConfigError, match="no --model given and no bundled default model"):
        build_method("wavesr", _ctx())


def test_wavesr_uses_the_bundled_default_when_present(monkeypatch, tmp_path: Path) -> None:
    fake = types.ModuleType("wavesr.weights")
    fake.default_model_dir = lambda: tmp_path / "missing"
    monkeypatch.setitem(sys.modules, "wavesr.weights", fake)
    with pytest.raises(CheckpointError, match="not a WaveSR model folder") as info:
        build_method("wavesr", _ctx())
    assert "missing" in str(info.value)


def test_plugin_import_ignores_only_the_missing_module(monkeypatch, tmp_path: Path) -> None:
    methods._load_plugin("wavesr.no_such_package.methods")  # absent: ignored
    (tmp_path / "wavesr_test_plugin.py").write_text("import wavesr_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="wavesr_no_such_dependency"):
        methods._load_plugin("wavesr_test_plugin")  # present but broken: raises
    if "wavesr.evaluation.baseline_methods" in sys.modules:  # the baselines registered theirs
        assert {"edsr", "pixel-diffusion"} <= set(known_methods())


def _decode_zeros_by_hand(root: Path, lr_up: torch.Tensor, iterations: int) -> torch.Tensor:
    """The WaveSR pipeline with zero generated latents, written out step by step."""
    pipe = load_pipeline(root)
    with torch.no_grad():
        ll_lr, ll_latent, size = pipe.encode_condition(lr_up)
        channels = load_config("tiny").ldt.in_channels  # 4 bands x 3 latent channels
        zeros = torch.zeros(lr_up.shape[0], channels, *ll_latent.shape[-2:])
        sr = pipe.decode(ll_lr, ll_latent, zeros, size)
        return back_project(sr, lr_up, Degradation("bicubic", 4), iterations)


def test_zero_latents_is_wavesr_decoding_zeros(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "full", with_ldt=True)
    ctx = _ctx(model=root, steps=2, consistency_steps=3)
    zero = build_method("wavesr-zero-latents", ctx)
    lr = torch.rand(2, 1, 6, 5)  # 24 x 20: not a multiple of the stride, padded then cropped
    lr_up = upsample(lr, 4)  # the tiny model's own (bicubic) grid
    sr = zero(lr, torch.rand(2, 1, 24, 20), torch.rand(2, 1, 24, 20))
    assert torch.allclose(sr, _decode_zeros_by_hand(root, lr_up, 3), atol=1e-6)
    wavesr = build_method("wavesr", ctx)(lr, lr_up, lr_up)
    assert (sr - wavesr).abs().max() > 1e-3  # the LDT's latents are not zero


def test_zero_latents_feeds_the_decoder_exact_zeros(tmp_path: Path, monkeypatch) -> None:
    """Zero in the decoder's latent space: the LDT and its latent scaling are never used."""
    pipe = build_method(
        "wavesr-zero-latents", _ctx(model=_bundle(tmp_path, with_ldt=True))
    ).pipeline
    seen = []
    decode = pipe.decode

    def spy(ll_lr, ll_latent, high_latents, size):
        seen.append(high_latents)
        return decode(ll_lr, ll_latent, high_latents, size)

    def no_sampling(*args, **kwargs):
        raise AssertionError("the LDT was sampled")

    monkeypatch.setattr(pipe, "decode", spy)
    monkeypatch.setattr(pipe, "sample_high_frequency_latents", no_sampling)
    method = methods.WaveSRZeroLatents(pipe, consistency_steps=0)
    lr = torch.rand(3, 1, 4, 4)
    method(lr, lr, lr)
    (high,) = seen
    assert high.shape == (3, load_config("tiny").ldt.in_channels, 2, 2)  # 16 px / stride 8
    assert torch.count_nonzero(high) == 0


def test_mean_latents_feeds_the_decoder_each_channels_training_mean(
    tmp_path: Path, monkeypatch
) -> None:
    pipe = build_method(
        "wavesr-mean-latents", _ctx(model=_bundle(tmp_path, with_ldt=True))
    ).pipeline
    channels = load_config("tiny").ldt.in_channels
    shift = torch.arange(channels, dtype=torch.float32) - 2.0
    pipe.hf_scaling = LatentScaling(scale=torch.full((channels,), 3.0), shift=shift)
    seen = []
    decode = pipe.decode

    def spy(ll_lr, ll_latent, high_latents, size):
        seen.append(high_latents)
        return decode(ll_lr, ll_latent, high_latents, size)

    monkeypatch.setattr(pipe, "decode", spy)
    lr = torch.rand(2, 1, 4, 4)
    methods.WaveSRMeanLatents(pipe)(lr, lr, lr)
    (high,) = seen
    assert high.shape == (2, channels, 2, 2)
    torch.testing.assert_close(high, shift.view(1, -1, 1, 1).expand_as(high))


def test_zero_latents_uses_the_wavesr_model_and_settings(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "full", with_ldt=True)
    method = build_method("wavesr-zero-latents", _ctx(weights={"wavesr": root}))
    assert method.info["model"] == str(root) and method.info["model_kind"] == "wavesr"
    assert method.info["consistency_steps"] == 0  # the model's own diffusion config
    assert not hasattr(method, "steps")  # not a diffusion method: no sampling steps
    assert count_parameters(method.network()) == count_parameters(
        FrequencyAutoencoder(load_config("tiny").autoencoder)
    )
    own = build_method(
        "wavesr-zero-latents",
        _ctx(weights={"wavesr": tmp_path / "elsewhere", "wavesr-zero-latents": root}),
    )
    assert own.info["model"] == str(root)
    with pytest.raises(ConfigError, match="needs a full wavesr model"):
        build_method("wavesr-zero-latents", _ctx(model=_bundle(tmp_path / "ae")))


def test_noise_latents_draw_the_training_distribution_seeded(tmp_path: Path, monkeypatch) -> None:
    """Noise of each channel's training mean and std: the LDT's starting noise (same seed) times
    the temperature, mapped out of the diffusion space; the LDT is never run."""
    root = _bundle(tmp_path, with_ldt=True)
    method = build_method("wavesr-noise-latents", _ctx(model=root, seed=7, temperature=0.5))
    assert method.info["high_latents"] == "noise" and method.info["temperature"] == 0.5
    pipe = method.pipeline
    channels = load_config("tiny").ldt.in_channels
    shift = torch.arange(channels, dtype=torch.float32) - 2.0
    pipe.hf_scaling = LatentScaling(scale=torch.full((channels,), 4.0), shift=shift)
    seen = []
    decode = pipe.decode

    def spy(ll_lr, ll_latent, high_latents, size):
        seen.append(high_latents)
        return decode(ll_lr, ll_latent, high_latents, size)

    def no_sampling(*args, **kwargs):
        raise AssertionError("the LDT was sampled")

    monkeypatch.setattr(pipe, "decode", spy)
    monkeypatch.setattr(pipe, "sample_high_frequency_latents", no_sampling)
    lr = torch.rand(2, 1, 32, 32)
    lr_up = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic")  # 16 x 16 latents
    first, again = method(lr, lr_up, lr_up), method(lr, lr_up, lr_up)
    torch.testing.assert_close(first, again)  # seeded
    high = seen[0]
    shape = tuple(high.shape)
    assert shape[:2] == (2, channels)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(7))  # starting_noise
    torch.testing.assert_close(high, noise * 0.5 / 4.0 + shift.view(1, -1, 1, 1))
    per_channel = high.transpose(0, 1).flatten(1)
    torch.testing.assert_close(per_channel.mean(1), shift, atol=0.05, rtol=0)
    torch.testing.assert_close(
        per_channel.std(1), torch.full((channels,), 0.125), rtol=0.15, atol=0
    )
    other = build_method("wavesr-noise-latents", _ctx(model=root, seed=8))
    other.pipeline.hf_scaling = pipe.hf_scaling
    assert other.temperature == load_config("tiny").diffusion.temperature  # the model's own
    assert (other(lr, lr_up, lr_up) - first).abs().max() > 0


def test_noise_latents_at_temperature_zero_are_the_mean_latents(tmp_path: Path) -> None:
    root = _bundle(tmp_path, with_ldt=True)
    noise = build_method("wavesr-noise-latents", _ctx(model=root, temperature=0.0))
    mean = build_method("wavesr-mean-latents", _ctx(model=root))
    lr = torch.rand(2, 1, 6, 5)
    torch.testing.assert_close(noise(lr, lr, lr), mean(lr, lr, lr))
