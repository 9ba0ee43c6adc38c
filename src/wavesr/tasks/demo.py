"""`wavesr demo`: super-resolve a real MRI sample that ships inside a PyPI package, on CPU.

The sample is the MNI152 2009 T1 template inside `nilearn` (the `demo` extra): real MRI
(an average of 152 T1 scans at 1 mm), no download at run time and nothing from ../shared. A
contiguous slab of central axial slices is degraded (bicubic x4), super-resolved with the default
model, and compared with bicubic against the original.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from wavesr.data.load import load_slices
from wavesr.data.prepare import crop_to_multiple
from wavesr.data.write import stack_to_volume, write_nifti
from wavesr.errors import ConfigError
from wavesr.evaluation.metrics import band_psnr, psnr, ssim
from wavesr.io_atomic import atomic_write
from wavesr.model.degrade import Degradation, degrade
from wavesr.report.figures import comparison_figure

SAMPLE_NAME = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


BICUBIC_CONSISTENCY_STEPS = 10


def demo_sample_path() -> Path:
    """The MNI152 T1 template file shipped inside nilearn."""
    try:
        import nilearn
    except ImportError as exc:
        raise ConfigError(
            "the demo sample ships with nilearn: pip install 'wavesr[demo]' (or `make demo`)"
        ) from exc
    path = Path(nilearn.__file__).parent / "datasets" / "data" / SAMPLE_NAME
    if not path.is_file():
        raise ConfigError(f"nilearn is installed but its MNI152 template is missing: {path}")
    return path


def _central_slab(indices: list[int], n: int) -> list[int]:
    """Positions (into the kept-slice list) of n contiguous slices around the middle."""
    n = min(n, len(indices))
    start = max(0, len(indices) // 2 - n // 2 + len(indices) // 10)  # a little above centre
    start = min(start, len(indices) - n)
    return list(range(start, start + n))


def _slab_affine(affine: np.ndarray, slice_axis: int, first_slice: int, crop_offsets) -> np.ndarray:
    """Affine of the cropped slab: shift the origin by the removed voxels on every axis."""
    shift = np.zeros(3)
    shift[slice_axis] = first_slice
    in_plane = [a for a in range(3) if a != slice_axis]
    for axis, offset in zip(in_plane, crop_offsets):
        shift[axis] = offset
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ shift + affine[:3, 3]
    return out


def _summarise(outputs: np.ndarray, hr: np.ndarray, seconds: float) -> dict:
    per = [(psnr(o, h), ssim(o, h), band_psnr(o, h)) for o, h in zip(outputs, hr)]
    bands = np.array([p[2] for p in per], dtype=np.float64)
    return {
        "psnr": float(np.mean([p[0] for p in per])),
        "ssim": float(np.mean([p[1] for p in per])),
        "band_psnr": [float(v) for v in bands.mean(axis=0)],
        "seconds_per_slice": seconds / len(outputs),
    }


def run_demo(
    out: Path,
    *,
    model: Path | None = None,
    steps: int = 50,
    n_slices: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    from wavesr.bundle.folder import load_pipeline
    from wavesr.weights import default_model_dir

    started = time.monotonic()
    model_dir = Path(model) if model else default_model_dir()
    pipeline = load_pipeline(model_dir)
    scale = pipeline.scale
    sample = demo_sample_path()
    stack = load_slices(sample, axis="axial")
    positions = _central_slab(stack.indices, n_slices)
    raw = stack.slices[positions]
    hr_np = np.stack([crop_to_multiple(s, scale) for s in raw])
    offsets = ((raw.shape[1] - hr_np.shape[1]) // 2, (raw.shape[2] - hr_np.shape[2]) // 2)
    hr = torch.from_numpy(hr_np)[:, None]
    bicubic = Degradation("bicubic", scale)
    lr, lr_up = degrade(hr, bicubic, seed=seed)

    # The model is told how its LR was made and back-projects onto it, as `wavesr sr
    # --degradation bicubic --consistency-steps 10` does (the setting the model card chose).
    t0 = time.monotonic()
    sr = pipeline.super_resolve(
        lr,
        bicubic,
        steps=steps,
        seed=seed,
        consistency_steps=BICUBIC_CONSISTENCY_STEPS,
        progress=progress,
    )
    sr_seconds = time.monotonic() - t0
    sr_np, bicubic_np = sr[:, 0].numpy(), lr_up[:, 0].numpy()

    out.mkdir(parents=True, exist_ok=True)
    middle = len(sr_np) // 2
    lr_display = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="nearest")
    comparison_figure(
        [
            (f"LR (x{scale}, nearest)", lr_display[middle, 0].numpy()),
            ("bicubic", bicubic_np[middle]),
            (f"WaveSR ({steps} steps)", sr_np[middle]),
            ("ground truth", hr_np[middle]),
        ],
        hr_np[middle],
        f"WaveSR ({steps} steps)",
        out / "comparison.png",
        title=f"MNI152 T1 (nilearn), axial slice {stack.indices[positions[middle]]}, x{scale}",
    )
    affine = _slab_affine(stack.affine, stack.slice_axis, stack.indices[positions[0]], offsets)
    write_nifti(stack_to_volume(sr_np, stack.slice_axis), affine, out / "sr.nii.gz", overwrite=True)
    write_nifti(stack_to_volume(hr_np, stack.slice_axis), affine, out / "hr.nii.gz", overwrite=True)
    write_nifti(
        stack_to_volume(bicubic_np, stack.slice_axis),
        affine,
        out / "bicubic.nii.gz",
        overwrite=True,
    )
    metrics = {
        "sample": f"nilearn/{SAMPLE_NAME}",
        "model": str(model_dir),
        "scale": scale,
        "degradation": f"bicubic-x{scale}",
        "steps": steps,
        "seed": seed,
        "slices": [int(stack.indices[p]) for p in positions],
        "normalization": "per-slice min-max to [0, 1], data_range 1.0",
        "methods": {
            "bicubic": _summarise(bicubic_np, hr_np, 0.0),
            "wavesr": _summarise(sr_np, hr_np, sr_seconds),
        },
        "total_seconds": time.monotonic() - started,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    }
    text = json.dumps(metrics, indent=2)
    atomic_write(out / "metrics.json", lambda tmp: tmp.write_text(text), overwrite=True)
    return metrics
