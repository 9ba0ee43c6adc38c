from __future__ import annotations

import numpy as np
import pytest

from wavesr.data import normalize
from wavesr.data.normalize import denormalize, normalize_stack, rescale, select
from wavesr.errors import ConfigError


def test_slice_minmax_known_values():
    stack = np.array([[[2.0, 4.0], [6.0, 10.0]], [[5.0, 5.0], [5.0, 5.0]]], dtype=np.float32)
    out, params = normalize_stack(stack, "slice-minmax")
    np.testing.assert_allclose(out[0], [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(out[1], 0.0)  # constant slice -> zeros
    assert params == {"method": "slice-minmax", "lo": [2.0, 5.0], "hi": [10.0, 5.0]}
    assert out.dtype == np.float32


def test_volume_percentile_clips_outliers():
    stack = np.tile(np.arange(1000, dtype=np.float32).reshape(1, 10, 100), (2, 1, 1))
    stack[0, 0, 0] = 1e6
    out, params = normalize_stack(stack, "volume-percentile")
    lo, hi = np.percentile(stack, [0.5, 99.5])
    assert params["lo"] == [pytest.approx(lo)] * 2 and params["hi"] == [pytest.approx(hi)] * 2
    assert params["percentiles"] == [0.5, 99.5]
    assert out[0, 0, 0] == 1.0 and out.min() == 0.0
    np.testing.assert_allclose(out[1, 5, 0], (500 - lo) / (hi - lo), rtol=1e-5)


def test_denormalize_round_trip_and_select():
    rng = np.random.default_rng(1)
    stack = rng.uniform(-3, 7, size=(4, 9, 9)).astype(np.float32)
    out, params = normalize_stack(stack)
    np.testing.assert_allclose(denormalize(out, params), stack, atol=1e-5)
    sub = select(params, [1, 3])
    np.testing.assert_allclose(denormalize(out[[1, 3]], sub), stack[[1, 3]], atol=1e-5)


def test_rescale_is_denormalize_without_the_offset():
    params = {"lo": [2.0, -1.0], "hi": [10.0, 1.0]}
    spread = np.full((2, 1, 2), 0.5, dtype=np.float32)
    np.testing.assert_array_equal(rescale(spread, params), [[[4.0, 4.0]], [[1.0, 1.0]]])
    # A std of [0, 1] samples is the std of their denormalised values.
    samples = np.random.default_rng(0).random((5, 2, 1, 2)).astype(np.float32)
    denormalised = np.stack([denormalize(x, params) for x in samples])
    np.testing.assert_allclose(
        rescale(samples.std(axis=0), params), denormalised.std(axis=0), rtol=1e-5
    )
    with pytest.raises(ValueError, match="normalisation entries"):
        rescale(spread[:1], params)


def test_unknown_method():
    with pytest.raises(ConfigError, match="unknown normalization"):
        normalize_stack(np.zeros((1, 2, 2)), "zscore")


@pytest.mark.parametrize("method", ["slice-minmax", "volume-percentile"])
def test_chunked_scaling_matches_the_whole_stack_formula(method):
    """Stacks longer than SLICE_CHUNK are scaled in parts, bit for bit as in one piece."""
    rng = np.random.default_rng(3)
    data = (rng.random((2 * normalize.SLICE_CHUNK + 5, 6, 7)) * 900 - 100).astype(np.float32)
    data[70] = 5.0  # a constant slice in the second chunk
    out, params = normalize.normalize_stack(data, method)
    lo, hi = np.asarray(params["lo"]), np.asarray(params["hi"])
    clipped = data if method == "slice-minmax" else np.clip(data, lo[0], hi[0])
    span = hi - lo
    whole = (clipped - lo[:, None, None]) / np.where(span > 0, span, 1.0)[:, None, None]
    whole[span <= 0] = 0.0
    expected = np.clip(whole, 0.0, 1.0).astype(np.float32)
    assert out.dtype == np.float32
    assert np.array_equal(out, expected)
    if method == "slice-minmax":
        assert not out[70].any()
