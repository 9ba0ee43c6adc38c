from __future__ import annotations

import re
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import blobs, fov_corners
from PIL import Image

from wavesr.cli.main import main
from wavesr.data.normalize import denormalize, normalize_stack
from wavesr.errors import ConfigError
from wavesr.model.degrade import upsample

STEPS = ["--steps", "2", "--quiet"]


def _sr(tiny_model: Path, src: Path, out: Path, *extra: str) -> int:
    return main(["sr", str(src), "-o", str(out), "--model", str(tiny_model), *STEPS, *extra])


@pytest.fixture
def nifti_lr(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 12x10x4 LR volume (axial slices along axis 2); the last slice is near-empty."""
    slices = blobs(4, 12, 10) * 1000.0
    slices[3] = 0.0
    slices[3, 5, 5] = 800.0  # 1 of 120 voxels: below the 5% non-empty rule
    aff = np.array([[1.5, 0, 0, -10], [0, 2.0, 0, 5], [0, 0, 3.0, 7], [0, 0, 0, 1]])
    path = tmp_path / "lr.nii.gz"
    nib.save(nib.Nifti1Image(np.moveaxis(slices, 0, 2), aff), str(path))
    return path, slices, aff


def test_nifti_out_has_sr_grid_and_input_scale(tiny_model, nifti_lr, tmp_path):
    src, slices, aff = nifti_lr
    out = tmp_path / "sr.nii.gz"
    assert _sr(tiny_model, src, out) == 0
    img = nib.load(str(out))
    assert img.shape == (48, 40, 4)
    np.testing.assert_allclose(
        fov_corners(img.affine, img.shape), fov_corners(aff, (12, 10, 4)), atol=1e-6
    )
    np.testing.assert_allclose(img.affine[:3, 2], aff[:3, 2])  # through-plane untouched
    data = np.moveaxis(np.asarray(img.dataobj, dtype=np.float32), 2, 0)
    for sr, lr in zip(data[:3], slices[:3]):  # back on the input's intensity scale
        assert lr.min() - 1e-3 <= sr.min() and sr.max() <= lr.max() + 1e-3
        assert sr.max() > 0.3 * lr.max()
    # The near-empty slice is the bicubic upsampling of the original.
    normed, params = normalize_stack(slices[3:])
    expected = denormalize(upsample(torch.from_numpy(normed)[:, None], 4)[:, 0].numpy(), params)
    np.testing.assert_allclose(data[3], expected[0], rtol=1e-5, atol=1e-2)


def test_input_is_upsampled_keeps_shape_and_affine(tiny_model, nifti_lr, tmp_path):
    src, _, aff = nifti_lr
    out = tmp_path / "sr.nii"
    assert _sr(tiny_model, src, out, "--input-is-upsampled") == 0
    img = nib.load(str(out))
    assert img.shape == (12, 10, 4)
    np.testing.assert_allclose(img.affine, aff)


def test_png_folder_in_png_folder_out(tiny_model, tmp_path):
    src = tmp_path / "pngs"
    src.mkdir()
    for i, sl in enumerate(blobs(3, 8, 12)):
        Image.fromarray(np.round(sl * 200).astype(np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "out"
    assert _sr(tiny_model, src, out, "--batch", "2") == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["0.png", "1.png", "2.png"]
    for name in files:
        with Image.open(out / name) as img:
            assert img.size == (48, 32) and img.mode == "L"
            assert np.asarray(img).max() <= 201  # the input's own intensity scale
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_16bit_png_file_stays_16bit(tiny_model, tmp_path):
    src = tmp_path / "one.png"
    Image.fromarray(np.round(blobs(1, 8, 8)[0] * 40000).astype(np.uint16)).save(src)
    out = tmp_path / "one_sr.png"
    assert _sr(tiny_model, src, out) == 0
    with Image.open(out) as img:
        assert img.size == (32, 32) and img.mode.startswith("I")
        assert 255 < np.asarray(img).max() <= 40001


def test_npy_odd_sizes_and_hdf5(tiny_model, tmp_path):
    src = tmp_path / "lr.npy"
    np.save(src, blobs(2, 13, 17))
    out = tmp_path / "sr.npy"
    assert _sr(tiny_model, src, out) == 0
    assert np.load(out).shape == (2, 52, 68)
    single = tmp_path / "one.npy"
    np.save(single, blobs(1, 8, 9)[0])
    assert _sr(tiny_model, single, tmp_path / "one_sr.npy") == 0
    assert np.load(tmp_path / "one_sr.npy").shape == (32, 36)
    h5 = tmp_path / "lr.h5"
    with h5py.File(h5, "w") as fh:
        fh["reconstruction_rss"] = blobs(2, 8, 12) * 1e-4
    assert _sr(tiny_model, h5, tmp_path / "sr.h5") == 0
    with h5py.File(tmp_path / "sr.h5") as fh:
        rss = fh["reconstruction_rss"][()]
    assert rss.shape == (2, 32, 48) and rss.max() <= 1e-4 * 1.0001


def test_same_seed_same_output(tiny_model, tmp_path):
    src = tmp_path / "lr.npy"
    np.save(src, blobs(1, 8, 8))
    outs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert _sr(tiny_model, src, tmp_path / f"{name}.npy", "--seed", seed) == 0
        outs[name] = np.load(tmp_path / f"{name}.npy")
    np.testing.assert_array_equal(outs["a"], outs["b"])
    assert not np.array_equal(outs["a"], outs["c"])


def test_existing_output_is_refused_and_untouched(tiny_model, tmp_path, capsys):
    src = tmp_path / "lr.npy"
    np.save(src, blobs(1, 8, 8))
    out = tmp_path / "sr.npy"
    out.write_bytes(b"keep me")
    assert _sr(tiny_model, src, out) == 2
    assert out.read_bytes() == b"keep me"
    assert "exists" in capsys.readouterr().err
    assert _sr(tiny_model, src, out, "--overwrite") == 0
    assert np.load(out).shape == (1, 32, 32)


def test_output_same_as_input(tiny_model, tmp_path, capsys):
    src = tmp_path / "lr.npy"
    np.save(src, blobs(1, 8, 8))
    assert _sr(tiny_model, src, src, "--overwrite") == 2
    assert "same as an input" in capsys.readouterr().err
    assert np.load(src).shape == (1, 8, 8)


def test_scale_mismatch(tiny_model, tmp_path, capsys):
    src = tmp_path / "lr.npy"
    np.save(src, blobs(1, 8, 8))
    assert _sr(tiny_model, src, tmp_path / "sr.npy", "--scale", "2") == 2
    err = capsys.readouterr().err.strip()
    assert "x4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "sr.npy").exists()


def test_missing_input_and_wrong_suffix(tiny_model, tmp_path, capsys):
    assert _sr(tiny_model, tmp_path / "nope.nii.gz", tmp_path / "sr.nii.gz") == 2
    assert "no such file" in capsys.readouterr().err
    src = tmp_path / "lr.npy"
    np.save(src, blobs(1, 8, 8))
    assert _sr(tiny_model, src, tmp_path / "sr.nii.gz") == 2
    assert ".npy" in capsys.readouterr().err


def _dicom_series(folder: Path, slices: np.ndarray) -> Path:
    """An axial series: 0.5 x 0.8 mm pixels, slices 2 mm apart."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir()
    series = generate_uid()
    for k, pixels in enumerate(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.Modality = series, "MR"
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.ImagePositionPatient = [-100.0, -120.0, 10.0 + 2 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.5, 0.8]
        ds.PixelData = pixels.astype(np.uint16).tobytes()
        ds.save_as(str(folder / f"im{k}.dcm"), enforce_file_format=True)
    return folder


def test_dicom_in_nifti_out(tiny_model, tmp_path, capsys):
    from wavesr.data.dicom import read_dicom

    src = _dicom_series(tmp_path / "series", np.round(blobs(2, 8, 10) * 3000))
    assert _sr(tiny_model, src, tmp_path / "sr.png") == 2
    assert ".nii" in capsys.readouterr().err
    out = tmp_path / "sr.nii.gz"
    assert _sr(tiny_model, src, out) == 0
    dcm = read_dicom(src)
    img = nib.load(str(out))
    assert img.shape == tuple(n * 4 if a != 2 else n for a, n in enumerate(dcm.volume.shape))
    np.testing.assert_allclose(
        fov_corners(img.affine, img.shape), fov_corners(dcm.affine, dcm.volume.shape), atol=1e-6
    )


def _volume(path: Path) -> np.ndarray:
    return np.moveaxis(np.asarray(nib.load(str(path)).dataobj, dtype=np.float32), 2, 0)


def test_samples_write_mean_and_std_beside_it(tiny_model, nifti_lr, tmp_path, capsys):
    src, _, _ = nifti_lr
    runs = {}
    for temperature in ("1", "0"):
        out = tmp_path / f"t{temperature}.nii.gz"
        extra = ("--samples", "4", "--temperature", temperature)
        assert _sr(tiny_model, src, out, *extra, "--report", str(tmp_path / "r.html")) == 0
        assert '"title":"std of the samples"' in (tmp_path / "r.html").read_text()
        std_out = tmp_path / f"t{temperature}_std.nii.gz"
        assert "mean of 4 samples" in capsys.readouterr().out
        mean_img, std_img = nib.load(str(out)), nib.load(str(std_out))
        assert std_img.shape == mean_img.shape == (48, 40, 4)
        np.testing.assert_array_equal(std_img.affine, mean_img.affine)
        runs[temperature] = (_volume(out), _volume(std_out))
        (tmp_path / "r.html").unlink()
    mean, std = runs["1"]
    assert std[:3].max() > 0 and np.all(std[3] == 0)  # the near-empty slice is bicubic only
    assert np.all(runs["0"][1] == 0)  # temperature 0: every sample is the same
    # The mean and std are those of the four one-sample runs with seeds 0..3.
    seeds = []
    for seed in range(4):
        out = tmp_path / f"seed{seed}.nii.gz"
        assert _sr(tiny_model, src, out, "--temperature", "1", "--seed", str(seed)) == 0
        seeds.append(_volume(out))
    tol = 1e-4 * np.abs(seeds).max()
    np.testing.assert_allclose(mean, np.mean(seeds, axis=0), atol=tol)
    np.testing.assert_allclose(std, np.std(seeds, axis=0, ddof=1), atol=tol)


def test_samples_std_for_every_output_kind(tiny_model, tmp_path):
    npy = tmp_path / "lr.npy"
    np.save(npy, blobs(2, 8, 12))
    assert _sr(tiny_model, npy, tmp_path / "sr.npy", "--samples", "2") == 0
    assert np.load(tmp_path / "sr_std.npy").shape == np.load(tmp_path / "sr.npy").shape
    h5 = tmp_path / "lr.h5"
    with h5py.File(h5, "w") as fh:
        fh["reconstruction_rss"] = blobs(2, 8, 12)
    assert _sr(tiny_model, h5, tmp_path / "sr.h5", "--samples", "2") == 0
    with h5py.File(tmp_path / "sr.h5") as fh:
        assert fh["reconstruction_rss_std"].shape == fh["reconstruction_rss"].shape == (2, 32, 48)
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i, sl in enumerate(blobs(2, 8, 12)):
        Image.fromarray(np.round(sl * 200).astype(np.uint8)).save(pngs / f"{i}.png")
    assert _sr(tiny_model, pngs, tmp_path / "out", "--samples", "2") == 0
    assert sorted(p.name for p in (tmp_path / "out_std").iterdir()) == ["0.png", "1.png"]
    one = pngs / "0.png"
    assert _sr(tiny_model, one, tmp_path / "one.png", "--samples", "2") == 0
    with Image.open(tmp_path / "one_std.png") as img:
        assert img.size == (48, 32)
    (tmp_path / "sr.npy").unlink()  # the std alone left: refused before any work
    assert _sr(tiny_model, npy, tmp_path / "sr.npy", "--samples", "2") == 2
    assert not (tmp_path / "sr.npy").exists()


def test_std_path_follows_the_output() -> None:
    from wavesr.tasks.sr import HDF5, NIFTI, NPY, PNG_FILE, PNG_FOLDER, std_path

    assert std_path(Path("a/scan_sr.nii.gz"), NIFTI) == Path("a/scan_sr_std.nii.gz")
    assert std_path(Path("x.NPY"), NPY) == Path("x_std.NPY")
    assert std_path(Path("one.png"), PNG_FILE) == Path("one_std.png")
    assert std_path(Path("out/pngs"), PNG_FOLDER) == Path("out/pngs_std")
    assert std_path(Path("sr.h5"), HDF5) == Path("sr.h5")  # a second dataset in the file


def test_summary_line_and_threads(tiny_model, nifti_lr, tmp_path, capsys):
    src, _, _ = nifti_lr
    threads = torch.get_num_threads()
    try:
        assert _sr(tiny_model, src, tmp_path / "sr.nii.gz", "--threads", "1") == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("sr: 4 slices (1 near-empty, bicubic), ")
    assert " s/slice -> " in line and f"{tmp_path / 'sr.nii.gz'} (48x40x4, " in line
    assert "voxel 0.375 x 0.5 x 3 mm)" in line  # 1.5 x 2 x 3 mm input, x4 in-plane
    assert float(re.search(r", ([0-9.e+-]+) s/slice -> ", line).group(1)) > 0
    np.save(tmp_path / "lr.npy", blobs(1, 8, 8))
    assert _sr(tiny_model, tmp_path / "lr.npy", tmp_path / "sr.npy") == 0
    assert "(1x32x32, voxel size unknown)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        _sr(tiny_model, src, tmp_path / "sr2.nii.gz", "--threads", "0")
    assert exit_info.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_degradation_option_tells_the_model_how_the_lr_was_made(tiny_model) -> None:
    from wavesr.bundle.folder import load_pipeline
    from wavesr.model.degrade import Degradation, upsample, zero_fill_upsample
    from wavesr.tasks.sr import SROptions, told_degradation

    pipe = load_pipeline(tiny_model)  # trained on bicubic LRs
    assert told_degradation(SROptions()) is None
    kspace = told_degradation(SROptions(degradation="kspace"))
    assert kspace == Degradation("kspace", 4)
    lr = torch.rand(2, 1, 4, 6)
    torch.testing.assert_close(pipe.to_hr_grid(lr, kspace), zero_fill_upsample(lr, 4).clamp(0, 1))
    torch.testing.assert_close(pipe.to_hr_grid(lr), upsample(lr, 4))
    with pytest.raises(ConfigError, match="--degradation"):
        told_degradation(SROptions(degradation="sinc"))
