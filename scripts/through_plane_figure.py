"""Coronal and sagittal reformats of a thick-slice volume beside its through-plane SR.

    python scripts/through_plane_figure.py THICK.nii.gz ISO.nii.gz FIGURE.png

Both volumes are reoriented to RAS and shown at their physical aspect ratio (the thick input
with its slices as they are, nearest-neighbour), through the centre of the volume.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402


def reformats(path: str) -> tuple[list[np.ndarray], np.ndarray]:
    image = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    data = data / max(float(np.percentile(data, 99.5)), 1e-6)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
    coronal = data[:, data.shape[1] // 2, :].T[::-1]  # rows S->I, columns R-L
    sagittal = data[data.shape[0] // 2, :, :].T[::-1]  # rows S->I, columns P-A
    return [coronal, sagittal], zooms


def main() -> None:
    thick_path, iso_path, figure = sys.argv[1:4]
    (thick, zt), (iso, zi) = reformats(thick_path), reformats(iso_path)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4), dpi=120, layout="constrained")
    names = ("coronal", "sagittal")
    for row, (name, a, b) in enumerate(zip(names, thick, iso)):
        widths = (zt[0], zi[0]) if name == "coronal" else (zt[1], zi[1])
        for col, (image, width, zooms, label) in enumerate(
            ((a, widths[0], zt, thick_path), (b, widths[1], zi, iso_path))
        ):
            ax = axes[row, col]
            ax.imshow(
                image, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect=zooms[2] / width
            )
            shape = "x".join(str(n) for n in image.shape)
            ax.set_title(f"{name}: {label.split('/')[-1]} ({shape} px)", fontsize=8)
            ax.axis("off")
    fig.savefig(figure)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
