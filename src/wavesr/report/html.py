"""report.html: one self-contained page per evaluate / benchmark / sr run.

The page is the template `wavesr/templates/report.html` (CSS and a little vanilla JavaScript)
filled with the run's tables, its figures and the slice viewers' PNGs, all embedded as data
URIs; its Content-Security-Policy forbids fetching anything, so it opens from disk anywhere.
Tables are plain HTML (each number's exact value in ``data-value``); the viewers' panels are a
JSON block the script turns into images, one slider per viewer.
"""

from __future__ import annotations

import base64
import html
import json
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from wavesr import __version__
from wavesr.errors import OutputError
from wavesr.io_atomic import atomic_write
from wavesr.report import markdown, tables, uncertainty
from wavesr.report.format import fmt
from wavesr.report.tables import Number, Table
from wavesr.report.viewer import Viewer

__all__ = [
    "Figure",
    "Section",
    "benchmark_html",
    "evaluate_html",
    "render_page",
    "require_frames",
    "sr_html",
    "table_html",
    "write_page",
]

TEMPLATE = "report.html"
ERROR_GAINS = (1, 2, 4, 8, 16)
DEFAULT_GAIN = 4
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


@dataclass(frozen=True)
class Section:
    key: str  # the anchor: id="section-KEY"
    title: str
    body: str  # HTML


@dataclass(frozen=True)
class Figure:
    name: str
    png: bytes
    caption: str = ""


@cache
def _template() -> str:
    return resources.files("wavesr").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace every {{name}} in one pass (inserted text is never scanned again)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _json_for_script(data: object) -> str:
    """JSON safe inside <script>: no "<" can close the element early."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def require_frames(viewers: Sequence[Viewer], path: Path) -> None:
    """Raise OutputError when the viewers hold no slice (nothing to show)."""
    if not any(v.frames for v in viewers):
        raise OutputError("no slices were evaluated, so there is nothing to show", path)


def write_page(path: Path, page: str) -> Path:
    """Write `page` to `path` atomically (never a half-written file)."""
    atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"), overwrite=True)
    return path


# ----------------------------------------------------------------------------- pieces


def text(value: object) -> str:
    """Escaped text, with markdown's **bold** as <strong>."""
    return _BOLD.sub(r"<strong>\1</strong>", html.escape(str(value)))


