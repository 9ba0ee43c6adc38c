"""The middle slice of a DICOM series beside the same slice of its WaveSR series, as a viewer
shows them: read with pydicom, rescaled to the stored units, at their physical size.

    python scripts/dicom_figure.py ORIGINAL_FOLDER SR_FOLDER FIGURE.png

Both panels share one grey window (the original's 0.5-99.5th percentiles) and one field of view
in mm; each title carries the series' own SeriesDescription, matrix and PixelSpacing.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402


def middle_slice(folder: str) -> tuple[np.ndarray, pydicom.Dataset]:
    files = [pydicom.dcmread(str(p)) for p in sorted(Path(folder).iterdir())]
    files.sort(key=lambda ds: int(ds.InstanceNumber))
    ds = files[len(files) // 2]
    pixels = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return pixels, ds


def main() -> None:
    original, sr, figure = sys.argv[1:4]
    panels = [middle_slice(original), middle_slice(sr)]
    lo, hi = np.percentile(panels[0][0], [0.5, 99.5])
    fig, axes = plt.subplots(1, 2, figsize=(9, 5.6), dpi=120, layout="constrained")
    for ax, (pixels, ds) in zip(axes, panels):
        dy, dx = (float(v) for v in ds.PixelSpacing)
        extent = (0, pixels.shape[1] * dx, pixels.shape[0] * dy, 0)
        ax.imshow(pixels, cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
        image_type = "\\".join(ds.ImageType)
        title = (
            f"{ds.SeriesDescription}\n{ds.Rows} x {ds.Columns}, {dy:g} x {dx:g} mm, "
            f"{image_type}, series {ds.SeriesNumber}"
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("mm")
    derivation = panels[1][1].get("DerivationDescription", "")
    fig.text(0.5, 0.01, textwrap.fill(derivation, 130), ha="center", va="bottom", fontsize=7)
    fig.get_layout_engine().set(rect=(0, 0.08, 1, 0.92))
    fig.savefig(figure)
    print(figure)


if __name__ == "__main__":
    main()
