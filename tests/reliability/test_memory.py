"""Bounded memory: `wavesr sr` streams a volume through the model in batches, and refuses what
would not fit before allocating it.

Two real `wavesr sr` processes on 64x64x40 and 64x64x160 NIfTI volumes (x4, the tiny model):
the extra peak RSS of the long one may be the larger float32 output array (1x, it is the
result), a few copies of the larger input and a fixed allowance for allocator noise, but not
activations for all slices at once (that would be hundreds of MB more, see docs/reliability.md).

Refusals (a bundle config that disagrees with its weights, a weights header or an input header
promising huge arrays, a config describing a network too large to build): each real process
exits with 2 and one line, peaking at most REFUSAL_ALLOWANCE_MIB above a process that loads the
same model and fails on a missing input. Each case would otherwise allocate GBs.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import promise_huge_tensor

SCALE = 4
INPUT_COPIES = 10  # raw, moved, normalised, clipped, denormalised, ... copies of the input
ALLOWANCE_MIB = 96  # allocator slack; one batch-16 pass of intermediates alone is ~300 MiB
REFUSAL_ALLOWANCE_MIB = 200

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")


def _volume(path: Path, slices: int) -> Path:
    rng = np.random.default_rng(slices)
    data = (rng.random((64, 64, slices)) * 1000).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _run(argv: list[str], log: Path) -> tuple[int, float]:
    """Run `wavesr ARGV` in a child process: exit code, its own peak RSS (os.wait4) in MiB."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wavesr.cli.main", *argv],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


def _peak_rss_mib(argv: list[str], log: Path) -> float:
    code, peak = _run(argv, log)
    assert code == 0, log.read_text()
    return peak


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


def test_sr_samples_memory_does_not_grow_with_samples(tiny_model, tmp_path):
    """`--samples 8` keeps running sums, not 8 outputs: its peak RSS stays within 1.3x of one
    sample's on the same 64x64x16 volume (a full batch of 16 slices per model call in both)."""
    src = _volume(tmp_path / "v.nii.gz", 16)
    peaks = {}
    for n in (1, 8):
        out = tmp_path / f"sr{n}.nii.gz"
        argv = ["sr", str(src), "-o", str(out), "--model", str(tiny_model), "--steps", "1"]
        argv += ["--batch", "16", "--samples", str(n), "--quiet"]
        peaks[n] = _peak_rss_mib(argv, tmp_path / f"log{n}.txt")
    assert (tmp_path / "sr8_std.nii.gz").is_file()
    assert peaks[8] <= 1.3 * peaks[1], f"peak RSS {peaks} MiB"


def _edited_bundle(source: Path, dst: Path, edit) -> Path:
    model = Path(shutil.copytree(source, dst))
    manifest = json.loads((model / "wavesr.json").read_text())
    edit(manifest, model)
    (model / "wavesr.json").write_text(json.dumps(manifest))
    return model


def _wide_ldt(manifest: dict, root: Path) -> None:
    manifest["config"]["ldt"]["hidden_size"] = 4096  # built as configured: 2.6 GiB of weights


def _huge_tensor(manifest: dict, root: Path) -> None:
    from wavesr.bundle.folder import sha256_of

    path = root / "ldt.safetensors"
    promise_huge_tensor(path)
    manifest["files"]["ldt"]["sha256"] = sha256_of(path)


def _promising_gz(path: Path, shape: tuple[int, ...]) -> Path:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    return path


def test_refusals_allocate_little(tiny_model, tmp_path):
    src = _volume(tmp_path / "scan.nii.gz", 6)
    (out := tmp_path / "out").mkdir()

    def sr(source: Path, model: Path = tiny_model) -> list[str]:
        return ["sr", str(source), "-o", str(out / "sr.nii.gz"), "--model", str(model), "--quiet"]

    cases = {
        "config-vs-weights": sr(src, _edited_bundle(tiny_model, tmp_path / "wide", _wide_ldt)),
        "huge-tensor-header": sr(src, _edited_bundle(tiny_model, tmp_path / "big", _huge_tensor)),
        "nifti-1200-cubed": sr(_promising_gz(tmp_path / "cube.nii.gz", (1200, 1200, 1200))),
        "gz-overpromise": sr(_promising_gz(tmp_path / "liar.nii.gz", (512, 512, 1000))),
        "network-too-large": ["train", "ldt", "--config", "tiny", "--data", str(tmp_path)]
        + ["--autoencoder", str(tiny_model.parent / "ae"), "--out", str(out / "run")]
        + ["--set", "ldt.hidden_size=4096", "--set", "ldt.depth=128"],
    }
    code, base = _run(sr(tmp_path / "missing.nii.gz"), tmp_path / "base.log")
    assert code == 2, (tmp_path / "base.log").read_text()
    for name, argv in cases.items():
        log = tmp_path / f"{name}.log"
        code, peak = _run(argv, log)
        lines = log.read_text().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("wavesr: error: "), lines
        assert peak <= base + REFUSAL_ALLOWANCE_MIB, f"{name}: {peak:.0f} MiB vs {base:.0f} MiB"
        assert list(out.iterdir()) == [], name
