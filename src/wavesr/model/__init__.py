"""The model: wavelet, degradations, autoencoder, transformer, diffusion, latent scaling, tiling,
and the inference pipeline (tensors in, tensors out). May import only config, errors, runtime.
"""
