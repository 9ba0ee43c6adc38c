"""Training slices held in memory, and deterministic batches drawn from them.

Volumes give their slices along `data.axis`, or along all three axes with ``"all"``: a
through-plane model then also learns from the reformats it will be applied to (a scan with
thick axial slices is super-resolved in its coronal and sagittal reformats, not in its axial
slices). ``"reformats"`` gives only those: the coronal and sagittal slices, the S/I axis on
their rows, where the slice-axis degradation thickens it.

A batch is a pure function of (seed, step, rank): the slice indices, crop offsets and flips come
from a generator seeded by those three numbers. Resuming at step k therefore sees exactly the
batches an uninterrupted run would have seen, with no sampler state to save.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from wavesr.config import DataConfig
from wavesr.data.load import find_inputs, load_reformat_stacks, load_slice_stacks
from wavesr.data.prepare import prepare_slice
from wavesr.data.types import SliceStack
from wavesr.errors import InputError


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)


ALL_AXES = "all"
REFORMATS = "reformats"


def slicing_axes(axis: int | str | None) -> tuple[int | str | None, ...]:
    """The slicing axes `data.axis` names: all three for "all", else that one."""
    return (0, 1, 2) if axis == ALL_AXES else (axis,)


def load_stacks(unit: Path, data: DataConfig) -> list[SliceStack]:
    """The training slice stacks of one input unit, as `data.axis` asks."""
    if data.axis == REFORMATS:
        return load_reformat_stacks(unit, thick="axial", normalization=data.normalization)
    return load_slice_stacks(unit, axes=slicing_axes(data.axis), normalization=data.normalization)


class SliceBank:
    """All training slices, prepared to the working size, as float32 arrays in [0, 1]."""

    def __init__(
        self, slices: list[np.ndarray], names: list[str], *, transpose: bool = False
    ) -> None:
        if not slices:
            raise InputError("no usable training slices found")
        self.slices = slices
        self.names = names
        self.transpose = transpose  # crops also randomly transposed

    @classmethod
    def from_paths(
        cls, paths: Sequence[str | Path], data: DataConfig, *, progress: bool = True
    ) -> SliceBank:
        units = find_inputs(paths)
        slices, names = [], []
        for unit in tqdm(units, desc="loading slices", disable=not progress, leave=False):
            stacks = load_stacks(unit, data)
            for stack in stacks:
                for image, name in zip(stack.slices, stack.names):
                    slices.append(prepare_slice(image, data.size, data.resize, data.scale))
                    names.append(name)
        return cls(slices, names, transpose=data.transpose)

    def __len__(self) -> int:
        return len(self.slices)

    def crop(self, index: int, crop: int, gen: torch.Generator) -> torch.Tensor:
        """A random crop x crop patch (zero-padded where the slice is smaller), random flips
        (and a random transpose if the bank has `transpose`)."""
        image = torch.from_numpy(self.slices[index])
        h, w = image.shape
        ph, pw = max(0, crop - h), max(0, crop - w)
        if ph or pw:
            image = torch.nn.functional.pad(image, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            h, w = image.shape
        top = int(torch.randint(0, h - crop + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - crop + 1, (1,), generator=gen))
        patch = image[top : top + crop, left : left + crop]
        flips = torch.randint(0, 2, (2,), generator=gen)
        if flips[0]:
            patch = patch.flip(0)
        if flips[1]:
            patch = patch.flip(1)
        # Drawn only when on, so that banks without it keep their batches bit for bit.
        if self.transpose and int(torch.randint(0, 2, (1,), generator=gen)):
            patch = patch.t()
        return patch

    def batch(
        self, step: int, batch_size: int, crop: int, seed: int, rank: int = 0
    ) -> torch.Tensor:
        """HR patches (B, 1, crop, crop) for this step and rank."""
        gen = step_generator(seed, step, rank)
        indices = torch.randint(0, len(self.slices), (batch_size,), generator=gen)
        return torch.stack([self.crop(int(i), crop, gen) for i in indices]).unsqueeze(1)
