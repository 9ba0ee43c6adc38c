"""report.html without a browser: it parses, fetches nothing, embeds the right slices."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shlex
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import blobs
from PIL import Image

from wavesr.cli.main import main
from wavesr.data.prepare import select_evenly
from wavesr.errors import OutputError
from wavesr.evaluation.evaluate import evaluate, flatten_slices, load_eval_sets, write_outputs
from wavesr.evaluation.methods import register_method, unregister_method
from wavesr.evaluation.shared import EvalSettings
from wavesr.model.degrade import Degradation, degrade
from wavesr.report import fmt
from wavesr.report.volume import window

SIZE = 32  # the --size of conftest's runs
VOID = {"meta", "img", "input", "br", "link", "hr"}
RESOURCE_ATTRS = {"src", "href", "srcset", "poster", "data", "action", "background"}


class Page(HTMLParser):
    """A report page: its tags, tables (cell text and data-value, by id) and scripts (by id)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.open: dict[str, int] = {}
        self.tables: dict[str, list[list[list]]] = {}
        self.scripts: dict[str, str] = {}
        self._table = self._row = self._cell = self._script = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag not in VOID:
            self.open[tag] = self.open.get(tag, 0) + 1
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id", "").removeprefix("table-"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ["", a.get("data-value")]
            self._row.append(self._cell)
        elif tag == "script":
            self._script = a.get("id", "")
            self.scripts[self._script] = ""

    def handle_endtag(self, tag):
        self.open[tag] = self.open.get(tag, 0) - 1
        if tag == "table":
            self._table = None
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data
        if self._script is not None:
            self.scripts[self._script] += data

    def viewers(self) -> list[dict]:
        return json.loads(self.scripts["viewer-data"])["viewers"]

    def row(self, table: str, first: str) -> list[list]:
        """The row of `table` whose first cell reads `first`."""
        return next(r for r in self.tables[table] if r[0][0] == first)


