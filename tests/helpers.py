"""Plain helpers shared by test modules; pytest's pythonpath has tests/, so `import helpers`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ImplicitVRLittleEndian, MRImageStorage, generate_uid

from wavesr.data.load import load_slices
from wavesr.data.prepare import prepare_slice
from wavesr.evaluation.metrics import band_psnr, psnr, ssim
from wavesr.model.degrade import Degradation, degrade

AXIAL_IOP = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # rows along +x (L), columns along +y (P)


def blobs(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w) float32 smooth bright blobs on a dark background, in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w].astype(np.float32)
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        r2 = (rng.uniform(0.2, 0.35) * min(h, w)) ** 2
        out.append(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r2) + 0.05 * rng.random((h, w)))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def phantom(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) float32: a centred Gaussian blob plus uniform noise (values in [0, 1.3])."""
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (0.1 * h * w))
    return (blob + 0.3 * rng.random((h, w))).astype(np.float32)


def hand_bicubic(paths: list[Path], size: int) -> tuple[list[float], list[float], list]:
    """PSNR, SSIM and band PSNR of bicubic x4 on every slice of `paths`, computed directly.

    The LR has no noise, so these match evaluate's per-slice seeds.
    """
    p, s, b = [], [], []
    for path in paths:
        for image in load_slices(path).slices:
            hr = prepare_slice(image, size, "area", 4)
            _, up = degrade(torch.from_numpy(hr)[None, None], Degradation("bicubic", 4))
            sr = up[0, 0].clamp(0, 1).numpy()
            p.append(psnr(sr, hr))
            s.append(ssim(sr, hr))
            b.append(band_psnr(sr, hr))
    return p, s, b


def fov_corners(aff: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """World positions of the outer voxel corners of a volume (its field of view)."""
    pts = [
        np.array([i, j, k]) - 0.5
        for i in (0, shape[0])
        for j in (0, shape[1])
        for k in (0, shape[2])
    ]
    return np.array([(aff @ [*p, 1])[:3] for p in pts])


def tiny_train_args(data: Path) -> list[str]:
    """`wavesr train` options for a one-step tiny run on `data`."""
    return ["--config", "tiny", "--data", str(data), "--quiet", "--max-steps", "1"]


def dicom_dataset(
    pixels: np.ndarray,
    *,
    name: str = "slice.dcm",
    ipp=None,
    iop=AXIAL_IOP,
    spacing=(1.0, 1.0),
    instance: int | None = None,
    slope: float | None = None,
    intercept: float | None = None,
    series: str | None = None,
    pixel_data: bool = True,
    transfer_syntax: UID = ImplicitVRLittleEndian,
) -> FileDataset:
    """A 16-bit MR DICOM slice; geometry tags only when `ipp` is given."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if series is not None:
        ds.SeriesInstanceUID = series
    ds.Modality = "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if ipp is not None:
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = list(spacing)
    if instance is not None:
        ds.InstanceNumber = instance
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if pixel_data:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def write_dicom(path: Path, pixels: np.ndarray, **tags) -> Path:
    """Write `dicom_dataset(pixels, **tags)` to `path`."""
    dicom_dataset(pixels, name=str(path), **tags).save_as(str(path), enforce_file_format=True)
    return path


def dicom_bytes(pixels: np.ndarray, **tags) -> bytes:
    """The bytes of `dicom_dataset(pixels, **tags)` as a DICOM file."""
    buf = io.BytesIO()
    dicom_dataset(pixels, **tags).save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def promise_huge_tensor(path: Path) -> None:
    """Rewrite a safetensors header: its first tensor promises 100000 x 100000 float32 (40 GB)."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    name = next(k for k in header if k != "__metadata__")
    begin = header[name]["data_offsets"][0]
    header[name] = {
        "dtype": "F32",
        "shape": [100000, 100000],
        "data_offsets": [begin, begin + 4 * 10**10],
    }
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length :])
