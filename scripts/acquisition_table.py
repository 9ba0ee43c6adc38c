"""The README's "Scans as scanners make them" table: every method on every acquisition.

Runs `wavesr evaluate` once per row (in-plane: 64 + 64 test slices of IXI and Cheng; through-plane:
the IXI test volumes) and prints one markdown table of whole-slice and inside-head PSNR. Each
row's folder keeps its metrics.json, per_slice.csv and report; a row already measured (its
metrics.json exists) is read, not run again.

    python scripts/acquisition_table.py --out out/acquisitions \
        [--model MODEL] [--edsr RUN] [--through-plane-model MODEL] [--rows in-plane|all]

Methods run at their defaults: the network methods are not told how the LR was made.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "test"
IN_PLANE = [DATA / "ixi_t1", DATA / "cheng_t1ce"]
KSPACE = ["--degradation", "kspace"]
IN_PLANE_ROWS = {
    "bicubic": ["--degradation", "bicubic"],
    "k-space": KSPACE,
    "k-space + Hamming": [*KSPACE, "--kspace-window", "hamming"],
    "k-space + partial Fourier 5/8": [*KSPACE, "--partial-fourier", "0.625"],
    "k-space + noise 0.01": [*KSPACE, "--noise-sigma", "0.01"],
    "k-space + noise 0.03": [*KSPACE, "--noise-sigma", "0.03"],
}
THROUGH_PLANE_ROWS = {
    "through-plane box, S/I": ["--slice-profile", "box"],
    "through-plane Gaussian, S/I": ["--slice-profile", "gaussian"],
    "through-plane box, L/R": ["--slice-profile", "box", "--axis", "2"],
    "through-plane Gaussian, L/R": ["--slice-profile", "gaussian", "--axis", "2"],
}


def run_row(out: Path, args: list[str]) -> dict:
    metrics = out / "metrics.json"
    if not metrics.is_file():
        cmd = ["wavesr", "evaluate", *args, "--out", str(out), "--quiet"]
        print("$", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(metrics.read_text())


def in_plane_args(opts: argparse.Namespace, row: list[str]) -> list[str]:
    methods = ["bicubic", "zero-fill", "edsr", "wavesr"]
    args = [*map(str, IN_PLANE), "--methods", *methods, *row, "--max-slices", "64"]
    args += ["--steps", "10", "--no-fid", "--report-slices", "8"]
    if opts.model:
        args += ["--model", str(opts.model)]
    if opts.edsr:
        args += ["--weights", f"edsr={opts.edsr}"]
    return args


def through_plane_args(opts: argparse.Namespace, row: list[str]) -> list[str]:
    args = [str(DATA / "ixi_t1"), "--through-plane", "--methods", "trilinear", "wavesr", *row]
    args += ["--steps", "10"]
    if opts.through_plane_model:
        args += ["--model", str(opts.through_plane_model)]
    return args


def cell(entry: dict | None, key: str) -> str:
    value = None if entry is None else entry.get(key)
    return "–" if value is None else f"{value:.2f}"


def in_plane_line(name: str, doc: dict, previous: dict | None) -> str:
    m = doc["methods"]
    cells = [f"{cell(m.get(k), 'psnr')} / {cell(m.get(k), 'psnr_head')}" for k in IN_PLANE_COLUMNS]
    if previous is not None:
        old = previous["methods"].get("wavesr")
        cells.insert(-1, f"{cell(old, 'psnr')} / {cell(old, 'psnr_head')}")
    return f"| {name} | " + " | ".join(cells) + " |"


def through_plane_line(name: str, doc: dict, previous: bool) -> str:
    m = {k: v["held_back"] for k, v in doc["methods"].items()}
    by_column = {"bicubic": None, "zero-fill": m.get("trilinear"), "edsr": None}
    by_column["wavesr"] = m.get("wavesr")
    cells = [
        f"{cell(by_column[k], 'psnr')} / {cell(by_column[k], 'psnr_head')}"
        for k in IN_PLANE_COLUMNS
    ]
    if previous:
        cells.insert(-1, "(the same model)")
    return f"| {name} | " + " | ".join(cells) + " |"


IN_PLANE_COLUMNS = ("bicubic", "zero-fill", "edsr", "wavesr")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, help="in-plane WaveSR model (default: bundled)")
    p.add_argument("--edsr", type=Path, help="EDSR run (default: bundled)")
    p.add_argument("--through-plane-model", type=Path, help="default: bundled")
    p.add_argument("--rows", choices=["in-plane", "through-plane", "all"], default="all")
    p.add_argument(
        "--previous",
        type=Path,
        help="an earlier --out of this script (another model): its WaveSR as one more column",
    )
    p.add_argument(
        "--through-plane-out", type=Path, help="read the through-plane rows from this --out"
    )
    opts = p.parse_args()
    previous = ["previous WaveSR"] if opts.previous else []
    head = ["bicubic", "zero-fill (in-plane) / trilinear (through-plane)", "EDSR", *previous]
    lines = [
        "| LR made by | " + " | ".join([*head, "WaveSR"]) + " |",
        "|---|" + "--:|" * (len(head) + 1),
    ]
    if opts.rows in ("in-plane", "all"):
        for i, (name, row) in enumerate(IN_PLANE_ROWS.items()):
            doc = run_row(opts.out / f"in{i}", in_plane_args(opts, row))
            old = run_row(opts.previous / f"in{i}", []) if opts.previous else None
            lines.append(in_plane_line(name, doc, old))
    if opts.rows in ("through-plane", "all"):
        root = opts.through_plane_out or opts.out
        for i, (name, row) in enumerate(THROUGH_PLANE_ROWS.items()):
            doc = run_row(root / f"tp{i}", through_plane_args(opts, row))
            lines.append(through_plane_line(name, doc, bool(previous)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
