"""Through-plane SR: thick axis, factor, reformats, stacks, output affine, sr --through-plane."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import fov_corners
from PIL import Image

import wavesr.tasks.through_plane.sr as tp_sr
from wavesr.cli.main import main
from wavesr.errors import ConfigError, InputError
from wavesr.model import degrade
from wavesr.tasks.through_plane.reformat import (
    bicubic_along_axis,
    cubic_rows,
    reformat,
    resample_along_axis,
    super_resolve_volume,
    thick_axis,
    through_plane_affine,
    through_plane_factor,
    trilinear_along_axis,
    unformat,
    upsample_rows,
    upsample_through_plane,
)
from wavesr.tasks.through_plane.sr import run_through_plane


def _affine(spacing, oblique: bool) -> np.ndarray:
    """4x4 voxel -> world with these column lengths; oblique: rotated and sheared."""
    aff = np.eye(4)
    aff[:3, 3] = [-12.5, 30.0, 7.25]
    if not oblique:
        aff[:3, :3] = np.diag(spacing)
        return aff
    a, b = 0.4, -0.7
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    shear = np.array([[1, 0.2, 0], [0, 1, -0.15], [0, 0, 1]])
    m = rz @ rx @ shear
    aff[:3, :3] = m / np.linalg.norm(m, axis=0) * np.asarray(spacing, dtype=float)
    return aff


def _ramp(shape, seed: int = 0) -> np.ndarray:
    """A positive volume linear in the voxel indices (cubic and linear reproduce it)."""
    w = np.random.default_rng(seed).uniform(0.5, 2.0, len(shape))
    idx = np.indices(shape).astype(np.float64)
    return (100 + np.tensordot(w, idx, axes=1)).astype(np.float32)


def _save(path: Path, volume: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(volume, affine), str(path))
    return path


# ------------------------------------------------------------------ thick axis and factor


@pytest.mark.parametrize(("spacing", "axis"), [((1, 1, 4), 2), ((5, 0.9, 1), 0), ((1, 3, 1.2), 1)])
def test_thick_axis_is_the_largest_voxel_size(spacing, axis):
    assert thick_axis(spacing) == axis


def test_no_thick_axis_is_one_clear_error():
    with pytest.raises(InputError, match=r"no thick axis: voxel sizes 1 x 1 x 1.09 mm .*--axis"):
        thick_axis((1, 1, 1.09))
    assert thick_axis((1, 1, 1.11)) == 2
    assert thick_axis((1, 1, 1), axis=1) == 1  # forced
    for bad in (3, -1, True):
        with pytest.raises(ConfigError):
            thick_axis((1, 1, 4), axis=bad)


@pytest.mark.parametrize(
    ("spacing", "scale", "model", "fine"),
    [
        ((1, 1, 4), None, 4, 1.0),
        ((1, 1, 5), None, 4, 1.0),  # 5: nearer 4 than 8 (log scale)
        ((0.5, 0.5, 3), None, 8, 0.5),  # 6: nearer 8 than 4 (log scale)
        ((1, 1, 3), None, 4, 1.0),  # 3: nearer 4 than 2 on a log scale
        ((0.8, 1.2, 2), None, 2, 1.0),  # fine = the mean in-plane size
        ((1, 1, 5), 8, 8, 1.0),  # --scale wins
    ],
)
def test_factor_choice(spacing, scale, model, fine):
    f = through_plane_factor(spacing, 2, scale)
    assert (f.model, f.fine, f.thick) == (model, pytest.approx(fine), spacing[2])


def test_factor_follows_the_model_and_non_integer_ratios_resample():
    f = through_plane_factor((1, 1, 5), 2, supported=(8,))
    assert f.model == 8
    f = through_plane_factor((1, 1, 5), 2)  # 24 slices of 5 mm: x4 -> 96, then 120 of 1 mm
    assert (f.model, f.output_length(24), f.output_spacing(24)) == (4, 120, 1.0)
    f = through_plane_factor((0.9, 0.9, 4), 2)  # extent 28 mm / 0.9 = 31.1 -> 31 voxels
    assert f.output_length(7) == 31 and f.output_spacing(7) == pytest.approx(28 / 31)


# ------------------------------------------------------------------ geometry


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("oblique", [False, True])
@pytest.mark.parametrize(("n_in", "n_out"), [(6, 24), (6, 30), (7, 9)])
def test_affine_keeps_extent_and_orientation(axis, oblique, n_in, n_out):
    spacing = [0.9, 1.1, 1.0]
    spacing[axis] = 4.0
    aff = _affine(spacing, oblique)
    shape = [10, 11, 12]
    shape[axis] = n_in
    new = through_plane_affine(aff, axis, n_in, n_out)
    new_shape = list(shape)
    new_shape[axis] = n_out
    np.testing.assert_allclose(fov_corners(new, new_shape), fov_corners(aff, shape), atol=1e-4)
    unit = lambda m: m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)  # noqa: E731
    np.testing.assert_allclose(unit(new), unit(aff), atol=1e-12)
    lengths = np.linalg.norm(new[:3, :3], axis=0) / np.linalg.norm(aff[:3, :3], axis=0)
    expected = np.ones(3)
    expected[axis] = n_in / n_out
    np.testing.assert_allclose(lengths, expected)
    # HR voxel j sits at LR index (j + 0.5) * n_in / n_out - 0.5 (s HR voxels per LR voxel).
    for j in (0, 1, n_out - 1):
        hr, lr = np.zeros(4), np.zeros(4)
        hr[axis], hr[3] = j, 1
        lr[axis], lr[3] = (j + 0.5) * n_in / n_out - 0.5, 1
        np.testing.assert_allclose(new @ hr, aff @ lr, atol=1e-9)


@pytest.mark.parametrize("axis", [0, 2])
@pytest.mark.parametrize("factor", [3, 5 / 3])
@pytest.mark.parametrize("baseline", [bicubic_along_axis, trilinear_along_axis])
def test_baselines_place_voxels_where_the_affine_says(axis, factor, baseline):
    """A volume holding each voxel's world x coordinate, interpolated along the axis: where an
    output voxel centre falls on an input one (every 3rd, and 9 -> 15 voxels: every 5th) both
    interpolations return that sample, and it is the new affine's world x there."""
    spacing = [1.0, 1.0, 1.0]
    spacing[axis] = 3.0
    aff = _affine(spacing, oblique=True)
    shape = [5, 6, 7]
    shape[axis] = 9
    world_x = lambda a, s: np.tensordot(a[0, :3], np.indices(s), axes=1) + a[0, 3]  # noqa: E731
    up = baseline(world_x(aff, shape).astype(np.float32), axis, factor)
    n_out = round(9 * factor)
    assert up.shape[axis] == n_out
    expected = world_x(through_plane_affine(aff, axis, 9, n_out), up.shape)
    src = (np.arange(n_out) + 0.5) * 9 / n_out - 0.5
    on_input = np.flatnonzero(np.isclose(src, np.round(src)))
    assert len(on_input) == 9 if factor == 3 else len(on_input) == 3
    np.testing.assert_allclose(
        np.take(up, on_input, axis), np.take(expected, on_input, axis), atol=1e-4
    )
    if baseline is trilinear_along_axis:  # linear: the whole ramp, away from the borders
        inside = np.flatnonzero((src >= 0) & (src <= 8))
        np.testing.assert_allclose(
            np.take(up, inside, axis), np.take(expected, inside, axis), atol=1e-4
        )


