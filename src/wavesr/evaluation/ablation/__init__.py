"""Ablation studies: train and evaluate the variants (run), and their report (report).
Part of evaluation; same import rules.
"""
