from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import hand_bicubic, phantom
from PIL import Image

from wavesr.bundle.folder import load_bundle, load_pipeline, save_bundle
from wavesr.cli.main import main
from wavesr.config import load_config
from wavesr.data.load import load_slices
from wavesr.data.prepare import prepare_slice, select_evenly
from wavesr.errors import InputError
from wavesr.evaluation.evaluate import evaluate
from wavesr.evaluation.methods import register_method, unregister_method
from wavesr.evaluation.metrics import band_energy, count_parameters, psnr
from wavesr.evaluation.shared import EvalSettings
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.degrade import Degradation, back_project, degrade
from wavesr.model.transformer import LatentDiffusionTransformer
from wavesr.report import cpu_model, fmt, fmt_count, markdown_table

SIZE = 32
KEYS = {
    "psnr",
    "ssim",
    "band_psnr",
    "band_energy_ratio",
    "fid",
    "fid_note",
    "seconds_per_slice",
    "n_slices",
    "params",
    "gflops_per_slice",
    "datasets",
}


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> dict[str, Path]:
    """Two small datasets: an .npy volume (40x28 slices) and a PNG folder (36x36)."""
    root = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(0)
    vol = root / "vol"
    vol.mkdir()
    np.save(vol / "v.npy", np.stack([phantom(rng, 40, 28) for _ in range(5)]))
    png = root / "png"
    png.mkdir()
    for i in range(3):
        img = (phantom(rng, 36, 36) / 1.3 * 255).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(png / f"s{i}.png")
    return {"vol": vol, "png": png}


def _run(args: list[str]) -> int:
    return main(["evaluate", *args, "--quiet"])


def _both_bicubic(data: dict[str, Path], out: Path) -> list[str]:
    """Arguments: bicubic on both datasets at SIZE, results in `out`."""
    vol, png = str(data["vol"]), str(data["png"])
    return [vol, png, "--methods", "bicubic", "--out", str(out), "--size", str(SIZE)]


def _bicubic_energy_ratio(path: Path) -> list[float]:
    """Band energies of bicubic x4 and of HR, each summed over the slices of `path`, divided."""
    sr_energy, hr_energy = np.zeros(10), np.zeros(10)
    for image in load_slices(path).slices:
        hr = prepare_slice(image, SIZE, "area", 4)
        _, up = degrade(torch.from_numpy(hr)[None, None], Degradation("bicubic", 4))
        sr_energy += band_energy(up[0, 0].clamp(0, 1).numpy())
        hr_energy += band_energy(hr)
    return list(sr_energy / hr_energy)