def _data_value(value: float | int | None) -> str:
    """` data-value="..."`: the exact number (as JSON writes it), none for None / NaN / inf."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, numbers.Integral):
        return f' data-value="{int(value)}"'
    value = float(value)
    return f' data-value="{value!r}"' if math.isfinite(value) else ""


def table_html(table: Table, key: str) -> str:
    """`table` as an HTML table with id="table-KEY"; numbers keep their exact value."""
    classes = list(table.align)  # the CSS classes l, r and c align the columns
    head = "".join(f'<th class="{c}">{text(h)}</th>' for h, c in zip(table.headers, classes))
    rows = []
    for row in table.rows:
        cells = []
        for cell, c in zip(row, classes):
            value = _data_value(cell.value) if isinstance(cell, Number) else ""
            cells.append(f'<td class="{c}"{value}>{text(cell)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table id="table-{key}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def notes_html(lines: Sequence[str]) -> str:
    """Markdown bullet lines ("- ...") as a list, other lines as paragraphs."""
    items = [f"<li>{text(line[2:])}</li>" for line in lines if line.startswith("- ")]
    paragraphs = [
        f'<p class="note">{text(line)}</p>' for line in lines if line and line[:2] != "- "
    ]
    out = "".join(paragraphs)
    return out + (f'<ul class="note">{"".join(items)}</ul>' if items else "")


def figure_html(figure: Figure) -> str:
    src = "data:image/png;base64," + base64.b64encode(figure.png).decode("ascii")
    caption = text(figure.caption or figure.name)
    return (
        f'<figure><img src="{src}" alt="{html.escape(figure.name)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _select(cls: str, label: str, options: Sequence[tuple[str, str]], selected: str) -> str:
    opts = "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>'
        f"{html.escape(t)}</option>"
        for v, t in options
    )
    return f'<label>{label} <select class="{cls}">{opts}</select></label>'


def viewer_html(viewer: Viewer) -> str:
    """The controls and the (script-filled) panel box of one viewer."""
    n = len(viewer.frames)
    controls = [
        '<button type="button" class="prev" title="previous slice (left arrow)">&#9664;</button>',
        f'<input type="range" class="slider" min="0" max="{max(0, n - 1)}" value="0" step="1" '
        'aria-label="slice">',
        '<button type="button" class="next" title="next slice (right arrow)">&#9654;</button>',
        '<span class="label"></span>',
        '<span>zoom <span class="zoom">1.0x</span> '
        '<button type="button" class="reset">reset</button></span>',
        '<label>panel size <input type="range" class="size" min="128" max="768" step="32" '
        'value="256"></label>',
    ]
    columns = viewer.columns()
    if columns:
        default = "*" if len(columns) <= 3 else next((c for c in columns if c != "bicubic"), "*")
        options = [("*", "all methods"), *((c, c) for c in columns)]
        controls.append(_select("error-of", "maps of", options, default))
        gains = [(str(g), f"x{g}") for g in ERROR_GAINS]
        controls.append(_select("gain", "map gain", gains, str(DEFAULT_GAIN)))
    caption = f'<p class="caption">{text(viewer.caption)}</p>' if viewer.caption else ""
    return (
        f'<section class="viewer" id="viewer-{html.escape(viewer.key)}" tabindex="-1">'
        f"<h3>{text(viewer.title)}</h3>{caption}"
        f'<div class="controls">{"".join(controls)}</div>'
        '<p class="help">Slider or left / right arrow keys: slice. Mouse wheel: zoom, drag: '
        "pan, double-click: reset; every panel follows. Same intensity window in every panel"
        f"{' (maps: |error| and std, times the gain)' if columns else ''}.</p>"
        '<div class="panels"></div></section>'
    )


def render_page(
    title: str, intro: str, sections: Sequence[Section], viewers: Sequence[Viewer]
) -> str:
    """The whole page: header, navigation, sections and the viewers' data."""
    nav = "".join(f'<a href="#section-{s.key}">{text(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="section-{s.key}"><h2>{text(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    data = _json_for_script({"viewers": [v.to_json() for v in viewers]})
    return _fill(
        _template(),
        {
            "title": html.escape(title),
            "intro": text(intro),
            "nav": nav,
            "body": body,
            "data": data,
            "version": html.escape(__version__),
        },
    )


# ----------------------------------------------------------------------------- shared sections


def _viewer_section(viewers: Sequence[Viewer], title: str = "Slices") -> Section:
    return Section("slices", title, "".join(viewer_html(v) for v in viewers))


def _figures_section(figures: Sequence[Figure], notes: dict[str, str] | None = None) -> Section:
    """The figures; `notes` (figure name -> text) go just before the figure they name."""
    notes = notes or {}
    parts = []
    for f in figures:
        if f.name in notes:
            parts.append(f'<p class="note">{text(notes[f.name])}</p>')
        parts.append(figure_html(f))
    return Section("figures", "Figures", "".join(parts))


def _run_sections(command: str, machine: dict, datasets: Sequence[dict] | None) -> list[Section]:
    sections = [Section("command", "Command", f"<pre>{html.escape(command)}</pre>")]
    if datasets is not None:
        sections.append(Section("data", "Data", table_html(tables.data_table(datasets), "data")))
    sections.append(
        Section("machine", "Machine", table_html(tables.machine_table(machine), "machine"))
    )
    return sections


def _band_sections(methods: dict, *, short: bool) -> list[Section]:
    sections = [
        Section(
            "bands",
            "Table 2: PSNR (dB) per frequency band, low to high",
            table_html(tables.band_table(methods), "bands")
            + notes_html([markdown.band_note(methods, short=short)]),
        )
    ]
    if tables.has_energy(methods):
        sections.append(
            Section(
                "energy",
                "Table 3: band energy ratio SR / HR per frequency band, low to high",
                table_html(tables.energy_table(methods), "energy")
                + notes_html([markdown.ENERGY_NOTE]),
            )
        )
    return sections


# ----------------------------------------------------------------------------- evaluate


def evaluate_html(
    doc: dict, command: str, viewers: Sequence[Viewer], figures: Sequence[Figure] = ()
) -> str:
    """report.html of `wavesr evaluate` from metrics.json's content and the slice viewers."""
    methods = doc["methods"]
    sections = [
        Section(
            "quality",
            "Table 1: quality and cost",
            table_html(tables.evaluate_quality_table(methods), "quality")
            + notes_html(markdown.evaluation_notes(doc)),
        ),
        _viewer_section(viewers),
        *_band_sections(methods, short=False),
        Section(
            "datasets",
            "Per dataset",
            table_html(tables.evaluate_dataset_table(doc["datasets"], methods), "datasets"),
        ),
    ]
    if "uncertainty" in doc:
        section, figures = uncertainty_section(doc["uncertainty"], figures)
        sections.insert(-1, section)
    if figures:
        sections.append(_figures_section(figures))
    sections += _run_sections(command, doc["machine"], doc["datasets"])
    return render_page(
        "WaveSR evaluation", markdown.evaluation_intro(doc["settings"]), sections, viewers
    )


def uncertainty_section(unc: dict, figures: Sequence[Figure]) -> tuple[Section, list[Figure]]:
    """The uncertainty section (its figures embedded) and the figures it did not take."""
    own = {name: role for role, name in unc["figures"].items()}
    mine = {own[f.name]: f for f in figures if f.name in own}
    captions = {
        "perception_distortion": "Perception-distortion: one point per setting (references in "
        "grey).",
        "maps": f"Error of the mean of {unc['samples']} samples beside their per-pixel std, "
        "on one colour scale.",
    }

    def fig(role: str) -> str:
        if role not in mine:
            return ""
        return figure_html(Figure(mine[role].name, mine[role].png, captions[role]))

    body = (
        "<h3>Perception-distortion and LR consistency</h3>"
        + table_html(uncertainty.perception_table(unc), "perception-distortion")
        + fig("perception_distortion")
        + "<h3>Seed consistency</h3>"
        + table_html(uncertainty.seed_table(unc), "seed-consistency")
        + "<h3>Calibration of the std map</h3>"
        + table_html(uncertainty.calibration_table(unc), "calibration")
        + fig("maps")
        + notes_html(uncertainty.notes(unc))
    )
    rest = [f for f in figures if f.name not in own]
    return Section("uncertainty", uncertainty.TITLE, body), rest


# ----------------------------------------------------------------------------- benchmark


def _speed_section(doc: dict) -> Section:
    if not doc["speed"]["methods"]:
        body = notes_html([markdown.NO_DIFFUSION])
    else:
        body = table_html(tables.speed_table(doc["speed"]), "speed") + notes_html(
            markdown.speed_notes(doc)
        )
    return Section("speed", "Speed: seconds per slice against sampling steps", body)


def _per_dataset_section(doc: dict) -> Section:
    parts = []
    for k, d in enumerate(doc["datasets"], 1):
        table = tables.benchmark_dataset_table(d["name"], doc["methods"])
        parts.append(f"<h3>{text(d['name'])}</h3>{table_html(table, f'dataset-{k}')}")
    parts.append(notes_html([markdown.PER_DATASET_NOTE]))
    return Section("per-dataset", "Table 1 per dataset", "".join(parts))


def benchmark_html(
    doc: dict, command: str, viewers: Sequence[Viewer], figures: Sequence[Figure] = ()
) -> str:
    """report.html of `wavesr benchmark` from benchmark.json's content, viewers and figures."""
    methods = doc["methods"]
    top = doc["settings"]["table_steps"]
    sections = [
        Section(
            "quality",
            f"Table 1: quality and cost (diffusion methods at {top} sampling steps)",
            table_html(tables.benchmark_quality_table(methods), "quality")
            + notes_html(markdown.benchmark_notes(doc)),
        ),
        _viewer_section(viewers),
        *_band_sections(methods, short=True),
        _speed_section(doc),
    ]
    if len(doc["datasets"]) > 1:
        sections.append(_per_dataset_section(doc))
    if "uncertainty" in doc:
        section, figures = uncertainty_section(doc["uncertainty"], figures)
        sections.append(section)
    if figures:
        # The Fig. 3/4 note goes before the first of those figures (after the band plot).
        first = next((f for f in figures if f.name in {g["file"] for g in doc["figures"]}), None)
        notes = {} if first is None else {first.name: markdown.FIGURES_NOTE}
        sections.append(_figures_section(figures, notes))
    t = doc["timings"]
    timing = f"Loading {fmt(t['load_seconds'])} s, whole benchmark {fmt(t['total_seconds'])} s."
    sections += _run_sections(command, doc["machine"], doc["datasets"])
    sections.append(Section("timings", "Timings", f"<p>{text(timing)}</p>"))
    return render_page("WaveSR benchmark", markdown.benchmark_intro(doc), sections, viewers)


# ----------------------------------------------------------------------------- sr


def sr_html(
    run: dict,
    geometry: Table,
    command: str,
    machine: dict,
    viewers: Sequence[Viewer],
    intro: str | None = None,
) -> str:
    """report.html of `wavesr sr --report`: the run, the input / output geometry, the viewers
    (`intro`, default: what was super-resolved into what, from `run`)."""
    settings = Table(["item", "value"], [[k, v] for k, v in run.items()], "ll")
    sections = [
        Section("geometry", "Input and output", table_html(geometry, "geometry")),
        _viewer_section(viewers, "Input and output through the volume"),
        Section("run", "Settings", table_html(settings, "run")),
        *_run_sections(command, machine, None),
    ]
    if intro is None:
        intro = (
            f"{run['input']} super-resolved to {run['output']} "
            f"({run['slices']} slices, {run['super_resolved']} through the model)."
        )
    return render_page("WaveSR super-resolution", intro, sections, viewers)
