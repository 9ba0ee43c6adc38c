from __future__ import annotations

import pytest
import torch

from wavesr.errors import ConfigError
from wavesr.model.transformer import (
    LDT_PRESETS,
    LatentDiffusionTransformer,
    LDTConfig,
    ldt_preset,
    sincos_2d,
)

MODES = ("cross-attention", "concat", "concat+cross-attention")


def _model(seed: int = 0, **overrides) -> LatentDiffusionTransformer:
    torch.manual_seed(seed)
    return LatentDiffusionTransformer(ldt_preset("tiny", **overrides))


def _inputs(cfg: LDTConfig, b: int = 2, h: int = 7, w: int = 9, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, cfg.in_channels, h, w, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    cond = torch.randn(b, cfg.cond_channels, h, w, generator=g)
    return x, t, cond


def _perturb(model: torch.nn.Module, seed: int = 2) -> None:
    """Give every parameter (including the zero-initialised ones) random non-zero values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))


def _n_params(name: str) -> int:
    with torch.device("meta"):
        model = LatentDiffusionTransformer(ldt_preset(name))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("learn_sigma", [True, False])
@pytest.mark.parametrize("hw", [(7, 9), (1, 1), (8, 6)])
def test_output_shape_any_size(mode: str, learn_sigma: bool, hw: tuple[int, int]) -> None:
    model = _model(conditioning=mode, learn_sigma=learn_sigma, cond_patch_size=2)
    x, t, cond = _inputs(model.config, h=hw[0], w=hw[1])
    out = model(x, t, cond)
    assert out.shape == (2, 18 if learn_sigma else 9, *hw)
    assert model.config.out_channels == out.shape[1]


def test_float_and_scalar_timesteps() -> None:
    model = _model()
    _perturb(model)
    x, _, cond = _inputs(model.config)
    a = model(x, torch.tensor([500.0, 500.0]), cond)
    b = model(x, torch.tensor(500), cond)
    torch.testing.assert_close(a, b)


def test_preset_parameter_counts() -> None:
    assert _n_params("tiny") < 300_000
    assert _n_params("cpu") == 7_070_112  # within 5-9 M
    assert _n_params("paper") == 41_512_992  # DiT-S; + 3.5 M autoencoder = 45.1 M (paper: 46.3 M)


@pytest.mark.parametrize("name", ["cpu", "paper"])
def test_named_ldt_sizes_match_the_yaml_presets(name: str) -> None:
    """`ldt_preset(name)` and `--config name` build the same transformer architecture."""
    from wavesr.config import load_config

    from_yaml = load_config(name).ldt
    for key, value in LDT_PRESETS[name].items():
        assert getattr(from_yaml, key) == value, key


def test_preset_overrides_and_errors() -> None:
    cfg = ldt_preset("cpu", conditioning="concat", learn_sigma=False)
    assert (cfg.hidden_size, cfg.conditioning, cfg.out_channels) == (192, "concat", 9)
    with pytest.raises(ConfigError, match="unknown LDT preset"):
        ldt_preset("huge")
    with pytest.raises(ConfigError, match="unknown LDT config field"):
        ldt_preset("cpu", hidden=3)
    with pytest.raises(ConfigError, match="conditioning"):
        LDTConfig(conditioning="film")
    with pytest.raises(ConfigError, match="num_heads"):
        LDTConfig(hidden_size=36, num_heads=5)


def test_bad_input_shapes_raise() -> None:
    model = _model()
    x, t, cond = _inputs(model.config)
    with pytest.raises(ValueError, match="cond must have shape"):
        model(x, t, cond[..., :-1])
    with pytest.raises(ValueError, match="x must be"):
        model(x[:, :4], t, cond)
    with pytest.raises(ValueError, match="t must have shape"):
        model(x, t[:1], cond)


def test_sincos_2d_values() -> None:
    emb = sincos_2d(8, 2, 3)  # rows use channels 0-3, columns 4-7; [sin sin cos cos] each
    assert emb.shape == (6, 8)
    torch.testing.assert_close(emb[0], torch.tensor([0, 0, 1, 1, 0, 0, 1, 1.0], dtype=emb.dtype))
    # token (1, 2): row position 1, column position 2; frequencies 1 and 1/100
    row = torch.tensor([1.0, 0.01], dtype=torch.float64)
    col = 2 * row
    expected = torch.cat([row.sin(), row.cos(), col.sin(), col.cos()])
    torch.testing.assert_close(emb[5], expected)


@pytest.mark.parametrize("mode", MODES)
def test_zero_output_at_init_then_not_after_one_step(mode: str) -> None:
    model = _model(conditioning=mode)
    x, t, cond = _inputs(model.config)
    assert torch.equal(model(x, t, cond), torch.zeros(2, 18, 7, 9))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = torch.randn(2, 18, 7, 9)
    torch.nn.functional.mse_loss(model(x, t, cond), target).backward()
    opt.step()
    assert model(x, t, cond).abs().max() > 1e-4


@pytest.mark.parametrize("mode", MODES)
def test_output_depends_on_cond(mode: str) -> None:
    model = _model(conditioning=mode)
    _perturb(model)
    x, t, cond = _inputs(model.config)
    a = model(x, t, cond)
    b = model(x, t, cond + torch.randn_like(cond))
    assert (a - b).abs().max() > 1e-3


def test_cross_attention_blocks_carry_the_condition() -> None:
    """With cross-attention gates at zero, the condition has no path to the output."""
    model = _model()
    _perturb(model)
    x, t, cond = _inputs(model.config)
    dim = model.config.hidden_size
    with torch.no_grad():
        for block in model.blocks:
            block.adaLN_modulation[-1].weight[6 * dim :] = 0
            block.adaLN_modulation[-1].bias[6 * dim :] = 0
    torch.testing.assert_close(model(x, t, cond), model(x, t, torch.randn_like(cond)))


@pytest.mark.parametrize("mode", MODES)
def test_batch_permutation_equivariance(mode: str) -> None:
    model = _model(conditioning=mode)
    _perturb(model)
    x, t, cond = _inputs(model.config, b=4)
    perm = torch.tensor([2, 0, 3, 1])
    out = model(x, t, cond)
    torch.testing.assert_close(model(x[perm], t[perm], cond[perm]), out[perm])


def test_patch_layout_and_padding_are_local() -> None:
    """Blocks are identity at init (zero gates): a pixel change only moves its own output patch."""
    model = _model(patch_size=2)
    with torch.no_grad():
        for p in model.final_layer.parameters():
            p.normal_()
    x, t, cond = _inputs(model.config)
    base = model(x, t, cond)
    for i, j in [(3, 4), (6, 8), (0, 0)]:
        x2 = x.clone()
        x2[:, :, i, j] += 1.0
        changed = (model(x2, t, cond) - base).abs().amax(dim=(0, 1)) > 1e-6
        expected = torch.zeros(7, 9, dtype=torch.bool)
        i0, j0 = i - i % 2, j - j % 2
        expected[i0 : i0 + 2, j0 : j0 + 2] = True
        assert torch.equal(changed, expected)


def test_position_cache_handles_several_sizes() -> None:
    model = _model()
    _perturb(model)
    x, t, cond = _inputs(model.config, h=7, w=9)
    first = model(x, t, cond)
    model(*_inputs(model.config, h=4, w=12))
    torch.testing.assert_close(model(x, t, cond), first)
    assert len(model._pos_cache) == 4  # latent + condition grids for two sizes


def test_gradients_reach_every_parameter() -> None:
    model = _model(cond_patch_size=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, t, cond = _inputs(model.config)
    target = torch.randn(2, 18, 7, 9)
    for _ in range(3):  # zero-initialised layers unlock one another over the first steps
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x, t, cond), target).backward()
        opt.step()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().max() > 0, name


def test_combined_conditioning_has_both_paths() -> None:
    """concat+cross-attention: the condition joins the input channels and every block attends."""
    model = _model(conditioning="concat+cross-attention")
    cfg = model.config
    assert model.x_embedder.in_channels == cfg.in_channels + cfg.cond_channels
    assert model.cond_embedder is not None
    assert all(block.cross_attn is not None for block in model.blocks)
    _perturb(model)
    x, t, cond = _inputs(cfg)
    # Zeroing every cross-attention gate leaves the concatenated path: output still depends on cond.
    with torch.no_grad():
        for block in model.blocks:
            n = cfg.hidden_size
            block.adaLN_modulation[-1].weight[6 * n :].zero_()
            block.adaLN_modulation[-1].bias[6 * n :].zero_()
    assert not torch.allclose(model(x, t, cond), model(x, t, cond + 1.0))
