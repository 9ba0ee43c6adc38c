"""Fuzzing every reader: random bytes and randomly damaged valid files.

`load_slices` on a file with suffix .nii, .nii.gz, .dcm, .h5, .png, .jpg or .npy may only
return a SliceStack or raise InputError; any other exception (or a crash) is a bug. The same for
model weights: `read_header` on random safetensors headers and `load_bundle` on a bundle with
random config edits, swapped manifest entries and cut weights files may only succeed or raise
CheckpointError naming the file or bundle.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import shutil
import tempfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from helpers import dicom_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian

from wavesr.bundle.folder import Bundle, load_bundle, save_bundle, sha256_of
from wavesr.bundle.safetensors_header import DTYPE_BITS, TensorInfo, read_header
from wavesr.config import load_config
from wavesr.data import load_slices
from wavesr.data.types import SliceStack
from wavesr.errors import CheckpointError, InputError
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.transformer import LatentDiffusionTransformer

SUFFIXES = (".nii", ".nii.gz", ".dcm", ".h5", ".png", ".jpg", ".npy")
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _image(h: int = 16, w: int = 16) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return (np.exp(-((x - w / 2) ** 2 + (y - h / 2) ** 2) / 40.0) * 200 + 20).astype(np.uint8)


def _valid_bytes(suffix: str) -> bytes:
    """A small valid file of each format (uncompressed bytes for .nii.gz: gzipped later)."""
    vol = np.stack([_image()] * 3, axis=-1).astype(np.float32)
    if suffix in (".nii", ".nii.gz"):
        img = nib.Nifti1Image(vol, np.diag([1.0, 1.0, 2.0, 1.0]))
        return img.to_bytes()
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, vol.transpose(2, 0, 1))
        return buf.getvalue()
    if suffix in (".png", ".jpg"):
        buf = io.BytesIO()
        Image.fromarray(_image()).save(buf, format="PNG" if suffix == ".png" else "JPEG")
        return buf.getvalue()
    if suffix == ".h5":
        buf = io.BytesIO()
        with h5py.File(buf, "w") as fh:
            fh.create_dataset("reconstruction_rss", data=vol.transpose(2, 0, 1))
        return buf.getvalue()
    return dicom_bytes(
        _image(),
        name="fuzz.dcm",
        slope=2.0,
        intercept=-5.0,
        transfer_syntax=ExplicitVRLittleEndian,
    )


VALID = {suffix: _valid_bytes(suffix) for suffix in SUFFIXES}
# Where each format keeps its header: mutations aim there half of the time.
HEADER_BYTES = {
    ".nii": 352,
    ".nii.gz": 352,
    ".dcm": 600,
    ".h5": 1024,
    ".png": 64,
    ".jpg": 200,
    ".npy": 128,
}


@st.composite
def damaged(draw, suffix: str) -> bytes:
    """A valid file with random byte patches (mostly in the header), maybe truncated."""
    raw = bytearray(VALID[suffix])
    header = min(HEADER_BYTES[suffix], len(raw))
    for _ in range(draw(st.integers(1, 8))):
        limit = header if draw(st.booleans()) else len(raw)
        at = draw(st.integers(0, limit - 1))
        patch = draw(st.binary(min_size=1, max_size=8))
        raw[at : at + len(patch)] = patch
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


@st.composite
def npy_header(draw) -> bytes:
    """A .npy file whose header dict has random shape / dtype / order and random data."""
    dtype = draw(st.sampled_from(["<f4", "<f8", "<i2", "|u1", "|b1", "<c8", "|O", "<U3", "<M8"]))
    shape = tuple(draw(st.lists(st.integers(-2, 70000), max_size=5)))
    order = draw(st.booleans())
    header = f"{{'descr': '{dtype}', 'fortran_order': {order}, 'shape': {shape!r}, }}"
    header = header.ljust(118) + "\n"
    data = draw(st.binary(max_size=4096))
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + data


@st.composite
def nifti_header(draw) -> bytes:
    """A NIfTI-1 file whose header fields (dims, datatype, voxel sizes, scaling) are random."""
    shape = tuple(draw(st.lists(st.integers(1, 20), min_size=1, max_size=5)))
    dtype = draw(st.sampled_from([np.uint8, np.int16, np.float32, np.float64, np.complex64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = (rng.random(shape) * 300).astype(dtype)
    img = nib.Nifti1Image(data, np.eye(4))
    hdr = img.header
    finite = st.floats(-1e6, 1e6, allow_nan=False)
    any_float = st.floats(allow_nan=True, allow_infinity=True, width=32)
    hdr["pixdim"][1:4] = [draw(st.one_of(finite, any_float)) for _ in range(3)]
    hdr["scl_slope"] = draw(st.one_of(st.just(np.nan), any_float))
    hdr["scl_inter"] = draw(any_float)
    raw = bytearray(img.to_bytes())
    if draw(st.booleans()):  # lie about the dimensions
        dims = draw(st.lists(st.integers(-5, 2**15 - 1), min_size=8, max_size=8))
        raw[40:56] = np.asarray(dims, dtype="<i2").tobytes()
    if draw(st.booleans()):  # and/or about the datatype
        raw[70:72] = np.asarray([draw(st.integers(-1, 2400))], dtype="<i2").tobytes()
    return bytes(raw)


def _outcome(suffix: str, payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(gzip.compress(payload) if suffix == ".nii.gz" else payload)
        try:
            result = load_slices(path, skip_empty=False)
        except InputError as exc:
            assert str(path) in str(exc)  # the message names the file
            return
    assert isinstance(result, SliceStack)
    assert result.slices.ndim == 3 and result.slices.dtype == np.float32
    assert np.isfinite(result.slices).all()
    assert result.slices.min() >= 0.0 and result.slices.max() <= 1.0


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_valid_seed_files_load(suffix):
    """The fuzzers start from files that do load (otherwise they would test nothing)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"ok{suffix}"
        raw = VALID[suffix]
        path.write_bytes(gzip.compress(raw) if suffix == ".nii.gz" else raw)
        stack = load_slices(path, skip_empty=False)
    assert stack.slices.shape[1:] == (16, 16)


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(data=st.data())
def test_random_bytes(suffix, data):
    payload = data.draw(st.one_of(st.binary(max_size=2048), damaged(suffix)))
    _outcome(suffix, payload)


