from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import hand_bicubic, phantom
from PIL import Image

import wavesr.weights
from wavesr.cli.commands.benchmark import parse_steps
from wavesr.cli.main import main
from wavesr.data.prepare import select_evenly
from wavesr.errors import ConfigError
from wavesr.report import fmt

SIZE = 32
ALL = ["bicubic", "autoencoder-oracle", "wavesr", "wavesr-zero-latents", "edsr", "pixel-diffusion"]


def _volume(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    return np.stack([phantom(rng, h, w) for _ in range(n)])


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory) -> dict[str, Path]:
    """Two datasets of small .npy slices (4 + 2 slices, 32x32 after preparation)."""
    root = tmp_path_factory.mktemp("benchdata")
    rng = np.random.default_rng(1)
    out = {}
    for name, n in (("a", 4), ("b", 2)):
        (root / name).mkdir()
        np.save(root / name / "v.npy", _volume(rng, n, SIZE, SIZE))
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def bench_models(tiny_model, tiny_baselines) -> dict[str, Path]:
    return {"ldt": tiny_model, **tiny_baselines}


@pytest.fixture(scope="session")
def bench_out(tmp_path_factory, bench_data, bench_models) -> Path:
    """One full benchmark of all six methods on both datasets (steps 1 and 2)."""
    out = tmp_path_factory.mktemp("bench") / "out"
    args = [
        "benchmark",
        str(bench_data["a"]),
        str(bench_data["b"]),
        "--scale",
        "4",
        "--out",
        str(out),
        "--steps",
        "2,1",
        "--model",
        str(bench_models["ldt"]),
        "--weights",
        f"edsr={bench_models['edsr']}",
        f"pixel-diffusion={bench_models['pixel-diffusion']}",
        "--size",
        str(SIZE),
        "--batch",
        "4",
        "--no-fid",
        "--figure-slices",
        "2",
        "--speed-slices",
        "3",
        "--quiet",
    ]
    assert main(args) == 0
    return out


def test_json_tables_match_hand_metrics(bench_out: Path, bench_data, bench_models) -> None:
    doc = json.loads((bench_out / "benchmark.json").read_text())
    assert {"command", "settings", "datasets", "methods", "speed", "machine", "figures"} <= set(doc)
    assert list(doc["methods"]) == ALL and doc["skipped"] == {}
    p, s, b = hand_bicubic([bench_data[k] / "v.npy" for k in "ab"], SIZE)
    bic = doc["methods"]["bicubic"]
    assert bic["n_slices"] == 6
    assert bic["psnr"] == pytest.approx(np.mean(p), abs=1e-9)
    assert bic["ssim"] == pytest.approx(np.mean(s), abs=1e-9)
    assert bic["band_psnr"] == pytest.approx(np.mean(b, axis=0).tolist())
    assert bic["datasets"]["a"]["psnr"] == pytest.approx(np.mean(p[:4]), abs=1e-9)
    assert bic["datasets"]["b"]["n_slices"] == 2
    assert bic["params"] is None and bic["steps"] is None
    # Table 1 measures the diffusion methods at the largest step count.
    assert doc["settings"]["steps"] == [1, 2] and doc["settings"]["table_steps"] == 2
    for name in ("wavesr", "pixel-diffusion"):
        m = doc["methods"][name]
        assert m["steps"] == 2 and m["info"]["steps"] == 2
        assert m["params"] > 0 and m["gflops_per_slice"] > 0
    assert doc["methods"]["edsr"]["steps"] is None
    zero = doc["methods"]["wavesr-zero-latents"]  # the same model without the LDT
    assert zero["steps"] is None and zero["info"]["model"] == str(bench_models["ldt"])
    assert 0 < zero["params"] < doc["methods"]["wavesr"]["params"]
    assert all(len(m["band_energy_ratio"]) == 10 for m in doc["methods"].values())
    assert (
        doc["methods"]["wavesr"]["fid"] is None
        and "--no-fid" in doc["methods"]["wavesr"]["fid_note"]
    )
    assert doc["machine"]["cpu"] and doc["machine"]["torch"] == torch.__version__


