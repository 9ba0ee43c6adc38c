"""Upper bounds on config sizes: a typo is a ConfigError before a run, not an allocation."""

from __future__ import annotations

import pytest

from wavesr.cli.main import main
from wavesr.config import load_config, preset_names
from wavesr.config.bounds import SIZE_LIMITS, STAGE_LIMITS, check_size_limits, size_limit_checks
from wavesr.errors import ConfigError


@pytest.mark.parametrize("name", preset_names())
def test_presets_are_well_within_the_limits(name):
    config = load_config(name)
    assert all(ok for ok, _ in size_limit_checks(config))
    check_size_limits(config)


def test_a_zero_downsample_is_an_error_not_a_division_by_zero():
    with pytest.raises(ConfigError, match="autoencoder.downsample must be 2, 4 or 8"):
        load_config("tiny", ["autoencoder.downsample=0"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ldt.hidden_size=1200000000", "ldt.hidden_size must be <= 4,096, got 1200000000"),
        ("ldt.depth=10000", "ldt.depth must be <= 128, got 10000"),
        ("ldt.mlp_ratio=1e6", "ldt.mlp_ratio must be <= 16, got 1000000.0"),
        ("ldt.mlp_ratio=.nan", "ldt.mlp_ratio must be <= 16, got nan"),
        ("ldt.cond_patch_size=64", "ldt.cond_patch_size must be <= 32"),
        ("autoencoder.base_channels=100000", "autoencoder.base_channels must be <= 1,024"),
        ("autoencoder.layers_per_block=1000", "autoencoder.layers_per_block must be <= 16"),
        ("autoencoder.final_layers=100", "autoencoder.final_layers must be <= 64"),
        ("autoencoder.cond_channels=100000", "autoencoder.cond_channels must be <= 4,096"),
        ("diffusion.num_timesteps=1000000000", "diffusion.num_timesteps must be <= 100,000"),
        ("data.size=100000", "data.size must be <= 4,096"),
        ("data.crop=100000", "data.crop must be <= 4,096"),
        ("data.cache_max_slices=1000000000", "data.cache_max_slices must be <= 10,000,000"),
        ("ldt_training.train.batch_size=1000000", "ldt_training.train.batch_size must be <= 4,096"),
        ("baseline_training.train.keep_last=5000", "baseline_training.train.keep_last must be"),
        ("autoencoder_training.optim.warmup_steps=10000000000", "optim.warmup_steps must be <="),
        ("baselines.edsr_blocks=1000", "baselines.edsr_blocks must be <= 256"),
        ("baselines.edsr_channels=0", "edsr_blocks, edsr_channels and unet_channels must be >= 1"),
        ("baselines.unet_mults=[1,2,2,2,2,2,2,2,2]", "unet_mults needs 1 to 8 levels, got 9"),
        ("baselines.unet_mults=[1,2,0]", r"unet_mults must lie in \[1, 32\], got \[1, 2, 0\]"),
        ("ldt_training.train.seed=-1", r"ldt_training.train.seed must lie in \[0, 2\*\*32\)"),
    ],
)
def test_sizes_above_their_limit_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config("paper", [override])
    assert str(info.value).startswith("invalid config: ")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [
                "autoencoder.base_channels=1024",
                "autoencoder.channel_mult_last=16",
                "autoencoder.downsample=8",
            ],
            "the widest autoencoder level .* must be <= 4,096, got 8192",
        ),
        (
            ["baselines.unet_channels=256", "baselines.unet_mults=[1,8,32]"],
            r"the widest U-Net level \(unet_channels x max\(unet_mults\)\) must be <= 4,096",
        ),
        (
            ["data.crop=4096", "ldt_training.train.batch_size=128"],
            r"ldt_training.train.batch_size x data.crop\*\*2 must be <= 1,073,741,824",
        ),
    ],
)
def test_products_that_size_one_allocation_are_bounded(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("paper", overrides)


def test_every_limit_names_a_config_field():
    config = load_config("cpu")
    for key in SIZE_LIMITS:
        section, name = key.split(".")
        assert isinstance(getattr(getattr(config, section), name), int | float), key
    for key in STAGE_LIMITS:
        part, name = key.split(".")
        assert isinstance(getattr(getattr(config.ldt_training, part), name), int), key


def test_a_typo_in_a_yaml_config_stops_train_before_anything(tmp_path, capsys):
    (path := tmp_path / "typo.yaml").write_text("name: typo\nldt: {hidden_size: 1920000000}\n")
    out = tmp_path / "run"
    argv = ["train", "ldt", "--config", str(path), "--data", str(tmp_path), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "wavesr: error: invalid config: ldt.hidden_size must be <= 4,096, got 1920000000 "
        "(limits: docs/reliability.md)\n"
    )
    assert not out.exists()
