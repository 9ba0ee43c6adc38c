"""Model bundles: weights folders (safetensors + wavesr.json), checkpoint tensor I/O, header and
shape checks, export. May import model, config, errors, runtime, io_atomic; not data or higher.
"""
