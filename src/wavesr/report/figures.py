"""Figures people look at rather than read: comparisons with zoomed insets, spectra, band plots."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mpl_toolkits.axes_grid1.inset_locator import inset_axes, mark_inset  # noqa: E402

from wavesr.io_atomic import atomic_write  # noqa: E402


def _zoom_box(shape: tuple[int, int], fraction: float = 0.25) -> tuple[int, int, int, int]:
    """A square box (top, left, size) near the image centre, slightly up-left (cortex detail)."""
    h, w = shape
    size = max(8, int(min(h, w) * fraction))
    return int(h * 0.35) - size // 2, int(w * 0.4) - size // 2, size, size


def _show_with_inset(ax, image: np.ndarray, title: str, box) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    top, left, size, _ = box
    inset = inset_axes(ax, width="42%", height="42%", loc="lower right", borderpad=0.3)
    inset.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    inset.set_xlim(left, left + size)
    inset.set_ylim(top + size, top)
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_edgecolor("yellow")
    mark_inset(ax, inset, loc1=2, loc2=4, fc="none", ec="yellow", lw=0.6)


def comparison_figure(
    panels: Sequence[tuple[str, np.ndarray]],
    reference: np.ndarray,
    error_of: str,
    path: Path,
    *,
    title: str = "",
    overwrite: bool = True,
) -> Path:
    """Panels (title, image in [0, 1]) with zoomed insets, then |error_of - reference|."""
    box = _zoom_box(reference.shape)
    n = len(panels) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 3.0), dpi=130)
    for ax, (name, image) in zip(axes, panels):
        _show_with_inset(ax, image, name, box)
    error = np.abs(dict(panels)[error_of] - reference)
    im = axes[-1].imshow(error, cmap="magma", vmin=0, vmax=max(0.05, float(error.max())))
    axes[-1].set_title(f"|{error_of} - ground truth|", fontsize=9)
    axes[-1].axis("off")
    fig.colorbar(im, ax=axes[-1], fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.97, top=0.85, bottom=0.02, wspace=0.05)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), overwrite=overwrite)
    plt.close(fig)
    return path


def log_spectrum(image: np.ndarray) -> np.ndarray:
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(image, norm="ortho"))))


def spectrum_figure(
    outputs: Sequence[tuple[str, np.ndarray]],
    reference: np.ndarray,
    path: Path,
    *,
    overwrite: bool = True,
) -> Path:
    """Paper Fig. 3/4: each method's output, its log-magnitude spectrum and error spectrum."""
    rows = [("ground truth", reference), *outputs]
    fig, axes = plt.subplots(3, len(rows), figsize=(2.2 * len(rows), 6.6), dpi=120, squeeze=False)
    box = _zoom_box(reference.shape)
    ref_spec = log_spectrum(reference)
    vmax = float(ref_spec.max())
    for col, (name, image) in enumerate(rows):
        _show_with_inset(axes[0, col], image, name, box)
        axes[1, col].imshow(log_spectrum(image), cmap="viridis", vmin=0, vmax=vmax)
        axes[1, col].set_title("log |FFT|", fontsize=8)
        err = log_spectrum(image - reference)
        axes[2, col].imshow(err, cmap="inferno", vmin=0, vmax=max(1e-3, vmax * 0.5))
        axes[2, col].set_title("log |FFT(error)|", fontsize=8)
        for r in (1, 2):
            axes[r, col].axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.15)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), overwrite=overwrite)
    plt.close(fig)
    return path


def _band_centres(n: int) -> list[float]:
    return [100 * (i + 0.5) / n for i in range(n)]


def _energy_panel(ax, energy: dict[str, Sequence[float]]) -> None:
    """Energy ratio per band on a log axis, with the ideal 1.0 and a 0.8-1.25 tolerance band."""
    ax.axhspan(0.8, 1.25, color="tab:green", alpha=0.12, label="0.8-1.25")
    ax.axhline(1.0, color="black", lw=0.8)
    for name, values in energy.items():
        ax.plot(_band_centres(len(values)), values, marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("frequency band (% of the normalised radius)")
    ax.set_ylabel("energy ratio SR / HR")
    ax.grid(alpha=0.3)
    ax.grid(alpha=0.1, which="minor")
    ax.legend(fontsize=8)


def band_psnr_figure(
    curves: dict[str, Sequence[float]],
    path: Path,
    *,
    energy: dict[str, Sequence[float]] | None = None,
    title: str = "",
    overwrite: bool = True,
) -> Path:
    """Paper Table 2 as a plot: PSNR per frequency band, one line per method.

    With `energy` (method -> band energy ratio SR / HR), a second panel shows those ratios.
    """
    panels = 1 if energy is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.0), dpi=130, squeeze=False)
    ax = axes[0, 0]
    for name, values in curves.items():
        ax.plot(_band_centres(len(values)), values, marker="o", label=name)
    ax.set_xlabel("frequency band (% of the normalised radius)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if energy is not None:
        _energy_panel(axes[0, 1], energy)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), overwrite=overwrite)
    plt.close(fig)
    return path


