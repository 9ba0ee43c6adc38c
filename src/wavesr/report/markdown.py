"""report.md (`wavesr evaluate`) and benchmark.md (`wavesr benchmark`)."""

from __future__ import annotations

from collections.abc import Sequence

from wavesr.report import tables, uncertainty
from wavesr.report.format import code_block, fmt

__all__ = [
    "ENERGY_NOTE",
    "band_note",
    "band_table",
    "benchmark_markdown",
    "energy_table",
    "evaluate_markdown",
    "flops_sizes",
    "report_header",
]

ENERGY_NOTE = (
    "Ek: the SR slices' spectral energy (sum of |FFT|^2) in band k, summed over the slices, "
    "divided by the same of the HR slices; 1 = as much as HR, below = missing detail (blur), "
    "above = excess (noise, artefacts). Same bands as Table 2; see docs/metrics.md."
)


def report_header(command: str, machine: dict, datasets: Sequence[dict]) -> list[str]:
    """Markdown lines of the Command, Machine and Data sections."""
    return [
        "## Command",
        "",
        code_block(command, "sh"),
        "## Machine",
        "",
        tables.machine_table(machine).markdown(),
        "## Data",
        "",
        tables.data_table(datasets).markdown(),
    ]


def band_table(methods: dict) -> str:
    """Table 2: mean PSNR per frequency band, one row per method."""
    return tables.band_table(methods).markdown()


def energy_table(methods: dict) -> str:
    """Spectral energy of SR / HR per frequency band (energies summed over slices), per method."""
    return tables.energy_table(methods).markdown()


def band_sections(methods: dict, *, short: bool) -> list[str]:
    """Tables 2 and 3 of evaluate's and benchmark's reports: PSNR and energy ratio per band."""
    return [
        "## Table 2: PSNR (dB) per frequency band, low to high",
        "",
        band_table(methods),
        band_note(methods, short=short),
        "",
        "## Table 3: band energy ratio SR / HR per frequency band, low to high",
        "",
        energy_table(methods),
        ENERGY_NOTE,
        "",
    ]


def band_note(methods: dict, *, short: bool = False) -> str:
    """What band k is (evaluate's wording, or benchmark's shorter one)."""
    n = tables.n_bands(methods)
    if short:
        return (
            f"Band k: the error spectrum at normalised radius [(k-1)/{n}, k/{n}) of "
            "Nyquist (the last band also the corners); see docs/metrics.md."
        )
    return (
        f"Band k holds the error's spectrum at normalised radius [(k-1)/{n}, k/{n}) "
        "of the Nyquist frequency (the last band also the corners); see docs/metrics.md."
    )


def flops_sizes(methods: dict) -> str:
    """The slice sizes the GFLOPs were counted at, e.g. "32x20"."""
    sizes = {tuple(m["gflops_size"]) for m in methods.values() if m["gflops_size"]}
    return ", ".join(f"{h}x{w}" for h, w in sorted(sizes)) or "no network method"


# ----------------------------------------------------------------------------- evaluate


def evaluation_notes(result: dict) -> list[str]:
    """The bullet points under evaluate's Table 1."""
    settings, methods = result["settings"], result["methods"]
    return [
        "- GFLOPs count one full SR of one slice of the first size seen "
        f"({flops_sizes(methods)}); for diffusion models this includes all "
        f"{settings['steps']} sampling steps. A multiply-add counts 2 FLOPs.",
        "- s/slice is the wall time of the SR calls only (batches of "
        f"{settings['batch']} slices of equal size, on {settings['device']}), without loading, "
        "degradation and metrics; bicubic's upsampling happens in the degradation, so its "
        "time is ~0.",
        "- PSNR and SSIM are means over slices; FID compares the SR slices with the HR slices.",
        *(f"- FID {name}: {m['fid_note']}" for name, m in methods.items()),
    ]


def evaluation_intro(settings: dict) -> str:
    return (
        f"Degradation **{settings['degradation']}**, slices reduced to at most "
        f"{settings['size']} px ({settings['resize']}), cropped to a multiple of the scale; "
        "metrics on [0, 1]-normalised slices (per-slice min-max, data range 1)."
    )


