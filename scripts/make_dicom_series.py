"""Make a low-resolution DICOM series (an MR scan as a PACS would send it) from a NIfTI volume.

    python scripts/make_dicom_series.py IN.nii.gz OUT_FOLDER [--slices 5] [--factor 2]

The input is reoriented as scanners store axial slices (rows A -> P, columns R -> L); its
central ``--slices`` axial slices are averaged over ``--factor`` x ``--factor`` in-plane blocks
(a low-resolution acquisition of the same field of view) and written one file per slice: MR
Image Storage, 16-bit with RescaleSlope, patient, study and frame-of-reference identifiers,
geometry from the affine. Used for the README's DICOM figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from wavesr.data.dicom_write import series_geometry, stored_values


def low_resolution(path: str, slices: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    orientations = nib.orientations
    to_axial = orientations.ornt_transform(
        orientations.io_orientation(image.affine), orientations.axcodes2ornt(("P", "L", "S"))
    )
    image = image.as_reoriented(to_axial)
    data = np.asarray(image.dataobj, dtype=np.float32)
    middle = data.shape[2] // 2
    data = data[:, :, middle - slices // 2 : middle - slices // 2 + slices]
    h, w = (n // factor * factor for n in data.shape[:2])
    blocks = data[:h, :w].reshape(h // factor, factor, w // factor, factor, slices)
    affine = image.affine.copy()
    affine[:3, 3] = (affine @ [(factor - 1) / 2, (factor - 1) / 2, middle - slices // 2, 1])[:3]
    affine[:3, :2] *= factor
    return blocks.mean(axis=(1, 3)), affine


def write_series(volume: np.ndarray, affine: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=False)
    geometry = series_geometry(affine, volume.shape[2])
    ints, slope, intercept = stored_values(volume, 1.0, 0.0)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(volume.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
            MRImageStorage,
            generate_uid(),
        )
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k + 1:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "MR", "DEMO-1", "Demo^Patient"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "T1 axial", 3, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.ImagePositionPatient = [float(v) for v in geometry.positions[k]]
        ds.ImageOrientationPatient = [float(v) for v in geometry.orientation]
        ds.PixelSpacing = [float(v) for v in geometry.pixel_spacing]
        ds.SliceThickness = ds.SpacingBetweenSlices = geometry.slice_spacing
        ds.Rows, ds.Columns = ints.shape[:2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 1 if ints.dtype == np.int16 else 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = np.ascontiguousarray(ints[:, :, k]).tobytes()
        ds.save_as(ds.filename, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("output", type=Path)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--factor", type=int, default=2)
    args = parser.parse_args()
    volume, affine = low_resolution(args.source, args.slices, args.factor)
    write_series(volume, affine, args.output)
    print(f"{args.output}: {volume.shape[2]} slices of {volume.shape[0]} x {volume.shape[1]}")


if __name__ == "__main__":
    main()
