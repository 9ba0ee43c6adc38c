"""The README's perception-distortion curve: PSNR against FID over sampling temperatures.

One `wavesr evaluate` per point on 64 + 64 test slices (IXI, Cheng) of one acquisition, FID over
all 128: the model at each temperature (no back-projection, as the perceptual mode) and in its
faithful mode, and bicubic, zero-fill, EDSR and the noise control (`wavesr-noise-latents` in
the perceptual mode) as reference points. A point already measured (its metrics.json exists)
is read, not run again.

    python scripts/perception_curve.py --out out/pd [--model MODEL] [--edsr RUN] \
        [--degradation kspace] [--figure docs/images/perception-curve-kspace.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "test"
TEMPERATURES = (0.0, 0.5, 1.0)


def evaluate(out: Path, methods: list[str], extra: list[str], opts: argparse.Namespace) -> dict:
    metrics = out / "metrics.json"
    if not metrics.is_file():
        cmd = ["wavesr", "evaluate", str(DATA / "ixi_t1"), str(DATA / "cheng_t1ce")]
        cmd += ["--methods", *methods, "--degradation", opts.degradation, "--max-slices", "64"]
        cmd += ["--fid-slices", "128", "--steps", "10", "--report-slices", "8", *extra]
        cmd += ["--out", str(out), "--quiet"]
        if opts.model:
            cmd += ["--model", str(opts.model)]
        if opts.edsr and "edsr" in methods:
            cmd += ["--weights", f"edsr={opts.edsr}"]
        print("$", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(metrics.read_text())["methods"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path)
    p.add_argument("--edsr", type=Path)
    p.add_argument("--degradation", default="kspace", choices=["kspace", "bicubic"])
    p.add_argument("--figure", type=Path)
    opts = p.parse_args()
    refs = ["bicubic", "zero-fill", "edsr"]
    points: dict[str, dict] = {}
    base = evaluate(opts.out / "references", refs, [], opts)
    points.update({k: base[k] for k in refs})
    noise = ["wavesr-noise-latents"]
    points[noise[0]] = evaluate(opts.out / "noise", noise, ["--mode", "perceptual"], opts)[noise[0]]
    points["wavesr faithful"] = evaluate(
        opts.out / "faithful", ["wavesr"], ["--mode", "faithful"], opts
    )["wavesr"]
    for t in TEMPERATURES:
        extra = ["--temperature", str(t), "--consistency-steps", "0"]
        points[f"wavesr T={t:g}"] = evaluate(opts.out / f"t{t:g}", ["wavesr"], extra, opts)[
            "wavesr"
        ]
    print("| method | PSNR | PSNR head | FID | energy B4-B8 |")
    print("|---|--:|--:|--:|---|")
    for name, m in points.items():
        energy = " ".join(f"{v:.2f}" for v in m["band_energy_ratio"][3:8])
        print(f"| {name} | {m['psnr']:.2f} | {m['psnr_head']:.2f} | {m['fid']:.1f} | {energy} |")
    if opts.figure:
        plot(points, opts.figure, opts.degradation)
    return 0


def plot(points: dict[str, dict], path: Path, degradation: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    curve = [(k, v) for k, v in points.items() if k.startswith("wavesr T=")]
    ax.plot([v["fid"] for _, v in curve], [v["psnr"] for _, v in curve], "o-", label="WaveSR")
    for name, m in curve:
        ax.annotate(
            name.split()[-1],
            (m["fid"], m["psnr"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    for name, m in points.items():
        if not name.startswith("wavesr T="):
            ax.plot(m["fid"], m["psnr"], "s", label=name)
    ax.set_xlabel("FID over 128 test slices (lower is more realistic)")
    ax.set_ylabel("PSNR (dB, whole slice)")
    ax.set_title(f"Perception-distortion, x4 {degradation} LR (IXI + Cheng test)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
