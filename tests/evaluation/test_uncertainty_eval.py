"""The uncertainty measurements of evaluate, driven by a pipeline whose output is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import blobs, hand_bicubic

from wavesr.evaluation.evaluate import flatten_slices, load_eval_sets
from wavesr.evaluation.shared import EvalSettings, FIDTracker
from wavesr.evaluation.uncertainty_eval import measure_uncertainty, reference_points
from wavesr.model.degrade import Degradation, upsample_for

SIZE = 32


class _BicubicPipeline:
    """Ignores seed and temperature: every sample is the bicubic upsampling."""

    degradation = Degradation("bicubic", 4)

    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []

    def __call__(self, lr_up, *, steps, seed, temperature, consistency_steps, degradation):
        self.calls.append((seed, temperature))
        return lr_up.clamp(0.0, 1.0)

    def input_degradation(self, degradation=None):
        return degradation or self.degradation

    def to_hr_grid(self, lr, degradation=None):
        return upsample_for(lr, self.input_degradation(degradation))


class _Method:
    def __init__(self, temperature: float) -> None:
        self.pipeline, self.temperature = _BicubicPipeline(), temperature
        self.steps, self.consistency_steps, self.degradation = 2, 0, None


@pytest.fixture
def volume(tmp_path) -> Path:
    path = tmp_path / "v.npy"
    np.save(path, blobs(3, 40, 28))
    return path


def test_identical_samples_measure_as_bicubic(volume) -> None:
    settings = EvalSettings(size=SIZE, fid=False, batch=2, seed=7)
    slices = flatten_slices(load_eval_sets([volume], settings), settings.seed)
    method = _Method(temperature=0.5)
    result = measure_uncertainty(
        method,
        slices,
        Degradation("bicubic", 4),
        settings,
        FIDTracker(settings),
        samples=4,
        keep={1},
        progress=False,
    )
    doc = result.doc
    psnr, ssim, _ = hand_bicubic([volume], SIZE)
    # 4 seeds at the model's 0.5 and at 1, one sample at 0: 9 runs per batch of slices.
    seeds = sorted({s for s, _ in method.pipeline.calls})
    assert seeds == [7, 8, 9, 10] and len(method.pipeline.calls) == 9 * 2
    settings_run = [p["setting"] for p in doc["perception_distortion"]]
    assert settings_run == [
        "temperature 0",
        "temperature 0.5",
        "temperature 1",
        "mean of 4 (temperature 0.5)",
    ]
    for point in doc["perception_distortion"]:
        assert point["psnr"] == pytest.approx(np.mean(psnr), abs=1e-6)
        assert point["ssim"] == pytest.approx(np.mean(ssim), abs=1e-6)
        assert point["lr_psnr"] == point["lr_psnr_no_bp"]  # no back-projection
        assert point["fid"] is None and "disabled" in point["fid_note"]
    assert [s["temperature"] for s in doc["seed_consistency"]] == [0.5, 1.0]
    assert all(s["psnr_std"] == 0.0 for s in doc["seed_consistency"])  # the seed changes nothing
    assert doc["calibration"]["spearman"] is None  # every std map is 0: undefined
    assert doc["calibration"]["n_undefined"] == 3 and doc["calibration"]["n_slices"] == 0
    assert set(result.kept) == {1}
    mean, std = result.kept[1]
    assert np.all(std == 0.0) and mean.shape == slices[1].hr.shape
    assert [m.label for m in result.maps] == [s.name for s in slices]  # 3 slices, all shown


def test_needs_four_samples(volume) -> None:
    settings = EvalSettings(size=SIZE, fid=False)
    slices = flatten_slices(load_eval_sets([volume], settings), 0)
    with pytest.raises(ValueError, match="at least 4"):
        measure_uncertainty(
            _Method(0.5),
            slices,
            Degradation("bicubic", 4),
            settings,
            FIDTracker(settings),
            samples=3,
        )


def test_reference_points_are_bicubic_and_edsr_only() -> None:
    entry = {"psnr": 23.0, "ssim": 0.6, "fid": None, "band_energy_ratio": list(range(1, 11))}
    methods = {"bicubic": entry, "edsr": {**entry, "psnr": 24.0}, "wavesr": entry}
    points = reference_points(methods)
    assert set(points) == {"bicubic", "edsr"}
    assert points["edsr"] == {"psnr": 24.0, "ssim": 0.6, "fid": None, "energy_b4_b8": 6.0}
