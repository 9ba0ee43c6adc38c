"""Bad-input corpus: every case gets one stderr line naming the file, exit code 2, no output.

Each input case is built in tmp_path by the test itself and run through `wavesr sr`,
`wavesr evaluate` and `wavesr train`; option cases run through the command they belong to.
Odd-but-valid inputs (16-bit / RGBA / paletted PNG, RGB JPEG, anisotropic voxels, ...) must
succeed. `python tests/reliability/test_bad_inputs.py` prints the table of docs/reliability.md.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import dicom_dataset, promise_huge_tensor, write_dicom
from PIL import Image
from pydicom.uid import generate_uid

from wavesr.cli.main import main

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])


# ----------------------------------------------------------------------------- makers


def volume(shape=(16, 16, 6), seed: int = 0) -> np.ndarray:
    """A float32 volume with a bright smooth blob in every axial slice (not near-empty)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    blob = np.exp(-((x - shape[1] / 2) ** 2 + (y - shape[0] / 2) ** 2) / (0.3 * shape[0]) ** 2)
    vol = blob[..., None] * 1000.0 + rng.random(shape, dtype=np.float32) * 50.0
    return vol.astype(np.float32)


def nii(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE, **header) -> Path:
    img = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        img.header[key] = value
    nib.save(img, str(path))
    return path


def patch_bytes(path: Path, offset: int, data: bytes) -> Path:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))
    return path


def dcm(path: Path, pixels: np.ndarray, *, series: str, z: float = 0.0, pixel_data=True) -> Path:
    return write_dicom(path, pixels, series=series, ipp=(0.0, 0.0, z), pixel_data=pixel_data)


def png_bytes(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format=fmt)
    return buf.getvalue()


def slice8(h: int = 16, w: int = 16) -> np.ndarray:
    return (volume((h, w, 1))[..., 0] / 1050 * 255).astype(np.uint8)


def _empty(d: Path) -> Path:
    (p := d / "empty.nii.gz").write_bytes(b"")
    return p


