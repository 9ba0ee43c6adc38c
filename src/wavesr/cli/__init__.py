"""The command line: `wavesr` (main) and its sub-commands (commands/).
The top layer: may import everything; nothing but __main__ imports it.
"""
