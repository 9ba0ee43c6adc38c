"""report.md and the figure of `wavesr evaluate --through-plane` (from metrics.json's content)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wavesr.report import tables  # noqa: E402
from wavesr.report.format import code_block  # noqa: E402
from wavesr.report.tables import Table, num  # noqa: E402

__all__ = ["FIGURE", "cut_figure", "through_plane_markdown"]

FIGURE = "through_plane.png"
PARTS = (("held_back", "held-back"), ("all", "all"))


def intro(settings: dict) -> str:
    return (
        f"Thick slices **{settings['degradation']}** (the slice-axis degradation through-plane "
        "models are trained on) simulated along each volume's slice axis "
        f"({settings['axis']}), then restored to the original grid by each method. Volumes "
        f"normalised by {settings['normalization']}; every slice perpendicular to the axis "
        "scored against the original (data range 1), near-empty slices left out. Held-back "
        "slices: those not within half a voxel of a thick slice's centre (docs/through-plane.md). "
        "Means over the volumes of the per-volume means."
    )


def quality_table(methods: dict) -> Table:
    """PSNR and SSIM over the held-back and over all slices, and the time, per method."""
    rows = [
        [
            name,
            *(x for key, _ in PARTS for x in (num(m[key]["psnr"]), num(m[key]["ssim"], 4))),
            num(m["held_back"].get("psnr_head")),
            num(m["held_back"].get("ssim_head"), 4),
            num(m["seconds_per_volume"], 1),
        ]
        for name, m in methods.items()
    ]
    headers = ["Method"]
    headers += [f"{h} {label}" for _, label in PARTS for h in ("PSNR (dB)", "SSIM")]
    headers += [f"{h} {PARTS[0][1]}" for h in ("PSNR head", "SSIM head")]
    return Table([*headers, "s/volume"], rows, "l" + "r" * (len(headers)))


def volume_table(volumes: Sequence[dict]) -> Table:
    rows = [
        [
            v["dataset"],
            v["name"],
            " x ".join(str(n) for n in v["shape"]),
            " x ".join(f"{x:.3g}" for x in v["voxel_size"]),
            num(v["axis"]),
            f"{v['slices_kept'][0]}-{v['slices_kept'][1] - 1}",
            num(v["n_scored"]),
            num(v["n_held_back"]),
        ]
        for v in volumes
    ]
    headers = ["dataset", "volume", "shape", "voxel (mm)", "axis", "kept", "scored", "held back"]
    return Table(headers, rows, "lllllrrr")


def per_volume_table(volumes: Sequence[dict]) -> Table:
    rows = [
        [
            v["name"],
            name,
            *(x for key, _ in PARTS for x in (num(m[key]["psnr"]), num(m[key]["ssim"], 4))),
        ]
        for v in volumes
        for name, m in v["methods"].items()
    ]
    headers = ["Volume", "Method"]
    headers += [f"{h} {label}" for _, label in PARTS for h in ("PSNR (dB)", "SSIM")]
    return Table(headers, rows, "llrrrr")


def band_section(methods: dict) -> list[str]:
    """Band PSNR over the held-back slices (over all slices when none is held back, x2)."""
    key = "held_back" if all(m["held_back"]["band_psnr"] for m in methods.values()) else "all"
    if not all(m[key]["band_psnr"] for m in methods.values()):
        return []
    label = "held-back" if key == "held_back" else "all"
    n = tables.n_bands({k: m[key] for k, m in methods.items()})
    return [
        f"## Table 2: PSNR (dB) per frequency band, {label} slices, low to high",
        "",
        tables.band_table({k: m[key] for k, m in methods.items()}).markdown(),
        f"Band k: the error spectrum at normalised radius [(k-1)/{n}, k/{n}) of Nyquist (the "
        "last band also the corners); see docs/metrics.md.",
        "",
    ]


def through_plane_markdown(doc: dict, command: str, figure: str | None = FIGURE) -> str:
    """report.md of `wavesr evaluate --through-plane`."""
    methods = doc["methods"]
    lines = [
        "# WaveSR through-plane evaluation",
        "",
        intro(doc["settings"]),
        "",
        "## Command",
        "",
        code_block(command, "sh"),
        "## Machine",
        "",
        tables.machine_table(doc["machine"]).markdown(),
        "## Volumes",
        "",
        volume_table(doc["volumes"]).markdown(),
        "## Table 1: quality and time",
        "",
        quality_table(methods).markdown(),
        "s/volume: the wall time of one volume's restoration (with wavesr-adapted, its "
        "decoder fine-tuning included), without loading and scoring.",
        "",
        *band_section(methods),
        "## Per volume",
        "",
        per_volume_table(doc["volumes"]).markdown(),
    ]
    if figure:
        lines += [
            "## Figure",
            "",
            f"![a reformat through the first volume]({figure})",
            "",
            "A reformat across the thinned axis through the middle of the first volume (the "
            "thinned axis vertical, first slice at the bottom): the thick input (each thick "
            "slice repeated), each method, the original, and under each method its |error|.",
        ]
    return "\n".join(lines) + "\n"


def cut_figure(cut) -> bytes:
    """PNG: thick input, each method and HR on top; each method's |error| below."""
    images = [("thick input", cut.thick), *cut.outputs.items(), ("original", cut.hr)]
    vmax = float(np.percentile(cut.hr, 99.5)) or 1.0
    errors = {k: np.abs(v - cut.hr) for k, v in cut.outputs.items()}
    emax = max([0.02, *(float(np.percentile(e, 99.5)) for e in errors.values())])
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.8), dpi=120, squeeze=False)
    for col, (title, image) in enumerate(images):
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(image, cmap="gray", vmin=0, vmax=vmax, origin="lower", aspect=cut.aspect)
        top.set_title(title, fontsize=9)
        if title in errors:
            bottom.imshow(
                errors[title], cmap="magma", vmin=0, vmax=emax, origin="lower", aspect=cut.aspect
            )
            bottom.set_title(f"|{title} - original|", fontsize=8)
        for ax in (top, bottom):
            ax.axis("off")
    fig.suptitle(f"{cut.title}; |error| from 0 to {emax:.3g}", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.01, wspace=0.05, hspace=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