def test_speed_table_ratio_and_subset(bench_out: Path) -> None:
    doc = json.loads((bench_out / "benchmark.json").read_text())
    speed = doc["speed"]
    assert speed["methods"] == ["wavesr", "pixel-diffusion"]
    assert [r["steps"] for r in speed["rows"]] == [1, 2]
    for row in speed["rows"]:
        sec = row["seconds_per_slice"]
        assert row["ratio_pixel_over_wavesr"] == pytest.approx(
            sec["pixel-diffusion"] / sec["wavesr"]
        )
    # The Table 1 run (2 steps, all 6 slices) is reused; 1 step is timed on the 3-slice subset.
    top, small = speed["rows"][1], speed["rows"][0]
    assert top["n_slices"] == 6 and small["n_slices"] == 3
    assert top["seconds_per_slice"]["wavesr"] == doc["methods"]["wavesr"]["seconds_per_slice"]
    assert top["psnr"]["wavesr"] == pytest.approx(doc["methods"]["wavesr"]["psnr"])
    # GFLOPs grow with the step count (the networks run once per step).
    assert small["gflops_per_slice"]["wavesr"] < top["gflops_per_slice"]["wavesr"]


def test_markdown_has_tables_and_command(bench_out: Path) -> None:
    doc = json.loads((bench_out / "benchmark.json").read_text())
    md = (bench_out / "benchmark.md").read_text()
    for title in ("## Table 1", "## Table 2", "## Table 3", "## Speed", "## Machine"):
        assert title in md
    assert "## Table 1 per dataset" in md and "| Method | E1 | E2 |" in md
    assert "diffusion methods at 2 sampling steps" in md
    assert doc["command"] in md
    argv = shlex.split(doc["command"])
    assert argv[:2] == ["wavesr", "benchmark"] and "--steps" in argv
    assert argv[argv.index("--steps") + 1] == "1,2"
    bic = doc["methods"]["bicubic"]
    assert (
        f"| bicubic | – | – | – | {fmt(bic['seconds_per_slice'], 4)} | {fmt(bic['psnr'])} |" in md
    )
    ratio = doc["speed"]["rows"][0]["ratio_pixel_over_wavesr"]
    assert f"| {fmt(ratio)} |" in md


def test_figures_are_valid_pngs(bench_out: Path) -> None:
    doc = json.loads((bench_out / "benchmark.json").read_text())
    names = [f["file"] for f in doc["figures"]]
    assert names == ["fig3_slice_1.png", "fig3_slice_2.png"]
    assert [f["index"] for f in doc["figures"]] == select_evenly(6, 2)
    for name in ["bands.png", *names]:
        with Image.open(bench_out / name) as im:
            im.verify()
            assert im.format == "PNG"
    with Image.open(bench_out / "fig3_slice_1.png") as im:
        assert im.size[0] > im.size[1]  # 7 columns (ground truth + 6 methods), 3 rows
    assert not (bench_out / "fig3_slice_3.png").exists()
    assert not list(bench_out.glob(".*tmp*"))


def _no_bundled_weights(monkeypatch) -> None:
    def missing(*_args):
        raise ConfigError("no bundled weights (test)")

    monkeypatch.setattr(wavesr.weights, "baseline_dir", missing)
    monkeypatch.setattr(wavesr.weights, "default_model_dir", missing)


