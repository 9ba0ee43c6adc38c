"""WaveSR: MRI super-resolution by latent diffusion of wavelet high-frequency bands."""

__version__ = "0.1.0"
