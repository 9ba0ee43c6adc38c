"""Named operating points (`--mode faithful|perceptual`): precedence, old bundles, export."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from wavesr.bundle.folder import load_bundle
from wavesr.cli.commands.evaluate import MODES
from wavesr.cli.main import main
from wavesr.config import (
    OPERATING_MODES,
    OperatingPoint,
    load_config,
    operating_point,
    sampling_settings,
)
from wavesr.errors import ConfigError
from wavesr.evaluation.methods import MethodContext, build_method
from wavesr.model.degrade import Degradation
from wavesr.tasks.sr import SROptions, pipeline_sampling


def _diffusion(*sets: str):
    return load_config("tiny", [f"diffusion.{s}" for s in sets]).diffusion


def test_cli_choices_are_the_config_modes() -> None:
    assert MODES == OPERATING_MODES


def test_defaults_for_a_bundle_without_modes() -> None:
    diffusion = _diffusion("temperature=0.5", "consistency_steps=7")
    assert operating_point(diffusion, "faithful") == OperatingPoint(0.0, 7)
    assert operating_point(diffusion, "perceptual") == OperatingPoint(1.0, 0)
    assert sampling_settings(diffusion, None) == (0.5, 7)  # no mode: the model's own
    with pytest.raises(ConfigError, match="--mode"):
        operating_point(diffusion, "sharp")


def test_explicit_values_override_the_mode() -> None:
    diffusion = _diffusion(
        "consistency_steps=7", "modes.perceptual={temperature: 0.8, consistency_steps: 2}"
    )
    assert sampling_settings(diffusion, "perceptual") == (0.8, 2)
    assert sampling_settings(diffusion, "perceptual", temperature=0.3) == (0.3, 2)
    assert sampling_settings(diffusion, "perceptual", consistency_steps=0) == (0.8, 0)
    assert sampling_settings(diffusion, "faithful", 0.1, 3) == (0.1, 3)
    assert sampling_settings(diffusion, None, consistency_steps=1) == (1.0, 1)


def test_mode_values_are_validated() -> None:
    with pytest.raises(ConfigError, match="diffusion.modes.perceptual"):
        _diffusion("modes.perceptual={temperature: 1.5, consistency_steps: 0}")


def test_sr_options_resolve_against_the_loaded_model() -> None:
    pipeline = SimpleNamespace(config=SimpleNamespace(diffusion=_diffusion("consistency_steps=4")))
    assert pipeline_sampling(pipeline, SROptions()) == (None, None)  # the pipeline's own
    assert pipeline_sampling(pipeline, SROptions(mode="faithful")) == (0.0, 4)
    assert pipeline_sampling(pipeline, SROptions(mode="perceptual")) == (1.0, 0)
    both = SROptions(mode="perceptual", temperature=0.25, consistency_steps=3)
    assert pipeline_sampling(pipeline, both) == (0.25, 3)


def test_evaluate_methods_take_the_mode(tiny_model: Path) -> None:
    def ctx(**kwargs) -> MethodContext:
        return MethodContext(
            scale=4, degradation=Degradation("bicubic", 4), model=tiny_model, **kwargs
        )

    faithful = build_method("wavesr", ctx(mode="faithful")).info
    assert (faithful["temperature"], faithful["mode"]) == (0.0, "faithful")
    perceptual = build_method("wavesr", ctx(mode="perceptual", consistency_steps=5)).info
    assert (perceptual["temperature"], perceptual["consistency_steps"]) == (1.0, 5)
    noise = build_method("wavesr-noise-latents", ctx(mode="faithful"))
    assert noise.temperature == 0.0
    zero = build_method("wavesr-zero-latents", ctx(mode="perceptual"))
    assert zero.consistency_steps == 0


def test_export_writes_the_modes_and_old_bundles_load(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    args = ["export", "--ldt", str(tiny_model), "--out", str(out), "--consistency-steps", "6"]
    args += ["--perceptual-temperature", "0.7"]
    assert main(args) == 0
    modes = load_bundle(out).config.diffusion.modes
    assert modes.perceptual == OperatingPoint(0.7, 0)  # the rest from the mode's default
    assert modes.faithful is None  # not given: derived at run time (temperature 0, 6 steps)
    assert operating_point(load_bundle(out).config.diffusion, "faithful") == OperatingPoint(0, 6)
    # a bundle written before diffusion.modes existed
    manifest = out / "wavesr.json"
    doc = json.loads(manifest.read_text())
    doc["config"]["diffusion"].pop("modes")
    manifest.write_text(json.dumps(doc))
    old = load_bundle(out).config.diffusion
    assert operating_point(old, "perceptual") == OperatingPoint(1.0, 0)