@FUZZ
@given(payload=npy_header())
def test_random_npy_headers(payload):
    _outcome(".npy", payload)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@FUZZ
@given(payload=nifti_header())
def test_random_nifti_headers(suffix, payload):
    _outcome(suffix, payload)


# ----------------------------------------------------------------------------- model weights


@st.composite
def safetensors_file(draw) -> bytes:
    """A safetensors file whose header has random dtypes, shapes (up to huge), offsets and a
    header length that may lie; the data is short random bytes."""
    header = {}
    for i in range(draw(st.integers(0, 4))):
        shape = draw(st.lists(st.integers(-1, 10**12), max_size=4))
        begin = draw(st.integers(-1, 64))
        end = draw(st.one_of(st.integers(-1, 256), st.integers(0, 10**15)))
        dtype = draw(st.sampled_from([*DTYPE_BITS, "F128", 3]))
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
        if draw(st.booleans()):  # a consistent entry: the right byte count
            size = (DTYPE_BITS.get(dtype, 8) * int(np.prod(shape or [1])) + 7) // 8
            header[f"t{i}"]["data_offsets"] = [0, abs(size)]
    text = json.dumps(header).encode()
    length = draw(st.one_of(st.just(len(text)), st.integers(0, 2**64 - 1)))
    data = draw(st.binary(max_size=256))
    return length.to_bytes(8, "little") + text + data


def _header_outcome(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        path.write_bytes(payload)
        try:
            header = read_header(path)
        except CheckpointError as exc:
            assert str(exc).startswith(f"{path}: not a readable safetensors file (")
            return
    assert all(isinstance(info, TensorInfo) for info in header.values())


@FUZZ
@given(payload=st.one_of(safetensors_file(), st.binary(max_size=512)))
def test_random_safetensors_headers(payload):
    _header_outcome(payload)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    """A tiny WaveSR bundle (random weights: only shapes matter here)."""
    config = load_config("tiny")
    networks = {
        "autoencoder": FrequencyAutoencoder(config.autoencoder).state_dict(),
        "ldt": LatentDiffusionTransformer(config.ldt).state_dict(),
    }
    root = tmp_path_factory.mktemp("fuzz_bundle") / "model"
    save_bundle(root, "wavesr", config, networks)
    return root


def _fields(section: str) -> list[str]:
    config = load_config("tiny")
    return [f.name for f in dataclasses.fields(getattr(config, section))]


CONFIG_VALUES = st.one_of(
    st.integers(-2, 40),
    st.sampled_from([10**6, 2**40, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.lists(st.integers(0, 9), max_size=6),
)


@st.composite
def bundle_damage(draw) -> list[tuple]:
    """A list of edits: a config field set to a random value, a manifest entry pointed at the
    other weights file, a weights file cut short (its SHA-256 updated)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["config", "config", "swap", "cut"]))
        if kind == "config":
            section = draw(st.sampled_from(["autoencoder", "ldt", "diffusion", "data"]))
            edits.append(
                ("config", section, draw(st.sampled_from(_fields(section))), draw(CONFIG_VALUES))
            )
        elif kind == "swap":
            edits.append(("swap", draw(st.sampled_from(["autoencoder", "ldt"]))))
        else:
            edits.append(
                ("cut", draw(st.sampled_from(["autoencoder", "ldt"])), draw(st.integers(0, 4000)))
            )
    return edits


def _damage(root: Path, edits: list[tuple]) -> None:
    manifest = json.loads((root / "wavesr.json").read_text())
    for edit in edits:
        if edit[0] == "config":
            manifest["config"][edit[1]][edit[2]] = edit[3]
        elif edit[0] == "swap":
            other = "ldt" if edit[1] == "autoencoder" else "autoencoder"
            manifest["files"][edit[1]] = dict(manifest["files"][other])
        else:
            path = root / manifest["files"][edit[1]]["file"]
            path.write_bytes(path.read_bytes()[: edit[2]])
            manifest["files"][edit[1]]["sha256"] = sha256_of(path)
    (root / "wavesr.json").write_text(json.dumps(manifest))


@FUZZ
@given(edits=bundle_damage())
def test_random_bundle_damage(tiny_bundle, edits):
    """Mismatched or absurd configs, swapped entries, cut headers: a Bundle or one
    CheckpointError naming the bundle (or a file in it), nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(shutil.copytree(tiny_bundle, Path(tmp) / "model"))
        _damage(root, edits)
        try:
            bundle = load_bundle(root)
        except CheckpointError as exc:
            assert str(exc).startswith(str(root)) and "\n" not in str(exc)
            return
    assert isinstance(bundle, Bundle)
