"""Intensity normalisation of slice stacks to [0, 1], recording the parameters used."""

from __future__ import annotations

import numpy as np

from wavesr.errors import ConfigError

METHODS = ("slice-minmax", "volume-percentile")
PERCENTILES = (0.5, 99.5)
SLICE_CHUNK = 64  # slices scaled at a time (bounds the float64 working memory)


def normalize_stack(slices: np.ndarray, method: str = "slice-minmax") -> tuple[np.ndarray, dict]:
    """Scale an (N, H, W) stack to [0, 1]; returns (float32 stack, parameters).

    "slice-minmax": each slice (x - min) / (max - min); a constant slice becomes zeros.
    "volume-percentile": the whole stack clipped to its [p0.5, p99.5] range, then scaled.
    The parameters hold per-slice "lo"/"hi" lists so `denormalize` can undo the scaling.
    """
    data = np.asarray(slices, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"expected an (N, H, W) stack, got shape {data.shape}")
    if method == "slice-minmax":
        lo = data.min(axis=(1, 2)).astype(np.float64)
        hi = data.max(axis=(1, 2)).astype(np.float64)
        params: dict = {"method": method}
    elif method == "volume-percentile":
        p_lo, p_hi = np.percentile(data, PERCENTILES)
        lo = np.full(data.shape[0], float(p_lo))
        hi = np.full(data.shape[0], float(p_hi))
        data = np.clip(data, p_lo, p_hi)
        params = {"method": method, "percentiles": list(PERCENTILES)}
    else:
        raise ConfigError(f"unknown normalization {method!r} (choose from {', '.join(METHODS)})")
    out = _scale_to_unit(data, lo, hi)
    params["lo"] = [float(v) for v in lo]
    params["hi"] = [float(v) for v in hi]
    return out, params


def _scale_to_unit(data: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(data - lo) / (hi - lo) per slice, clipped to [0, 1]; a slice with hi <= lo -> zeros.

    The arithmetic is float64 (then rounded to float32), done SLICE_CHUNK slices at a time: in
    one piece its float64 temporaries peak at 5x the stack's float32 size (2.3x chunked, the
    output included), too much for a folder of thousands of images."""
    span = hi - lo
    safe = np.where(span > 0, span, 1.0)
    out = np.empty(data.shape, dtype=np.float32)
    for start in range(0, len(data), SLICE_CHUNK):
        part = slice(start, start + SLICE_CHUNK)
        chunk = (data[part] - lo[part, None, None]) / safe[part, None, None]
        chunk[span[part] <= 0] = 0.0
        out[part] = np.clip(chunk, 0.0, 1.0)
    return out


def select(params: dict, keep: list[int]) -> dict:
    """The parameters restricted to the slices at positions `keep`."""
    out = dict(params)
    out["lo"] = [params["lo"][i] for i in keep]
    out["hi"] = [params["hi"][i] for i in keep]
    return out


def denormalize(slices: np.ndarray, params: dict) -> np.ndarray:
    """Map an (N, h, w) stack in [0, 1] back to the original intensities (per-slice lo/hi)."""
    data = np.asarray(slices, dtype=np.float32)
    lo = np.asarray(params["lo"], dtype=np.float64)
    hi = np.asarray(params["hi"], dtype=np.float64)
    if lo.shape[0] != data.shape[0]:
        raise ValueError(f"{data.shape[0]} slices but {lo.shape[0]} normalisation entries")
    return (data * (hi - lo)[:, None, None] + lo[:, None, None]).astype(np.float32)


def rescale(slices: np.ndarray, params: dict) -> np.ndarray:
    """Map spreads or differences of [0, 1] slices (a std map, an error) to the original
    intensity scale: `denormalize` without the offset, times each slice's hi - lo."""
    data = np.asarray(slices, dtype=np.float32)
    span = np.asarray(params["hi"], dtype=np.float64) - np.asarray(params["lo"], dtype=np.float64)
    if span.shape[0] != data.shape[0]:
        raise ValueError(f"{data.shape[0]} slices but {span.shape[0]} normalisation entries")
    return (data * span[:, None, None]).astype(np.float32)
