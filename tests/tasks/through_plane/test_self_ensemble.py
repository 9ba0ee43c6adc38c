import numpy as np
import pytest

from wavesr.errors import ConfigError
from wavesr.tasks.through_plane.reformat import cubic_rows
from wavesr.tasks.through_plane.self_ensemble import (
    FLIPS,
    check_ensemble_size,
    flip_ensemble,
    flip_slices,
)


def _slices(shape=(3, 6, 5), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_flips_reverse_the_named_axes_and_undo_themselves():
    x = _slices()
    np.testing.assert_array_equal(flip_slices(x, True, False), x[:, ::-1, :])
    np.testing.assert_array_equal(flip_slices(x, False, True), x[:, :, ::-1])
    np.testing.assert_array_equal(flip_slices(x, True, True), x[:, ::-1, ::-1])
    for rows, cols in FLIPS:
        np.testing.assert_array_equal(flip_slices(flip_slices(x, rows, cols), rows, cols), x)


@pytest.mark.parametrize("size", [2, 4])
def test_an_upsampler_that_commutes_with_flips_is_unchanged(size):
    x = _slices()
    cubic = cubic_rows(4)  # a symmetric kernel on cell-centred grids: flip-equivariant
    np.testing.assert_allclose(flip_ensemble(cubic, size)(x), cubic(x), atol=1e-6)


def test_the_ensemble_averages_what_each_flip_gets_wrong():
    x = _slices()
    n, h, w = x.shape
    cubic = cubic_rows(2)
    row_bias = np.arange(2 * h, dtype=np.float32)[None, :, None]
    col_bias = np.arange(w, dtype=np.float32)[None, None, :]

    def biased(s):  # errs by its row index plus twice its column index
        return cubic(s) + row_bias + 2 * col_bias

    # A row flip turns the row error k into 2h - 1 - k: two flips average it to (2h - 1) / 2.
    two = flip_ensemble(biased, 2)(x)
    np.testing.assert_allclose(two, cubic(x) + (2 * h - 1) / 2 + 2 * col_bias, atol=1e-5)
    four = flip_ensemble(biased, 4)(x)
    np.testing.assert_allclose(four, cubic(x) + (2 * h - 1) / 2 + (w - 1), atol=1e-5)
    assert four.dtype == np.float32 and four.shape == (n, 2 * h, w)


def test_size_one_is_the_upsampler_itself_and_other_sizes_are_refused():
    cubic = cubic_rows(4)
    assert flip_ensemble(cubic, 1) is cubic
    for bad in (0, 3, 8, True, 2.0):
        with pytest.raises(ConfigError, match="--self-ensemble must be one of 1, 2, 4"):
            check_ensemble_size(bad)
