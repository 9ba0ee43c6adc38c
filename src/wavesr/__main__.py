"""`python -m wavesr` is the `wavesr` command."""

from wavesr.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
