"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class WaveSRError(Exception):
    """An error caused by the user's input, configuration or environment (not a bug)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(WaveSRError):
    """An input file or folder is missing, unreadable, corrupt or holds unusable data."""


class ConfigError(WaveSRError):
    """A configuration, preset or command-line option is invalid."""


class CheckpointError(WaveSRError):
    """A checkpoint is missing, unsafe (pickle), corrupt or of the wrong architecture."""


class OutputError(WaveSRError):
    """An output path cannot be written (exists, not writable, same as the input)."""
