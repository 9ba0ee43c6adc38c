"""WaveSR: MRI super-resolution by latent diffusion of wavelet high-frequency bands.

`wavesr.load_model()` is the Python API (`wavesr.api`), imported on first use so that
`import wavesr` stays light.
"""

from importlib import import_module

__version__ = "0.1.0"
__all__ = ["Model", "__version__", "load_model"]
_API_NAMES = ("Model", "load_model")


def __getattr__(name: str):
    if name in _API_NAMES:
        # By name, not `from wavesr import api`: modules of every layer import this root for
        # `__version__`, which never loads the API; a static import would make the import
        # graph show them all depending on it (and cycling through it).
        return getattr(import_module("wavesr.api"), name)
    raise AttributeError(f"module 'wavesr' has no attribute {name!r}")
