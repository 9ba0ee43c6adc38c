"""`wavesr sr --report`: the input and the output side by side through the volume.

One viewer along the slices that were super-resolved and, for volumes, two reformats across
them (the slice axis drawn vertically, first slice at the bottom). Input and output share one
intensity window (the input's 0.5-99.5th percentiles, in the input's own intensities) and are
drawn at the same physical size, so non-square voxels keep their true shape.

`sr --through-plane --report` shows the same, with the thick axis in place of the slice axis:
first the two reformats that hold it (where thick slices show), then the thick slices
themselves, each beside the output slice at its centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wavesr.data.normalize import denormalize
from wavesr.data.prepare import select_evenly
from wavesr.data.types import SliceStack
from wavesr.data.write import sr_affine, voxel_sizes
from wavesr.report import html
from wavesr.report.format import machine_info
from wavesr.report.tables import Table
from wavesr.report.viewer import IMAGE, INPUT, STD, Frame, Panel, Viewer, png_bytes

__all__ = [
    "REPORT_SLICES",
    "geometry_table",
    "sr_report_page",
    "through_plane_geometry_table",
    "through_plane_report_page",
    "through_plane_viewers",
    "volume_viewers",
    "window",
]

REPORT_SLICES = 32  # frames per viewer, evenly spaced
PERCENTILES = (0.5, 99.5)
_PLANE_OF_NORMAL = {"S": "axial", "I": "axial", "A": "coronal", "P": "coronal"}
_PLANE_OF_NORMAL |= {"L": "sagittal", "R": "sagittal"}


def window(images: np.ndarray) -> tuple[float, float]:
    """The display window of `images`: their 0.5-99.5th percentiles (a wider one if flat)."""
    flat = np.asarray(images, dtype=np.float32).reshape(-1)
    sample = flat[:: max(1, flat.size // 4_000_000)]
    lo, hi = (float(v) for v in np.percentile(sample, PERCENTILES))
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _plane_names(affine: np.ndarray | None) -> list[str]:
    """For each voxel axis, the plane its slices lie in (or "axis k" without an orientation)."""
    if affine is None:
        return [f"axis {k}" for k in range(3)]
    import nibabel as nib

    codes = nib.aff2axcodes(affine)
    return [f"{_PLANE_OF_NORMAL.get(c, 'oblique')} (axis {k})" for k, c in enumerate(codes)]


def _mm(sizes: np.ndarray | None) -> str:
    return "unknown (no affine)" if sizes is None else " x ".join(f"{v:.4g}" for v in sizes)


def _shape(shape: Sequence[int]) -> str:
    return " x ".join(str(int(n)) for n in shape)


def _window_note(win: tuple[float, float]) -> str:
    return (
        f"input and output in one intensity window ({win[0]:.4g} to {win[1]:.4g}, the input's "
        f"{PERCENTILES[0]}-{PERCENTILES[1]}th percentiles), drawn at the same physical size"
    )


def output_geometry(stack: SliceStack, factor: int) -> tuple[tuple[int, ...], np.ndarray | None]:
    """The output's shape and affine: in-plane axes `factor` times finer, same field of view."""
    n, h, w = stack.slices.shape
    if stack.slice_axis is None or stack.volume_shape is None:
        return (n, h * factor, w * factor), None
    axis = stack.slice_axis
    shape = tuple(s if a == axis else s * factor for a, s in enumerate(stack.volume_shape))
    affine = None if stack.affine is None else sr_affine(stack.affine, axis, factor)
    return shape, affine


def geometry_table(stack: SliceStack, factor: int) -> Table:
    """Shape and voxel size of the input and of the output."""
    n, h, w = stack.slices.shape
    in_shape = stack.volume_shape if stack.volume_shape is not None else (n, h, w)
    out_shape, out_affine = output_geometry(stack, factor)
    axis = "none (2-D images)" if stack.slice_axis is None else str(stack.slice_axis)
    rows = [
        ["input", _shape(in_shape), _mm(voxel_sizes(stack.affine)), axis],
        ["output", _shape(out_shape), _mm(voxel_sizes(out_affine)), axis],
    ]
    return Table(["", "shape (voxels)", "voxel size (mm)", "slice axis"], rows, "llll")


# ----------------------------------------------------------------------------- viewers


