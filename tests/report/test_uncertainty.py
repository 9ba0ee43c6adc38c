"""The uncertainty section's tables, notes and figures from a hand-made metrics entry."""

from __future__ import annotations

import numpy as np

from wavesr.evaluation.uncertainty_eval import SliceMaps
from wavesr.report import html
from wavesr.report.uncertainty import (
    calibration_table,
    figure_pngs,
    markdown_lines,
    notes,
    perception_table,
    plot_axis,
    seed_table,
)


def _point(setting: str, temperature: float, samples: int, psnr: float, fid) -> dict:
    return {
        "setting": setting,
        "temperature": temperature,
        "samples": samples,
        "psnr": psnr,
        "ssim": 0.8,
        "fid": fid,
        "fid_note": "FID not computed: disabled (--no-fid)" if fid is None else "64 SR slices",
        "band_energy_ratio": [1.0] * 10,
        "energy_b4_b8": 0.75,
        "lr_psnr": 40.0,
        "lr_psnr_no_bp": 35.0,
    }


def _doc(fid=None, consistency_steps: int = 10) -> dict:
    return {
        "samples": 4,
        "seeds": [0, 1, 2, 3],
        "temperature": 0.5,
        "consistency_steps": consistency_steps,
        "std_ddof": 1,
        "energy_bands": [4, 8],
        "seed_consistency": [
            {"temperature": 0.5, "seeds": 4, "psnr_std": 0.125, "psnr": 24.0},
            {"temperature": 1.0, "seeds": 4, "psnr_std": 0.25, "psnr": 23.5},
        ],
        "calibration": {
            "temperature": 0.5,
            "samples": 4,
            "spearman": 0.4321,
            "n_slices": 63,
            "n_undefined": 1,
        },
        "perception_distortion": [
            _point("temperature 0", 0.0, 1, 24.5, fid),
            _point("temperature 0.5", 0.5, 1, 24.0, fid),
            _point("temperature 1", 1.0, 1, 23.5, fid),
            _point("mean of 4 (temperature 0.5)", 0.5, 4, 24.8, fid),
        ],
        "references": {"bicubic": {"psnr": 22.9, "ssim": 0.64, "fid": fid, "energy_b4_b8": 0.1}},
        "figures": {"perception_distortion": "pd.png", "maps": "maps.png"},
        "seconds": 12.0,
    }


def test_tables_show_every_setting_and_the_references() -> None:
    table = perception_table(_doc()).markdown()
    assert "| Setting | Samples | PSNR (dB) | SSIM | FID | E4-E8 | LR PSNR (dB) |" in table
    assert (
        "| mean of 4 (temperature 0.5) | 4 | 24.80 | 0.8000 | – | 0.750 | 40.00 | 35.00 |" in table
    )
    assert "| bicubic (reference) | – | 22.90 | 0.6400 | – | 0.100 | – | – |" in table
    assert "| 1.00 | 4 | 0.250 | 23.50 |" in seed_table(_doc()).markdown()
    assert "| 0.50 | 4 | 0.432 | 63 | 1 |" in calibration_table(_doc()).markdown()


def test_notes_say_when_back_projection_is_off() -> None:
    on, off = "\n".join(notes(_doc())), "\n".join(notes(_doc(consistency_steps=0)))
    assert "after the model's 10 back-projection iterations" in on
    assert "both columns are equal" in off and "--consistency-steps 10" in off
    assert "not a guarantee" in on


def test_plot_uses_fid_when_measured_else_the_energy_ratio() -> None:
    assert plot_axis(_doc(fid=150.0))[0] == "fid"
    key, label, ideal = plot_axis(_doc())
    assert key == "energy_b4_b8" and ideal == 1.0 and "E4-E8" in label


def test_figures_and_sections() -> None:
    rng = np.random.default_rng(0)
    maps = [SliceMaps(f"s{k}", *rng.random((3, 16, 12))) for k in range(3)]
    doc = _doc(fid=150.0)
    pngs = figure_pngs(doc, maps)
    assert set(pngs) == {"pd.png", "maps.png"}
    assert all(png.startswith(b"\x89PNG") for png in pngs.values())
    lines = "\n".join(markdown_lines(doc))
    assert "![perception-distortion](pd.png)" in lines and "![error beside std](maps.png)" in lines
    figures = [html.Figure(name, png) for name, png in pngs.items()] + [html.Figure("x.png", b"")]
    section, rest = html.uncertainty_section(doc, figures)
    assert [f.name for f in rest] == ["x.png"]  # the section takes only its own figures
    assert 'id="table-perception-distortion"' in section.body and 'alt="pd.png"' in section.body
