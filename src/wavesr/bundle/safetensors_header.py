"""The header of a safetensors file (tensor names, dtypes, shapes), read without the data.

The format: an 8-byte little-endian header length N, then N bytes of JSON
``{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}``,
then the tensor data. Every entry is checked against the file (its byte count against its shape
and dtype, its data inside the file), so that a header cannot promise more than the file holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from wavesr.bundle.checkpoint_io import PICKLE_SUFFIXES, load_tensors
from wavesr.errors import CheckpointError

# A header lists names and shapes (~100 bytes a tensor): 16 MiB is ~100k tensors. The library
# itself allows 100 MB; parsing that much JSON into Python objects would take gigabytes.
MAX_HEADER_BYTES = 16 * 2**20
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Name -> dtype and shape of every tensor in ``path``; CheckpointError if the header is
    damaged, truncated or promises data the file does not hold. Pickle files are refused."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        load_tensors(path)  # raises: pickle checkpoints are refused, with the reason
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _unreadable(f"{size} bytes, shorter than the 8-byte header length", path)
        length = int.from_bytes(prefix, "little")
        if length > size - 8:
            raise _unreadable(
                f"the header length says {length} bytes, the file holds {size - 8} after it: "
                "truncated, or not safetensors",
                path,
            )
        if length > MAX_HEADER_BYTES:
            raise _unreadable(f"header of {length} bytes, above the {MAX_HEADER_BYTES} limit", path)
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unreadable(f"the header is not JSON: {exc}", path) from exc
    if not isinstance(header, dict):
        raise _unreadable("the header is not a JSON object", path)
    data_bytes = size - 8 - length
    return {
        name: _entry(name, entry, data_bytes, path)
        for name, entry in header.items()
        if name != "__metadata__"
    }


def _entry(name: str, entry: object, data_bytes: int, path: Path) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _unreadable(f"tensor {name!r}: entry is not an object", path)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise _unreadable(f"tensor {name!r}: unknown dtype {dtype!r}", path)
    if not isinstance(shape, list) or not all(_count(n) for n in shape):
        raise _unreadable(f"tensor {name!r}: shape {shape!r} is not a list of sizes", path)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_count, offsets))):
        raise _unreadable(f"tensor {name!r}: data_offsets {offsets!r} are not [begin, end]", path)
    begin, end = offsets
    needed = math.ceil(math.prod(shape) * DTYPE_BITS[dtype] / 8)
    if end > data_bytes:
        raise _unreadable(
            f"tensor {name!r} of shape {tuple(shape)} ends at byte {end} of the data, "
            f"the file holds {data_bytes}: truncated, or the header promises too much",
            path,
        )
    if end - begin != needed:
        raise _unreadable(
            f"tensor {name!r}: shape {tuple(shape)} of {dtype} needs {needed} bytes, "
            f"data_offsets span {end - begin}",
            path,
        )
    return TensorInfo(dtype, tuple(shape))


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _unreadable(why: str, path: Path) -> CheckpointError:
    return CheckpointError(f"not a readable safetensors file ({why})", path)
