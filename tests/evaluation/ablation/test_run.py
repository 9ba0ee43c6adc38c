"""`wavesr ablate`: equal budgets, one shared stage 1, the tables, resume, and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import blobs

import wavesr.evaluation.ablation.run as ablation
from wavesr.cli.main import main
from wavesr.config import load_config
from wavesr.evaluation.ablation.run import (
    TABLE3,
    design_of,
    load_variants,
    plan_ablation,
    table3_variants,
)
from wavesr.report import fmt
from wavesr.training.engine import TrainingError, TrainResult
from wavesr.training.validation import read_validation

TINY_BUDGET = [
    "--config",
    "tiny",
    "--minutes-per-variant",
    "5",
    "--steps-per-variant",
    "2",
    "--max-slices",
    "2",
    "--eval-steps",
    "2",
    "--no-fid",
    "--quiet",
]
THREE_VARIANTS = """
baseline: [ldt_training.train.validate_every=1]
variants:
  eps: {set: [diffusion.predict=eps], label: eps prediction}
  x0: {set: [diffusion.predict=x0]}
  edsr: {method: edsr}
"""
TWO_VARIANTS = """
variants:
  eps: {set: [diffusion.predict=eps]}
  x0: {set: [diffusion.predict=x0]}
"""


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ablation_eval")
    np.save(folder / "e.npy", blobs(2, 64, 64, seed=7))
    return folder


def ablate(out: Path, train_data: Path, eval_data: Path, spec: Path, *extra: str) -> int:
    data = ["--data", str(train_data), "--eval", str(eval_data)]
    return main(["ablate", *TINY_BUDGET, *data, "--out", str(out), "--variants", str(spec), *extra])


def write_spec(folder: Path, text: str) -> Path:
    spec = folder / "variants.yaml"
    spec.write_text(text)
    return spec


@pytest.fixture(scope="module")
def finished(tmp_path_factory, train_data, eval_data) -> Path:
    """Two WaveSR variants and an EDSR baseline on tiny data, end to end."""
    root = tmp_path_factory.mktemp("ablation")
    out = root / "out"
    assert ablate(out, train_data, eval_data, write_spec(root, THREE_VARIANTS)) == 0
    return out


def read_doc(out: Path) -> dict:
    return json.loads((out / "ablation.json").read_text())


def table_row(markdown: str, name: str) -> list[str]:
    line = next(x for x in markdown.splitlines() if x.startswith(f"| {name} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_every_variant_gets_the_same_budget_and_wavesr_variants_share_stage1(finished):
    doc = read_doc(finished)
    variants = {v["name"]: v for v in doc["variants"]}
    assert list(variants) == ["eps", "x0", "edsr"] and doc["pending"] == []
    for v in variants.values():
        assert v["budget"] == {"minutes": 5.0, "max_steps": 2}
        assert v["training"]["steps"] == 2 and v["training"]["bound_by"] == "steps"
        assert 0 < v["training"]["minutes"] < 5
    (stage1,) = doc["autoencoders"]
    assert [p.name for p in (finished / "autoencoders").iterdir()] == [stage1["key"]]
    assert stage1["variants"] == ["eps", "x0"] and variants["edsr"]["autoencoder"] is None
    configs = {
        n: yaml.safe_load((finished / "variants" / n / "config.yaml").read_text()) for n in variants
    }
    for stage in ("ldt_training", "baseline_training"):
        assert {c[stage]["train"]["max_steps"] for c in configs.values()} == {2}
        assert len({c[stage]["train"]["seed"] for c in configs.values()}) == 1
    assert len({tuple(c["data"]["paths"]) for c in configs.values()}) == 1
    assert configs["x0"]["diffusion"]["predict"] == "x0"


def test_tables_hold_the_numbers_each_variant_measured(finished):
    doc, markdown = read_doc(finished), (finished / "ablation.md").read_text()
    assert doc["command"].startswith("wavesr ablate --config tiny")
    assert (finished / "curves.png").read_bytes()[:4] == b"\x89PNG"
    for v in doc["variants"]:
        run = finished / "variants" / v["name"]
        measured = json.loads((run / "eval" / "metrics.json").read_text())["methods"][v["method"]]
        ours = v["evaluation"]
        for key in ("psnr", "ssim", "band_psnr", "seconds_per_slice", "n_slices"):
            assert ours[key] == measured[key]
        row = table_row(markdown, v["name"])
        assert row[5:7] == [fmt(measured["psnr"]), fmt(measured["ssim"], 4)]
        assert row[9:12] == ["2", fmt(v["training"]["minutes"]), "steps"]
    for name in ("eps", "x0"):
        record = next(v for v in doc["variants"] if v["name"] == name)
        columns = read_validation(finished / "variants" / name / "metrics.csv")
        assert record["validation"]["val_r2_mean"] == columns["val_r2_mean"][-1]
        assert table_row(markdown, name)[12] == fmt(columns["val_r2_mean"][-1], 3)
        assert record["evaluation"]["temperature"] == 0.0
    assert table_row(markdown, "edsr (edsr)")[1:5] == ["–"] * 4


def test_an_existing_ablation_needs_resume(finished, train_data, eval_data, tmp_path, capsys):
    before = (finished / "ablation.json").stat().st_mtime_ns
    spec = write_spec(tmp_path, THREE_VARIANTS)
    assert ablate(finished, train_data, eval_data, spec) == 2
    assert "holds an ablation already; pass --resume" in capsys.readouterr().err
    assert (finished / "ablation.json").stat().st_mtime_ns == before


def test_resume_trains_only_the_unfinished_variant(
    tmp_path, train_data, eval_data, tiny_autoencoder, monkeypatch
):
    spec, out = write_spec(tmp_path, TWO_VARIANTS), tmp_path / "out"
    real_train_ldt = ablation.train_ldt
    calls = []

    def stop_at_x0(config, autoencoder_run, run, **kwargs):
        if run.name == "x0":  # what the engine returns after a Ctrl-C
            return TrainResult(0, "interrupted", float("nan"), run)
        return real_train_ldt(config, autoencoder_run, run, **kwargs)

    monkeypatch.setattr(ablation, "train_ldt", stop_at_x0)
    reuse = ["--autoencoder", str(tiny_autoencoder)]
    assert ablate(out, train_data, eval_data, spec, *reuse) == 130
    assert read_doc(out)["pending"] == ["x0"]
    assert not (out / "autoencoders").exists()  # the given stage-1 run fits both variants
    eps = out / "variants" / "eps"
    assert (eps / "ablation-done.json").is_file()
    assert not (out / "variants" / "x0" / "ablation-done.json").exists()
    files = [p for p in eps.rglob("*") if p.is_file()]
    stamps = {p: p.stat().st_mtime_ns for p in files}

    def record(config, autoencoder_run, run, **kwargs):
        calls.append((run.name, kwargs["resume"]))
        return real_train_ldt(config, autoencoder_run, run, **kwargs)

    monkeypatch.setattr(ablation, "train_ldt", record)
    assert ablate(out, train_data, eval_data, spec, *reuse, "--resume") == 0
    assert calls == [("x0", True)]
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    doc = read_doc(out)
    assert doc["pending"] == [] and all(v["evaluation"] for v in doc["variants"])
    assert doc["autoencoders"][0]["reused"] and doc["autoencoders"][0]["run"] == str(
        tiny_autoencoder
    )


def test_a_diverging_variant_is_a_result_not_a_crash(
    tmp_path, train_data, eval_data, tiny_autoencoder, monkeypatch
):
    def diverge(config, autoencoder_run, run, **kwargs):
        raise TrainingError("loss became nan at step 1")

    monkeypatch.setattr(ablation, "train_ldt", diverge)
    spec, out = write_spec(tmp_path, TWO_VARIANTS), tmp_path / "out"
    reuse = ["--autoencoder", str(tiny_autoencoder)]
    assert ablate(out, train_data, eval_data, spec, *reuse) == 0
    doc = read_doc(out)
    assert [v["error"] for v in doc["variants"]] == ["loss became nan at step 1"] * 2
    assert table_row((out / "ablation.md").read_text(), "x0")[11] == "failed"
    assert ablate(out, train_data, eval_data, spec, *reuse, "--resume") == 0  # not retried


def test_the_minutes_can_bind(tmp_path, train_data, eval_data):
    spec, out = write_spec(tmp_path, "variants:\n  only: {}\n"), tmp_path / "out"
    assert ablate(out, train_data, eval_data, spec, "--minutes-per-variant", "1e-6") == 0
    doc = read_doc(out)
    for training in (doc["variants"][0]["training"], doc["autoencoders"][0]["training"]):
        assert (training["status"], training["bound_by"], training["steps"]) == (
            "time-limit",
            "minutes",
            1,
        )
    assert "| only | eps |" in (out / "ablation.md").read_text()


@pytest.mark.parametrize(
    "variants, message",
    [
        ("  bad: {sett: [diffusion.predict=x0]}", "variant bad: unknown key 'sett'"),
        ("  bad: {set: [diffusion.predict=v]}", "diffusion.predict must be eps or x0"),
        ("  bad: {set: [ldt.depht=3]}", "unknown config key ldt.depht"),
        ("  bad: {set: [diffusion.predict]}", "must look like key.sub=value"),
        ("  bad: {method: srgan}", "method must be one of wavesr, edsr, pixel-diffusion"),
        ("  bad: {set: [ldt_training.train.seed=3]}", "is the same for every variant"),
        ("  b/d: {}", "use letters, digits"),
    ],
)
def test_a_bad_variant_is_one_error_before_any_training(
    tmp_path, train_data, eval_data, capsys, variants, message
):
    spec = write_spec(tmp_path, f"variants:\n  good: {{}}\n{variants}\n")
    out = tmp_path / "out"
    assert ablate(out, train_data, eval_data, spec) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_an_unknown_key_in_the_variants_file_is_an_error(tmp_path, train_data, eval_data, capsys):
    spec = write_spec(tmp_path, "variant:\n  a: {}\n")
    assert ablate(tmp_path / "out", train_data, eval_data, spec) == 2
    assert "unknown key 'variant' (expected baseline, variants)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_table3_is_the_papers_table_on_the_cpu_presets(tmp_path):
    variants, baseline = load_variants("table3")
    assert [v.name for v in variants] == [str(i) for i in range(9)] and baseline == []
    assert variants[0].paper == {"psnr": 35.73, "fid": 63.21}
    assert variants[8].paper == {"psnr": 33.55, "fid": 72.60}
    plan = plan_ablation("cpu", [], variants, [tmp_path], tmp_path / "out")
    # Row 0 is the paper's default design (eps, cosine, cross-attention) on the cpu preset, whose
    # own LDT design is the one chosen by docs/design.md's ablation (x0, concat+cross-attention).
    paper_design = ["diffusion.predict=eps", "ldt.conditioning=cross-attention"]
    cpu, s8 = load_config("cpu", paper_design), load_config("cpu-s8")
    default = plan.variants[0].config
    assert (default.autoencoder, default.ldt, default.diffusion) == (
        cpu.autoencoder,
        cpu.ldt,
        cpu.diffusion,
    )
    groups: dict[str, list[str]] = {}
    for pv in plan.variants:
        design = TABLE3[pv.name]["design"]
        assert tuple(design_of(pv).values()) == design
        groups.setdefault(pv.stage1.key, []).append(pv.name)
        reference = s8 if design[2] == "1/8" else cpu
        assert pv.config.autoencoder == reference.autoencoder
        assert (pv.config.ldt.patch_size, pv.config.ldt.cond_patch_size) == (
            reference.ldt.patch_size,
            reference.ldt.cond_patch_size,
        )
        assert pv.config.data.crop == reference.data.crop
    assert sorted(groups.values()) == [["0", "1", "2", "4", "5"], ["3", "6", "7", "8"]]


def test_table3_builds_on_every_preset(tmp_path):
    for preset in ("tiny", "cpu", "paper"):
        plan = plan_ablation(preset, [], table3_variants(), [tmp_path], tmp_path / "out")
        assert len(plan.stage1_runs()) == 2
