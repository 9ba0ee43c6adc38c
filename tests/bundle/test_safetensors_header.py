"""Safetensors headers read without the data: shapes as the library sees them, damage refused."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from wavesr.bundle import safetensors_header
from wavesr.bundle.safetensors_header import TensorInfo, read_header
from wavesr.errors import CheckpointError


def _raw(path, header, data: bytes = b"", length: int | None = None):
    """A file in the safetensors layout: length, header (a dict as JSON, or bytes), data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def test_shapes_and_dtypes_match_the_library(tmp_path):
    tensors = {
        "w": torch.zeros(3, 4),
        "half": torch.zeros(2, 5, dtype=torch.bfloat16),
        "steps": torch.arange(7),
        "mask": torch.ones(2, dtype=torch.bool),
        "scalar": torch.tensor(1.5, dtype=torch.float64),
        "empty": torch.zeros(0, 3),
    }
    save_file(tensors, path := tmp_path / "w.safetensors", metadata={"note": "x"})
    header = read_header(path)
    with safe_open(str(path), "pt") as handle:
        assert set(header) == set(handle.keys())
        for name in handle.keys():
            assert header[name].shape == tuple(handle.get_slice(name).get_shape())
    assert header["half"] == TensorInfo("BF16", (2, 5))
    assert header["scalar"] == TensorInfo("F64", ())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "0 bytes, shorter than the 8-byte header length"),
        (lambda p: p.write_bytes(b"\x10\x00\x00"), "shorter than the 8-byte header length"),
        (lambda p: _raw(p, b"{}", length=2**60), "the header length says 1152921504606846976"),
        (lambda p: _raw(p, b'{"w": {"dtype"'), "the header is not JSON"),
        (lambda p: _raw(p, b"\xff\xfe{}"), "the header is not JSON"),
        (lambda p: _raw(p, [1, 2]), "the header is not a JSON object"),
        (lambda p: _raw(p, {"w": 3}), "tensor 'w': entry is not an object"),
        (
            lambda p: _raw(p, {"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}),
            "unknown dtype 'F128'",
        ),
        (
            lambda p: _raw(p, {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}),
            r"shape \[-1\] is not a list of sizes",
        ),
        (
            lambda p: _raw(p, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}),
            r"data_offsets \[0\] are not \[begin, end\]",
        ),
        (
            # A header promising a 400 GB tensor whose offsets say 4 bytes.
            lambda p: _raw(
                p,
                {"w": {"dtype": "F32", "shape": [100000, 1000000], "data_offsets": [0, 4]}},
                b"\0" * 4,
            ),
            r"shape \(100000, 1000000\) of F32 needs 400000000000 bytes, data_offsets span 4",
        ),
        (
            # ... and one whose offsets agree with the shape, past the end of the file.
            lambda p: _raw(
                p, {"w": {"dtype": "F16", "shape": [10**6, 10**5], "data_offsets": [0, 2 * 10**11]}}
            ),
            r"ends at byte 200000000000 of the data, the file holds 0",
        ),
    ],
)
def test_damaged_headers_are_one_clear_error(tmp_path, make, message):
    make(path := tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match=message) as info:
        read_header(path)
    assert str(info.value).startswith(f"{path}: not a readable safetensors file (")


def test_truncated_file(tmp_path):
    save_file({"w": torch.zeros(64, 64)}, full := tmp_path / "full.safetensors")
    raw = full.read_bytes()
    for cut in (20, len(raw) - 100):
        (path := tmp_path / f"cut{cut}.safetensors").write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            read_header(path)


def test_header_size_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(safetensors_header, "MAX_HEADER_BYTES", 64)
    header = {f"t{i}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(9)}
    path = _raw(tmp_path / "w.safetensors", header, b"\0" * 9)
    with pytest.raises(CheckpointError, match="above the 64 limit"):
        read_header(path)


def test_pickles_are_refused_unopened(tmp_path):
    torch.save({"w": torch.zeros(2)}, path := tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="refusing a pickle checkpoint"):
        read_header(path)


def test_the_data_is_not_read(tmp_path):
    """A 1 GiB tensor (a sparse file): the header alone is read."""
    header = {"w": {"dtype": "F32", "shape": [2**28], "data_offsets": [0, 2**30]}}
    path = _raw(tmp_path / "big.safetensors", header)
    os.truncate(path, path.stat().st_size + 2**30)
    tracemalloc.start()
    try:
        assert read_header(path) == {"w": TensorInfo("F32", (2**28,))}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
