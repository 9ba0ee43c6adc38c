"""The slice viewer's content: per slice, side-by-side panels as small 8-bit PNGs.

Every panel is encoded with the same intensity window (by default [0, 1] of the normalised
slice), at its own size: the LR panel stays at LR size and the page upscales it with
``image-rendering: pixelated``. Error and std maps use the same window; the page has one gain
control for them.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = [
    "ERROR",
    "IMAGE",
    "INPUT",
    "REFERENCE",
    "STD",
    "WINDOW",
    "Frame",
    "Panel",
    "Viewer",
    "add_method",
    "comparison_frame",
    "png_bytes",
    "slice_note",
]

WINDOW = (0.0, 1.0)
# Panel kinds, in the order the page lays them out.
INPUT, IMAGE, REFERENCE, ERROR, STD = "input", "image", "reference", "error", "std"


def png_bytes(image: np.ndarray, window: tuple[float, float] = WINDOW) -> bytes:
    """`image` (H, W) as an 8-bit grey PNG: `window` maps to 0..255, values outside clip."""
    lo, hi = window
    if not hi > lo:
        raise ValueError(f"the window must have hi > lo, got {window}")
    scaled = (np.asarray(image, dtype=np.float64) - lo) / (hi - lo)
    pixels = np.round(np.clip(np.nan_to_num(scaled), 0.0, 1.0) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@dataclass
class Panel:
    title: str
    png: bytes
    kind: str = IMAGE
    column: str | None = None  # the method an error / std map belongs to (the page's selector)
    note: str = ""  # e.g. this slice's PSNR and SSIM

    def to_json(self) -> dict:
        src = "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")
        return {
            "title": self.title,
            "kind": self.kind,
            "column": self.column,
            "note": self.note,
            "src": src,
        }


@dataclass
class Frame:
    """One position of the slider: a label and its panels, shown at `aspect` (height / width)."""

    label: str
    aspect: float
    panels: list[Panel] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "aspect": self.aspect,
            "panels": [p.to_json() for p in self.panels],
        }


@dataclass
class Viewer:
    """One slider over `frames`, with one zoom and pan shared by all its panels."""

    key: str
    title: str
    frames: list[Frame]
    caption: str = ""

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "title": self.title,
            "caption": self.caption,
            "frames": [f.to_json() for f in self.frames],
        }

    def columns(self) -> list[str]:
        """The methods with an error or std map, in order (the page's error-map selector)."""
        seen = dict.fromkeys(
            p.column for f in self.frames for p in f.panels if p.column and p.kind in (ERROR, STD)
        )
        return list(seen)


# ----------------------------------------------------------------------------- evaluate


def comparison_frame(label: str, lr: np.ndarray, hr: np.ndarray) -> Frame:
    """A frame with the LR input (at its own size) and the HR reference; methods come next."""
    h, w = hr.shape
    return Frame(
        label,
        h / w,
        [Panel("LR (nearest)", png_bytes(lr), INPUT), Panel("HR", png_bytes(hr), REFERENCE)],
    )


def add_method(
    frame: Frame,
    name: str,
    sr: np.ndarray,
    hr: np.ndarray,
    *,
    note: str = "",
    std: np.ndarray | None = None,
) -> None:
    """Add a method's output, its |error| against HR and, when given, its std map."""
    frame.panels.append(Panel(name, png_bytes(sr), IMAGE, name, note))
    error = np.abs(np.asarray(sr, dtype=np.float64) - hr)
    frame.panels.append(Panel(f"|{name} − HR|", png_bytes(error), ERROR, name))
    if std is not None:
        frame.panels.append(Panel(f"{name} std", png_bytes(std), STD, name))


def slice_note(psnr: float, ssim: float) -> str:
    return f"{psnr:.2f} dB, SSIM {ssim:.4f}"