def _frame(
    label: str,
    aspect: float,
    lr: np.ndarray,
    sr: np.ndarray,
    win,
    note: str,
    std: np.ndarray | None = None,
) -> Frame:
    column = None if std is None else "output"
    panels = [
        Panel(f"input {lr.shape[0]}x{lr.shape[1]}", png_bytes(lr, win), INPUT, note=note),
        Panel(f"output {sr.shape[0]}x{sr.shape[1]}", png_bytes(sr, win), IMAGE, column),
    ]
    if std is not None:  # a spread: from 0 over the window's width
        spread = png_bytes(std, (0.0, win[1] - win[0]))
        panels.append(Panel("std of the samples", spread, STD, column))
    return Frame(label, aspect, panels)


def volume_viewers(
    stack: SliceStack,
    sr: np.ndarray,
    model_mask: np.ndarray,
    factor: int,
    *,
    limit: int = REPORT_SLICES,
    std: np.ndarray | None = None,
) -> list[Viewer]:
    """Viewers of input (`stack`) and output (`sr`, (N, H, W) in the input's intensities).

    `model_mask` flags the slices that went through the model (the others are bicubic). With
    `std` (the per-voxel std of `sr --samples`, like `sr`), each frame also shows it.
    """
    lr = denormalize(stack.slices, stack.normalization)
    win = window(lr)
    n, h, w = lr.shape
    axis = stack.slice_axis
    planes = _plane_names(stack.affine)
    # Voxel size (mm) along the slices, their rows and their columns; 1 when unknown.
    sizes = voxel_sizes(stack.affine) if axis is not None else None
    if axis is None:
        rows_axis = cols_axis = None
        slice_mm = rows_mm = cols_mm = 1.0
        title = "Slices"
    else:
        rows_axis, cols_axis = (a for a in range(3) if a != axis)
        order = [axis, rows_axis, cols_axis]
        slice_mm, rows_mm, cols_mm = (1.0, 1.0, 1.0) if sizes is None else sizes[order]
        title = f"Slices: {planes[axis]}, the plane that was super-resolved"
    frames = []
    for i in select_evenly(n, limit):
        note = "" if model_mask[i] else "near-empty slice: bicubic only"
        aspect = h * rows_mm / (w * cols_mm)
        spread = None if std is None else std[i]
        frames.append(_frame(stack.names[i], aspect, lr[i], sr[i], win, note, spread))
    caption = f"{len(frames)} of {n} slices, evenly spaced; {_window_note(win)}."
    viewers = [Viewer("slices", title, frames, caption)]
    if axis is None or n < 2:
        return viewers
    # Across the rows: each cut is (slices, columns); across the columns: (slices, rows).
    aspect_rows = n * slice_mm / (w * cols_mm)
    aspect_cols = n * slice_mm / (h * rows_mm)
    for key, dim, plane, aspect in (
        ("reformat-1", 1, planes[rows_axis], aspect_rows),
        ("reformat-2", 2, planes[cols_axis], aspect_cols),
    ):
        viewers.append(_reformat(key, plane, lr, sr, dim, factor, win, aspect, limit, std))
    return viewers


def _reformat(
    key: str,
    plane: str,
    lr: np.ndarray,
    sr: np.ndarray,
    dim: int,
    factor: int,
    win: tuple[float, float],
    aspect: float,
    limit: int,
    std: np.ndarray | None = None,
    scale_note: str = "same window and physical scale as above",
) -> Viewer:
    """Cuts across the slices at fixed positions along stack dimension `dim` (1: rows, 2: cols).

    The slice axis is drawn vertically, first slice at the bottom. The output is cut through
    the centre of the input voxel's row / column (`factor`: the output's voxels per input voxel
    along `dim`).
    """
    n_in = lr.shape[dim]
    frames = []
    for i in select_evenly(n_in, limit):
        j = i * factor + factor // 2
        a, b = np.take(lr, i, axis=dim)[::-1], np.take(sr, j, axis=dim)[::-1]
        spread = None if std is None else np.take(std, j, axis=dim)[::-1]
        frames.append(_frame(f"{plane}: position {i} of {n_in}", aspect, a, b, win, "", spread))
    caption = (
        f"Reformat: {len(frames)} of {n_in} positions, evenly spaced; the slices stacked "
        f"vertically (first at the bottom); {scale_note}."
    )
    return Viewer(key, f"Reformat: {plane}", frames, caption)


def sr_report_page(
    stack: SliceStack,
    sr: np.ndarray,
    model_mask: np.ndarray,
    factor: int,
    run: dict,
    command: str,
    device: str,
    std: np.ndarray | None = None,
) -> str:
    """report.html of `wavesr sr --report` (`sr` in the input's intensities, as written; `std`
    that of `--samples`, shown beside it)."""
    viewers = volume_viewers(stack, sr, model_mask, factor, std=std)
    html.require_frames(viewers, Path(run["output"]))
    geometry = geometry_table(stack, factor)
    return html.sr_html(run, geometry, command, machine_info(device), viewers)


