"""Typed config: presets, dotted overrides, type and value errors, CLI exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from wavesr.cli import main as cli
from wavesr.config import (
    WaveSRConfig,
    config_from_dict,
    load_config,
    parse_override,
    preset_names,
    save_config,
)
from wavesr.errors import ConfigError
from wavesr.model.build import degradation_of
from wavesr.model.degrade import Degradation, RandomDegradation


@pytest.mark.parametrize("name", ["cpu", "cpu-s8", "paper", "tiny"])
def test_presets_load_and_validate(name):
    config = load_config(name)
    assert isinstance(config, WaveSRConfig) and config.name == name
    assert config.ldt.in_channels == config.autoencoder.generated_channels
    assert config.data.crop % (2 * config.autoencoder.downsample * config.ldt.patch_size) == 0
    assert name in preset_names()


def test_preset_values_are_read_from_yaml():
    tiny, paper = load_config("tiny"), load_config("paper")
    assert (tiny.data.crop, tiny.autoencoder.base_channels, tiny.ldt.depth) == (32, 8, 2)
    assert paper.autoencoder_training.optim.lr == pytest.approx(1e-4)
    assert paper.ldt_training.optim.warmup_steps == 10000
    assert paper.ldt_training.optim.optimizer == "adamw"
    assert paper.autoencoder.band_scales == (0.5, 8.0, 8.0, 12.0, 5.0)  # tuple field stays a tuple


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.b=3", ("a.b", 3)),
        ("a=1.5", ("a", 1.5)),
        ("x.y=[1, 2]", ("x.y", [1, 2])),
        ("flag=true", ("flag", True)),
        ("s=hello=world", ("s", "hello=world")),
        (" k = 7", ("k", 7)),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_needs_an_equals_sign():
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("data.crop")


def test_overrides_apply_and_are_typed():
    config = load_config(
        "tiny",
        [
            "data.crop=64",
            "ldt_training.train.batch_size=3",
            "autoencoder.band_scales=[1, 2, 3, 4, 5]",
            "data.axis=coronal",
            "autoencoder_training.optim.lr=1e-4",  # YAML 1.1 reads this as a string
            "diffusion.vlb_weight=1",  # an int where a float is expected
        ],
    )
    assert config.data.crop == 64
    assert config.ldt_training.train.batch_size == 3
    assert config.autoencoder.band_scales == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert config.data.axis == "coronal"
    assert config.autoencoder_training.optim.lr == pytest.approx(1e-4)
    assert isinstance(config.diffusion.vlb_weight, float)
    assert load_config("tiny", ["data.axis=null"]).data.axis is None
    assert load_config("tiny").data.crop == 32  # presets are not modified by overrides


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("autoencoder.colour=3", "autoencoder.colour"),
        ("nonsense=1", "nonsense"),
        ("ldt_training.train.speed=2", "ldt_training.train.speed"),
    ],
)
def test_unknown_key_is_named(override, named):
    with pytest.raises(ConfigError, match=f"unknown config key {named}"):
        load_config("tiny", [override])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.crop=abc", "data.crop"),
        ("data.crop=32.0", "data.crop"),
        ("data.crop=true", "data.crop"),  # a bool is not an int
        ("autoencoder_training.optim.lr=fast", "autoencoder_training.optim.lr"),
        ("autoencoder_training.optim.lr=nan", "autoencoder_training.optim.lr"),
        ("autoencoder.band_scales=3", "autoencoder.band_scales"),
        ("autoencoder.mid_attention=1", "autoencoder.mid_attention"),
        ("data=3", "data"),
        ("data.paths=[[1]]", "data.paths"),
    ],
)
def test_wrong_type_is_a_config_error(override, named):
    with pytest.raises(ConfigError, match=f"config key {named}"):
        load_config("tiny", [override])


def test_override_below_a_scalar_is_an_error():
    with pytest.raises(ConfigError, match="data.crop.x"):
        load_config("tiny", ["data.crop.x=1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.scale=3", "data.scale"),
        ("data.crop=40", "multiple of 16"),  # tiny: 2 * downsample 4 * patch 2
        ("data.crop=0", "multiple of 16"),
        ("data.degradation=gaussian", "data.degradation"),
        ("data.slice_profile=lorentz", "data.slice_profile: gaussian|box|sinc"),
        ("data.slice_gap=1", r"data.slice_gap must lie in \[0, 1\)"),
        ("data.slice_gap=-0.1", r"data.slice_gap must lie in \[0, 1\)"),
        ("data.slice_gap=.nan", r"data.slice_gap must lie in \[0, 1\)"),
        ("diffusion.predict=v", "diffusion.predict"),
        ("autoencoder.downsample=3", "autoencoder.downsample"),
        ("autoencoder.latent_channels=4", "ldt.in_channels"),
        ("autoencoder.lr_condition=all", "autoencoder.lr_condition must be ll or bands"),
        ("ldt_training.train.batch_size=0", "ldt_training.train.batch_size"),
        ("autoencoder_training.optim.lr=0", "autoencoder_training.optim.lr"),
        ("autoencoder_training.train.checkpoint_every=0", "checkpoint_every"),
        ("autoencoder_training.train.log_every=0", "log_every"),
        ("ldt_training.train.keep_last=0", "keep_last"),
        ("ldt_training.train.ema_decay=1", "ema_decay"),
        ("ldt_training.optim.schedule=linear", "schedule"),
        ("ldt_training.train.mixed_precision=fp8", "mixed_precision"),
        ("baseline_training.optim.optimizer=sgd", "optimizer"),
    ],
)
def test_invalid_value_is_a_config_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", [override])


def test_slice_axis_degradation_is_built_from_the_data_config():
    overrides = ["data.degradation=slice-axis", "data.slice_profile=box", "data.slice_gap=0.25"]
    config = load_config("tiny", [*overrides, "data.noise_sigma=0.01"])
    expected = Degradation("slice-axis", 4, 0.01, profile="box", gap=0.25)
    assert config.data.to_degradation() == expected
    assert degradation_of(config) == expected
    # A saved config (as in a bundle) from before these fields loads with the defaults.
    values = load_config("tiny").to_dict()
    del values["data"]["slice_profile"], values["data"]["slice_gap"]
    old = config_from_dict(values)
    assert degradation_of(old) == Degradation("bicubic", 4)
    assert (old.data.slice_profile, old.data.slice_gap) == ("gaussian", 0.0)


def test_random_degradation_is_a_draw_per_image_at_the_config_scale():
    config = load_config("tiny", ["data.degradation=random", "data.scale=2"])
    assert degradation_of(config) == RandomDegradation(2)
    with pytest.raises(ConfigError, match="data.degradation"):
        load_config("tiny", ["data.degradation=randomly"])


def test_yaml_file_partial_config_uses_defaults(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ndata: {crop: 64, scale: 2}\nldt: {depth: 3}\n")
    config = load_config(path, ["ldt.depth=4"])
    assert (config.name, config.data.crop, config.data.scale, config.ldt.depth) == (
        "mine", 64, 2, 4
    )  # fmt: skip
    assert config.data.size == WaveSRConfig().data.size


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("data: {crop: [\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_config("huge")


def test_save_config_round_trips(tmp_path):
    config = load_config("tiny", ["data.crop=64", "data.paths=[a, b]"])
    save_config(config, tmp_path / "config.yaml")
    assert isinstance(yaml.safe_load((tmp_path / "config.yaml").read_text()), dict)
    again = load_config(tmp_path / "config.yaml")
    assert again.to_dict() == config.to_dict()
    assert config_from_dict(config.to_dict()).to_dict() == config.to_dict()


# --------------------------------------------------------------------------- via the CLI


@pytest.fixture()
def volume(tmp_path) -> Path:
    path = tmp_path / "vol.npy"
    np.save(path, np.random.default_rng(0).random((2, 32, 32), dtype=np.float32))
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--set", "autoencoder.colour=3"], "unknown config key autoencoder.colour"),
        (["--set", "data.crop=abc"], "config key data.crop"),
        (["--set", "data.scale=3"], "data.scale must be 2, 4 or 8"),
        (["--config", "huge"], "unknown preset 'huge'"),
    ],
)
def test_bad_config_fails_before_training_with_exit_2(tmp_path, volume, capsys, extra, expected):
    out = tmp_path / "run"
    argv = ["train", "autoencoder", "--config", "tiny", "--data", str(volume), "--out", str(out)]
    assert cli.main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wavesr: error:") and expected in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_data_path_fails_before_training_with_exit_2(tmp_path, capsys):
    out, missing = tmp_path / "run", tmp_path / "no_such_data"
    argv = ["train", "autoencoder", "--config", "tiny", "--data", str(missing), "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1
    assert not out.exists()