def test_resample_to_the_same_size_is_the_identity_and_rows_leave_columns():
    vol = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(resample_along_axis(vol, 1, 5), vol)
    x = torch.from_numpy(vol[:, None])
    up = upsample_rows(x, 4)
    assert up.shape == (4, 1, 20, 6)
    np.testing.assert_allclose(  # each column is the 1-D cubic upsampling of that column
        up[:, 0].numpy(), bicubic_along_axis(vol, 1, 4), atol=1e-6
    )


def test_rows_interpolation_matches_the_slice_axis_degradation():
    x = torch.rand(2, 1, 6, 9)
    torch.testing.assert_close(upsample_rows(x, 4).clamp(0, 1), degrade.slice_upsample(x, 4))


# ------------------------------------------------------------------ reformats and stacks


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reformat_puts_the_thick_axis_on_the_rows(axis):
    vol = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    for partner in (a for a in range(3) if a != axis):
        third = 3 - axis - partner
        slices = reformat(vol, axis, partner)
        assert slices.shape == (vol.shape[third], vol.shape[axis], vol.shape[partner])
        idx = [0, 0, 0]
        idx[third], idx[axis], idx[partner] = 2, 3, 1
        assert slices[2, 3, 1] == vol[tuple(idx)]
        np.testing.assert_array_equal(unformat(slices, axis, partner), vol)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_stacks_are_upsampled_along_the_axis_and_averaged(axis):
    """Rows repeated s times (undone by taking every s-th row) plus the slice width: the
    average of the two stacks adds the mean of the two other axes' lengths."""
    vol = np.random.default_rng(axis).random((5, 6, 7)).astype(np.float32)
    s = 2
    rows = lambda x: np.repeat(x, s, axis=1) + x.shape[2]  # noqa: E731
    others = [vol.shape[a] for a in range(3) if a != axis]
    two = upsample_through_plane(vol, axis, s, rows, stacks=2)
    np.testing.assert_allclose(two, np.repeat(vol, s, axis) + np.mean(others), rtol=1e-6)
    one = upsample_through_plane(vol, axis, s, rows, stacks=1)
    np.testing.assert_allclose(one, np.repeat(vol, s, axis) + others[0], rtol=1e-6)
    exact = upsample_through_plane(vol, axis, s, lambda x: np.repeat(x, s, axis=1))
    np.testing.assert_array_equal(np.take(exact, range(0, vol.shape[axis] * s, s), axis), vol)
    with pytest.raises(ValueError, match="upsampler gave"):
        upsample_through_plane(vol, axis, 4, rows)
    with pytest.raises(ConfigError, match="stacks"):
        upsample_through_plane(vol, axis, s, rows, stacks=3)