def _png(fig) -> bytes:
    """`fig` as PNG bytes (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def perception_distortion_figure(
    curve: Sequence[tuple[str, float, float]],
    others: Sequence[tuple[str, float, float]] = (),
    references: Sequence[tuple[str, float, float]] = (),
    *,
    y_label: str,
    ideal: float | None = None,
    title: str = "",
) -> bytes:
    """PNG of labelled points (label, PSNR, y): `curve` joined in order (e.g. temperatures),
    `others` as diamonds (e.g. a mean of samples), `references` (other methods) as grey
    squares; `ideal` draws a dashed line at that y (e.g. 1 for energy ratios)."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=130)
    styles = (
        (curve, {"color": "tab:blue", "marker": "o"}, (5, 4)),
        (others, {"color": "tab:orange", "marker": "D"}, (5, 4)),
        (references, {"color": "grey", "marker": "s"}, (5, -10)),
    )
    finite = [(n, x, y) for g, _, _ in styles for n, x, y in g if np.isfinite(x) and np.isfinite(y)]
    place = _LabelPlacer([x for _, x, _ in finite], [y for _, _, y in finite])
    for group, style, offset in styles:
        shown = [(n, x, y) for n, x, y in group if np.isfinite(x) and np.isfinite(y)]
        if group is curve and len(shown) > 1:
            ax.plot([x for _, x, _ in shown], [y for _, _, y in shown], lw=0.8, **style)
        for name, x, y in shown:
            ax.scatter([x], [y], zorder=3, **style)
            ax.annotate(
                name, (x, y), textcoords="offset points", xytext=place(x, y, offset), fontsize=8
            )
    if ideal is not None:
        ax.axhline(ideal, color="black", lw=0.8, ls="--")
    ax.set_xlabel("PSNR (dB), higher = less distortion")
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def error_std_figure(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], *, samples: int
) -> bytes:
    """PNG: per row (label, HR, mean of the samples, their std) the HR, the mean, |mean - HR|
    and the std, each of the last two on its own colour scale (with its own colour bar): the
    std is often far smaller than the error, and what matters is whether they point at the same
    places (the calibration measures that by rank)."""
    fig, axes = plt.subplots(
        len(rows), 4, figsize=(11.2, 2.7 * len(rows)), dpi=120, squeeze=False, layout="constrained"
    )
    for r, (label, hr, mean, std) in enumerate(rows):
        error = np.abs(mean - hr)
        panels = [
            (f"HR: {label}", hr, "gray", 1.0),
            (f"mean of {samples} samples", mean, "gray", 1.0),
            ("|mean - HR|", error, "magma", _top(error)),
            (f"std of the {samples} samples", std, "magma", _top(std)),
        ]
        for c, (title, image, cmap, top) in enumerate(panels):
            im = axes[r, c].imshow(image, cmap=cmap, vmin=0, vmax=top, interpolation="nearest")
            axes[r, c].set_title(title, fontsize=8)
            axes[r, c].axis("off")
            if c >= 2:
                fig.colorbar(im, ax=axes[r, c], fraction=0.046, pad=0.02)
    return _png(fig)


def _top(image: np.ndarray) -> float:
    """Upper end of a map's colour scale: its 99.5th percentile (never 0)."""
    return max(float(np.percentile(image, 99.5)), 1e-6)


class _LabelPlacer:
    """Offsets (points) for point labels: a label whose point lies close to an already
    labelled one (within 3 % of the x range and 5 % of the y range) moves 10 points down per
    earlier neighbour, so that coinciding points keep readable labels."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.dx = 0.03 * max(np.ptp(xs), 1e-9) if len(xs) else 1.0
        self.dy = 0.05 * max(np.ptp(ys), 1e-9) if len(ys) else 1.0
        self.placed: list[tuple[float, float]] = []

    def __call__(self, x: float, y: float, offset: tuple[int, int]) -> tuple[int, int]:
        near = sum(abs(x - px) <= self.dx and abs(y - py) <= self.dy for px, py in self.placed)
        self.placed.append((x, y))
        return offset[0], offset[1] - 10 * near
