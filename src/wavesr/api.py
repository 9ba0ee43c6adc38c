"""The Python API: `load_model` and the `Model` it returns, which super-resolves nibabel images
and NumPy arrays in memory with the same core functions as `wavesr sr` (README, "Python API").

Top layer, beside the CLI: may import tasks, data, bundle, weights, config and errors; nothing
in the package imports it but the package root, lazily (`wavesr.load_model`).

    import wavesr, nibabel as nib
    model = wavesr.load_model()
    sr = model.super_resolve(nib.load("scan.nii.gz"), seed=1)  # a NIfTI image, x4 in-plane
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wavesr.data.load import array_slices
from wavesr.data.nifti import image_volume
from wavesr.data.types import SliceStack
from wavesr.data.write import nifti_image
from wavesr.errors import ConfigError, InputError
from wavesr.runtime import resolve_device
from wavesr.tasks.sr import (
    SROptions,
    as_written,
    check_in_plane_model,
    check_options,
    check_trained_scale,
    load_pipeline,
    output_affine,
    resolve_model_dir,
    super_resolve_slices,
)
from wavesr.tasks.through_plane.sr import (
    NEEDS_VOLUME,
    ThickAxisMethod,
    check_thick_volume,
    check_through_plane_options,
    find_thick_axis,
    in_plane_options,
    through_plane_volume,
)
from wavesr.weights import through_plane_model_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

    import nibabel as nib

IN_PLANE, THROUGH_PLANE = "in-plane", "through-plane"
KINDS = (IN_PLANE, THROUGH_PLANE)
# `wavesr sr` options about writing files: meaningless for results returned in memory.
FILE_OPTIONS = frozenset({"overwrite", "output_format", "series"})


def load_model(
    path: str | Path | None = None, *, kind: str | None = None, device: str = "auto"
) -> Model:
    """Load a WaveSR bundle (a `wavesr train ldt` run folder) onto `device` ("auto", "cpu",
    "cuda"). `path` None: the bundled model of `kind`, "in-plane" (default, x4 in-plane, as
    `wavesr sr`) or "through-plane" (as `wavesr sr --through-plane`). With a `path` the kind
    is the bundle's own; a `kind` that differs raises ConfigError."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if path is None and kind == THROUGH_PLANE:
        model_dir = through_plane_model_dir()
    else:
        model_dir = resolve_model_dir(path)
    model = Model(model_dir, device)
    if kind is not None and model.kind != kind:
        raise ConfigError(f"this is an {model.kind} model, not a {kind} one", model_dir)
    return model


def sr_options(**options: Any) -> SROptions:
    """`SROptions` from keywords named as its fields (the `wavesr sr` options, underscores for
    dashes); ConfigError for a name that is not one. New fields need no change here."""
    names = {f.name for f in fields(SROptions)} - FILE_OPTIONS
    unknown = sorted(set(options) - names)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)}; the options are {', '.join(sorted(names))}"
        )
    return SROptions(**options)


