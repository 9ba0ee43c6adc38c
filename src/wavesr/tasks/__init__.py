"""The jobs users run: super-resolution (sr), the demo, self-ensemble, self-supervised adaptation,
through-plane SR. May import anything below them (evaluation and lower); never cli.
"""
