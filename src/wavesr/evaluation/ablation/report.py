"""What `wavesr ablate` writes: ablation.json, ablation.md (the paper's Table 3 layout) and
curves.png (every variant's validation R^2, or its training loss, against the step)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from wavesr.evaluation.evaluate import band_table, write_files
from wavesr.evaluation.shared import N_BANDS
from wavesr.io_atomic import atomic_write
from wavesr.report import MISSING, code_block, fmt, markdown_table
from wavesr.training.validation import read_validation

__all__ = [
    "CURVES_FIGURE",
    "curves_figure",
    "loss_curve",
    "render_markdown",
    "table3_markdown",
    "training_curves",
    "write_ablation",
]

CURVES_FIGURE = "curves.png"
VALIDATION_METRIC = "val_r2_mean"
TABLE3_HEADERS = [
    "ID",
    "Prediction",
    "Schedule",
    "Latent ratio",
    "Conditioning",
    "PSNR",
    "SSIM",
    "FID",
    "s/slice",
    "steps",
    "minutes",
    "bound by",
    "val R² mean",
    "paper PSNR",
    "paper FID",
]


def text(value: object) -> str:
    return MISSING if value is None else str(value)


def variant_id(record: dict) -> str:
    method = record["method"]
    return record["name"] if method == "wavesr" else f"{record['name']} ({method})"


def table3_row(record: dict) -> list[str]:
    design = record["design"]
    evaluation = record["evaluation"] or {}
    training = record["training"] or {}
    validation = record["validation"] or {}
    paper = record["paper"] or {}
    bound = "failed" if record.get("error") else text(training.get("bound_by"))
    return [
        variant_id(record),
        *(text(design[k]) for k in ("prediction", "schedule", "latent_ratio", "conditioning")),
        fmt(evaluation.get("psnr")),
        fmt(evaluation.get("ssim"), 4),
        fmt(evaluation.get("fid")),
        fmt(evaluation.get("seconds_per_slice"), 3),
        text(training.get("steps")),
        fmt(training.get("minutes")),
        bound,
        fmt(validation.get(VALIDATION_METRIC), 3),
        fmt(paper.get("psnr")),
        fmt(paper.get("fid")),
    ]


def table3_markdown(records: list[dict]) -> str:
    """One row per variant: its design, our measurements, then the paper's numbers."""
    return markdown_table(
        TABLE3_HEADERS, [table3_row(r) for r in records], "lllll" + "r" * 6 + "l" + "rrr"
    )


def table_notes(doc: dict) -> list[str]:
    e = doc["evaluation"]
    slices = ", ".join(e["data"])
    fid = (
        f"FID on at most {e['fid_slices']} of those slices (small-sample FID: compare within "
        "this table only)"
        if e["fid"]
        else "FID not computed (--no-fid)"
    )
    count = f"{e['n_slices']} " if e["n_slices"] else ""
    lines = [
        f"- PSNR (dB) / SSIM: means over the same {count}slices of {slices} "
        f"(at most {e['max_slices']} per folder, x{e['scale']} {e['degradation']}, slices "
        f"reduced to at most {e['size']} px); {fid}.",
        f"- s/slice: wall time of the SR calls only, {e['steps']} sampling steps, on "
        f"{e['device']}. WaveSR samples at temperature 0 (deterministic DDIM) unless the "
        "variant sets diffusion.temperature.",
        "- steps / minutes: what the variant's network trained (minutes of training loop); "
        "bound by: the limit that stopped it (steps = reached max_steps, minutes = the time "
        "budget).",
        "- val R² mean: the last validation's mean R² of the LDT's temperature-0 latents against "
        "the encoded HR latents (0 = no better than zeros; only with "
        "ldt_training.train.validate_every > 0).",
        "- paper PSNR / FID: the paper's Table 3 (its data, its slices, full GPU training); "
        "compare the ranking, not the values.",
    ]
    lines += [f"- {r['name']} failed: {r['error']}" for r in doc["variants"] if r.get("error")]
    return [*lines, ""]


def budget_lines(doc: dict) -> list[str]:
    b = doc["budget"]
    steps = (
        f"{b['steps_per_variant']} steps (--steps-per-variant)"
        if b["steps_per_variant"]
        else "its config's max_steps"
    )
    return [
        f"- Each variant's network (the LDT; for a baseline method its whole network) trains "
        f"for at most **{b['minutes_per_variant']:g} minutes** and {steps}, whichever comes "
        f"first, with seed {b['seed']} on the same data ({', '.join(b['data'])}).",
        f"- Stage 1 is not part of a variant's minutes: variants with the same stage-1 settings "
        f"share one autoencoder run, trained once for at most {b['minutes_per_stage1_run']:g} "
        "minutes (and its autoencoder_training.train.max_steps); a run given with "
        "--autoencoder is reused as it is.",
        "- Minutes are the training loop's own clock, summed over resumes; loading the data, "
        "encoding the latent cache and the evaluation come on top (ablation.json: "
        "wall_minutes, and each variant's eval/metrics.json).",
        "- The learning rate decays over max_steps: a run stopped by minutes has not reached "
        "the end of its schedule.",
        "",
    ]


