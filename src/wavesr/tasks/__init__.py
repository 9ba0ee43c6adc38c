"""The jobs users run: super-resolution (sr), the demo, self-supervised adaptation,
through-plane SR (through_plane/). May import anything below them (evaluation and lower); never cli.
"""
