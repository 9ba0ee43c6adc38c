from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from wavesr.data import load_slices
from wavesr.errors import InputError


def _grey(shape=(16, 20), peak=255) -> np.ndarray:
    ramp = np.linspace(0, peak, shape[0] * shape[1]).reshape(shape)
    return np.round(ramp)


def test_png_8bit_exact(tmp_path):
    pixels = _grey().astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    stack = load_slices(tmp_path / "a.png")
    assert stack.kind == "image" and stack.names == ["a.png"]
    assert stack.slice_axis is None and stack.affine is None
    np.testing.assert_allclose(stack.slices[0], pixels / 255.0, atol=1e-6)


def test_png_16bit_keeps_values(tmp_path):
    pixels = _grey(peak=60000).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    stack = load_slices(tmp_path / "a.png")
    assert stack.normalization["hi"] == [60000.0]
    np.testing.assert_allclose(stack.slices[0], pixels / 60000.0, atol=1e-6)


def test_rgb_to_luminance_and_alpha_dropped(tmp_path):
    rgb = np.zeros((12, 12, 3), np.uint8)
    rgb[:6, :, 0] = 200  # red half
    rgb[6:, :, 1] = 100  # green half
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.concatenate([rgb, np.full((12, 12, 1), 7, np.uint8)], axis=-1)
    rgba[::2, :, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    for name in ("rgb.png", "rgba.png"):
        stack = load_slices(tmp_path / name)
        assert stack.normalization["lo"] == [pytest.approx(0.587 * 100)]
        assert stack.normalization["hi"] == [pytest.approx(0.299 * 200)]


def test_jpeg_and_grey_alpha(tmp_path):
    Image.fromarray(_grey((32, 24)).astype(np.uint8)).save(tmp_path / "a.jpg", quality=95)
    assert load_slices(tmp_path / "a.jpg").slices.shape == (1, 32, 24)
    la = Image.fromarray(_grey().astype(np.uint8)).convert("LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_allclose(load_slices(tmp_path / "la.png").slices[0], _grey() / 255, atol=1e-6)


def test_tiff_16bit_multipage(tmp_path):
    pages = np.stack([_grey(peak=1000 * (k + 1)) for k in range(3)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", pages, photometric="minisblack")
    stack = load_slices(tmp_path / "a.tif")
    assert stack.slices.shape == (3, 16, 20)
    assert stack.normalization["hi"] == [1000.0, 2000.0, 3000.0]
    assert stack.names == ["a.tif:0", "a.tif:1", "a.tif:2"]
    tifffile.imwrite(tmp_path / "rgb.tiff", np.full((10, 10, 3), 100, np.uint8), photometric="rgb")
    assert load_slices(tmp_path / "rgb.tiff", skip_empty=False).normalization["hi"] == [
        pytest.approx(100.0)
    ]


def test_folder_natural_order(tmp_path):
    for k in (10, 2, 1):
        Image.fromarray((_grey() * 0 + 10 * k + _grey() % 7).astype(np.uint8)).save(
            tmp_path / f"img{k}.png"
        )
    (tmp_path / "notes.txt").write_text("ignored")
    stack = load_slices(tmp_path, skip_empty=False)
    assert stack.names == ["img1.png", "img2.png", "img10.png"]
    assert stack.normalization["lo"] == [10.0, 20.0, 100.0]
    assert stack.indices == [0, 1, 2]


def test_folder_mixed_sizes_rejected(tmp_path):
    Image.fromarray(_grey((16, 16)).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(_grey((16, 12)).astype(np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(InputError, match="differ in size"):
        load_slices(tmp_path)


def test_corrupt_and_tiny_images(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match="not a readable image"):
        load_slices(tmp_path / "bad.png")
    Image.fromarray(np.ones((6, 20), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(InputError, match="smaller than"):
        load_slices(tmp_path / "tiny.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "black.png")
    with pytest.raises(InputError, match="near-empty"):
        load_slices(tmp_path / "black.png")
    assert load_slices(tmp_path / "black.png", skip_empty=False).slices.max() == 0.0
