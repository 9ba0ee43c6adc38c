"""The Python API (`wavesr.load_model`): nibabel images and arrays in, the CLI's results out."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import wavesr
from wavesr.api import FILE_OPTIONS, sr_options
from wavesr.cli.main import main
from wavesr.errors import ConfigError, InputError, WaveSRError
from wavesr.tasks.sr import SROptions

QUIET = {"progress": False}


def _disc_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Discs of growing radius, with some texture, along the last axis (intensities ~100)."""
    rng = np.random.default_rng(seed)
    h, w, n = shape
    yy, xx = np.mgrid[:h, :w]
    discs = [((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 3 + k) ** 2) for k in range(n)]
    texture = 1 + 0.2 * rng.random((h, w, n))
    return (np.stack(discs, -1) * texture * 100).astype(np.float32)


def _oblique_affine(zooms: tuple[float, float, float]) -> np.ndarray:
    affine = np.diag([*zooms, 1.0])
    affine[0, 1] = 0.1  # a little shear: the output affine is not a plain diagonal
    affine[:3, 3] = [-12.5, 7.0, 3.0]
    return affine


@pytest.fixture(scope="module")
def model() -> wavesr.Model:
    return wavesr.load_model()


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    """A 32x32x3 NIfTI, 1.2 x 1.1 x 3 mm, on disk (the CLI reads it)."""
    path = tmp_path_factory.mktemp("api") / "scan.nii.gz"
    nib.save(nib.Nifti1Image(_disc_volume((32, 32, 3)), _oblique_affine((1.2, 1.1, 3.0))), path)
    return path


def _cli_sr(source: Path, output: Path, *options: str) -> nib.Nifti1Image:
    assert main(["sr", str(source), "-o", str(output), "--quiet", *options]) == 0
    return nib.load(output)


def _saved(img: nib.Nifti1Image, path: Path) -> nib.Nifti1Image:
    nib.save(img, path)
    return nib.load(path)


def test_image_in_image_out_as_the_cli_writes_it(model, scan, tmp_path):
    cli = _cli_sr(scan, tmp_path / "cli.nii.gz", "--seed", "3")
    out = model.super_resolve(nib.load(scan), seed=3, **QUIET)
    assert isinstance(out, nib.Nifti1Image)
    assert out.shape == cli.shape == (128, 128, 3)
    np.testing.assert_allclose(out.affine, cli.affine, rtol=0, atol=1e-6)
    again = _saved(out, tmp_path / "api.nii.gz")  # the header stores the affine as float32
    np.testing.assert_array_equal(again.affine, cli.affine)
    np.testing.assert_array_equal(np.asarray(out.dataobj), np.asarray(cli.dataobj))


def test_image_made_in_memory_and_another_axis(model, tmp_path):
    img = nib.Nifti1Image(_disc_volume((16, 16, 8)), _oblique_affine((1.0, 1.0, 2.5)))
    path = tmp_path / "mem.nii.gz"
    nib.save(img, path)
    cli = _cli_sr(path, tmp_path / "cli.nii.gz", "--axis", "0", "--steps", "2")
    out = model.super_resolve(img, axis=0, steps=2, **QUIET)
    assert out.shape == cli.shape == (16, 64, 32)
    np.testing.assert_array_equal(np.asarray(out.dataobj), np.asarray(cli.dataobj))


def test_arrays_2d_and_3d_as_the_cli_does_npy(model, tmp_path):
    stack = np.moveaxis(_disc_volume((32, 32, 3)), -1, 0)  # (3, 32, 32): slices along axis 0
    np.save(tmp_path / "stack.npy", stack)
    assert main(["sr", str(tmp_path / "stack.npy"), "-o", str(tmp_path / "o.npy"), "--quiet"]) == 0
    out = model.super_resolve(stack, **QUIET)
    assert isinstance(out, np.ndarray) and out.shape == (3, 128, 128)
    np.testing.assert_array_equal(out, np.load(tmp_path / "o.npy"))
    one = model.super_resolve(stack[1], steps=2, **QUIET)
    assert one.shape == (128, 128) and one.dtype == np.float32
    assert 50 < one.max() < 200  # in the input's intensity scale


