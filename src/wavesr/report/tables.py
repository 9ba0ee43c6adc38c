"""Every report table as data: headers, formatted cells and the numbers behind them.

report.md / benchmark.md render a `Table` with `markdown_table`; report.html renders the same
table as HTML and keeps each number's exact value in the cell (``data-value``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wavesr.report.format import fmt, fmt_count, markdown_table

DEFAULT_BANDS = 10


@dataclass(frozen=True)
class Number:
    """A table cell showing `text` for the number `value` (str() gives the text)."""

    value: float | int | None
    text: str

    def __str__(self) -> str:
        return self.text


def num(value: float | int | None, digits: int = 2) -> Number:
    return Number(value, fmt(value, digits))


def count(value: int | None) -> Number:
    return Number(value, fmt_count(value))


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[object]]
    align: str

    def markdown(self) -> str:
        return markdown_table(self.headers, self.rows, self.align)


def n_bands(methods: dict) -> int:
    """How many frequency bands the results hold (the first method's band PSNR)."""
    for m in methods.values():
        return len(m["band_psnr"])
    return DEFAULT_BANDS


# ----------------------------------------------------------------------------- both commands


def machine_table(machine: dict) -> Table:
    return Table(["item", "value"], [[k, v] for k, v in machine.items()], "ll")


def data_table(datasets: Sequence[dict]) -> Table:
    rows = [
        [
            d["name"],
            d["path"],
            num(d["n_slices"]),
            num(d["n_available"]),
            ", ".join(f"{k} ({v})" for k, v in d["sizes"].items()),
        ]
        for d in datasets
    ]
    return Table(["dataset", "path", "slices", "available", "sizes"], rows, "llrrl")


def _per_band(methods: dict, key: str, letter: str) -> Table:
    n = n_bands(methods)
    return Table(
        ["Method", *(f"{letter}{i + 1}" for i in range(n))],
        [[name, *(num(v) for v in m[key])] for name, m in methods.items()],
        "l" + "r" * n,
    )


def band_table(methods: dict) -> Table:
    """Table 2: mean PSNR per frequency band, one row per method."""
    return _per_band(methods, "band_psnr", "B")


def energy_table(methods: dict) -> Table:
    """Spectral energy of SR / HR per frequency band (energies summed over slices), per method."""
    return _per_band(methods, "band_energy_ratio", "E")


def has_energy(methods: dict) -> bool:
    return bool(methods) and all("band_energy_ratio" in m for m in methods.values())


# ----------------------------------------------------------------------------- evaluate


def evaluate_quality_table(methods: dict) -> Table:
    """Evaluate's Table 1: parameters, GFLOPs, time, PSNR, SSIM and FID per method."""
    return _quality_table(methods, with_steps=False)


def _quality_table(methods: dict, *, with_steps: bool) -> Table:
    """Table 1 of evaluate, or of benchmark (which adds the diffusion methods' steps)."""
    steps = ["Steps"] if with_steps else []
    rows = [
        [
            name,
            *([num(m["steps"])] if with_steps else []),
            count(m["params"]),
            num(m["gflops_per_slice"]),
            num(m["seconds_per_slice"], 4),
            num(m["psnr"]),
            num(m["ssim"], 4),
            num(m.get("psnr_head")),
            num(m.get("ssim_head"), 4),
            num(m["fid"]),
        ]
        for name, m in methods.items()
    ]
    headers = [
        "Method",
        *steps,
        "Params",
        "GFLOPs",
        "s/slice",
        "PSNR (dB)",
        "SSIM",
        "PSNR head",
        "SSIM head",
        "FID",
    ]
    return Table(headers, rows, "l" + "r" * (len(headers) - 1))


def evaluate_dataset_table(datasets: Sequence[dict], methods: dict) -> Table:
    rows = [
        [
            d["name"],
            name,
            num(v["n_slices"]),
            num(v["psnr"]),
            num(v["ssim"], 4),
            num(v.get("psnr_head")),
            num(v.get("ssim_head"), 4),
        ]
        for d in datasets
        for name, m in methods.items()
        for v in [m["datasets"][d["name"]]]
    ]
    headers = ["Dataset", "Method", "Slices", "PSNR (dB)", "SSIM", "PSNR head", "SSIM head"]
    return Table(headers, rows, "llrrrrr")


# ----------------------------------------------------------------------------- benchmark


def benchmark_quality_table(methods: dict) -> Table:
    """Benchmark's Table 1: evaluate's, with the diffusion methods' sampling steps."""
    return _quality_table(methods, with_steps=True)


def speed_table(speed: dict) -> Table:
    """Seconds and GFLOPs per slice of each diffusion method at each step count."""
    names = speed["methods"]
    rows = [
        [
            num(row["steps"]),
            num(row["n_slices"]),
            *(num(row["seconds_per_slice"][n], 4) for n in names),
            *(num(row["gflops_per_slice"][n]) for n in names),
            num(row["ratio_pixel_over_wavesr"]),
        ]
        for row in speed["rows"]
    ]
    headers = [
        "Steps",
        "Slices timed",
        *(f"{n} s/slice" for n in names),
        *(f"{n} GFLOPs" for n in names),
        "pixel-diffusion / wavesr",
    ]
    return Table(headers, rows, "r" * len(headers))


def benchmark_dataset_table(dataset: str, methods: dict) -> Table:
    """Table 1 restricted to one dataset (no FID or time: those are measured over all)."""
    rows = [
        [
            name,
            num(m["steps"]),
            count(m["params"]),
            num(m["gflops_per_slice"]),
            num(m["datasets"][dataset]["n_slices"]),
            num(m["datasets"][dataset]["psnr"]),
            num(m["datasets"][dataset]["ssim"], 4),
            num(m["datasets"][dataset].get("psnr_head")),
        ]
        for name, m in methods.items()
    ]
    headers = ["Method", "Steps", "Params", "GFLOPs", "Slices", "PSNR (dB)", "SSIM", "PSNR head"]
    return Table(headers, rows, "lrrrrrrr")
