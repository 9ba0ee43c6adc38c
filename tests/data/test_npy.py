from __future__ import annotations

import numpy as np
import pytest

from wavesr.data import load_slices
from wavesr.errors import InputError


def _ramp(shape) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) + 1.0


def test_two_d_is_one_slice(tmp_path):
    np.save(tmp_path / "a.npy", _ramp((10, 12)))
    stack = load_slices(tmp_path / "a.npy")
    assert stack.kind == "npy"
    assert stack.slices.shape == (1, 10, 12)
    assert stack.slice_axis is None and stack.volume_shape is None
    assert stack.names == ["a.npy"]
    assert stack.slices[0, 0, 0] == 0.0 and stack.slices[0, -1, -1] == 1.0


def test_three_d_stack_and_int_axis(tmp_path):
    np.save(tmp_path / "a.npy", _ramp((3, 10, 12)).astype(np.int16))
    stack = load_slices(tmp_path / "a.npy")
    assert stack.slices.shape == (3, 10, 12) and stack.slice_axis == 0
    assert stack.names == ["a.npy:0", "a.npy:1", "a.npy:2"]
    assert stack.normalization["lo"] == [1.0, 121.0, 241.0]
    np.save(tmp_path / "b.npy", _ramp((9, 10, 12)))
    along_two = load_slices(tmp_path / "b.npy", axis=2, skip_empty=False)
    assert along_two.slices.shape == (12, 9, 10) and along_two.slice_axis == 2
    np.testing.assert_array_equal(along_two.normalization["lo"], np.arange(1.0, 13.0))


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((2, 2, 9, 9)), "2-D or 3-D"),
        (np.zeros(9), "2-D or 3-D"),
        (np.full((9, 9), np.nan), "NaN"),
        (np.zeros((9, 9), np.complex64), "complex"),
        (np.array([{"a": 1}], dtype=object), "not a readable"),
    ],
)
def test_bad_arrays(tmp_path, array, match):
    np.save(tmp_path / "a.npy", array, allow_pickle=True)
    with pytest.raises(InputError, match=match):
        load_slices(tmp_path / "a.npy")


def test_truncated_file(tmp_path):
    np.save(tmp_path / "a.npy", _ramp((20, 20)))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:-100])
    with pytest.raises(InputError, match="not a readable"):
        load_slices(tmp_path / "a.npy")