class Model:
    """A loaded WaveSR model: `super_resolve` (in-plane) and `super_resolve_through_plane`.

    Pipelines are loaded once per device (`device=` of a call may name another one).
    """

    def __init__(self, path: str | Path, device: str = "auto") -> None:
        self.path = Path(path)
        self._pipelines: dict[str, Any] = {}
        self.device = resolve_device(device)
        check_options(SROptions(device=self.device))
        self._pipeline(self.device)

    @property
    def kind(self) -> str:
        """ "through-plane" for a model trained on thick slices (slice-axis), else "in-plane"."""
        degradation = self._pipeline(self.device).config.data.degradation
        return THROUGH_PLANE if degradation == "slice-axis" else IN_PLANE

    @property
    def scale(self) -> int:
        """The factor the model was trained for."""
        return int(self._pipeline(self.device).config.data.scale)

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, {self.kind}, x{self.scale}, device={self.device!r})"

    def super_resolve(
        self,
        x: nib.spatialimages.SpatialImage | np.ndarray,
        scale: int = 4,
        *,
        return_std: bool = False,
        **options: Any,
    ) -> Any:
        """Super-resolve every slice of `x` in-plane, as `wavesr sr` does.

        `x`: a nibabel image (returns a float32 NIfTI image with the output affine, as the CLI
        writes it), or a 2-D / 3-D NumPy array (returns an array; a 3-D array is sliced along
        axis 0 unless `axis` says otherwise, as a .npy file is). `options` are `wavesr sr`'s:
        steps, seed, temperature, consistency_steps, sampler, samples, batch, device, axis,
        input_is_upsampled, progress, mode, and any later field of `SROptions`. With `samples` > 1
        the result is the mean of that many samples; `return_std=True` returns (mean, std).
        """
        opts = sr_options(scale=scale, **options)
        opts = replace(opts, device=resolve_device(opts.device))
        check_options(opts)
        if return_std and opts.samples < 2:
            raise ConfigError("return_std needs samples >= 2 (one sample has no spread)")
        check_trained_scale(self.scale, opts.scale, self.path)
        pipeline = self._pipeline(opts.device)
        check_in_plane_model(pipeline, self.path, opts)
        stack = _slice_stack(x, opts.axis, pipeline.config.data.normalization)
        sr, std, _ = super_resolve_slices(pipeline, stack, opts)
        mean = _like_input(x, as_written(sr, stack), stack, opts)
        if not return_std:
            return mean
        return mean, _like_input(x, as_written(std, stack), stack, opts)

    def super_resolve_through_plane(
        self,
        img: nib.spatialimages.SpatialImage,
        scale: int | None = None,
        *,
        stacks: int = 2,
        self_ensemble: int = 1,
        adapt_minutes: float = 0.0,
        **options: Any,
    ) -> nib.Nifti1Image:
        """Super-resolve a thick-slice nibabel image along its thick axis to the in-plane
        voxel size, as `wavesr sr --through-plane` does; returns the isotropic NIfTI image.

        `scale` is the model's factor (None: its own); `axis` (an option) names the thick axis
        (default: the largest voxel size). `stacks`, `self_ensemble`, `adapt_minutes` and the
        sampling `options` are the CLI's; `adapt_minutes` fine-tunes a copy of the decoder
        for this call only. An in-plane model runs without back-projection, with a warning.
        """
        opts = sr_options(**options)
        opts = replace(opts, device=resolve_device(opts.device))
        self_ensemble, adapt_minutes = check_through_plane_options(
            opts, scale, stacks, self_ensemble, adapt_minutes
        )
        volume, affine, source = _thick_volume(img)
        axis = find_thick_axis(affine, opts.axis, source)
        check_trained_scale(self.scale, scale, self.path)
        pipeline = self._pipeline(opts.device)
        opts = in_plane_options(pipeline, self.path, opts)
        with _decoder_restored(pipeline) if adapt_minutes else nullcontext():
            run = through_plane_volume(
                volume,
                affine,
                axis,
                ThickAxisMethod(pipeline, self.path),
                opts,
                scale=scale,
                stacks=stacks,
                self_ensemble=self_ensemble,
                adapt_minutes=adapt_minutes,
            )
        return nifti_image(run.volume, run.affine)

    def _pipeline(self, device: str):
        """The pipeline on `device` (resolved), loaded on first use."""
        if device not in self._pipelines:
            self._pipelines[device] = load_pipeline(self.path, None, device)
        return self._pipelines[device]


def _is_image(x: object) -> bool:
    import nibabel as nib

    return isinstance(x, nib.spatialimages.SpatialImage)


def _source(img: nib.spatialimages.SpatialImage) -> Path | None:
    """The image's file, to name it in errors; None for an image made in memory."""
    name = img.get_filename()
    return None if name is None else Path(name)


def _slice_stack(x: object, axis: int | str | None, normalization: str) -> SliceStack:
    """`x` (a nibabel image or a 2-D / 3-D array) as the normalised slices `wavesr sr` runs."""
    if _is_image(x):
        source = _source(x)
        volume, affine = image_volume(x, source)
        return array_slices(
            volume,
            affine=affine,
            axis=axis,
            normalization=normalization,
            source=source or Path("image"),
        )
    if isinstance(x, np.ndarray):
        return array_slices(x, axis=axis, normalization=normalization)
    raise InputError(f"expected a nibabel image or a 2-D / 3-D NumPy array, got {type(x).__name__}")


def _like_input(x: object, data: np.ndarray, stack: SliceStack, opts: SROptions) -> Any:
    """`data` (the output's voxels) as `x` came: a NIfTI image with the output affine, or
    the array itself."""
    return nifti_image(data, output_affine(stack, opts)) if _is_image(x) else data


def _thick_volume(img: object) -> tuple[np.ndarray, np.ndarray, Path | None]:
    """(volume, affine, source) of a nibabel image, checked as `--through-plane` checks a
    file."""
    if not _is_image(img):
        raise InputError(f"{NEEDS_VOLUME}: pass a nibabel image, got {type(img).__name__}")
    source = _source(img)
    volume, affine = image_volume(img, source)
    check_thick_volume(volume, affine, source)
    return volume, affine, source


@contextmanager
def _decoder_restored(pipeline) -> Iterator[None]:
    """Within the block the autoencoder may be fine-tuned (--adapt-minutes); on leaving,
    its weights are put back, so the adaptation holds for one call only."""
    saved = {k: v.detach().clone() for k, v in pipeline.autoencoder.state_dict().items()}
    try:
        yield
    finally:
        pipeline.autoencoder.load_state_dict(saved)