def read_page(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def png(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        assert im.format == "PNG" and im.mode == "L"
        return np.asarray(im)


def png_bytes_total(page: Page) -> int:
    srcs = [p["src"] for v in page.viewers() for f in v["frames"] for p in f["panels"]]
    srcs += [a["src"] for tag, a in page.tags if tag == "img"]
    return sum(len(base64.b64decode(s.split(",", 1)[1])) for s in srcs)


def eight_bit(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def assert_self_contained(text: str, page: Page) -> None:
    assert text.startswith("<!DOCTYPE html>")
    unclosed = {tag: n for tag, n in page.open.items() if n}
    assert not unclosed, f"unbalanced tags: {unclosed}"
    for tag, attrs in page.tags:
        for name in RESOURCE_ATTRS & set(attrs):
            value = attrs[name] or ""
            assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:60]!r}> is external"
    assert not re.search(r"https?://|url\(|@import", text), "the page names a remote resource"
    csp = [a for tag, a in page.tags if tag == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in csp[0]["content"]


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_report_is_self_contained_and_small(eval_report: Path) -> None:
    path = eval_report / "report.html"
    text, page = read_page(path)
    assert_self_contained(text, page)
    # No upsampled copies and no duplicates: the page is its PNGs in base64 plus a little.
    assert path.stat().st_size < png_bytes_total(page) * 4 / 3 + 100_000
    assert sorted(p.name for p in eval_report.iterdir()) == [
        "metrics.json",
        "per_slice.csv",
        "report.html",
        "report.md",
    ]


def test_evaluate_report_embeds_every_slice_at_its_own_size(eval_report: Path, report_data) -> None:
    _, page = read_page(eval_report / "report.html")
    (viewer,) = page.viewers()
    sets = load_eval_sets([report_data["vol"], report_data["png"]], EvalSettings(size=SIZE))
    slices = flatten_slices(sets, 0)
    assert [f["label"] for f in viewer["frames"]] == [
        f"{sets[s.dataset].name} / {s.name}" for s in slices
    ]
    for frame, s in zip(viewer["frames"], slices):
        panels = {p["title"]: p for p in frame["panels"]}
        assert list(panels) == ["LR (nearest)", "HR", "bicubic", "|bicubic − HR|"]
        h, w = s.hr.shape
        assert frame["aspect"] == pytest.approx(h / w)
        lr, up = degrade(torch.from_numpy(s.hr)[None, None], Degradation("bicubic", 4), seed=s.seed)
        bicubic = up[0, 0].clamp(0, 1).numpy()
        # Every panel at its own size, in the same [0, 1] window of the normalised slice.
        np.testing.assert_array_equal(
            png(panels["LR (nearest)"]["src"]), eight_bit(lr[0, 0].numpy())
        )
        np.testing.assert_array_equal(png(panels["HR"]["src"]), eight_bit(s.hr))
        np.testing.assert_array_equal(png(panels["bicubic"]["src"]), eight_bit(bicubic))
        error = png(panels["|bicubic − HR|"]["src"]).astype(int)
        assert np.abs(error - eight_bit(np.abs(bicubic - s.hr))).max() <= 1
        assert png(panels["LR (nearest)"]["src"]).shape == (h // 4, w // 4)
        assert panels["|bicubic − HR|"]["kind"] == "error"
        assert re.fullmatch(r"\d+\.\d\d dB, SSIM \d\.\d{4}", panels["bicubic"]["note"])


def test_evaluate_tables_hold_the_metrics(eval_report: Path) -> None:
    text, page = read_page(eval_report / "report.html")
    doc = json.loads((eval_report / "metrics.json").read_text())
    m = doc["methods"]["bicubic"]
    header = [c[0] for c in page.tables["quality"][0]]
    assert header == [
        "Method",
        "Params",
        "GFLOPs",
        "s/slice",
        "PSNR (dB)",
        "SSIM",
        "PSNR head",
        "SSIM head",
        "FID",
    ]
    row = page.row("quality", "bicubic")
    keys = ("seconds_per_slice", "psnr", "ssim", "psnr_head", "ssim_head")
    for cell, value, digits in zip(row[3:8], keys, (4, 2, 4, 2, 4)):
        assert float(cell[1]) == m[value] and cell[0] == fmt(m[value], digits)
    assert row[1][0] == row[8][0] == "–" and row[8][1] is None
    for table, key in (("bands", "band_psnr"), ("energy", "band_energy_ratio")):
        cells = page.row(table, "bicubic")[1:]
        assert [float(c[1]) for c in cells] == m[key] and len(cells) == 10
        assert [c[0] for c in cells] == [fmt(v) for v in m[key]]
    for d in doc["datasets"]:
        row = next(r for r in page.tables["datasets"][1:] if r[0][0] == d["name"])
        assert float(row[3][1]) == m["datasets"][d["name"]]["psnr"]
    assert doc["command"] in html.unescape(text)
    assert doc["machine"]["cpu"] in [c[0] for r in page.tables["machine"] for c in r]


def test_report_slices_are_evenly_spaced_and_leave_the_metrics(
    evaluate_args, eval_report: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(evaluate_args(out, "--report-slices", "3")) == 0
    _, page = read_page(out / "report.html")
    (viewer,) = page.viewers()
    _, full = read_page(eval_report / "report.html")
    labels = [f["label"] for f in full.viewers()[0]["frames"]]
    assert [f["label"] for f in viewer["frames"]] == [labels[i] for i in select_evenly(8, 3)]
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (out, eval_report))
    assert a["methods"]["bicubic"]["band_psnr"] == b["methods"]["bicubic"]["band_psnr"]
    assert a["methods"]["bicubic"]["psnr"] == b["methods"]["bicubic"]["psnr"]
    assert "--report-slices 3" in a["command"] and "--report-slices" not in b["command"]


def test_no_slices_to_show_is_an_output_error(report_data, tmp_path: Path) -> None:
    settings = EvalSettings(size=SIZE, fid=False)
    result = evaluate([report_data["png"]], ["bicubic"], settings, progress=False, report_slices=0)
    assert result.viewers == [] and result.metrics["methods"]["bicubic"]["n_slices"] == 3
    with pytest.raises(OutputError, match="no slices"):
        write_outputs(result, tmp_path / "out", "wavesr evaluate")
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_one_line_and_exit_2(evaluate_args, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(evaluate_args(blocker / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a file" in err
    # A report.html that cannot be replaced: nothing of this run is left behind.
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)
    assert main(evaluate_args(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "report.html" in err
    assert [p.name for p in out.iterdir()] == ["report.html"]
    assert not any((out / "report.html").iterdir())


def test_report_slices_must_be_positive(evaluate_args, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(evaluate_args(tmp_path / "out", "--report-slices", "0"))
    assert exc.value.code == 2 and "--report-slices" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


class _Noisy:
    """A test method: bicubic plus fixed Gaussian noise (hard to compress, like real detail)."""

    def __init__(self, sigma: float) -> None:
        self.sigma = sigma

    def network(self):
        return None

    def flops_call(self, lr_up):
        return None

    def __call__(self, lr, lr_up, hr):
        noise = torch.randn(lr_up.shape, generator=torch.Generator().manual_seed(0))
        return lr_up + self.sigma * noise


@pytest.mark.shared_data
def test_64_real_slices_stay_under_25_mb(shared_data: Path, tmp_path: Path) -> None:
    """The issue's bound: 64 slices of 224x224 real MRI, three methods, under 25 MB."""
    names = ["test-noisy-a", "test-noisy-b"]
    for name, sigma in zip(names, (0.01, 0.03)):
        register_method(name)(lambda ctx, s=sigma: _Noisy(s))
    try:
        out = tmp_path / "out"
        args = ["evaluate", str(shared_data / "test" / "cheng_t1ce"), "--max-slices", "64"]
        args += ["--methods", "bicubic", *names, "--no-fid", "--quiet", "--out", str(out)]
        assert main(args) == 0
    finally:
        for name in names:
            unregister_method(name)
    text, page = read_page(out / "report.html")
    (viewer,) = page.viewers()
    assert len(viewer["frames"]) == 64 and len(viewer["frames"][0]["panels"]) == 8
    assert png(viewer["frames"][0]["panels"][1]["src"]).shape == (224, 224)
    assert (out / "report.html").stat().st_size < 25_000_000


# ----------------------------------------------------------------------------- benchmark


def test_benchmark_report_embeds_its_figures(bench_report: Path) -> None:
    text, page = read_page(bench_report / "report.html")
    assert_self_contained(text, page)
    figures = [a["src"] for tag, a in page.tags if tag == "img"]
    on_disk = [(bench_report / n).read_bytes() for n in ("bands.png", "fig3_slice_1.png")]
    assert [base64.b64decode(s.split(",", 1)[1]) for s in figures] == on_disk
    (viewer,) = page.viewers()
    assert len(viewer["frames"]) == 5
    doc = json.loads((bench_report / "benchmark.json").read_text())
    row = page.row("quality", "bicubic")
    assert float(row[5][1]) == doc["methods"]["bicubic"]["psnr"]
    assert "No diffusion method was benchmarked." in text and "speed" not in page.tables


# ----------------------------------------------------------------------------- sr


def assert_frames(viewers: dict, expected: dict) -> None:
    """Each viewer's frame count, input / output panel sizes and displayed aspect."""
    for key, (n, lr_shape, sr_shape, aspect) in expected.items():
        frames = viewers[key]["frames"]
        assert len(frames) == n
        for frame in frames:
            inp, outp = (png(p["src"]) for p in frame["panels"])
            assert inp.shape == lr_shape and outp.shape == sr_shape
            assert frame["aspect"] == pytest.approx(aspect)


def test_sr_report_shows_input_and_output_through_the_volume(sr_report: Path) -> None:
    text, page = read_page(sr_report)
    assert_self_contained(text, page)
    geometry = {r[0][0]: [c[0] for c in r[1:]] for r in page.tables["geometry"][1:]}
    assert geometry["input"] == ["12 x 10 x 4", "1.5 x 2 x 3", "2"]
    assert geometry["output"] == ["48 x 40 x 4", "0.375 x 0.5 x 3", "2"]
    viewers = {v["key"]: v for v in page.viewers()}
    assert list(viewers) == ["slices", "reformat-1", "reformat-2"]
    assert viewers["slices"]["title"].startswith("Slices: axial (axis 2)")
    assert viewers["reformat-1"]["title"] == "Reformat: sagittal (axis 0)"
    assert viewers["reformat-2"]["title"] == "Reformat: coronal (axis 1)"
    # (frames, input size, output size, displayed height / width in mm)
    expected = {
        "slices": (4, (12, 10), (48, 40), 12 * 1.5 / (10 * 2.0)),
        "reformat-1": (12, (4, 10), (4, 40), 4 * 3.0 / (10 * 2.0)),
        "reformat-2": (10, (4, 12), (4, 48), 4 * 3.0 / (12 * 1.5)),
    }
    assert_frames(viewers, expected)


def test_sr_report_windows_input_and_output_alike(sr_report: Path, lr_volume: Path) -> None:
    import nibabel as nib

    lr = np.moveaxis(np.asarray(nib.load(str(lr_volume)).dataobj, dtype=np.float32), 2, 0)
    sr = np.moveaxis(np.asarray(nib.load(str(sr_report.parent / "sr.nii.gz")).dataobj), 2, 0)
    lo, hi = window(lr)
    _, page = read_page(sr_report)
    frame = page.viewers()[0]["frames"][1]
    inp, outp = (png(p["src"]).astype(int) for p in frame["panels"])
    assert np.abs(inp - eight_bit((lr[1] - lo) / (hi - lo))).max() <= 1
    assert np.abs(outp - eight_bit((sr[1] - lo) / (hi - lo))).max() <= 1


def test_sr_report_errors_leave_nothing(
    lr_volume: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "sr.nii.gz"
    base = ["sr", str(lr_volume), "-o", str(out), "--model", str(tiny_model), "--quiet"]
    (tmp_path / "report.html").write_text("old")
    for extra, message in [
        (["--report"], "output exists (use --overwrite"),
        (["--report", str(tmp_path / "r.txt")], "must end in .html"),
        (["--report", str(tmp_path / "x" / "r.html"), "--max-voxels", "1"], "above the limit"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    assert not out.exists() and (tmp_path / "report.html").read_text() == "old"
    assert not (tmp_path / "x" / "r.html").exists()


def test_sr_report_of_images_has_one_viewer(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "pngs"
    src.mkdir()
    for i, sl in enumerate(blobs(3, 8, 12)):
        Image.fromarray(np.round(sl * 200).astype(np.uint8)).save(src / f"{i}.png")
    report = tmp_path / "page.html"
    args = ["sr", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model)]
    assert main([*args, "--steps", "1", "--quiet", "--report", str(report)]) == 0
    _, page = read_page(report)
    (viewer,) = page.viewers()
    assert [f["label"] for f in viewer["frames"]] == ["0.png", "1.png", "2.png"]
    assert [png(p["src"]).shape for p in viewer["frames"][0]["panels"]] == [(8, 12), (32, 48)]
    assert page.tables["geometry"][1][2][0] == "unknown (no affine)"


# ----------------------------------------------------------------------------- sr --through-plane


def _voxels(path: Path) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


def test_through_plane_report_names_the_thick_axis_and_the_command(
    tp_report: Path, thick_volume: Path, tiny_through_plane_model: Path
) -> None:
    text, page = read_page(tp_report)
    assert_self_contained(text, page)
    geometry = {r[0][0]: [c[0] for c in r[1:]] for r in page.tables["geometry"][1:]}
    assert geometry["input"] == ["16 x 10 x 3", "1 x 1.5 x 6", "axial (axis 2): 3 voxels of 6 mm"]
    # 3 x 6 mm over 14 voxels: 1.286 mm, the extent kept (the fine size is 1.25 mm)
    assert geometry["output"] == [
        "16 x 10 x 14",
        "1 x 1.5 x 1.286",
        "axial (axis 2): 14 voxels of 1.286 mm",
    ]
    run = {r[0][0]: r[1][0] for r in page.tables["run"][1:]}
    assert run["thick_axis"] == "2: 6 -> 1.25 mm (ratio 4.8)"
    assert (run["factor"], run["resampling"]) == ("x4", "cubic 12 -> 14")
    assert (run["stacks"], run["adapt_minutes"]) == ("2 (averaged)", "0 (off)")
    assert (run["model"], run["steps"], run["slices"]) == (str(tiny_through_plane_model), "1", "26")
    out = tp_report.parent / "iso.nii.gz"
    command = [
        *("wavesr", "sr", str(thick_volume), "-o", str(out)),
        *("--model", str(tiny_through_plane_model), "--steps", "1", "--seed", "0"),
        *("--batch", "16", "--device", "auto", "--sampler", "ddim"),
        *("--through-plane", "--stacks", "2", "--quiet", "--report", str(tp_report)),
    ]
    assert f"<pre>{html.escape(shlex.join(command))}</pre>" in text
    assert "thick axial (axis 2) slices super-resolved from 6 to 1.286 mm" in text


def test_through_plane_report_cuts_across_the_thick_slices(tp_report: Path) -> None:
    _, page = read_page(tp_report)
    viewers = {v["key"]: v for v in page.viewers()}
    assert list(viewers) == ["reformat-1", "reformat-2", "slices"]
    assert viewers["reformat-1"]["title"] == "Reformat: sagittal (axis 0)"
    assert viewers["reformat-2"]["title"] == "Reformat: coronal (axis 1)"
    assert viewers["slices"]["title"] == "Slices: axial (axis 2), the thick slices"
    # (frames, input size, output size, displayed height / width in mm); a reformat spans the
    # 3 x 6 mm of the thick axis in the input and in the output alike.
    expected = {
        "reformat-1": (16, (3, 10), (14, 10), 3 * 6.0 / (10 * 1.5)),
        "reformat-2": (10, (3, 16), (14, 16), 3 * 6.0 / (16 * 1.0)),
        "slices": (3, (16, 10), (16, 10), 16 * 1.0 / (10 * 1.5)),
    }
    assert_frames(viewers, expected)
    # Each thick slice beside the output slice holding its centre: 14 / 3 output voxels each.
    assert [f["label"] for f in viewers["slices"]["frames"]] == [
        f"thick slice {i} of 3 (output slice {j} of 14)" for i, j in ((0, 2), (1, 7), (2, 11))
    ]


def test_through_plane_report_panels_are_the_volumes_thick_axis_up(
    tp_report: Path, thick_volume: Path
) -> None:
    lr, sr = _voxels(thick_volume), _voxels(tp_report.parent / "iso.nii.gz")
    lo, hi = window(lr)
    _, page = read_page(tp_report)
    viewers = {v["key"]: v for v in page.viewers()}

    def assert_panels(frame: dict, lr_cut: np.ndarray, sr_cut: np.ndarray) -> None:
        inp, outp = (png(p["src"]).astype(int) for p in frame["panels"])
        assert np.abs(inp - eight_bit((lr_cut - lo) / (hi - lo))).max() <= 1
        assert np.abs(outp - eight_bit((sr_cut - lo) / (hi - lo))).max() <= 1

    # Sagittal cut 5: (axis 1, axis 2) transposed, the thick axis 2 up (first slice at the
    # bottom); coronal cut 4 likewise; thick slice 1 beside output slice 7.
    frame = viewers["reformat-1"]["frames"][5]
    assert frame["label"] == "sagittal (axis 0): position 5 of 16"
    assert_panels(frame, lr[5].T[::-1], sr[5].T[::-1])
    assert_panels(viewers["reformat-2"]["frames"][4], lr[:, 4].T[::-1], sr[:, 4].T[::-1])
    assert_panels(viewers["slices"]["frames"][1], lr[:, :, 1], sr[:, :, 7])


def test_through_plane_report_errors_leave_nothing(
    thick_volume: Path, tiny_through_plane_model: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "iso.nii.gz"
    base = ["sr", str(thick_volume), "-o", str(out), "--through-plane", "--quiet"]
    base += ["--model", str(tiny_through_plane_model), "--steps", "1"]
    (tmp_path / "report.html").write_text("old")
    page = tmp_path / "x" / "r.html"
    for extra, message in [
        (["--report"], "output exists (use --overwrite"),
        (["--report", str(tmp_path / "r.txt")], "must end in .html"),
        # after the page is checked, before any SR: nothing either
        (["--report", str(page), "--max-voxels", "1"], "above the limit"),
        (["--report", str(page), "--axis", "7"], "--axis must be a voxel axis"),
        (["--report", str(page), "--scale", "2"], "trained for x4"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists() and (tmp_path / "report.html").read_text() == "old"
    assert not page.exists() and not (tmp_path / "r.txt").exists()
