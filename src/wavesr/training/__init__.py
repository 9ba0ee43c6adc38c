"""Training engine shared by every model of the project (autoencoder, LDT, baselines)."""
