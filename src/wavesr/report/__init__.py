"""Reports: markdown, HTML pages, figures, the slice viewer.
May import data, model and the base; not bundle, training, evaluation, tasks or cli.

Report rendering for `evaluate`, `benchmark` and `sr`: markdown (report.md, benchmark.md)
and one self-contained HTML page (report.html) with the tables, figures and a slice viewer.

format: number formatting, markdown tables, the machine description; tables: every table as
data, rendered by both; markdown: report.md and benchmark.md; html: report.html (the template
is wavesr/templates/report.html); viewer: the slice viewer's 8-bit PNG panels; volume: the
input / output viewers of `sr --report`.
"""

from __future__ import annotations

from wavesr.report.format import (
    MISSING,
    code_block,
    cpu_model,
    fmt,
    fmt_count,
    machine_info,
    markdown_table,
)

__all__ = [
    "MISSING",
    "code_block",
    "cpu_model",
    "fmt",
    "fmt_count",
    "machine_info",
    "markdown_table",
]