def stage1_table(doc: dict) -> str:
    rows = []
    for s in doc["autoencoders"]:
        t = s["training"] or {}
        rows.append(
            [
                s["key"],
                s["run"],
                ", ".join(s["variants"]),
                "reused (--autoencoder)" if s["reused"] else text(t.get("steps")),
                fmt(t.get("minutes")),
                text(t.get("bound_by")),
            ]
        )
    headers = ["stage 1", "run", "variants", "steps", "minutes", "bound by"]
    return markdown_table(headers, rows, "lllrrl")


def variants_table(records: list[dict]) -> str:
    rows = [
        [r["name"], r["method"], r["label"] or MISSING, " ".join(r["overrides"]) or MISSING]
        for r in records
    ]
    return markdown_table(["variant", "method", "label", "overrides"], rows)


def band_markdown(records: list[dict]) -> str:
    methods = {
        variant_id(r): {"band_psnr": r["evaluation"]["band_psnr"]}
        for r in records
        if r["evaluation"]
    }
    if not methods:
        return "No variant evaluated yet.\n"
    return band_table(methods) + (
        f"\nBand k: the error's spectrum at normalised radius [(k-1)/{N_BANDS}, k/{N_BANDS}) of "
        "the Nyquist frequency (docs/metrics.md).\n"
    )


def render_markdown(doc: dict, curves_metric: str) -> str:
    records = doc["variants"]
    lines = ["# WaveSR ablation", ""]
    if doc["pending"]:
        lines += [
            f"**Incomplete:** {len(records)} of {len(records) + len(doc['pending'])} variants "
            f"done; pending: {', '.join(doc['pending'])}. Rerun the command with --resume to "
            "finish.",
            "",
        ]
    curve_note = (
        "validation R² mean of the LDT's latents against the step"
        if curves_metric == VALIDATION_METRIC
        else "training loss against the step (no variant validated; eps and x0 losses are "
        "different quantities: compare within one prediction type)"
    )
    lines += [
        "## Command",
        "",
        code_block(doc["command"], "sh"),
        "## Table 3",
        "",
        table3_markdown(records),
        *table_notes(doc),
        "## PSNR per frequency band (dB), low to high",
        "",
        band_markdown(records),
        "## Budget",
        "",
        *budget_lines(doc),
        "## Stage-1 runs",
        "",
        stage1_table(doc),
        "## Variants",
        "",
        variants_table(records),
        "## Training curves",
        "",
        f"![training curves]({CURVES_FIGURE})",
        "",
        f"{CURVES_FIGURE}: {curve_note}.",
        "",
        "## Machine",
        "",
        markdown_table(["item", "value"], [[k, v] for k, v in doc["machine"].items()]),
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- curves


def loss_curve(metrics_csv: Path) -> tuple[list[float], list[float]]:
    """(steps, training loss) of a run's metrics.csv; empty when there is none."""
    if not metrics_csv.is_file():
        return [], []
    steps, values = [], []
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("loss"):
                steps.append(float(row["step"]))
                values.append(float(row["loss"]))
    return steps, values


def training_curves(doc: dict, out: Path) -> tuple[str, dict[str, tuple[list, list]]]:
    """(metric, {variant: (steps, values)}): validation R² where any variant has it, else loss."""
    runs = {
        variant_id(r): out / "variants" / r["name"] / "metrics.csv"
        for r in doc["variants"]
        if r["training"]
    }
    validation = {name: read_validation(path) for name, path in runs.items()}
    curves = {
        name: (c["step"], c[VALIDATION_METRIC])
        for name, c in validation.items()
        if c.get("step") and VALIDATION_METRIC in c
    }
    if curves:
        return VALIDATION_METRIC, curves
    losses = {name: loss_curve(path) for name, path in runs.items()}
    return "loss", {name: c for name, c in losses.items() if c[0]}


def curves_figure(metric: str, curves: dict[str, tuple[list, list]], path: Path) -> Path:
    """Every variant's curve on one set of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, label=name, marker="." if len(steps) <= 40 else None, lw=1.2)
    if metric == VALIDATION_METRIC:
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set(ylabel="validation R² mean (vs zeros)", title="LDT latents, per variant")
    else:
        positive = all(v > 0 for _, values in curves.values() for v in values)
        if positive and curves:
            ax.set_yscale("log")
        ax.set(ylabel="training loss", title="training loss, per variant")
    ax.set_xlabel("step")
    if curves:
        ax.legend(fontsize=8, ncol=2 if len(curves) > 5 else 1)
    else:
        ax.text(0.5, 0.5, "no training curves yet", ha="center", va="center")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), overwrite=True)
    finally:
        plt.close(fig)
    return path


def write_ablation(doc: dict, out: Path) -> list[Path]:
    """Write ablation.json, ablation.md and curves.png into ``out``, each atomically."""
    out = Path(out)
    metric, curves = training_curves(doc, out)
    texts = {
        "ablation.md": render_markdown(doc, metric),
        "ablation.json": json.dumps(doc, indent=2, allow_nan=False) + "\n",
    }
    return write_files(out, texts, [lambda: curves_figure(metric, curves, out / CURVES_FIGURE)])
