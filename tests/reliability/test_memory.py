"""Bounded memory: `wavesr sr` streams a volume through the model in batches.

Two real `wavesr sr` processes on 64x64x40 and 64x64x160 NIfTI volumes (x4, the tiny model):
the extra peak RSS of the long one may be the larger float32 output array (1x, it is the
result), a few copies of the larger input and a fixed allowance for allocator noise, but not
activations for all slices at once (that would be hundreds of MB more, see docs/reliability.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SCALE = 4
INPUT_COPIES = 10  # raw, moved, normalised, clipped, denormalised, ... copies of the input
ALLOWANCE_MIB = 96  # allocator slack; one batch-16 pass of intermediates alone is ~300 MiB

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")


def _volume(path: Path, slices: int) -> Path:
    rng = np.random.default_rng(slices)
    data = (rng.random((64, 64, slices)) * 1000).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _peak_rss_mib(argv: list[str], log: Path) -> float:
    """Run `wavesr ARGV` in a child process; its own peak RSS (os.wait4) in MiB."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wavesr.cli", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, log.read_text()
    return usage.ru_maxrss / 1024


def test_sr_peak_memory_does_not_scale_with_slices(tiny_model, tmp_path):
    peaks, sizes = {}, {}
    for n in (40, 160):
        src = _volume(tmp_path / f"v{n}.nii.gz", n)
        out = tmp_path / f"sr{n}.nii.gz"
        argv = [
            "sr",
            str(src),
            "-o",
            str(out),
            "--model",
            str(tiny_model),
            "--steps",
            "1",
            "--batch",
            "16",
            "--quiet",
        ]
        peaks[n] = _peak_rss_mib(argv, tmp_path / f"log{n}.txt")
        assert nib.load(str(out)).shape == (64 * SCALE, 64 * SCALE, n)
        sizes[n] = (64 * 64 * n * 4 / 2**20, (64 * SCALE) ** 2 * n * 4 / 2**20)  # in, out MiB
    extra_input = sizes[160][0] - sizes[40][0]
    extra_output = sizes[160][1] - sizes[40][1]  # 30 MiB
    bound = extra_output + INPUT_COPIES * extra_input + ALLOWANCE_MIB
    growth = peaks[160] - peaks[40]
    assert growth <= bound, f"peak RSS {peaks} grew {growth:.0f} MiB > bound {bound:.0f} MiB"