def test_non_integer_factor_super_resolves_then_resamples_to_the_fine_grid():
    vol = _ramp((9, 8, 6))  # 6 slices of 5 mm, 1 mm in-plane: x4 -> 24, then 30 of 1 mm
    aff = _affine((1.0, 1.0, 5.0), oblique=True)
    f = through_plane_factor((1, 1, 5), 2)
    calls = []

    def rows(x):
        calls.append(x.shape)
        return cubic_rows(f.model)(x)

    sr, new = super_resolve_volume(vol, aff, 2, f, rows)
    assert calls == [(8, 6, 9), (9, 6, 8)]  # both stacks, thick axis on the rows, x4
    assert sr.shape == (9, 8, 30)
    np.testing.assert_allclose(np.linalg.norm(new[:3, :3], axis=0), [1, 1, 1], atol=1e-9)
    np.testing.assert_allclose(fov_corners(new, sr.shape), fov_corners(aff, vol.shape), atol=1e-4)
    two_steps = resample_along_axis(bicubic_along_axis(vol, 2, 4), 2, 30)
    np.testing.assert_allclose(sr, two_steps, rtol=1e-5)


# ------------------------------------------------------------------ sr --through-plane


class _Stub:
    """A pipeline stand-in: returns its (rows-interpolated) input; records what it was given."""

    def __init__(self, degradation: str = "slice-axis", scale: int = 4) -> None:
        data = SimpleNamespace(normalization="slice-minmax", degradation=degradation, scale=scale)
        self.config, self.scale, self.calls = SimpleNamespace(data=data), scale, []

    def __call__(self, x, **kwargs):
        self.calls.append((tuple(x.shape), kwargs["consistency_steps"]))
        return x


def _stub_pipeline(monkeypatch, stub: _Stub) -> None:
    monkeypatch.setattr(tp_sr, "load_pipeline", lambda model_dir, scale, device: stub)


@pytest.mark.parametrize("axis", [0, 2])
def test_cli_writes_the_isotropic_volume_with_its_affine(monkeypatch, tmp_path, capsys, axis):
    spacing, shape = [1.0, 1.0, 1.0], [16, 16, 16]
    spacing[axis], shape[axis] = 4.0, 4
    aff = _affine(spacing, oblique=True)
    vol = _ramp(shape)
    src = _save(tmp_path / "thick.nii.gz", vol, aff)
    out = tmp_path / "iso.nii.gz"
    stub = _Stub()
    _stub_pipeline(monkeypatch, stub)
    assert main(["sr", str(src), "-o", str(out), "--through-plane", "--quiet"]) == 0
    img = nib.load(str(out))
    assert img.shape == (16, 16, 16)
    np.testing.assert_allclose(img.affine, through_plane_affine(aff, axis, 4, 16), atol=1e-5)
    np.testing.assert_allclose(
        fov_corners(img.affine, img.shape), fov_corners(aff, shape), atol=1e-4
    )
    # The stub returns the model input: the normalised, rows-interpolated slices, mapped back;
    # away from the borders (no clamping) that is the ramp's cubic interpolation.
    inside = range(6, 10)
    np.testing.assert_allclose(
        np.take(img.get_fdata(), inside, axis),
        np.take(bicubic_along_axis(vol, axis, 4), inside, axis),
        rtol=1e-5,
    )
    assert sorted({c[0] for c in stub.calls}) == [(16, 1, 16, 16)]  # 16 + 16 slices, batch 16
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert f"axis {axis}, 4 -> 1 mm: x4 wavesr on 32 slices (2 stacks)" in captured.out


