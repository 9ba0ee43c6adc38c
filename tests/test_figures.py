from __future__ import annotations

from pathlib import Path

from PIL import Image

from wavesr.figures import band_psnr_figure


def test_band_figure_adds_an_energy_panel(tmp_path: Path) -> None:
    curves = {"bicubic": [30.0 - k for k in range(10)], "sr": [31.0 - k for k in range(10)]}
    energy = {"bicubic": [1.0, 0.9, 0.5, 0.1, 0.0, *[0.01] * 5], "sr": [1.0] * 9 + [float("nan")]}
    one = band_psnr_figure(curves, tmp_path / "one.png")
    two = band_psnr_figure(curves, tmp_path / "two.png", energy=energy, title="x4")
    with Image.open(one) as a, Image.open(two) as b:
        assert a.format == b.format == "PNG"
        assert b.size[1] == a.size[1] and b.size[0] == 2 * a.size[0]
