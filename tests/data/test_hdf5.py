from __future__ import annotations

import h5py
import numpy as np
import pytest

from wavesr.data import load_slices
from wavesr.errors import InputError


def _write(path, **datasets):
    with h5py.File(path, "w") as fh:
        for key, value in datasets.items():
            fh.create_dataset(key, data=value)
    return path


def test_reads_reconstruction_rss(tmp_path):
    rng = np.random.default_rng(0)
    rss = rng.uniform(1e-5, 3e-4, size=(3, 16, 20)).astype(np.float32)
    kspace = np.zeros((3, 2, 2), np.complex64)
    stack = load_slices(_write(tmp_path / "f.h5", reconstruction_rss=rss, kspace=kspace))
    assert stack.kind == "hdf5"
    assert stack.slices.shape == (3, 16, 20)
    assert stack.affine is None
    assert stack.slice_axis == 0 and stack.volume_shape == (3, 16, 20)
    assert stack.names == ["f.h5:0", "f.h5:1", "f.h5:2"]
    sl = rss[1]
    np.testing.assert_allclose(stack.slices[1], (sl - sl.min()) / (sl.max() - sl.min()), atol=1e-5)
    assert stack.normalization["hi"][2] == pytest.approx(float(rss[2].max()))


def test_named_plane_uses_first_axis(tmp_path):
    rss = np.ones((2, 10, 10), np.float32)
    rss[:, 5:, :] = 2.0
    stack = load_slices(_write(tmp_path / "f.hdf5", reconstruction_rss=rss), axis="axial")
    assert stack.slice_axis == 0 and len(stack) == 2


def test_missing_dataset_names_keys(tmp_path):
    path = _write(tmp_path / "f.h5", kspace=np.zeros((2, 2)), ismrmrd_header=np.zeros(3))
    with pytest.raises(InputError, match="reconstruction_rss.*ismrmrd_header, kspace"):
        load_slices(path)


def test_bad_shape_and_corrupt(tmp_path):
    path = _write(tmp_path / "f.h5", reconstruction_rss=np.zeros((2, 2, 9, 9), np.float32))
    with pytest.raises(InputError, match="shape"):
        load_slices(path)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5" * 64)
    with pytest.raises(InputError, match="not a readable HDF5"):
        load_slices(tmp_path / "bad.h5")


def test_nan_rejected(tmp_path):
    rss = np.ones((2, 10, 10), np.float32)
    rss[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN/infinite"):
        load_slices(_write(tmp_path / "f.h5", reconstruction_rss=rss))


def test_dataset_promising_more_than_the_file_stores(tmp_path):
    """Unwritten HDF5 storage reads as fill values: a tiny file would become a 256 MiB array."""
    with h5py.File(path := tmp_path / "hollow.h5", "w") as fh:
        fh.create_dataset("reconstruction_rss", shape=(256, 512, 512), dtype="f4", chunks=True)
    with pytest.raises(InputError, match=r"promises \(256, 512, 512\) \(268,435,456 bytes\)"):
        load_slices(path)
    with h5py.File(path := tmp_path / "packed.h5", "w") as fh:
        fh.create_dataset(
            "reconstruction_rss", data=np.ones((4, 64, 64), np.float32), compression="gzip"
        )
    assert load_slices(path, skip_empty=False).slices.shape == (4, 64, 64)
