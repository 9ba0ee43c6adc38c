"""The uncertainty section of report.md / report.html (`--uncertainty-samples N`): seed and LR
consistency, calibration, the perception-distortion table and the two figures."""

from __future__ import annotations

from collections.abc import Sequence

from wavesr.report.format import fmt
from wavesr.report.tables import Table, num

__all__ = [
    "TITLE",
    "calibration_table",
    "figure_pngs",
    "markdown_lines",
    "notes",
    "perception_table",
    "plot_axis",
    "seed_table",
]

TITLE = "Uncertainty: seed and LR consistency, calibration, perception-distortion"


def _energy_header(unc: dict) -> str:
    first, last = unc["energy_bands"]
    return f"E{first}-E{last}"


def perception_table(unc: dict) -> Table:
    """One row per setting (temperatures, mean of N), then the reference methods."""
    rows = [
        [
            p["setting"],
            num(p["samples"]),
            num(p["psnr"]),
            num(p["ssim"], 4),
            num(p["fid"]),
            num(p["energy_b4_b8"], 3),
            num(p["lr_psnr"]),
            num(p["lr_psnr_no_bp"]),
        ]
        for p in unc["perception_distortion"]
    ]
    rows += [
        [f"{name} (reference)", num(None), num(r["psnr"]), num(r["ssim"], 4), num(r["fid"])]
        + [num(r["energy_b4_b8"], 3), num(None), num(None)]
        for name, r in unc.get("references", {}).items()
    ]
    headers = ["Setting", "Samples", "PSNR (dB)", "SSIM", "FID", _energy_header(unc)]
    headers += ["LR PSNR (dB)", "LR PSNR, no back-projection (dB)"]
    return Table(headers, rows, "lrrrrrrr")


def seed_table(unc: dict) -> Table:
    rows = [
        [num(s["temperature"]), num(s["seeds"]), num(s["psnr_std"], 3), num(s["psnr"])]
        for s in unc["seed_consistency"]
    ]
    headers = ["Temperature", "Seeds", "PSNR std over seeds (dB)", "Mean PSNR (dB)"]
    return Table(headers, rows, "rrrr")


def calibration_table(unc: dict) -> Table:
    c = unc["calibration"]
    row = [
        num(c["temperature"]),
        num(c["samples"]),
        num(c["spearman"], 3),
        num(c["n_slices"]),
        num(c["n_undefined"]),
    ]
    headers = ["Temperature", "Samples", "Spearman (std, |error|)", "Slices", "Undefined"]
    return Table(headers, [row], "rrrrr")


def notes(unc: dict) -> list[str]:
    """What each number is (markdown bullet lines)."""
    n, t, k = unc["samples"], unc["temperature"], unc["consistency_steps"]
    seeds = unc["seeds"]
    if k:
        lr_note = (
            f"- LR PSNR: PSNR of the output degraded again (noise-free) against the LR input, "
            f"after the model's {k} back-projection iterations; no back-projection: the same "
            "samples before them."
        )
    else:
        lr_note = (
            "- LR PSNR: PSNR of the output degraded again (noise-free) against the LR input. "
            "The model does no back-projection (consistency steps 0), so both columns are equal; "
            "rerun with --consistency-steps 10 to see its effect."
        )
    return [
        f"- Settings: one sample (seed {seeds[0]}) per temperature, and the mean of {n} "
        f"samples (seeds {seeds[0]}..{seeds[-1]}) at the model's temperature {fmt(t, 2)}.",
        f"- {_energy_header(unc)}: the band energy ratio SR / HR averaged over those bands (1 = as "
        "much detail as HR, below = blur, above = invented texture or noise).",
        lr_note,
        f"- Seed consistency: per slice, the std (ddof {unc['std_ddof']}) of its PSNR over the "
        f"{n} seeds, averaged over slices; 0 = the seed does not change the score.",
        f"- Calibration: per slice, Spearman's rank correlation between the per-pixel std of "
        f"the {n} samples and the absolute error of their mean, averaged over the slices where "
        "both vary (undefined: a constant map, e.g. every sample equal). 1 = the errors are "
        "largest exactly where the samples disagree, 0 = the std map does not locate errors. "
        "The std is the model's own uncertainty, not a guarantee (docs/uncertainty.md).",
        f"- FID: {unc['perception_distortion'][0]['fid_note']}",
    ]


def plot_axis(unc: dict) -> tuple[str, str, float | None]:
    """The perception axis of the plot: (key, label, ideal value): FID when measured, else the
    mean band energy ratio."""
    if any(p["fid"] is not None for p in unc["perception_distortion"]):
        return "fid", "FID (lower = closer to HR statistics)", None
    label = f"band energy ratio SR / HR, mean of {_energy_header(unc)} (1 = as HR)"
    return "energy_b4_b8", label, 1.0


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def figure_pngs(unc: dict, maps: Sequence) -> dict[str, bytes]:
    """The two figures by file name: the perception-distortion plot and, for the `maps`
    (`uncertainty_eval.SliceMaps`), the error beside the std."""
    from wavesr.report import figures

    key, label, ideal = plot_axis(unc)
    points = unc["perception_distortion"]
    curve = [(p["setting"], _nan(p["psnr"]), _nan(p[key])) for p in points if p["samples"] == 1]
    means = [(p["setting"], _nan(p["psnr"]), _nan(p[key])) for p in points if p["samples"] > 1]
    refs = [(n, _nan(r["psnr"]), _nan(r[key])) for n, r in unc.get("references", {}).items()]
    files = unc["figures"]
    plot = figures.perception_distortion_figure(
        curve, means, refs, y_label=label, ideal=ideal, title="Perception-distortion"
    )
    out = {files["perception_distortion"]: plot}
    if maps:
        rows = [(m.label, m.hr, m.mean, m.std) for m in maps]
        out[files["maps"]] = figures.error_std_figure(rows, samples=unc["samples"])
    return out


def markdown_lines(unc: dict) -> list[str]:
    """The section of report.md / benchmark.md."""
    files = unc["figures"]
    return [
        f"## {TITLE}",
        "",
        f"wavesr, {unc['samples']} samples; measured in {fmt(unc['seconds'], 1)} s.",
        "",
        "### Perception-distortion and LR consistency",
        "",
        perception_table(unc).markdown(),
        f"![perception-distortion]({files['perception_distortion']})",
        "",
        "### Seed consistency",
        "",
        seed_table(unc).markdown(),
        "### Calibration of the std map",
        "",
        calibration_table(unc).markdown(),
        f"![error beside std]({files['maps']})",
        "",
        *notes(unc),
        "",
    ]