def evaluate_markdown(result: dict, command: str) -> str:
    """report.md of `wavesr evaluate` from metrics.json's content."""
    methods = result["methods"]
    lines = [
        "# WaveSR evaluation",
        "",
        evaluation_intro(result["settings"]),
        "",
        *report_header(command, result["machine"], result["datasets"]),
        "## Table 1: quality and cost",
        "",
        tables.evaluate_quality_table(methods).markdown(),
        *evaluation_notes(result),
        "",
        *band_sections(methods, short=False),
        *(uncertainty.markdown_lines(result["uncertainty"]) if "uncertainty" in result else []),
        "## Per dataset",
        "",
        tables.evaluate_dataset_table(result["datasets"], methods).markdown(),
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- benchmark


def benchmark_intro(doc: dict) -> str:
    settings = doc["settings"]
    n_all = sum(d["n_slices"] for d in doc["datasets"])
    return (
        f"x{settings['scale']} super-resolution, degradation **{settings['degradation']}**, "
        f"{n_all} slices (reduced to at most {settings['size']} px, {settings['resize']}), the "
        "same slices and LR inputs for every method, one run on one machine. Metrics on "
        "[0, 1]-normalised slices (data range 1)."
    )


def benchmark_notes(doc: dict) -> list[str]:
    """The bullet points under benchmark's Table 1."""
    top = doc["settings"]["table_steps"]
    return [
        f"- Steps: sampling steps of the diffusion methods (the largest of --steps, {top}).",
        "- GFLOPs: one full SR of one slice (all sampling steps); a multiply-add counts 2.",
        "- s/slice: wall time of the SR calls only (no loading, degradation or metrics).",
        *(f"- FID {name}: {m['fid_note']}" for name, m in doc["methods"].items()),
        *(f"- Skipped {name}: {why}" for name, why in doc["skipped"].items()),
    ]


def speed_notes(doc: dict) -> list[str]:
    """The bullet points under the speed table."""
    settings = doc["settings"]
    top = settings["table_steps"]
    n_all = sum(d["n_slices"] for d in doc["datasets"])
    if settings["speed_slices"] >= n_all:
        subset = f"- Every step count: timed on all {n_all} slices."
    else:
        subset = (
            f"- {top} steps: timed on all {n_all} slices (the Table 1 run). Other step counts: "
            f"timed on one fixed subset of {settings['speed_slices']} evenly spaced slices "
            "(same LR inputs) for every method, so each row compares the methods on the same "
            "slices."
        )
    return [
        subset,
        "- s/slice: wall time of the SR calls only, batches of "
        f"{settings['batch']} on {settings['device']}; the first batch is preceded by an "
        "untimed warm-up call (the FLOP count).",
        "- Ratio: pixel-diffusion s/slice divided by wavesr s/slice at the same step count "
        "(– when either was not benchmarked).",
    ]


NO_DIFFUSION = "No diffusion method was benchmarked."
FIGURES_NOTE = (
    "Row 1: each output with a zoomed inset; row 2: log-magnitude spectrum; row 3: "
    "log-magnitude spectrum of the error (output - ground truth)."
)
PER_DATASET_NOTE = "FID and s/slice are measured over all datasets together (Table 1)."


def _speed_markdown(doc: dict) -> list[str]:
    if not doc["speed"]["methods"]:
        return [NO_DIFFUSION, ""]
    return [tables.speed_table(doc["speed"]).markdown(), *speed_notes(doc), ""]


def benchmark_markdown(doc: dict, command: str) -> str:
    """benchmark.md of `wavesr benchmark` from benchmark.json's content."""
    methods = doc["methods"]
    top = doc["settings"]["table_steps"]
    lines = [
        "# WaveSR benchmark",
        "",
        benchmark_intro(doc),
        "",
        *report_header(command, doc["machine"], doc["datasets"]),
        f"## Table 1: quality and cost (diffusion methods at {top} sampling steps)",
        "",
        tables.benchmark_quality_table(methods).markdown(),
        *benchmark_notes(doc),
        "",
        *band_sections(methods, short=True),
        f"![PSNR and energy ratio per band]({doc['bands_figure']})",
        "",
        "## Speed: seconds per slice against sampling steps",
        "",
        *_speed_markdown(doc),
    ]
    if doc["figures"]:
        lines += [
            "## Figures: outputs, spectra and error spectra (paper Fig. 3 and 4)",
            "",
            FIGURES_NOTE,
            "",
        ]
        for f in doc["figures"]:
            lines += [f"- {f['file']}: {f['dataset']} / {f['slice']}", ""]
            lines += [f"  ![{f['slice']}]({f['file']})", ""]
    if len(doc["datasets"]) > 1:
        lines += ["## Table 1 per dataset", ""]
        for d in doc["datasets"]:
            table = tables.benchmark_dataset_table(d["name"], methods)
            lines += [f"### {d['name']}", "", table.markdown()]
        lines += [PER_DATASET_NOTE, ""]
    if "uncertainty" in doc:
        lines += uncertainty.markdown_lines(doc["uncertainty"])
    t = doc["timings"]
    lines += [
        "## Timings",
        "",
        f"Loading {fmt(t['load_seconds'])} s, whole benchmark {fmt(t['total_seconds'])} s.",
    ]
    return "\n".join(lines) + "\n"