def test_bicubic_end_to_end_matches_hand_metrics(data, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    not_torchscript = tmp_path / "inception.pt"
    not_torchscript.write_text("version https://git-lfs.github.com/spec/v1\n")
    code = _run(
        [
            *_both_bicubic(data, out),
            "--batch",
            "2",
            "--fid-weights",
            str(not_torchscript),
        ]
    )
    assert code == 0
    doc = json.loads((out / "metrics.json").read_text())
    m = doc["methods"]["bicubic"]
    assert KEYS <= set(m)
    p_vol, s_vol, b_vol = hand_bicubic([data["vol"] / "v.npy"], SIZE)
    p_png, s_png, _ = hand_bicubic([data["png"]], SIZE)
    assert m["n_slices"] == 8
    assert m["psnr"] == pytest.approx(np.mean(p_vol + p_png), abs=1e-9)
    assert m["ssim"] == pytest.approx(np.mean(s_vol + s_png), abs=1e-9)
    assert len(m["band_psnr"]) == 10
    assert m["datasets"]["vol"]["band_psnr"] == pytest.approx(np.mean(b_vol, axis=0).tolist())
    energy = m["datasets"]["vol"]["band_energy_ratio"]
    assert energy == pytest.approx(_bicubic_energy_ratio(data["vol"] / "v.npy"))
    assert energy[0] == pytest.approx(1.0, abs=0.05) and energy[-1] < 0.5  # bicubic blurs
    assert m["datasets"]["vol"]["psnr"] == pytest.approx(np.mean(p_vol), abs=1e-9)
    assert m["datasets"]["png"]["psnr"] == pytest.approx(np.mean(p_png), abs=1e-9)
    assert [m["datasets"][k]["n_slices"] for k in ("vol", "png")] == [5, 3]
    assert m["params"] is None and m["gflops_per_slice"] is None
    assert m["fid"] is None and "not a TorchScript archive" in m["fid_note"]
    assert m["seconds_per_slice"] >= 0
    assert [d["sizes"] for d in doc["datasets"]] == [{"32x20": 5}, {"32x32": 3}]
    assert doc["settings"]["degradation"] == "bicubic-x4"

    with open(out / "per_slice.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["slice"] for r in rows] == [f"v.npy:{i}" for i in range(5)] + [
        f"s{i}.png" for i in range(3)
    ]
    assert {r["method"] for r in rows} == {"bicubic"}
    assert [r["dataset"] for r in rows] == ["vol"] * 5 + ["png"] * 3
    assert [float(r["psnr"]) for r in rows] == pytest.approx(p_vol + p_png, abs=1e-5)

    report = (out / "report.md").read_text()
    assert (
        "| Method | Params | GFLOPs | s/slice | PSNR (dB) | SSIM | PSNR head | SSIM head | FID |"
        in report
    )
    assert f"| bicubic | – | – | {fmt(m['seconds_per_slice'], 4)} | {fmt(m['psnr'])} |" in report
    assert "| Method | B1 | B2 |" in report and "B10 |" in report
    assert "## Table 3: band energy ratio" in report and "| Method | E1 | E2 |" in report
    assert "| bicubic | " + " | ".join(fmt(v) for v in m["band_energy_ratio"]) + " |" in report
    assert "wavesr evaluate " + str(data["vol"]) in report and "--methods bicubic" in report
    assert cpu_model() in report and torch.__version__ in report
    assert "GFLOPs count one full SR of one slice" in report
    assert not list(out.glob(".*tmp*"))  # no temp files left


def test_slice_axis_bicubic_upsamples_the_rows_only(data, tmp_path: Path) -> None:
    """--degradation slice-axis: each HR slice gets thick slices along its rows; bicubic is the
    rows-only upsampling, so it beats the both-axes bicubic of the same slices."""
    out = tmp_path / "eval"
    args = [str(data["png"]), "--methods", "bicubic", "--out", str(out), "--size", str(SIZE)]
    extra = ["--degradation", "slice-axis", "--slice-profile", "box", "--slice-gap", "0.25"]
    assert _run([*args, *extra, "--no-fid"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["settings"]["degradation"] == "slice-axis-x4-box-gap0.25"
    deg = Degradation("slice-axis", 4, profile="box", gap=0.25)
    expected = []
    for image in load_slices(data["png"]).slices:
        hr = prepare_slice(image, SIZE, "area", 4)
        lr, up = degrade(torch.from_numpy(hr)[None, None], deg)
        assert lr.shape[-2:] == (SIZE // 4, SIZE)
        expected.append(psnr(up[0, 0].clamp(0, 1).numpy(), hr))
    assert doc["methods"]["bicubic"]["psnr"] == pytest.approx(np.mean(expected), abs=1e-9)
    p_both, _, _ = hand_bicubic([data["png"]], SIZE)
    assert np.mean(expected) > np.mean(p_both) + 1.0
    report = (out / "report.md").read_text()  # the command that reruns it keeps the profile
    assert "--degradation slice-axis" in report and "--slice-profile box" in report
    assert "--slice-gap 0.25" in report


def test_max_slices_takes_evenly_spaced_slices(data, tmp_path: Path) -> None:
    assert select_evenly(10, 3) == [1, 5, 8]
    assert select_evenly(3, 2) == [0, 2]
    assert select_evenly(4, None) == select_evenly(4, 9) == [0, 1, 2, 3]
    out = tmp_path / "eval"
    assert _run([*_both_bicubic(data, out), "--max-slices", "2", "--no-fid"]) == 0
    with open(out / "per_slice.csv", newline="") as f:
        names = [r["slice"] for r in csv.DictReader(f)]
    assert names == ["v.npy:1", "v.npy:3", "s0.png", "s2.png"]
    doc = json.loads((out / "metrics.json").read_text())
    assert [(d["n_slices"], d["n_available"]) for d in doc["datasets"]] == [(2, 5), (2, 3)]
    assert doc["methods"]["bicubic"]["fid_note"] == "FID not computed: disabled (--no-fid)"


def test_network_methods_with_a_tiny_trained_model(
    data, tiny_model, tiny_autoencoder, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    code = _run(
        [
            str(data["vol"]),
            "--methods",
            "bicubic",
            "autoencoder-oracle",
            "wavesr",
            "--model",
            str(tiny_model),
            "--weights",
            f"autoencoder-oracle={tiny_autoencoder}",
            "--steps",
            "2",
            "--out",
            str(out),
            "--size",
            str(SIZE),
            "--no-fid",
        ]
    )
    assert code == 0
    doc = json.loads((out / "metrics.json").read_text())
    oracle, wsr = doc["methods"]["autoencoder-oracle"], doc["methods"]["wavesr"]
    pipe = load_pipeline(tiny_autoencoder)
    assert oracle["params"] == count_parameters(pipe.autoencoder)
    full = load_pipeline(tiny_model)
    assert wsr["params"] == count_parameters(full.autoencoder) + count_parameters(full.ldt)
    assert oracle["gflops_per_slice"] > 0 and wsr["gflops_per_slice"] > 0
    assert oracle["gflops_size"] == [32, 20]
    assert wsr["info"]["steps"] == 2 and wsr["info"]["model_kind"] == "wavesr"
    assert oracle["info"]["model"] == str(tiny_autoencoder)
    # The oracle's PSNR, recomputed slice by slice.
    expected = []
    for image in load_slices(data["vol"] / "v.npy").slices:
        hr = torch.from_numpy(prepare_slice(image, SIZE, "area", 4))[None, None]
        _, up = degrade(hr, Degradation("bicubic", 4))
        expected.append(psnr(pipe.oracle(up, hr)[0, 0], hr[0, 0]))
    assert oracle["psnr"] == pytest.approx(np.mean(expected), abs=1e-4)
    assert np.isfinite(wsr["psnr"]) and 0 < wsr["ssim"] <= 1
    report = (out / "report.md").read_text()
    assert f"| wavesr | {fmt_count(wsr['params'])} | {fmt(wsr['gflops_per_slice'])} |" in report
    assert "includes all 2 sampling steps" in report
    assert "uncertainty" not in doc and "Uncertainty" not in report  # the option is off
    assert not (out / "perception_distortion.png").exists()


def test_zero_latents_row_beside_wavesr(data, tmp_path: Path) -> None:
    """`wavesr-zero-latents` decodes all-zero latents with wavesr's model (untrained here)."""
    config = load_config("tiny")
    nets = {
        "autoencoder": FrequencyAutoencoder(config.autoencoder).state_dict(),
        "ldt": LatentDiffusionTransformer(config.ldt).state_dict(),
    }
    root = save_bundle(tmp_path / "model", "wavesr", config, nets)
    settings = EvalSettings(size=SIZE, fid=False, steps=2, consistency_steps=2)
    names = ["wavesr", "wavesr-zero-latents"]
    result = evaluate([data["vol"]], names, settings, model=root, progress=False)
    wsr, zero = (result.metrics["methods"][n] for n in names)
    assert zero["info"]["model"] == wsr["info"]["model"] == str(root)
    assert zero["info"]["consistency_steps"] == 2 and zero["params"] < wsr["params"]
    assert len(zero["band_energy_ratio"]) == 10
    pipe = load_pipeline(root)
    expected = []
    for image in load_slices(data["vol"] / "v.npy").slices:
        hr = torch.from_numpy(prepare_slice(image, SIZE, "area", 4))[None, None]
        _, up = degrade(hr, Degradation("bicubic", 4))
        with torch.no_grad():
            ll_lr, ll_latent, size = pipe.encode_condition(up)
            zeros = torch.zeros(1, config.ldt.in_channels, *ll_latent.shape[-2:])
            sr = pipe.decode(ll_lr, ll_latent, zeros, size)
        sr = back_project(sr, up, Degradation("bicubic", 4), 2)
        expected.append(psnr(sr[0, 0], hr[0, 0]))
    assert zero["psnr"] == pytest.approx(np.mean(expected), abs=1e-4)
    assert zero["psnr"] != pytest.approx(wsr["psnr"], abs=1e-3)


def test_scale_mismatch_is_a_user_error(data, tiny_model, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    code = _run(
        [
            str(data["vol"]),
            "--methods",
            "wavesr",
            "--model",
            str(tiny_model),
            "--scale",
            "2",
            "--out",
            str(out),
            "--no-fid",
        ]
    )
    assert code == 2
    assert "model trained for x4, asked for x2" in capsys.readouterr().err
    assert not out.exists()
    assert load_bundle(tiny_model).config.data.scale == 4


def test_unknown_method_is_a_user_error(data, tmp_path: Path, capsys) -> None:
    code = _run([str(data["vol"]), "--methods", "bicubic,magic", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown method 'magic'" in err and "bicubic" in err and "wavesr" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weights", "wavesr"], "--weights expects METHOD=DIR"),
        (["--weights", "wavesr=x"], "not in --methods"),
        (["--max-slices", "0"], "--max-slices must be at least 1"),
        (["--scale", "3"], "scale must be one of"),
        (["--degradation", "slice-axis", "--slice-gap", "1"], "slice gap must lie in [0, 1)"),
        (["--size", "4"], "--size must be at least 16"),
        (["--device", "banana"], "unknown device 'banana'"),
        (["--uncertainty-samples", "2"], "0 (off) or at least 4"),
        (["--uncertainty-samples", "4"], "add it to --methods"),
        pytest.param(
            ["--device", "cuda"],
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present"),
        ),
    ],
)
def test_bad_options_exit_2(data, tmp_path: Path, capsys, extra, message) -> None:
    code = _run(
        [str(data["vol"]), "--methods", "bicubic", "--out", str(tmp_path / "o"), "--no-fid", *extra]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_input_errors_propagate(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.xyz").write_text("x")
    np.save(tmp_path / "nan.npy", np.full((2, 16, 16), np.nan, dtype=np.float32))
    for path, message in [
        (tmp_path / "missing", "no such file or folder"),
        (tmp_path / "bad.xyz", "unsupported file type"),
        (tmp_path / "nan.npy", "NaN"),
    ]:
        assert _run([str(path), "--out", str(tmp_path / "o"), "--no-fid"]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


class _Conv:
    """A registered test method with a network: a fixed 3x3 mean filter on lr_up."""

    name = "test-conv"

    def __init__(self, fail: bool = False) -> None:
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
        torch.nn.init.constant_(self.conv.weight, 1 / 9)
        self.fail = fail

    def network(self):
        return self.conv

    def flops_call(self, lr_up):
        return lambda: self.conv(lr_up)

    def __call__(self, lr, lr_up, hr):
        if self.fail:
            raise InputError("the test method failed on purpose")
        return self.conv(lr_up)


@pytest.fixture
def conv_methods():
    register_method("test-conv")(lambda ctx: _Conv())
    register_method("test-fail")(lambda ctx: _Conv(fail=True))
    yield
    unregister_method("test-conv")
    unregister_method("test-fail")


def test_registered_method_is_evaluated_with_its_cost(data, conv_methods) -> None:
    settings = EvalSettings(size=SIZE, fid=False, batch=3)
    result = evaluate([data["vol"]], ["test-conv"], settings, progress=False)
    m = result.metrics["methods"]["test-conv"]
    assert m["params"] == 9
    assert m["gflops_per_slice"] == pytest.approx(2 * 9 * 32 * 20 / 1e9)
    conv = _Conv()
    expected = []
    for image in load_slices(data["vol"] / "v.npy").slices:
        hr = torch.from_numpy(prepare_slice(image, SIZE, "area", 4))[None, None]
        _, up = degrade(hr, Degradation("bicubic", 4))
        with torch.no_grad():
            expected.append(psnr(conv.conv(up).clamp(0, 1)[0, 0], hr[0, 0]))
    assert m["psnr"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert [r["psnr"] for r in result.rows] == pytest.approx(expected, abs=1e-6)


def test_failure_leaves_no_output(data, conv_methods, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    code = _run(
        [
            str(data["vol"]),
            "--methods",
            "bicubic",
            "test-fail",
            "--out",
            str(out),
            "--size",
            str(SIZE),
            "--no-fid",
        ]
    )
    assert code == 2
    assert "failed on purpose" in capsys.readouterr().err
    assert not out.exists()


def test_markdown_table_and_formatting() -> None:
    table = markdown_table(["a", "b"], [["x|y", 1.5]], "lr")
    assert table == "| a | b |\n| :-- | --: |\n| x\\|y | 1.5 |\n"
    with pytest.raises(ValueError):
        markdown_table(["a"], [[1, 2]])
    assert fmt(None) == fmt(float("nan")) == "–"
    assert fmt(float("inf")) == "inf" and fmt(22.7049) == "22.70" and fmt(3) == "3"
    assert fmt_count(1_234_567) == "1.23M" and fmt_count(950) == "950"


def test_uncertainty_samples_on_a_tiny_model(data, tiny_model, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    vol = str(data["vol"])
    args = [vol, "--methods", "bicubic,wavesr", "--model", str(tiny_model), "--steps", "2"]
    args += ["--out", str(out), "--size", str(SIZE), "--no-fid", "--consistency-steps", "2"]
    assert _run([*args, "--uncertainty-samples", "4", "--report-slices", "2"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    unc, wsr = doc["uncertainty"], doc["methods"]["wavesr"]
    assert doc["settings"]["uncertainty_samples"] == 4
    assert unc["samples"] == 4 and unc["seeds"] == [0, 1, 2, 3] and unc["consistency_steps"] == 2
    assert unc["temperature"] == wsr["info"]["temperature"] == 1.0  # the tiny model's own
    points = {p["setting"]: p for p in unc["perception_distortion"]}
    assert list(points) == [
        "temperature 0",
        "temperature 0.5",
        "temperature 1",
        "mean of 4 (temperature 1)",
    ]
    # Seed 0 at the model's temperature is the evaluated wavesr output.
    assert points["temperature 1"]["psnr"] == pytest.approx(wsr["psnr"], abs=1e-5)
    for p in points.values():
        assert p["lr_psnr"] >= p["lr_psnr_no_bp"] - 1e-6  # back-projection fits the LR better
        assert len(p["band_energy_ratio"]) == 10 and np.isfinite(p["energy_b4_b8"])
    (seeds,) = unc["seed_consistency"]  # temperature 1 is the model's own: one row
    assert seeds["temperature"] == 1.0 and seeds["psnr_std"] > 0
    assert -1 <= unc["calibration"]["spearman"] <= 1 and unc["calibration"]["n_slices"] == 5
    assert list(unc["references"]) == ["bicubic"]
    assert unc["references"]["bicubic"]["psnr"] == doc["methods"]["bicubic"]["psnr"]
    for name in ("perception_distortion.png", "uncertainty_maps.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    report = (out / "report.md").read_text()
    assert "## Uncertainty: seed and LR consistency" in report
    assert "| mean of 4 (temperature 1) | 4 |" in report
    assert "![perception-distortion](perception_distortion.png)" in report
    page = (out / "report.html").read_text()
    assert 'id="section-uncertainty"' in page and 'id="table-calibration"' in page
    assert page.count('alt="perception_distortion.png"') == 1
    assert page.count('"title":"wavesr mean of 4 std"') == 2  # the viewer's two slices
