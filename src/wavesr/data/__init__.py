"""MRI input readers (NIfTI, DICOM, fastMRI HDF5, images, .npy) and output writers.
May import config, errors, io_atomic only; never the model (contract).
"""

from wavesr.data.load import SUPPORTED_SUFFIXES, find_inputs, load_slices, nonempty_slices
from wavesr.data.normalize import denormalize, normalize_stack
from wavesr.data.types import SliceStack
from wavesr.data.write import (
    assemble_volume,
    sr_affine,
    stack_to_volume,
    write_nifti,
    write_png_slices,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "SliceStack",
    "assemble_volume",
    "denormalize",
    "find_inputs",
    "load_slices",
    "nonempty_slices",
    "normalize_stack",
    "sr_affine",
    "stack_to_volume",
    "write_nifti",
    "write_png_slices",
]
