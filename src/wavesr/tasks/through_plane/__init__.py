"""Through-plane super-resolution of thick-slice volumes: reformats (reformat), the job (sr), its
self-ensemble and its evaluation (evaluate). Part of tasks; same import rules.
"""