# ----------------------------------------------------------------------------- through-plane


def through_plane_geometry_table(
    in_shape: Sequence[int],
    in_affine: np.ndarray,
    out_shape: Sequence[int],
    out_affine: np.ndarray,
    axis: int,
) -> Table:
    """Shape and voxel size of the thick input and of the output, and along the thick axis
    its plane, voxel count and voxel size."""
    plane = _plane_names(in_affine)[axis]
    rows = []
    for label, shape, affine in (("input", in_shape, in_affine), ("output", out_shape, out_affine)):
        sizes = voxel_sizes(affine)
        along = f"{plane}: {int(shape[axis])} voxels of {sizes[axis]:.4g} mm"
        rows.append([label, _shape(shape), _mm(sizes), along])
    return Table(["", "shape (voxels)", "voxel size (mm)", "thick axis"], rows, "llll")


def through_plane_viewers(
    volume: np.ndarray,
    sr: np.ndarray,
    affine: np.ndarray,
    axis: int,
    *,
    limit: int = REPORT_SLICES,
) -> list[Viewer]:
    """Viewers of the thick input `volume` (voxel to world: `affine`) and the output `sr`, both
    3-D in the input's intensities, `sr` finer along `axis` over the same extent.

    First the two reformats that hold `axis` (drawn vertically), then the thick slices.
    """
    lr, out = np.moveaxis(volume, axis, 0), np.moveaxis(sr, axis, 0)
    win = window(lr)
    planes = _plane_names(affine)
    rows_axis, cols_axis = (a for a in range(3) if a != axis)
    thick_mm, rows_mm, cols_mm = voxel_sizes(affine)[[axis, rows_axis, cols_axis]]
    n, h, w = lr.shape
    # The in-plane axes keep their voxels (factor 1); along the thick axis input and output
    # span the same extent, n thick voxels.
    cuts = (
        ("reformat-1", 1, planes[rows_axis], n * thick_mm / (w * cols_mm)),
        ("reformat-2", 2, planes[cols_axis], n * thick_mm / (h * rows_mm)),
    )
    notes = (_window_note(win), "same window and physical scale as above")
    viewers = [
        _reformat(key, plane, lr, out, dim, 1, win, aspect, limit, scale_note=note)
        for (key, dim, plane, aspect), note in zip(cuts, notes, strict=True)
    ]
    viewers.append(_thick_slices(planes[axis], lr, out, win, h * rows_mm / (w * cols_mm), limit))
    return viewers


def _thick_slices(
    plane: str,
    lr: np.ndarray,
    out: np.ndarray,
    win: tuple[float, float],
    aspect: float,
    limit: int,
) -> Viewer:
    """The thick slices (`lr`, stacked along dimension 0), each beside the slice of `out` that
    holds its centre."""
    n, m = len(lr), len(out)
    frames = []
    for i in select_evenly(n, limit):
        j = (2 * i + 1) * m // (2 * n)  # the output voxel holding input voxel i's centre
        label = f"thick slice {i} of {n} (output slice {j} of {m})"
        frames.append(_frame(label, aspect, lr[i], out[j], win, ""))
    caption = (
        f"{len(frames)} of {n} thick slices, evenly spaced, each beside the output slice at "
        "its centre; same window and physical scale as above."
    )
    return Viewer("slices", f"Slices: {plane}, the thick slices", frames, caption)


def through_plane_report_page(
    volume: np.ndarray,
    affine: np.ndarray,
    sr: np.ndarray,
    sr_affine: np.ndarray,
    axis: int,
    run: dict,
    command: str,
    device: str,
) -> str:
    """report.html of `wavesr sr --through-plane --report` (`sr` in the input's intensities,
    as written with `sr_affine`; `axis` the thick axis)."""
    viewers = through_plane_viewers(volume, sr, affine, axis)
    html.require_frames(viewers, Path(run["output"]))
    geometry = through_plane_geometry_table(volume.shape, affine, sr.shape, sr_affine, axis)
    plane = _plane_names(affine)[axis]
    thick, fine = voxel_sizes(affine)[axis], voxel_sizes(sr_affine)[axis]
    intro = (
        f"{run['input']}: thick {plane} slices super-resolved from {thick:.4g} to {fine:.4g} mm "
        f"along the thick axis, written to {run['output']} ({run['slices']} reformat slices, "
        f"{run['super_resolved']} through the model)."
    )
    return html.sr_html(run, geometry, command, machine_info(device), viewers, intro=intro)
