"""2-D image files (PNG, JPEG, TIFF) and folders of them, read as grey slices.

RGB is converted to luminance (ITU-R 601 weights), an alpha channel is dropped, and 16-bit
and float images keep their values. TIFF goes through tifffile, so multi-page TIFFs give
several slices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wavesr.data.dicom import natural_key
from wavesr.data.types import check_finite, check_voxel_count, reason, require_file
from wavesr.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, naturally sorted."""
    found = (p for p in folder.iterdir() if is_image_file(p) and p.is_file())
    return sorted(found, key=lambda p: natural_key(p.name))


def read_image(path: Path) -> np.ndarray:
    """Return one image file as an (N, H, W) float32 stack (N > 1 only for multi-page TIFF)."""
    require_file(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        data = _read_tiff(path)
    else:
        data = _read_pil(path)[None]
    check_finite(data, path)
    return data


def read_image_folder(folder: Path) -> tuple[np.ndarray, list[str]]:
    """Stack every image in `folder` (natural order); all must share one size."""
    files = image_files(folder)
    if not files:
        raise InputError("folder holds no image files", folder)
    slices, names = [], []
    for file in files:
        stack = read_image(file)
        if slices and stack.shape[1:] != slices[0].shape:
            first = slices[0].shape
            raise InputError(
                f"images differ in size: {names[0]} is {first[0]}x{first[1]}, "
                f"{file.name} is {stack.shape[1]}x{stack.shape[2]}",
                folder,
            )
        slices.extend(stack)
        names.extend(
            [file.name] if len(stack) == 1 else [f"{file.name}:{i}" for i in range(len(stack))]
        )
    return np.stack(slices).astype(np.float32, copy=False), names


def _to_grey(arr: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W): C=2 grey+alpha, C=3 RGB, C=4 RGBA (alpha dropped)."""
    channels = arr.shape[-1]
    if channels in (1, 2):
        return arr[..., 0].astype(np.float32)
    if channels in (3, 4):
        return (arr[..., :3].astype(np.float64) @ _LUMA).astype(np.float32)
    raise ValueError(f"{channels} channels")


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            check_voxel_count((height, width, len(img.getbands())), path)
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode in ("CMYK", "YCbCr", "HSV", "LAB", "RGBX", "RGBa", "La", "PA"):
                img = img.convert("RGB")
            arr = np.asarray(img)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"not a readable image file ({reason(exc)})", path) from exc
    if arr.ndim == 3:
        arr = _to_grey(arr)
    if arr.ndim != 2:
        raise InputError(f"unexpected image array shape {arr.shape}", path)
    return arr.astype(np.float32)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            check_voxel_count(series.shape, path)
            axes = series.axes
            arr = series.asarray()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"not a readable TIFF file ({reason(exc)})", path) from exc
    keep = [i for i, (a, n) in enumerate(zip(axes, arr.shape)) if n != 1 or a in "YX"]
    arr = arr.reshape([arr.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "")
        try:
            arr = _to_grey(arr)
        except ValueError as exc:
            raise InputError(f"unsupported TIFF with {exc}", path) from exc
    if axes == "YX":
        arr = arr[None]
    elif not (len(axes) == 3 and axes.endswith("YX")):
        raise InputError(f"unsupported TIFF layout {axes} {arr.shape}", path)
    if np.iscomplexobj(arr):
        raise InputError("complex TIFF data is not supported", path)
    return arr.astype(np.float32)