def test_cli_warns_for_an_in_plane_model_and_turns_back_projection_off(
    monkeypatch, tmp_path, capsys
):
    src = _save(tmp_path / "thick.nii.gz", _ramp((16, 16, 4)), _affine((1, 1, 4), False))
    stub = _Stub(degradation="bicubic")
    _stub_pipeline(monkeypatch, stub)
    out = tmp_path / "iso.nii.gz"
    argv = ["sr", str(src), "-o", str(out), "--through-plane", "--stacks", "1", "--quiet"]
    assert main([*argv, "--consistency-steps", "5"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in-plane model (data.degradation=bicubic)" in err
    assert [c[1] for c in stub.calls] == [0]  # one stack of 16 slices, no back-projection
    assert nib.load(str(out)).shape == (16, 16, 16)


def test_bundled_model_end_to_end(tmp_path, capsys):
    """The real pipeline (bundled x4 model, one step) on a 5 mm volume: x4, then 1 mm."""
    vol = _ramp((16, 12, 3)) * 10
    src = _save(tmp_path / "thick.nii.gz", vol, _affine((1, 1, 5), oblique=True))
    out = tmp_path / "iso.nii.gz"
    argv = ["sr", str(src), "-o", str(out), "--through-plane", "--steps", "1", "--quiet"]
    assert main([*argv, "--stacks", "1"]) == 0
    img = nib.load(str(out))
    assert img.shape == (16, 12, 15)
    np.testing.assert_allclose(img.header.get_zooms(), (1, 1, 1), atol=1e-5)
    data = img.get_fdata()
    assert np.isfinite(data).all() and data.min() > 0.5 * vol.min()
    assert "then cubic 12 -> 15" in capsys.readouterr().out


def _fails(argv, out: Path, capsys, message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_2d_inputs_and_isotropic_volumes_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "iso.nii.gz"
    png = tmp_path / "slice.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(png)
    flat = _save(tmp_path / "flat.nii.gz", _ramp((16, 16)), np.diag([1, 1, 4, 1.0]))
    iso = _save(tmp_path / "iso_in.nii.gz", _ramp((16, 16, 8)), np.diag([1, 1, 1.05, 1]))
    tp = ["--through-plane", "--quiet"]
    _fails(["sr", str(png), "-o", str(out), *tp], out, capsys, "needs a 3-D volume")
    _fails(["sr", str(flat), "-o", str(out), *tp], out, capsys, "a 2-D image (shape 16x16x1)")
    _fails(["sr", str(iso), "-o", str(out), *tp], out, capsys, "no thick axis: voxel sizes 1 x")
    _fails(["sr", str(iso), "-o", str(out), "--stacks", "2"], out, capsys, "--stacks is an")
    _fails(
        ["sr", str(iso), "-o", str(tmp_path / "x.npy"), *tp], tmp_path / "x.npy", capsys, "NIfTI"
    )


def test_cli_self_ensemble_runs_every_flip_and_says_so(monkeypatch, tmp_path, capsys):
    src = _save(tmp_path / "thick.nii.gz", _ramp((16, 12, 4)), _affine((1, 1, 4), False))
    stub = _Stub()
    _stub_pipeline(monkeypatch, stub)
    out = tmp_path / "iso.nii.gz"
    argv = ["sr", str(src), "-o", str(out), "--through-plane", "--self-ensemble", "4"]
    assert main([*argv, "--quiet", "--report", str(tmp_path / "r.html")]) == 0
    # 2 stacks (12 and 16 reformats, batch 16) times 4 flips; the stub is flip-equivariant
    assert sorted(c[0] for c in stub.calls) == [(12, 1, 16, 16)] * 4 + [(16, 1, 16, 12)] * 4
    assert "x4 wavesr on 28 slices (2 stacks, 4 flips)" in capsys.readouterr().out
    inside = range(6, 10)
    np.testing.assert_allclose(
        np.take(nib.load(str(out)).get_fdata(), inside, 2),
        np.take(bicubic_along_axis(_ramp((16, 12, 4)), 2, 4), inside, 2),
        rtol=1e-5,
    )
    text = (tmp_path / "r.html").read_text()
    assert "4 flips (averaged)" in text and "--self-ensemble 4" in text


def test_self_ensemble_needs_through_plane_and_a_supported_size(tmp_path, capsys):
    src = _save(tmp_path / "thick.nii.gz", _ramp((16, 12, 4)), _affine((1, 1, 4), False))
    out = tmp_path / "iso.nii.gz"
    argv = ["sr", str(src), "-o", str(out), "--quiet"]
    _fails([*argv, "--self-ensemble", "2"], out, capsys, "--self-ensemble is an option of")
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices: exit 2 as well
        main([*argv, "--through-plane", "--self-ensemble", "3"])
    assert exit_info.value.code == 2 and not out.exists()
    with pytest.raises(ConfigError, match="--self-ensemble must be one of"):
        run_through_plane(src, out, upsampler=cubic_rows, self_ensemble=8)
    assert not out.exists()


def test_forced_axis_on_an_isotropic_volume_by_plane_name(tmp_path):
    src = _save(tmp_path / "iso_in.nii.gz", _ramp((9, 10, 8)), np.diag([1.0, 1, 1, 1]))
    out = tmp_path / "o.nii.gz"
    result = run_through_plane(
        src, out, options=tp_sr.SROptions(axis="coronal", progress=False), upsampler=cubic_rows
    )
    # coronal plane <-> voxel axis 1 (A/P); 1 mm over 1 mm: x2 (nearest), back to 10 voxels
    assert (result.axis, result.factor.model, result.shape) == (1, 2, (9, 10, 8))
    assert "then cubic 20 -> 10" in result.summary()


def test_cli_writes_a_report_only_when_asked(monkeypatch, tmp_path, capsys):
    src = _save(tmp_path / "thick.nii.gz", _ramp((16, 12, 4)), _affine((1, 1, 4), False))
    _stub_pipeline(monkeypatch, _Stub())
    argv = ["sr", str(src), "--through-plane", "--stacks", "1", "--quiet"]
    assert main([*argv, "-o", str(tmp_path / "a.nii.gz")]) == 0
    assert "report:" not in capsys.readouterr().out
    assert not list(tmp_path.glob("*.htm*"))
    page = tmp_path / "pages" / "tp.html"
    assert main([*argv, "-o", str(tmp_path / "b.nii.gz"), "--report", str(page)]) == 0
    summary, report = capsys.readouterr().out.splitlines()
    assert summary.startswith("sr --through-plane: axis 2") and report == f"report: {page}"
    text = page.read_text()
    assert "none (the ratio is the factor)" in text  # 4 mm over 1 mm with a x4 model
    assert "--through-plane --stacks 1 --quiet --report" in text
    assert "Reformat: coronal (axis 1)" in text and "input 4x16" in text and "output 16x16" in text
    assert not list(tmp_path.glob("*.htm*"))  # only the page asked for


def test_a_failing_run_writes_no_report_and_no_output(tmp_path):
    src = _save(tmp_path / "thick.nii.gz", _ramp((9, 8, 3)), _affine((1, 1, 4), False))
    out, page = tmp_path / "iso.nii.gz", tmp_path / "r.html"

    def broken(factor: int):
        def run(slices: np.ndarray) -> np.ndarray:
            raise RuntimeError("upsampler failed")

        return run

    opts = tp_sr.SROptions(progress=False)
    with pytest.raises(RuntimeError, match="upsampler failed"):
        run_through_plane(src, out, options=opts, upsampler=broken, report=page)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thick.nii.gz"]
    # A model-free run's page names its upsampler and lists no sampler settings.
    result = run_through_plane(src, out, options=opts, upsampler=cubic_rows, report=page)
    assert result.report == page
    text = page.read_text()
    assert "none (cubic_rows)" in text and ">sampler<" not in text and ">steps<" not in text