def _truncated_gz(d: Path) -> Path:
    full = nii(d / "full.nii.gz", volume((32, 32, 8)))
    raw = full.read_bytes()
    full.unlink()
    (p := d / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    return p


def _truncated_nii(d: Path) -> Path:
    full = nii(d / "full.nii", volume())
    raw = full.read_bytes()
    full.unlink()
    (p := d / "truncated.nii").write_bytes(raw[: 352 + 100])
    return p


def _bad_magic(d: Path) -> Path:
    return patch_bytes(nii(d / "magic.nii", volume()), 344, b"XXXX")


def _text_nii(d: Path) -> Path:
    (p := d / "notes.nii").write_text("this is not a NIfTI file\n" * 40)
    return p


def _nan(d: Path) -> Path:
    vol = volume()
    vol[3, 3, 2] = np.nan
    return nii(d / "nan.nii.gz", vol)


def _inf(d: Path) -> Path:
    vol = volume()
    vol[1, 2, 3] = np.inf
    return nii(d / "inf.nii.gz", vol)


def _one_d(d: Path) -> Path:
    return nii(d / "line.nii.gz", np.linspace(0, 1, 50, dtype=np.float32))


def _four_d(d: Path) -> Path:
    return nii(d / "fmri.nii.gz", np.stack([volume(), volume(seed=1)], axis=-1))


def _one_by_one(d: Path) -> Path:
    return nii(d / "dot.nii.gz", np.arange(1, 11, dtype=np.float32).reshape(1, 1, 10))


def _huge_header(d: Path) -> Path:
    path = nii(d / "huge.nii", volume())
    return patch_bytes(path, 42, struct.pack("<3h", 30000, 30000, 30000))


def _header_only_gz(path: Path, shape: tuple[int, ...]) -> Path:
    """A .nii.gz whose header promises a float32 array of `shape` and holds no data."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    return path


def _nifti_1200(d: Path) -> Path:
    return _header_only_gz(d / "cube.nii.gz", (1200, 1200, 1200))


def _gz_overpromise(d: Path) -> Path:
    return _header_only_gz(d / "liar.nii.gz", (512, 512, 1000))


def _dicom_claiming(path: Path, rows: int, cols: int, series: str, z: float = 0.0) -> Path:
    """A DICOM whose Rows x Columns promise far more than its 16 x 16 pixel data."""
    ds = dicom_dataset(slice8() * 10, name=path.name, ipp=(0.0, 0.0, z), series=series)
    ds.Rows, ds.Columns = rows, cols
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _dicom_huge_rows(d: Path) -> Path:
    return _dicom_claiming(d / "huge.dcm", 4096, 4096, generate_uid())


def _dicom_series_huge(d: Path) -> Path:
    (folder := d / "huge_series").mkdir()
    uid = generate_uid()
    for k in range(5):
        _dicom_claiming(folder / f"{k}.dcm", 8192, 8192, uid, z=2.0 * k)
    return folder


def _h5_hollow(d: Path) -> Path:
    with h5py.File(p := d / "hollow.h5", "w") as fh:
        fh.create_dataset("reconstruction_rss", shape=(256, 512, 512), dtype="f4", chunks=True)
    return p


def _zero_voxel(d: Path) -> Path:
    return patch_bytes(nii(d / "zero_voxel.nii", volume()), 80, struct.pack("<f", 0.0))


def _negative_voxel(d: Path) -> Path:
    return patch_bytes(nii(d / "neg_voxel.nii", volume()), 84, struct.pack("<f", -1.5))


def _int16_overflow(d: Path) -> Path:
    data = (volume() * 30).astype(np.int16)
    path = nii(d / "overflow.nii", data)
    # scl_slope (offset 112) large enough that int16 values overflow float32 to infinity.
    return patch_bytes(path, 112, struct.pack("<ff", 1e38, 0.0))


def _dicom_no_pixels(d: Path) -> Path:
    return dcm(d / "nopix.dcm", slice8(), series=generate_uid(), pixel_data=False)


def _dicom_mixed_sizes(d: Path) -> Path:
    folder = d / "mixed_series"
    folder.mkdir()
    uid = generate_uid()
    dcm(folder / "1.dcm", slice8(16, 16), series=uid, z=0.0)
    dcm(folder / "2.dcm", slice8(20, 20), series=uid, z=2.0)
    return folder


def _dicom_two_series(d: Path) -> Path:
    folder = d / "two_series"
    folder.mkdir()
    dcm(folder / "1.dcm", slice8(), series=generate_uid(), z=0.0)
    dcm(folder / "2.dcm", slice8(), series=generate_uid(), z=2.0)
    return folder


def _dicom_garbage(d: Path) -> Path:
    (p := d / "scan.dcm").write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(7).bytes(64))
    return p


def _h5_no_key(d: Path) -> Path:
    with h5py.File(p := d / "kspace_only.h5", "w") as fh:
        fh.create_dataset("kspace", data=np.zeros((2, 16, 16), np.complex64))
    return p


def _h5_empty(d: Path) -> Path:
    h5py.File(p := d / "empty.h5", "w").close()
    return p


def _h5_zero_bytes(d: Path) -> Path:
    (p := d / "zero.h5").write_bytes(b"")
    return p


def _h5_group(d: Path) -> Path:
    with h5py.File(p := d / "group.h5", "w") as fh:
        fh.create_group("reconstruction_rss")
    return p


def _h5_4d(d: Path) -> Path:
    with h5py.File(p := d / "four_d.h5", "w") as fh:
        fh.create_dataset("reconstruction_rss", data=np.ones((2, 2, 16, 16), np.float32))
    return p


def _npy_object(d: Path) -> Path:
    np.save(p := d / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return p


def _npy_4d(d: Path) -> Path:
    np.save(p := d / "four_d.npy", np.ones((2, 2, 16, 16), np.float32))
    return p


def _npy_text(d: Path) -> Path:
    (p := d / "array.npy").write_text("1 2 3\n4 5 6\n")
    return p


def _png_truncated(d: Path) -> Path:
    raw = png_bytes(slice8(64, 64))
    (p := d / "cut.png").write_bytes(raw[: len(raw) // 2])
    return p


def _jpeg_truncated(d: Path) -> Path:
    rgb = np.stack([slice8(64, 64)] * 3, axis=-1)
    raw = png_bytes(rgb, fmt="JPEG")
    (p := d / "cut.jpg").write_bytes(raw[: len(raw) // 2])
    return p


def _png_tiny(d: Path) -> Path:
    (p := d / "tiny.png").write_bytes(png_bytes(np.full((4, 4), 200, np.uint8)))
    return p


def _nii_is_png(d: Path) -> Path:
    (p := d / "scan.nii.gz").write_bytes(png_bytes(slice8()))
    return p


def _images_mixed_sizes(d: Path) -> Path:
    folder = d / "pngs"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(slice8(16, 16)))
    (folder / "b.png").write_bytes(png_bytes(slice8(24, 16)))
    return folder


def _txt_folder(d: Path) -> Path:
    folder = d / "notes"
    folder.mkdir()
    for i in range(3):
        (folder / f"note{i}.txt").write_text("hello\n")
    return folder


def _empty_folder(d: Path) -> Path:
    (folder := d / "nothing").mkdir()
    return folder


def _symlink_loop(d: Path) -> Path:
    a, b = d / "a.nii.gz", d / "b.nii.gz"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def _dangling_link(d: Path) -> Path:
    (p := d / "gone.nii.gz").symlink_to(d / "deleted.nii.gz")
    return p


def _missing(d: Path) -> Path:
    return d / "does_not_exist.nii.gz"


def _all_empty(d: Path) -> Path:
    return nii(d / "blank.nii.gz", np.zeros((16, 16, 4), np.float32))


def _unsupported(d: Path) -> Path:
    (p := d / "scan.mha").write_bytes(b"ObjectType = Image\n")
    return p


@dataclass(frozen=True)
class Bad:
    """A bad input and what every command must say about it (a regex, case-insensitive)."""

    id: str
    make: Callable[[Path], Path]
    expect: str
    what: str  # for the docs table
    commands: tuple[str, ...] = ("sr", "evaluate", "train")


BAD_INPUTS = [
    Bad("zero-byte", _empty, r"empty \(0 bytes\)", "zero-byte `.nii.gz`"),
    Bad("truncated-gz", _truncated_gz, r"truncated|not a readable nifti", "truncated `.nii.gz`"),
    Bad("truncated-nii", _truncated_nii, r"truncated|not a readable nifti", "truncated `.nii`"),
    Bad("wrong-magic", _bad_magic, r"not a readable nifti", "`.nii` with wrong magic bytes"),
    Bad("text-as-nii", _text_nii, r"not a readable nifti", "a text file named `.nii`"),
    Bad("nan", _nan, r"nan/infinite", "NIfTI holding NaN"),
    Bad("inf", _inf, r"nan/infinite", "NIfTI holding +inf"),
    Bad("1d", _one_d, r"expected a 3-d volume", "1-D NIfTI"),
    Bad("4d", _four_d, r"expected a 3-d volume", "4-D NIfTI (2 volumes)"),
    Bad("1x1-slices", _one_by_one, r"smaller than the minimum 8x8", "NIfTI with 1 x 1 slices"),
    Bad(
        "huge-header",
        _huge_header,
        r"above the limit of 268,435,456",
        "header claims 30000^3 voxels",
    ),
    Bad(
        "nifti-1200-cubed",
        _nifti_1200,
        r"1,728,000,000 voxels, above the limit",
        "`.nii.gz` header of 1200^3 voxels, no data",
    ),
    Bad(
        "gz-overpromise",
        _gz_overpromise,
        r"promises 1,048,576,000 bytes of data, more than a \d+-byte gzip file can hold",
        "`.nii.gz` header promising 512x512x1000 float32 in a few hundred bytes",
    ),
    Bad("zero-voxel", _zero_voxel, r"voxel sizes must be positive", "voxel size 0"),
    Bad("negative-voxel", _negative_voxel, r"voxel sizes must be positive", "voxel size -1.5"),
    Bad("int16-overflow", _int16_overflow, r"nan/infinite", "int16 NIfTI, scl_slope 1e38"),
    Bad("dicom-no-pixels", _dicom_no_pixels, r"no pixel data", "DICOM without pixel data"),
    Bad("dicom-mixed", _dicom_mixed_sizes, r"mixes slice sizes", "DICOM series, mixed sizes"),
    Bad("dicom-2-series", _dicom_two_series, r"2 dicom series", "folder with 2 DICOM series"),
    Bad(
        "dicom-garbage",
        _dicom_garbage,
        r"not a readable dicom|no pixel data|damaged dicom",
        "`.dcm` of random bytes",
    ),
    Bad(
        "dicom-huge-rows",
        _dicom_huge_rows,
        r"promises 4096x4096x1 pixels \(33,554,432 bytes\), the file holds 512",
        "DICOM header of 4096 x 4096, 16 x 16 pixel data",
    ),
    Bad(
        "dicom-series-huge",
        _dicom_series_huge,
        r"\(8192, 8192, 5\) = 335,544,320 voxels, above the limit",
        "DICOM series promising 8192 x 8192 x 5 voxels",
    ),
    Bad("h5-no-key", _h5_no_key, r'no "reconstruction_rss"', "HDF5 without the key"),
    Bad("h5-empty", _h5_empty, r"keys: none", "empty (valid) HDF5 file"),
    Bad("h5-zero-bytes", _h5_zero_bytes, r"empty \(0 bytes\)", "zero-byte `.h5`"),
    Bad("h5-group", _h5_group, r"is a group", "HDF5 key is a group"),
    Bad(
        "h5-hollow",
        _h5_hollow,
        r"promises \(256, 512, 512\) \(268,435,456 bytes\) but the file stores 0",
        "HDF5 dataset never written (would read as fill values)",
    ),
    Bad("h5-4d", _h5_4d, r"must be \(slices, h, w\)", "HDF5 4-D dataset"),
    Bad("npy-object", _npy_object, r"needs pickle, which is refused", "pickled object `.npy`"),
    Bad("npy-4d", _npy_4d, r"2-d or 3-d array", "4-D `.npy`"),
    Bad("npy-text", _npy_text, r"not a readable \.npy", "text file named `.npy`"),
    Bad("png-truncated", _png_truncated, r"not a readable image", "PNG cut in half"),
    Bad("jpeg-truncated", _jpeg_truncated, r"not a readable image", "JPEG cut in half"),
    Bad("png-4x4", _png_tiny, r"smaller than the minimum", "4 x 4 PNG"),
    Bad("nii-is-png", _nii_is_png, r"not a readable nifti", "a PNG named `.nii.gz`"),
    Bad("images-mixed", _images_mixed_sizes, r"differ in size", "PNG folder, mixed sizes"),
    Bad("txt-folder", _txt_folder, r"holds no", "folder of `.txt` files"),
    Bad("empty-folder", _empty_folder, r"holds no", "empty folder"),
    Bad("symlink-loop", _symlink_loop, r"symbolic link", "symlink loop"),
    Bad("dangling-link", _dangling_link, r"symbolic link", "dangling symlink"),
    Bad("missing", _missing, r"no such file", "path that does not exist"),
    Bad("unsupported", _unsupported, r"unsupported file type", "`.mha` file"),
    # sr keeps near-empty slices (bicubic-filled), so only training and evaluation reject it.
    Bad("all-empty", _all_empty, r"near-empty", "all-zero volume", ("evaluate", "train")),
]


# ----------------------------------------------------------------------------- running


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """main(argv) in-process: (exit code, stderr). argparse errors exit through SystemExit.

    Warnings and log records would be extra stderr lines in a real process (pytest captures
    them apart from capsys), so they are added to the returned stderr text.
    """
    capsys.readouterr()
    handler = _Records()
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
    finally:
        logging.getLogger().removeHandler(handler)
    extra = [f"warning: {w.message}" for w in caught] + handler.lines
    return code, capsys.readouterr().err + "".join(f"{line}\n" for line in extra)


class _Records(logging.Handler):
    """Collects WARNING+ log records (nibabel prints them on stderr)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"log {record.name}: {record.getMessage()}")