def test_options_reach_the_sampler(model):
    x = np.moveaxis(_disc_volume((32, 32, 1)), -1, 0)[0]
    run = {"steps": 3, **QUIET}
    sampled = {"temperature": 0.5, **run}  # the default model's own temperature is 0
    base = model.super_resolve(x, seed=0, **sampled)
    np.testing.assert_array_equal(base, model.super_resolve(x, seed=0, **sampled))
    assert not np.array_equal(base, model.super_resolve(x, seed=1, **sampled))
    assert not np.array_equal(base, model.super_resolve(x, seed=0, temperature=0.2, **run))
    assert not np.array_equal(base, model.super_resolve(x, seed=0, sampler="ancestral", **sampled))
    faithful = model.super_resolve(x, mode="faithful", **run)  # a field added to SROptions later
    assert not np.array_equal(faithful, model.super_resolve(x, mode="perceptual", **run))


def test_samples_give_the_mean_and_the_std(model, scan):
    sampled = {"samples": 3, "steps": 2, "temperature": 1.0, **QUIET}
    mean, std = model.super_resolve(nib.load(scan), return_std=True, **sampled)
    assert mean.shape == std.shape == (128, 128, 3)
    np.testing.assert_array_equal(std.affine, mean.affine)
    assert np.asarray(std.dataobj).max() > 0
    alone = model.super_resolve(nib.load(scan), **sampled)
    np.testing.assert_array_equal(np.asarray(alone.dataobj), np.asarray(mean.dataobj))
    with pytest.raises(ConfigError, match="samples >= 2"):
        model.super_resolve(nib.load(scan), return_std=True)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([[1.0, 2.0]], InputError, "nibabel image or a 2-D / 3-D NumPy array"),
        (np.zeros((2, 2, 16, 16)), InputError, "2-D or 3-D array"),
        (np.full((16, 16), np.nan), InputError, "NaN"),
        (np.ones((4, 4)), InputError, "smaller than the minimum"),
        (np.ones((16, 16), dtype=complex), InputError, "complex"),
    ],
)
def test_bad_inputs_raise_a_clear_error(model, x, error, match):
    with pytest.raises(error, match=match):
        model.super_resolve(x, **QUIET)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sede": 1}, "unknown option.*sede"),
        ({"overwrite": True}, "unknown option.*overwrite"),
        ({"scale": 2}, "trained for x4"),
        ({"steps": 0}, "--steps must be >= 1"),
        ({"sampler": "euler"}, "--sampler must be one of"),
        ({"mode": "fast"}, "mode"),
    ],
)
def test_bad_options_raise_a_config_error(model, options, match):
    with pytest.raises(ConfigError, match=match):
        model.super_resolve(np.ones((16, 16)), **options, **QUIET)


def test_every_sr_option_maps_through():
    defaults = SROptions()
    names = [f.name for f in fields(SROptions) if f.name not in FILE_OPTIONS]
    assert sr_options(**{n: getattr(defaults, n) for n in names}) == defaults
    assert sr_options(seed=5, samples=2) == SROptions(seed=5, samples=2)


def test_load_model_kinds(model):
    assert model.kind == "in-plane" and model.scale == 4
    with pytest.raises(ConfigError, match="kind must be one of"):
        wavesr.load_model(kind="sideways")
    with pytest.raises(ConfigError, match="not a through-plane one"):
        wavesr.load_model(model.path, kind="through-plane")
    with pytest.raises(WaveSRError, match="no such"):
        wavesr.load_model("/nonexistent/model")


def test_through_plane_as_the_cli_does(tmp_path):
    thick = _disc_volume((16, 16, 4))
    path = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(thick, _oblique_affine((1.0, 1.0, 4.0))), path)
    options = ("--through-plane", "--steps", "2", "--stacks", "1")
    cli = _cli_sr(path, tmp_path / "cli.nii.gz", *options)
    model = wavesr.load_model(kind="through-plane")
    assert model.kind == "through-plane"
    out = model.super_resolve_through_plane(nib.load(path), steps=2, stacks=1, **QUIET)
    assert out.shape == cli.shape == (16, 16, 16)
    np.testing.assert_array_equal(_saved(out, tmp_path / "api.nii.gz").affine, cli.affine)
    np.testing.assert_array_equal(np.asarray(out.dataobj), np.asarray(cli.dataobj))
    with pytest.raises(ConfigError, match="through-plane"):
        model.super_resolve(nib.load(path), **QUIET)
    with pytest.raises(InputError, match="nibabel image"):
        model.super_resolve_through_plane(thick, **QUIET)
    with pytest.raises(ConfigError, match="--samples"):
        model.super_resolve_through_plane(nib.load(path), samples=2, **QUIET)


def test_import_wavesr_stays_light():
    code = "import sys, wavesr; print([m for m in ('torch', 'wavesr.api') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert wavesr.load_model is wavesr.api.load_model
    with pytest.raises(AttributeError):
        wavesr.no_such_name  # noqa: B018
