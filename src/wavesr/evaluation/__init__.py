"""Evaluation: metrics, the evaluate/benchmark runs, SR methods, ablation, uncertainty measures.
May import training, baselines, bundle, model, data, report and the base; not tasks or cli.
"""
