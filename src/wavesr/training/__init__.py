"""Training engine shared by every model of the project (autoencoder, LDT, baselines).
May import bundle, model, data and the base; not baselines, evaluation, tasks or cli.
"""
