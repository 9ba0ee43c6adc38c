"""Make a clinical-style thick-slice volume (256 x 256 x 24, 1 x 1 x 4 mm) from a fine one.

    python scripts/make_thick_volume.py IN.nii.gz OUT.nii.gz [--thick 4] [--slices 24] [--size 256]

The input (e.g. a 2 mm IXI T1 volume) is reoriented so that its superior-inferior axis is the
last voxel axis; the in-plane axes are resampled to 1 mm (cubic) and padded / cropped to
``--size``; along S-I the central ``--slices`` x ``--thick`` mm are averaged into slabs of
``--thick`` mm (a box slice profile). The affine keeps the input's orientation and centre, so
the output is a real-world-placed volume with 1 x 1 x thick mm voxels.
"""

from __future__ import annotations

import argparse

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--thick", type=float, default=4.0)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    image = nib.as_closest_canonical(nib.load(args.source))  # RAS: axis 2 is S-I
    data = np.asarray(image.dataobj, dtype=np.float32)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
    # In-plane to 1 mm.
    size = [round(n * z) for n, z in zip(data.shape[:2], zooms[:2])]
    planes = torch.from_numpy(np.moveaxis(data, 2, 0))[:, None]
    planes = F.interpolate(planes, size=size, mode="bicubic", align_corners=False)[:, 0]
    fine = np.clip(np.moveaxis(planes.numpy(), 0, 2), 0, None)
    fine = _pad_or_crop(fine, args.size, axis=0)
    fine = _pad_or_crop(fine, args.size, axis=1)
    # Along S-I: slabs of `thick` mm from the central slices.
    per_slab = round(args.thick / zooms[2])
    keep = args.slices * per_slab
    start = max(0, (fine.shape[2] - keep) // 2)
    slab = fine[:, :, start : start + keep]
    thick = slab.reshape(*slab.shape[:2], args.slices, per_slab).mean(axis=3)

    affine = image.affine.copy()
    directions = affine[:3, :3] / zooms
    new_zooms = np.array([1.0, 1.0, per_slab * zooms[2]])
    centre_in = image.affine @ np.r_[(np.asarray(data.shape) - 1) / 2, 1.0]
    affine[:3, :3] = directions * new_zooms
    # Keep the in-plane centre; along S-I centre the slab range that was kept.
    kept_centre = start + (keep - 1) / 2
    centre = centre_in[:3] + directions[:, 2] * zooms[2] * (kept_centre - (data.shape[2] - 1) / 2)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(thick.shape) - 1) / 2)
    nib.save(nib.Nifti1Image(thick.astype(np.float32), affine), args.output)
    print(f"{args.output}: {thick.shape}, voxel {tuple(new_zooms)} mm")


def _pad_or_crop(volume: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = volume.shape[axis]
    if n >= size:
        start = (n - size) // 2
        return np.take(volume, range(start, start + size), axis=axis)
    pad = [(0, 0)] * volume.ndim
    pad[axis] = ((size - n) // 2, size - n - (size - n) // 2)
    return np.pad(volume, pad)


if __name__ == "__main__":
    main()
