from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wavesr.report.figures import _LabelPlacer, _top, band_psnr_figure, error_std_figure


def test_band_figure_adds_an_energy_panel(tmp_path: Path) -> None:
    curves = {"bicubic": [30.0 - k for k in range(10)], "sr": [31.0 - k for k in range(10)]}
    energy = {"bicubic": [1.0, 0.9, 0.5, 0.1, 0.0, *[0.01] * 5], "sr": [1.0] * 9 + [float("nan")]}
    one = band_psnr_figure(curves, tmp_path / "one.png")
    two = band_psnr_figure(curves, tmp_path / "two.png", energy=energy, title="x4")
    with Image.open(one) as a, Image.open(two) as b:
        assert a.format == b.format == "PNG"
        assert b.size[1] == a.size[1] and b.size[0] == 2 * a.size[0]


def test_labels_of_coinciding_points_are_stacked_not_overlaid() -> None:
    place = _LabelPlacer([20.0, 20.0, 26.0, 26.001], [100.0, 170.0, 150.0, 150.0])
    assert place(20.0, 100.0, (5, 4)) == (5, 4)
    assert place(26.0, 150.0, (5, 4)) == (5, 4)
    assert place(26.001, 150.0, (5, 4)) == (5, -6)  # one earlier neighbour: 10 points down
    assert place(20.0, 170.0, (5, 4)) == (5, 4)  # far in y from the first point


def test_error_and_std_maps_get_their_own_colour_bars() -> None:
    hr = np.zeros((8, 8))
    mean, std = hr + 0.2, np.full((8, 8), 0.004)
    png = error_std_figure([("slice", hr, mean, std)], samples=8)
    assert png.startswith(b"\x89PNG")
    assert _top(std) == pytest.approx(0.004) and _top(mean - hr) == pytest.approx(0.2)
    assert _top(np.zeros((4, 4))) > 0
