"""ablation.md / curves.png from an ablation.json document (no training)."""

from __future__ import annotations

from pathlib import Path

from wavesr.evaluation.ablation.report import (
    render_markdown,
    table3_markdown,
    training_curves,
    write_ablation,
)


def record(name: str, **changes) -> dict:
    base = {
        "name": name,
        "label": "",
        "method": "wavesr",
        "overrides": [],
        "design": {
            "prediction": "eps",
            "schedule": "cosine",
            "latent_ratio": "1/4",
            "conditioning": "cross-attention",
        },
        "paper": {"psnr": 35.73, "fid": 63.21},
        "training": {"status": "time-limit", "bound_by": "minutes", "steps": 40, "minutes": 1.0},
        "validation": None,
        "evaluation": {
            "psnr": 24.5,
            "ssim": 0.71,
            "fid": None,
            "seconds_per_slice": 0.2,
            "band_psnr": [30.0] * 10,
            "n_slices": 4,
        },
        "error": None,
    }
    return {**base, **changes}


def document(records: list[dict], pending: list[str] = ()) -> dict:
    return {
        "command": "wavesr ablate ...",
        "budget": {
            "minutes_per_variant": 1.0,
            "steps_per_variant": None,
            "minutes_per_stage1_run": 1.0,
            "seed": 0,
            "data": ["train"],
        },
        "evaluation": {
            "data": ["test"],
            "n_slices": 4,
            "max_slices": 4,
            "scale": 4,
            "degradation": "bicubic",
            "size": 64,
            "resize": "area",
            "steps": 2,
            "seed": 0,
            "fid": False,
            "fid_slices": 64,
            "device": "cpu",
        },
        "autoencoders": [],
        "variants": records,
        "pending": list(pending),
        "machine": {"cpu": "test"},
    }


def test_table3_rows_put_ours_beside_the_papers_numbers():
    failed = record("nan", training=None, evaluation=None, error="loss became nan at step 3")
    rows = table3_markdown([record("0"), failed]).splitlines()
    assert rows[2].split(" | ")[5:] == [
        "24.50",
        "0.7100",
        "–",
        "0.200",
        "40",
        "1.00",
        "minutes",
        "–",
        "35.73",
        "63.21 |",
    ]
    assert "| failed |" in rows[3]


def test_an_unfinished_ablation_says_so():
    text = render_markdown(document([record("0")], pending=["1", "2"]), "loss")
    assert "1 of 3 variants done; pending: 1, 2" in text
    assert "its config's max_steps" in text


def test_curves_fall_back_to_the_training_loss(tmp_path: Path):
    run = tmp_path / "variants" / "0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("step,loss,lr\n1,0.5,0.1\n2,0.25,0.1\n")
    doc = document([record("0")])
    assert training_curves(doc, tmp_path) == ("loss", {"0": ([1.0, 2.0], [0.5, 0.25])})
    written = write_ablation(doc, tmp_path)
    assert {p.name for p in written} == {"curves.png", "ablation.md", "ablation.json"}
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_curves_prefer_the_validation_r2(tmp_path: Path):
    run = tmp_path / "variants" / "0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("step,loss,val_r2_mean\n1,0.5,\n2,0.4,0.3\n")
    assert training_curves(document([record("0")]), tmp_path) == (
        "val_r2_mean",
        {"0": ([2.0], [0.3])},
    )