def sr_output(src: Path, out: Path) -> Path:
    if src.name.endswith(".NII.GZ"):
        return out / "SR.NII.GZ"
    name = src.name.lower()
    if name.endswith((".h5", ".hdf5")):
        return out / "sr.h5"
    if name.endswith(".npy"):
        return out / "sr.npy"
    if name.endswith((".png", ".jpg", ".jpeg")):
        return out / "sr.png"
    if src.is_dir() and any(p.suffix == ".png" for p in src.iterdir()):
        return out / "sr_pngs"
    return out / "sr.nii.gz"


def command(cmd: str, src: Path, out: Path, model: Path) -> list[str]:
    if cmd == "sr":
        dst = sr_output(src, out)
        return ["sr", str(src), "-o", str(dst), "--model", str(model), "--steps", "1", "--quiet"]
    if cmd == "evaluate":
        return ["evaluate", str(src), "--methods", "bicubic", "--no-fid"] + [
            "--out",
            str(out / "eval"),
            "--quiet",
        ]
    return ["train", "autoencoder", "--config", "tiny", "--data", str(src)] + [
        "--out",
        str(out / "run"),
        "--max-steps",
        "1",
        "--quiet",
    ]


def assert_user_error(code: int, err: str, expect: str, named: str | None) -> str:
    """Exit 2, one stderr line `wavesr...: error: ...` matching `expect` and naming `named`."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    line = lines[0]
    assert re.match(r"wavesr( \w+)?: error: ", line), line
    assert re.search(expect, line, re.IGNORECASE), line
    if named is not None:
        assert named in line, line
    return line


def no_output(out: Path) -> list[Path]:
    return sorted(out.rglob("*"))


def _bad_input_cases() -> list:
    """(case, command) for every command that must refuse the case (no skipped pairs)."""
    return [
        pytest.param(case, cmd, id=f"{case.id}-{cmd}")
        for cmd in ("sr", "evaluate", "train")
        for case in BAD_INPUTS
        if cmd in case.commands
    ]


@pytest.mark.parametrize(("case", "cmd"), _bad_input_cases())
def test_bad_input(case: Bad, cmd: str, tiny_model, tmp_path, capsys):
    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    src = case.make(data)
    code, err = run_cli(command(cmd, src, out, tiny_model), capsys)
    line = assert_user_error(code, err, case.expect, None)
    # The message names the culprit: the input itself or the file inside it.
    assert src.name in line or str(data) in line, line
    assert no_output(out) == []


# ----------------------------------------------------------------------------- options


@dataclass
class Env:
    """Valid material the option cases start from."""

    tmp: Path
    model: Path
    nifti: Path
    data: Path  # training data folder
    out: Path  # empty folder for outputs


@pytest.fixture
def env(tmp_path, tiny_model, train_data) -> Env:
    out = tmp_path / "out"
    out.mkdir()
    src = nii(tmp_path / "scan.nii.gz", volume())
    return Env(tmp_path, tiny_model, src, train_data, out)


def _copy_model(e: Env, name: str) -> Path:
    return Path(shutil.copytree(e.model, e.tmp / name))


def _manifest_edit(e: Env, edit: Callable[[dict], None]) -> Path:
    model = _copy_model(e, "edited")
    manifest = json.loads((model / "wavesr.json").read_text())
    edit(manifest)
    (model / "wavesr.json").write_text(json.dumps(manifest))
    return model


def _wrong_arch(e: Env) -> Path:
    return _manifest_edit(e, lambda m: m["config"]["autoencoder"].update(base_channels=16))


def _pickle_weights(e: Env) -> Path:
    from wavesr.bundle.folder import sha256_of

    model = _copy_model(e, "pickled")
    torch.save({"w": torch.zeros(2)}, model / "autoencoder.pt")
    manifest = json.loads((model / "wavesr.json").read_text())
    sha = sha256_of(model / "autoencoder.pt")
    manifest["files"]["autoencoder"] = {"file": "autoencoder.pt", "sha256": sha}
    (model / "wavesr.json").write_text(json.dumps(manifest))
    return model


def _pickle_as_safetensors(e: Env) -> Path:
    from wavesr.bundle.folder import sha256_of

    model = _copy_model(e, "disguised")
    torch.save({"w": torch.zeros(2)}, model / "ldt.safetensors")
    manifest = json.loads((model / "wavesr.json").read_text())
    manifest["files"]["ldt"]["sha256"] = sha256_of(model / "ldt.safetensors")
    (model / "wavesr.json").write_text(json.dumps(manifest))
    return model


def _tampered(e: Env) -> Path:
    model = _copy_model(e, "tampered")
    raw = bytearray((model / "ldt.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (model / "ldt.safetensors").write_bytes(bytes(raw))
    return model


def _json_garbage(e: Env) -> Path:
    model = _copy_model(e, "garbled")
    (model / "wavesr.json").write_text("{ not json")
    return model


def _json_list(e: Env) -> Path:
    model = _copy_model(e, "listed")
    (model / "wavesr.json").write_text("[1, 2, 3]")
    return model


def _json_no_files(e: Env) -> Path:
    return _manifest_edit(e, lambda m: m["files"].update(ldt={"name": "x"}))


def _bad_config_in_bundle(e: Env) -> Path:
    return _manifest_edit(e, lambda m: m["config"]["data"].update(scale="four"))


def _model_is_file(e: Env) -> Path:
    (p := e.tmp / "model.txt").write_text("weights?")
    return p


def _model_is_pickle(e: Env) -> Path:
    torch.save({"w": torch.zeros(2)}, p := e.tmp / "model.pt")
    return p


def _volume_folder(e: Env) -> Path:
    (folder := e.tmp / "volumes").mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        shutil.copy(e.nifti, folder / name)
    return folder


def _ae_only(e: Env) -> Path:
    return e.model.parent / "ae"


def _readonly_dir(e: Env) -> Path:
    if IS_ROOT:  # root writes anywhere permissions allow, but not into procfs
        return Path("/proc/wavesr-reliability/sr.nii.gz")
    ro = e.tmp / "readonly"
    ro.mkdir(mode=0o555)
    return ro / "sr.nii.gz"


def _file_parent(e: Env) -> Path:
    (f := e.tmp / "plainfile").write_text("x")
    return f / "sr.nii.gz"


def _bad_yaml(e: Env) -> Path:
    (p := e.tmp / "bad.yaml").write_text("data: {scale: [4\n")
    return p


def _list_yaml(e: Env) -> Path:
    (p := e.tmp / "list.yaml").write_text("- 1\n- 2\n")
    return p


def _unknown_key_yaml(e: Env) -> Path:
    (p := e.tmp / "unknown.yaml").write_text("name: x\ndata: {scael: 4}\n")
    return p


def _bundle(source: Path, dst: Path, edit: Callable[[dict, Path], None]) -> Path:
    """A copy of the bundle `source` in `dst`, its manifest (and maybe weights) edited."""
    model = Path(shutil.copytree(source, dst))
    manifest = json.loads((model / "wavesr.json").read_text())
    edit(manifest, model)
    (model / "wavesr.json").write_text(json.dumps(manifest))
    return model


def _config(section: str, **values) -> Callable[[dict, Path], None]:
    return lambda manifest, root: manifest["config"][section].update(values)


def _rehash(manifest: dict, root: Path, entry: str) -> None:
    from wavesr.bundle.folder import sha256_of

    manifest["files"][entry]["sha256"] = sha256_of(root / manifest["files"][entry]["file"])


def _cut_header(manifest: dict, root: Path) -> None:
    path = root / "ldt.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    _rehash(manifest, root, "ldt")


def _swap_files(manifest: dict, root: Path) -> None:
    manifest["files"]["ldt"] = dict(manifest["files"]["autoencoder"])


def _huge_array_header(manifest: dict, root: Path) -> None:
    """The first tensor of ldt.safetensors promises 100000 x 100000 float32 (40 GB)."""
    path = root / "ldt.safetensors"
    promise_huge_tensor(path)
    _rehash(manifest, root, "ldt")


def _mismatch(e: Env) -> Path:
    """The tiny model with its LDT width doubled in the config by hand (the weights say 32)."""
    return _bundle(e.model, e.tmp / "mismatch", _config("ldt", hidden_size=64))


def _ae_mismatch(e: Env, source: Path) -> Path:
    return _bundle(source, e.tmp / "ae_mismatch", _config("autoencoder", base_channels=16))


def _baseline(e: Env, name: str, **values) -> Path:
    from wavesr.weights import baseline_dir

    return _bundle(baseline_dir(name), e.tmp / f"{name}_edited", _config("baselines", **values))


def _run_copy(e: Env) -> Path:
    """A copy of the tiny autoencoder run (it holds a checkpoint), for --resume."""
    return Path(shutil.copytree(e.model.parent / "ae", e.tmp / "ae_run"))


@dataclass(frozen=True)
class Opt:
    """A bad option or output: argv built from an Env; `named` says what the line must name."""

    id: str
    argv: Callable[[Env], list[str]]
    expect: str
    what: str
    named: Callable[[Env], str] | None = None


def _sr(e: Env, *extra: str, src: Path | None = None, out: Path | None = None, model=None):
    src = src or e.nifti
    out = out or e.out / "sr.nii.gz"
    model = e.model if model is None else model
    return [
        "sr",
        str(src),
        "-o",
        str(out),
        "--model",
        str(model),
        "--steps",
        "1",
        "--quiet",
        *extra,
    ]


def _ev(e: Env, *extra: str):
    return ["evaluate", str(e.nifti), "--no-fid", "--out", str(e.out / "eval"), "--quiet", *extra]


def _tr(e: Env, *extra: str, model: str = "autoencoder"):
    return ["train", model, "--data", str(e.data), "--out", str(e.out / "run"), "--quiet", *extra]


def _ldt(e: Env, ae: Path) -> list[str]:
    return _tr(e, "--config", "tiny", "--max-steps", "1", "--autoencoder", str(ae), model="ldt")


def _tiny(*extra: str) -> tuple[str, ...]:
    return ("--config", "tiny", "--max-steps", "1", *extra)


def _existing_output(e: Env) -> list[str]:
    (e.out / "sr.nii.gz").write_bytes(b"keep me")
    return _sr(e)


OPTIONS = [
    # --- sr
    Opt("sr-scale-3", lambda e: _sr(e, "--scale", "3"), r"--scale.*invalid choice", "`--scale 3`"),
    Opt(
        "sr-scale-neg",
        lambda e: _sr(e, "--scale", "-4"),
        r"--scale.*invalid choice",
        "`--scale -4`",
    ),
    Opt(
        "sr-scale-8-on-x4",
        lambda e: _sr(e, "--scale", "8"),
        r"trained for x4",
        "`--scale 8` with a x4 model",
        lambda e: str(e.model),
    ),
    Opt("sr-batch-0", lambda e: _sr(e, "--batch", "0"), r"--batch.*>= 1", "`--batch 0`"),
    Opt("sr-steps-0", lambda e: _sr(e, "--steps", "0"), r"--steps.*>= 1", "`--steps 0`"),
    Opt(
        "sr-steps-text",
        lambda e: _sr(e, "--steps", "many"),
        r"--steps.*invalid int",
        "`--steps many`",
    ),
    Opt(
        "sr-axis-bad",
        lambda e: _sr(e, "--axis", "diagonal"),
        r"unknown slice axis",
        "`--axis diagonal`",
    ),
    Opt("sr-axis-range", lambda e: _sr(e, "--axis", "5"), r"out of range", "`--axis 5`"),
    Opt(
        "sr-out-is-in",
        lambda e: _sr(e, "--overwrite", out=e.nifti),
        r"same as an input",
        "output path = input path (even with `--overwrite`)",
        lambda e: str(e.nifti),
    ),
    Opt(
        "sr-out-exists",
        _existing_output,
        r"exists.*--overwrite",
        "existing output without `--overwrite`",
        lambda e: str(e.out / "sr.nii.gz"),
    ),
    Opt(
        "sr-out-readonly",
        lambda e: _sr(e, out=_readonly_dir(e)),
        r"not writable|cannot",
        "output folder not writable",
        lambda e: "sr.nii.gz",
    ),
    Opt(
        "sr-out-proc",
        lambda e: _sr(e, out=Path("/proc/self/sr.nii.gz")),
        r"not writable|cannot",
        "output inside `/proc`",
        lambda e: "/proc/self",
    ),
    Opt(
        "sr-out-parent-file",
        lambda e: _sr(e, out=_file_parent(e)),
        r"is a file",
        "output folder is a file",
        lambda e: "plainfile",
    ),
    Opt(
        "sr-out-suffix",
        lambda e: _sr(e, out=e.out / "sr.h5"),
        r"must end in \.nii",
        "NIfTI input, `.h5` output",
        lambda e: "sr.h5",
    ),
    Opt(
        "sr-model-missing",
        lambda e: _sr(e, model=e.tmp / "nowhere"),
        r"no such|not a wavesr",
        "`--model` folder missing",
        lambda e: "nowhere",
    ),
    Opt(
        "sr-model-file",
        lambda e: _sr(e, model=_model_is_file(e)),
        r"expected a model folder",
        "`--model` pointing at a file",
        lambda e: "model.txt",
    ),
    Opt(
        "sr-model-pickle",
        lambda e: _sr(e, model=_model_is_pickle(e)),
        r"pickle.*arbitrary code",
        "`--model model.pt` (pickle)",
        lambda e: "model.pt",
    ),
    Opt(
        "sr-bundle-pickle",
        lambda e: _sr(e, model=_pickle_weights(e)),
        r"pickle.*arbitrary code",
        "bundle listing `autoencoder.pt`",
        lambda e: "autoencoder.pt",
    ),
    Opt(
        "sr-bundle-disguised",
        lambda e: _sr(e, model=_pickle_as_safetensors(e)),
        r"not a readable safetensors",
        "pickle renamed `.safetensors`",
        lambda e: "ldt.safetensors",
    ),
    Opt(
        "sr-bundle-tampered",
        lambda e: _sr(e, model=_tampered(e)),
        r"sha-256 mismatch",
        "weights changed after export",
        lambda e: "ldt.safetensors",
    ),
    Opt(
        "sr-wrong-arch",
        lambda e: _sr(e, model=_wrong_arch(e)),
        r"config and weights disagree: autoencoder\.base_channels is 16 in wavesr\.json but 8",
        "checkpoint of the wrong architecture (config edited)",
        lambda e: "edited",
    ),
    Opt(
        "sr-json-garbage",
        lambda e: _sr(e, model=_json_garbage(e)),
        r"not a readable json",
        "`wavesr.json` that is not JSON",
        lambda e: "wavesr.json",
    ),
    Opt(
        "sr-json-list",
        lambda e: _sr(e, model=_json_list(e)),
        r"json object",
        "`wavesr.json` holding a list",
        lambda e: "wavesr.json",
    ),
    Opt(
        "sr-json-no-file",
        lambda e: _sr(e, model=_json_no_files(e)),
        r"manifest",
        "`wavesr.json` file entry without `file`",
        lambda e: "wavesr.json",
    ),
    Opt(
        "sr-json-bad-config",
        lambda e: _sr(e, model=_bad_config_in_bundle(e)),
        r"invalid config in bundle",
        "bundle config `data.scale: four`",
        lambda e: "wavesr.json",
    ),
    Opt(
        "sr-ae-only",
        lambda e: _sr(e, model=_ae_only(e)),
        r"without an ldt",
        "autoencoder-only model",
        lambda e: "ae",
    ),
    Opt(
        "sr-seed-huge",
        lambda e: _sr(e, "--seed", str(10**23)),
        r"--seed.*2\*\*32",
        "`--seed 1e23` (was: traceback)",
    ),
    Opt(
        "sr-steps-huge",
        lambda e: _sr(e, "--steps", "100000"),
        r"cannot take exactly 100000 steps from 1000",
        "`--steps 100000` (model has 1000)",
    ),
    Opt(
        "sr-volume-folder",
        lambda e: _sr(e, src=_volume_folder(e)),
        r"2 volume files: pass one file",
        "folder of NIfTI files",
        lambda e: "volumes",
    ),
    Opt(
        "sr-out-slash",
        lambda e: _sr(e, out=Path(f"{e.out}/newdir/")),
        r"must end in \.nii",
        "`-o newdir/` for a NIfTI input",
        lambda e: "newdir",
    ),
    # --- demo
    Opt(
        "demo-slices-0",
        lambda e: ["demo", "--slices", "0", "--model", str(e.model), "--out", str(e.out / "d")],
        r"--slices.*>= 1",
        "`demo --slices 0` (was: traceback)",
    ),
    Opt(
        "demo-steps-0",
        lambda e: ["demo", "--steps", "0", "--model", str(e.model), "--out", str(e.out / "d")],
        r"--steps.*>= 1",
        "`demo --steps 0` (was: ran, said 0 steps)",
    ),
    Opt(
        "sr-out-dash",
        lambda e: _sr(e, out=Path("-")),
        r"must end in \.nii",
        "`-o -` (stdout is not supported)",
    ),
    # --- evaluate
    Opt(
        "ev-scale-3",
        lambda e: _ev(e, "--scale", "3"),
        r"scale must be one of",
        "`evaluate --scale 3`",
    ),
    Opt("ev-batch-0", lambda e: _ev(e, "--batch", "0"), r"--batch", "`evaluate --batch 0`"),
    Opt("ev-steps-0", lambda e: _ev(e, "--steps", "0"), r"--steps", "`evaluate --steps 0`"),
    Opt("ev-size-0", lambda e: _ev(e, "--size", "0"), r"--size", "`evaluate --size 0`"),
    Opt(
        "ev-max-slices-0",
        lambda e: _ev(e, "--max-slices", "0"),
        r"--max-slices",
        "`evaluate --max-slices 0`",
    ),
    Opt(
        "ev-noise-neg",
        lambda e: _ev(e, "--noise-sigma", "-1"),
        r"noise_sigma must be >= 0",
        "`evaluate --noise-sigma -1`",
    ),
    Opt(
        "ev-noise-nan",
        lambda e: _ev(e, "--noise-sigma", "nan"),
        r"noise_sigma must be >= 0, got nan",
        "`evaluate --noise-sigma nan`",
    ),
    Opt(
        "ev-weights-missing",
        lambda e: _ev(e, "--methods", "edsr", "--weights", f"edsr={e.tmp / 'no_edsr'}"),
        r"no such folder",
        "`evaluate --methods edsr --weights edsr=missing`",
        lambda e: "no_edsr",
    ),
    Opt(
        "ev-method-unknown",
        lambda e: _ev(e, "--methods", "magic"),
        r"unknown method 'magic'",
        "`evaluate --methods magic`",
    ),
    Opt(
        "ev-weights-format",
        lambda e: _ev(e, "--weights", "edsr"),
        r"METHOD=DIR",
        "`evaluate --weights edsr`",
    ),
    Opt(
        "ev-device",
        lambda e: _ev(e, "--device", "tpu9"),
        r"unknown device",
        "`evaluate --device tpu9`",
    ),
    Opt(
        "ev-out-is-file",
        lambda e: _ev(e) + ["--out", str(e.nifti)],
        r"is a file",
        "`evaluate --out` an existing file",
        lambda e: e.nifti.name,
    ),
    Opt(
        "ev-wavesr-x8",
        lambda e: _ev(e, "--methods", "wavesr", "--model", str(e.model), "--scale", "8"),
        r"trained for x4",
        "`evaluate --methods wavesr --scale 8` with a x4 model",
        lambda e: str(e.model),
    ),
    Opt(
        "ev-wavesr-pickle",
        lambda e: _ev(e, "--methods", "wavesr", "--model", str(_model_is_pickle(e))),
        r"pickle",
        "`evaluate --model model.pt`",
        lambda e: "model.pt",
    ),
    # --- train
    Opt(
        "tr-config-missing",
        lambda e: _tr(e, "--config", str(e.tmp / "nope.yaml")),
        r"config file not found",
        "`train --config nope.yaml`",
        lambda e: "nope.yaml",
    ),
    Opt(
        "tr-config-preset",
        lambda e: _tr(e, "--config", "huge"),
        r"unknown preset 'huge'",
        "`train --config huge`",
    ),
    Opt(
        "tr-config-syntax",
        lambda e: _tr(e, "--config", str(_bad_yaml(e))),
        r"cannot read config",
        "config with a YAML syntax error",
        lambda e: "bad.yaml",
    ),
    Opt(
        "tr-config-list",
        lambda e: _tr(e, "--config", str(_list_yaml(e))),
        r"must hold a mapping",
        "config holding a list",
        lambda e: "list.yaml",
    ),
    Opt(
        "tr-config-unknown",
        lambda e: _tr(e, "--config", str(_unknown_key_yaml(e))),
        r"unknown config key data\.scael",
        "config with a misspelt key",
    ),
    Opt(
        "tr-set-noeq",
        lambda e: _tr(e, *_tiny("--set", "data.scale")),
        r"key\.sub=value",
        "`--set data.scale`",
    ),
    Opt(
        "tr-set-scale-3",
        lambda e: _tr(e, *_tiny("--set", "data.scale=3")),
        r"data\.scale must be 2, 4 or 8",
        "`--set data.scale=3`",
    ),
    Opt(
        "tr-set-type",
        lambda e: _tr(e, *_tiny("--set", "data.crop=big")),
        r"data\.crop: 'big' is not a valid int",
        "`--set data.crop=big`",
    ),
    Opt(
        "tr-set-heads",
        lambda e: _tr(e, *_tiny("--set", "ldt.num_heads=3")),
        r"hidden_size",
        "`--set ldt.num_heads=3` (32 not divisible by 3)",
    ),
    Opt(
        "tr-set-batch-0",
        lambda e: _tr(e, *_tiny("--set", "autoencoder_training.train.batch_size=0")),
        r"batch_size must be >= 1",
        "`--set ...batch_size=0`",
    ),
    Opt(
        "tr-set-groups",
        lambda e: _tr(e, *_tiny("--set", "autoencoder.norm_num_groups=3")),
        r"multiples of norm_num_groups",
        "`--set autoencoder.norm_num_groups=3` (was: traceback)",
    ),
    Opt(
        "tr-set-width-0",
        lambda e: _tr(e, *_tiny("--set", "autoencoder.base_channels=0")),
        r"must be >= 1",
        "`--set autoencoder.base_channels=0` (was: traceback)",
    ),
    Opt(
        "tr-set-bands",
        lambda e: _tr(e, *_tiny("--set", "autoencoder.band_scales=[1]")),
        r"band_scales needs 5",
        "`--set autoencoder.band_scales=[1]` (was: traceback)",
    ),
    Opt(
        "tr-set-decay",
        lambda e: _tr(e, *_tiny("--set", "autoencoder_training.optim.weight_decay=-1")),
        r"weight_decay must be >= 0",
        "`--set ...weight_decay=-1` (was: traceback)",
    ),
    Opt(
        "tr-set-size-0",
        lambda e: _tr(e, *_tiny("--set", "data.size=0")),
        r"data\.size must be >= 16",
        "`--set data.size=0` (was: trained on empty crops)",
    ),
    Opt(
        "tr-set-timesteps-0",
        lambda e: _tr(e, *_tiny("--set", "diffusion.num_timesteps=0")),
        r"num_timesteps must be >= 1",
        "`--set diffusion.num_timesteps=0`",
    ),
    Opt(
        "tr-max-steps-0",
        lambda e: _tr(e, *_tiny("--max-steps", "0")),
        r"--max-steps.*>= 1",
        "`train --max-steps 0`",
    ),
    Opt(
        "tr-max-minutes-neg",
        lambda e: _tr(e, *_tiny("--max-minutes", "-1")),
        r"--max-minutes.*> 0",
        "`train --max-minutes -1`",
    ),
    Opt(
        "tr-ldt-no-ae",
        lambda e: _tr(e, *_tiny(), model="ldt"),
        r"needs --autoencoder",
        "`train ldt` without `--autoencoder`",
    ),
    Opt(
        "tr-ldt-ae-missing",
        lambda e: _ldt(e, e.tmp / "no_ae"),
        r"no such folder",
        "`train ldt --autoencoder` missing folder",
        lambda e: "no_ae",
    ),
    Opt(
        "tr-ldt-ae-garbage",
        lambda e: _ldt(e, _json_garbage(e)),
        r"not a readable json",
        "`train ldt --autoencoder` with broken `wavesr.json`",
        lambda e: "wavesr.json",
    ),
    Opt(
        "tr-out-is-file",
        lambda e: _tr(e, *_tiny()) + ["--out", str(e.nifti)],
        r"existing file",
        "`train --out` an existing file",
        lambda e: e.nifti.name,
    ),
    # --- bundles and configs against their weights, inputs against their size
    Opt(
        "sr-config-vs-weights",
        lambda e: _sr(e, model=_mismatch(e)),
        r"config and weights disagree: ldt\.hidden_size is 64 in wavesr\.json but 32 in ldt",
        "bundle config with `ldt.hidden_size` doubled by hand",
        lambda e: "mismatch",
    ),
    Opt(
        "sr-config-absurd",
        lambda e: _sr(
            e, model=_bundle(e.model, e.tmp / "absurd", _config("ldt", hidden_size=10**9))
        ),
        r"invalid config in bundle: invalid config: ldt\.hidden_size must be <= 4,096",
        "bundle config `ldt.hidden_size: 1000000000`",
        lambda e: "wavesr.json",
    ),
    Opt(
        "sr-header-cut",
        lambda e: _sr(e, model=_bundle(e.model, e.tmp / "cut", _cut_header)),
        r"not a readable safetensors file \(the header length says \d+ bytes, the file holds 92",
        "`ldt.safetensors` cut inside its header (SHA-256 updated)",
        lambda e: "ldt.safetensors",
    ),
    Opt(
        "sr-manifest-wrong-file",
        lambda e: _sr(e, model=_bundle(e.model, e.tmp / "swapped", _swap_files)),
        r"autoencoder\.safetensors holds the autoencoder's weights, not the LDT's",
        "manifest entry `ldt` pointing at `autoencoder.safetensors`",
        lambda e: "swapped",
    ),
    Opt(
        "sr-header-huge-array",
        lambda e: _sr(e, model=_bundle(e.model, e.tmp / "promise", _huge_array_header)),
        r"of shape \(100000, 100000\) ends at byte \d+ of the data, the file holds",
        "`ldt.safetensors` header promising a 100000 x 100000 tensor",
        lambda e: "ldt.safetensors",
    ),
    Opt(
        "sr-max-voxels",
        lambda e: _sr(e, "--max-voxels", "1000"),
        r"\(16, 16, 6\) = 1,536 voxels, above the limit of 1,000",
        "`sr --max-voxels 1000` on a 16 x 16 x 6 volume",
        lambda e: e.nifti.name,
    ),
    Opt(
        "sr-max-voxels-0",
        lambda e: _sr(e, "--max-voxels", "0"),
        r"--max-voxels.*>= 1",
        "`sr --max-voxels 0`",
    ),
    Opt(
        "ev-config-vs-weights",
        lambda e: _ev(e, "--methods", "wavesr", "--model", str(_mismatch(e))),
        r"ldt\.hidden_size is 64 in wavesr\.json but 32",
        "`evaluate --model` with `ldt.hidden_size` doubled",
        lambda e: "mismatch",
    ),
    Opt(
        "ev-edsr-config",
        lambda e: _ev(
            e, "--methods", "edsr", "--weights", f"edsr={_baseline(e, 'edsr', edsr_blocks=8)}"
        ),
        r"baselines\.edsr_blocks is 8 in wavesr\.json but 16 in network\.safetensors",
        "EDSR bundle with `edsr_blocks` edited",
        lambda e: "edsr_edited",
    ),
    Opt(
        "ev-pixel-diffusion-config",
        lambda e: _ev(
            e,
            "--methods",
            "pixel-diffusion",
            "--weights",
            f"pixel-diffusion={_baseline(e, 'pixel-diffusion', unet_channels=64)}",
        ),
        r"baselines\.unet_channels is 64 in wavesr\.json but 48 in network\.safetensors",
        "pixel-diffusion bundle with `unet_channels` edited",
        lambda e: "pixel-diffusion_edited",
    ),
    Opt(
        "ev-max-voxels",
        lambda e: _ev(e, "--max-voxels", "1000"),
        r"above the limit of 1,000",
        "`evaluate --max-voxels 1000`",
        lambda e: e.nifti.name,
    ),
    Opt(
        "bench-max-voxels",
        lambda e: (
            ["benchmark", str(e.nifti), "--methods", "bicubic", "--no-fid", "--quiet"]
            + ["--out", str(e.out / "bench"), "--max-voxels", "1000"]
        ),
        r"above the limit of 1,000",
        "`benchmark --max-voxels 1000`",
        lambda e: e.nifti.name,
    ),
    Opt(
        "tr-init-from-mismatch",
        lambda e: _tr(e, *_tiny("--init-from", str(_ae_mismatch(e, e.model)))),
        r"autoencoder\.base_channels is 16 in wavesr\.json but 8 in autoencoder",
        "`train --init-from` a bundle whose config disagrees",
        lambda e: "ae_mismatch",
    ),
    Opt(
        "tr-robust-to-mismatch",
        lambda e: _tr(
            e,
            *_tiny(
                "--init-from", str(e.model), "--freeze-encoder", "--robust-to", str(_mismatch(e))
            ),
        ),
        r"ldt\.hidden_size is 64 in wavesr\.json but 32",
        "`train --robust-to` a bundle whose config disagrees",
        lambda e: "mismatch",
    ),
    Opt(
        "tr-ldt-ae-mismatch",
        lambda e: _ldt(e, _ae_mismatch(e, e.model.parent / "ae")),
        r"autoencoder\.base_channels is 16 in wavesr\.json but 8",
        "`train ldt --autoencoder` a run whose config disagrees",
        lambda e: "ae_mismatch",
    ),
    Opt(
        "tr-resume-mismatch",
        lambda e: (
            _tr(e, *_tiny("--resume", "--set", "autoencoder.base_channels=16"))
            + ["--out", str(_run_copy(e))]
        ),
        r"autoencoder\.base_channels is 16 in the config but 8 in model\.safetensors",
        "`train --resume` with a config that disagrees with the checkpoint",
        lambda e: "step_",
    ),
    Opt(
        "export-mismatch",
        lambda e: ["export", "--ldt", str(_mismatch(e)), "--out", str(e.out / "exported")],
        r"ldt\.hidden_size is 64 in wavesr\.json but 32",
        "`export --ldt` a bundle whose config disagrees",
        lambda e: "mismatch",
    ),
    Opt(
        "export-ae-mismatch",
        lambda e: (
            ["export", "--ldt", str(e.model), "--out", str(e.out / "exported")]
            + ["--autoencoder", str(_ae_mismatch(e, e.model))]
        ),
        r"autoencoder\.base_channels is 16 in wavesr\.json but 8",
        "`export --autoencoder` a bundle whose config disagrees",
        lambda e: "ae_mismatch",
    ),
    Opt(
        "tr-set-width-huge",
        lambda e: _tr(e, *_tiny("--set", "ldt.hidden_size=1000000000")),
        r"ldt\.hidden_size must be <= 4,096, got 1000000000",
        "`--set ldt.hidden_size=1000000000` (a typo)",
    ),
    Opt(
        "tr-set-batch-huge",
        lambda e: _tr(e, *_tiny("--set", "autoencoder_training.train.batch_size=1000000000")),
        r"batch_size must be <= 4,096",
        "`--set ...batch_size=1000000000`",
    ),
    Opt(
        "tr-network-too-large",
        lambda e: _tr(
            e,
            *_tiny("--set", "ldt.hidden_size=4096", "--set", "ldt.depth=128"),
            "--autoencoder",
            str(e.model.parent / "ae"),
            model="ldt",
        ),
        r"the LDT would have [\d,]+ parameters \(\d+ GiB as float32\), above the limit",
        "`--set ldt.hidden_size=4096 --set ldt.depth=128` (each within its limit)",
    ),
    Opt(
        "tr-data-missing",
        lambda e: _tr(e, *_tiny()) + ["--data", str(e.tmp / "nodata")],
        r"does not exist|no such",
        "`train --data` missing folder",
        lambda e: "nodata",
    ),
]


@pytest.mark.parametrize("case", OPTIONS, ids=lambda c: c.id)
def test_bad_option(case: Opt, env: Env, capsys):
    argv = case.argv(env)
    before = {p: p.stat().st_mtime_ns for p in env.out.rglob("*")}
    code, err = run_cli(argv, capsys)
    named = case.named(env) if case.named else None
    assert_user_error(code, err, case.expect, named)
    # Nothing new (or changed) in the output folder.
    assert {p: p.stat().st_mtime_ns for p in env.out.rglob("*")} == before


def test_existing_output_is_kept(env: Env, capsys):
    out = env.out / "sr.nii.gz"
    out.write_bytes(b"keep me")
    code, _ = run_cli(_sr(env), capsys)
    assert code == 2 and out.read_bytes() == b"keep me"
    code, err = run_cli(_sr(env, "--overwrite"), capsys)
    assert code == 0, err
    assert nib.load(str(out)).shape == (64, 64, 6)
    assert [p.name for p in env.out.iterdir()] == ["sr.nii.gz"]  # no temp files left


def _disk_full(real: Callable) -> Callable:
    """A writer that writes part of its file, then fails as a full disk does."""

    def write(*args, **kwargs):
        target = next(a for a in (*args, *kwargs.values()) if isinstance(a, str | Path))
        Path(target).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    return write


@pytest.mark.parametrize("fmt", ["nifti", "npy", "png"])
def test_failed_write_leaves_nothing(fmt, env: Env, capsys, monkeypatch):
    """A write that dies half-way (disk full) leaves no output and no temp file behind."""
    if fmt == "nifti":
        src, out = env.nifti, env.out / "sr.nii.gz"
        monkeypatch.setattr(nib, "save", _disk_full(nib.save))
    elif fmt == "npy":
        np.save(src := env.tmp / "stack.npy", volume().transpose(2, 0, 1))
        out = env.out / "sr.npy"
        monkeypatch.setattr(np, "save", _disk_full(np.save))
    else:
        (src := env.tmp / "one.png").write_bytes(png_bytes(slice8()))
        out = env.out / "sr.png"
        monkeypatch.setattr(Image.Image, "save", lambda self, fp, *a, **k: _disk_full(None)(fp))
    code, err = run_cli(_sr(env, src=src, out=out), capsys)
    assert_user_error(code, err, r"no space left on device", out.name)
    assert no_output(env.out) == []


def test_unreadable_folder(env: Env, capsys, monkeypatch):
    """A folder that cannot be listed (PermissionError) is a clean error for every command."""
    folder = env.tmp / "locked"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(slice8()))
    argvs = [command(cmd, folder, env.out, env.model) for cmd in ("sr", "evaluate", "train")]
    if IS_ROOT:  # root can list anything: simulate the kernel's answer
        real = Path.iterdir

        def iterdir(self):
            if self == folder:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "iterdir", iterdir)
    else:
        folder.chmod(0)
    try:
        for argv in argvs:
            code, err = run_cli(argv, capsys)
            assert_user_error(code, err, r"permission denied", str(folder))
            assert no_output(env.out) == []
    finally:
        folder.chmod(0o755)


def test_unreadable_file(env: Env, capsys, monkeypatch):
    src = nii(env.tmp / "locked.nii.gz", volume())
    if IS_ROOT:
        import builtins

        real = builtins.open

        def fake_open(file, *args, **kwargs):
            if str(file) == str(src):
                raise PermissionError(13, "Permission denied", str(file))
            return real(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
    else:
        src.chmod(0)
    for cmd in ("sr", "evaluate", "train"):
        code, err = run_cli(command(cmd, src, env.out, env.model), capsys)
        assert_user_error(code, err, r"permission denied|not a readable", str(src))
        assert no_output(env.out) == []


def test_argument_errors_are_one_line(capsys):
    code, err = run_cli(["sr"], capsys)
    assert_user_error(code, err, r"required", None)
    code, err = run_cli(["frobnicate"], capsys)
    assert_user_error(code, err, r"invalid choice", None)


# ----------------------------------------------------------------------------- odd but valid


def _anisotropic(d: Path) -> tuple[Path, tuple]:
    return nii(d / "aniso.nii.gz", volume(), np.diag([0.4, 0.9, 5.0, 1.0])), (64, 64, 6)


def _wrapped_int16(d: Path) -> tuple[Path, tuple]:
    data = (volume() * 40).astype(np.int64)
    return nii(d / "wrapped.nii", data.astype(np.int16)), (64, 64, 6)  # wraps past 32767


def _two_d_nii(d: Path) -> tuple[Path, tuple]:
    return nii(d / "flat.nii.gz", volume((16, 12, 1))[..., 0]), (64, 48, 1)


def _single_4d(d: Path) -> tuple[Path, tuple]:
    return nii(d / "one_vol.nii.gz", volume()[..., None]), (64, 64, 6)


def _png16(d: Path) -> tuple[Path, tuple]:
    arr = (volume((16, 16, 1))[..., 0] * 60).astype(np.uint16)
    (p := d / "deep.png").write_bytes(png_bytes(arr))
    return p, (64, 64)


def _png_rgba(d: Path) -> tuple[Path, tuple]:
    rgba = np.dstack([slice8()] * 3 + [np.full((16, 16), 128, np.uint8)])
    (p := d / "alpha.png").write_bytes(png_bytes(rgba, mode="RGBA"))
    return p, (64, 64)


def _png_la(d: Path) -> tuple[Path, tuple]:
    la = np.dstack([slice8(), np.full((16, 16), 255, np.uint8)])
    (p := d / "grey_alpha.png").write_bytes(png_bytes(la, mode="LA"))
    return p, (64, 64)


def _png_palette(d: Path) -> tuple[Path, tuple]:
    img = Image.fromarray(np.stack([slice8()] * 3, -1)).convert("P")
    img.save(p := d / "palette.png")
    return p, (64, 64)


def _jpeg_rgb(d: Path) -> tuple[Path, tuple]:
    rgb = np.stack([slice8(16, 24), slice8(16, 24) // 2, slice8(16, 24)], axis=-1)
    (p := d / "colour.jpg").write_bytes(png_bytes(rgb, fmt="JPEG"))
    return p, (64, 96)


def _dicom_single(d: Path) -> tuple[Path, tuple]:
    return dcm(d / "one.dcm", slice8() * 10, series=generate_uid()), (64, 64, 1)


def _constant(d: Path) -> tuple[Path, tuple]:
    return nii(d / "blank.nii.gz", np.zeros((16, 16, 3), np.float32)), (64, 64, 3)


def _npy_2d(d: Path) -> tuple[Path, tuple]:
    np.save(p := d / "slice.npy", volume((12, 16, 1))[..., 0])
    return p, (48, 64)


def _upper_case(d: Path) -> tuple[Path, tuple]:
    return nii(d / "SCAN.NII.GZ", volume()), (64, 64, 6)


def _h5_2d(d: Path) -> tuple[Path, tuple]:
    with h5py.File(p := d / "one.h5", "w") as fh:
        fh.create_dataset("reconstruction_rss", data=volume((16, 16, 1))[..., 0])
    return p, (1, 64, 64)


VALID = [
    _anisotropic,
    _wrapped_int16,
    _two_d_nii,
    _single_4d,
    _png16,
    _png_rgba,
    _png_la,
    _png_palette,
    _jpeg_rgb,
    _dicom_single,
    _constant,
    _npy_2d,
    _h5_2d,
    _upper_case,
]


def read_any(path: Path) -> np.ndarray:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return np.asarray(nib.load(str(path)).dataobj)
    if name.endswith(".h5"):
        with h5py.File(path) as fh:
            return fh["reconstruction_rss"][()]
    if name.endswith(".npy"):
        return np.load(path)
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("make", VALID, ids=lambda f: f.__name__.strip("_"))
def test_odd_but_valid_input(make, tiny_model, tmp_path, capsys):
    src, shape = make(tmp_path)
    out = sr_output(src, tmp_path / "out")
    code, err = run_cli(
        ["sr", str(src), "-o", str(out), "--model", str(tiny_model), "--steps", "1", "--quiet"],
        capsys,
    )
    assert code == 0, err
    result = read_any(out)
    assert result.shape == shape
    assert np.isfinite(result).all()
    if src.name == "deep.png":
        assert result.dtype == np.uint16  # 16-bit in, 16-bit out


def test_valid_odd_inputs_train_and_evaluate(tmp_path, capsys):
    """RGBA / 16-bit PNGs and anisotropic NIfTI are training and evaluation data too."""
    (data := tmp_path / "data").mkdir()
    _anisotropic(data)
    # One folder of images is one stack, so the 8- and 16-bit images get a folder each.
    for make, sub in ((_png16, "deep"), (_png_rgba, "rgba")):
        (data / sub).mkdir(parents=True)
        make(data / sub)
    code, err = run_cli(
        ["evaluate", str(data), "--no-fid", "--out", str(tmp_path / "ev"), "--quiet"], capsys
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["datasets"][0]["n_slices"] == 6 + 1 + 1
    run = tmp_path / "run"
    code, err = run_cli(
        [
            "train",
            "autoencoder",
            "--config",
            "tiny",
            "--data",
            str(data),
            "--out",
            str(run),
            "--max-steps",
            "1",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((run / "wavesr.json").read_text())["kind"] == "autoencoder"


# ----------------------------------------------------------------------------- real process


def _subprocess(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "wavesr.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_subprocess_no_traceback(tiny_model, tmp_path):
    """Real stderr of real processes: exactly one line and exit code 2."""
    src = _truncated_gz(tmp_path)
    out = tmp_path / "o.nii.gz"
    proc = _subprocess(["sr", str(src), "-o", str(out), "--model", str(tiny_model)])
    assert (proc.returncode, proc.stderr) == (
        2,
        f"wavesr: error: {src}: not a readable NIfTI file (the file is truncated)\n",
    )
    assert not out.exists()
    # nibabel logs header fixes on stderr by itself: the reader must keep it quiet.
    src = _zero_voxel(tmp_path)
    proc = _subprocess(["evaluate", str(src), "--no-fid", "--out", str(tmp_path / "ev")])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"wavesr: error: {src}: voxel sizes must be positive, header says (0.0, 1.0, 2.0)"
    ]
    assert not (tmp_path / "ev").exists()


def test_debug_raises(tiny_model, tmp_path):
    """--debug lets the exception (and so its traceback) through."""
    from wavesr.errors import InputError

    src = _truncated_gz(tmp_path)
    argv = ["sr", str(src), "-o", str(tmp_path / "o.nii.gz"), "--model", str(tiny_model)]
    with pytest.raises(InputError, match="truncated"):
        main(["--debug", *argv])


# ----------------------------------------------------------------------------- docs table


def _docs_table() -> str:  # pragma: no cover - a helper for docs/reliability.md
    """Run the corpus once and print a markdown table (input, command, message, exit code)."""
    import tempfile
    from contextlib import redirect_stderr

    def run(argv):
        buf = io.StringIO()
        with redirect_stderr(buf):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        return code, buf.getvalue().strip().splitlines()[-1] if buf.getvalue().strip() else ""

    rows = ["| input | command | message (stderr) | exit |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        for k in range(2):
            np.save(data / f"v{k}.npy", volume((64, 64, 3), seed=k).transpose(2, 0, 1))
        common = ["--config", "tiny", "--data", str(data), "--quiet", "--max-steps", "1"]
        main(["train", "autoencoder", *common, "--out", str(root / "ae")])
        main(
            ["train", "ldt", *common, "--autoencoder", str(root / "ae"), "--out", str(root / "ldt")]
        )
        model = root / "ldt"

        def clean(line: str) -> str:
            return line.replace(str(root), "…").replace("|", "\\|")

        for i, case in enumerate(BAD_INPUTS):
            for cmd in case.commands:
                d, out = root / f"c{i}{cmd}", root / f"o{i}{cmd}"
                d.mkdir()
                out.mkdir()
                code, line = run(command(cmd, case.make(d), out, model))
                rows.append(f"| {case.what} | {cmd} | `{clean(line)}` | {code} |")
        for i, case in enumerate(OPTIONS):
            (t := root / f"opt{i}").mkdir()
            (t / "out").mkdir()
            e = Env(t, model, nii(t / "scan.nii.gz", volume()), data, t / "out")
            argv = case.argv(e)
            code, line = run(argv)
            rows.append(f"| {case.what} | {argv[0]} | `{clean(line)}` | {code} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(_docs_table())