def test_missing_weights_fail_up_front(tmp_path, monkeypatch, capsys) -> None:
    _no_bundled_weights(monkeypatch)
    out = tmp_path / "out"
    # The data path does not exist: the weights check must come before any data is read.
    code = main(["benchmark", str(tmp_path / "nowhere"), "--out", str(out), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing weights" in err and "--skip-missing" in err
    for name in ("edsr", "pixel-diffusion"):
        assert f"method {name}" in err
    # wavesr, wavesr-zero-latents and autoencoder-oracle
    assert err.count("no bundled weights (test)") == 3
    assert not out.exists()


def test_skip_missing_notes_skipped_methods(bench_data, bench_models, tmp_path, monkeypatch):
    _no_bundled_weights(monkeypatch)
    out = tmp_path / "out"
    args = ["benchmark", str(bench_data["b"]), "--out", str(out), "--size", str(SIZE)]
    args += ["--methods", "bicubic,edsr,wavesr", "--model", str(bench_models["ldt"])]
    args += ["--steps", "1", "--no-fid", "--figure-slices", "1", "--quiet"]
    assert main([*args, "--skip-missing"]) == 0
    doc = json.loads((out / "benchmark.json").read_text())
    assert list(doc["methods"]) == ["bicubic", "wavesr"]
    assert list(doc["skipped"]) == ["edsr"]
    assert [r["ratio_pixel_over_wavesr"] for r in doc["speed"]["rows"]] == [None]
    assert "Skipped edsr" in (out / "benchmark.md").read_text()


def test_sampling_options_reach_wavesr(bench_data, bench_models, tmp_path) -> None:
    """`--consistency-steps` and `--temperature` are passed to WaveSR, as in `evaluate`."""
    out = tmp_path / "out"
    args = ["benchmark", str(bench_data["b"]), "--out", str(out), "--size", str(SIZE)]
    args += ["--methods", "bicubic,wavesr", "--model", str(bench_models["ldt"])]
    args += ["--steps", "1", "--no-fid", "--figure-slices", "1", "--quiet"]
    assert main([*args, "--consistency-steps", "3", "--temperature", "0.25"]) == 0
    info = json.loads((out / "benchmark.json").read_text())["methods"]["wavesr"]["info"]
    assert (info["consistency_steps"], info["temperature"]) == (3, 0.25)


def test_uncertainty_section(bench_data, tiny_model, tmp_path) -> None:
    """`--uncertainty-samples` adds evaluate's uncertainty section to the benchmark's outputs."""
    out = tmp_path / "out"
    args = ["benchmark", str(bench_data["b"]), "--out", str(out), "--size", str(SIZE)]
    args += ["--methods", "bicubic,wavesr", "--model", str(tiny_model), "--steps", "1"]
    args += ["--no-fid", "--figure-slices", "1", "--quiet", "--uncertainty-samples", "4"]
    assert main(args) == 0
    doc = json.loads((out / "benchmark.json").read_text())
    unc = doc["uncertainty"]
    assert unc["samples"] == 4 and list(unc["references"]) == ["bicubic"]
    assert [p["samples"] for p in unc["perception_distortion"]] == [1, 1, 1, 4]
    assert "## Uncertainty: seed and LR consistency" in (out / "benchmark.md").read_text()
    assert 'id="section-uncertainty"' in (out / "report.html").read_text()
    assert (out / "uncertainty_maps.png").read_bytes().startswith(b"\x89PNG")


def test_parse_steps() -> None:
    assert parse_steps(["50,20"]) == [20, 50]
    assert parse_steps(["20", "50,20"]) == [20, 50]
    for bad in (["x"], ["0,5"], [","]):
        with pytest.raises(ConfigError):
            parse_steps(bad)


@pytest.mark.parametrize("command", ["evaluate", "benchmark"])
def test_recorded_command_parses_back_to_the_same_options(command: str, tmp_path: Path) -> None:
    from wavesr.cli.commands import benchmark as bench_cmd
    from wavesr.cli.commands import evaluate as eval_cmd
    from wavesr.cli.main import build_parser

    argv = [command, str(tmp_path / "a"), "--out", str(tmp_path / "o"), "--methods", "bicubic"]
    argv += ["--noise-sigma", "0.02", "--max-slices", "3", "--model", str(tmp_path / "m")]
    argv += ["--seed", "7", "--fid-slices", "5", "--weights", f"bicubic={tmp_path}"]
    argv += ["--threads", "2", "--uncertainty-samples", "4", "--device", "cpu"]
    args = build_parser().parse_args(argv)
    if command == "evaluate":
        line = eval_cmd.command_line(args, ["bicubic"])
    else:
        line = bench_cmd.command_line(args, ["bicubic"], bench_cmd.parse_steps(args.steps))
    again = build_parser().parse_args(shlex.split(line)[1:])
    assert vars(again) == vars(args) | {"steps": again.steps}
    assert again.steps == (50 if command == "evaluate" else ["20,50"])
