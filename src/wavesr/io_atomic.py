"""Atomic file writes (temp file in the same folder, then rename) and output-path checks."""

from __future__ import annotations

import errno
import os
import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from wavesr.errors import OutputError

_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst"}


def _format_suffix(path: Path) -> str:
    """The suffix that tells libraries the format: ".nii.gz" for compressed, else the last one."""
    suffixes = path.suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() in _COMPRESSION_SUFFIXES:
        return "".join(suffixes[-2:])
    return path.suffix


def _temp_path(path: Path) -> Path:
    """Create (exclusively) an empty temp file next to `path`, keeping its format suffix."""
    suffix = _format_suffix(path)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    for _ in range(100):
        tmp = path.with_name(f".{stem}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            # 0o666 lets the umask decide the final permissions, like a normal open().
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise OutputError("cannot create a temporary file", path.parent)


def atomic_write(
    path: str | Path, writer: Callable[[Path], None], *, overwrite: bool = False
) -> None:
    """Call `writer(tmp)` on a temp file beside `path`, then rename it onto `path`.

    The temp file keeps the suffix(es) of `path` so libraries pick the format from it. It is
    deleted if anything fails, so `path` is either untouched or completely written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError("output exists (use --overwrite to replace it)", path)
    if path.is_dir():
        raise OutputError("output is a folder, expected a file", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror or exc})", path) from exc
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError("output folder is not writable", path.parent)
    try:
        tmp = _temp_path(path)
    except OSError as exc:
        raise OutputError(
            f"cannot write to the output folder ({exc.strerror or exc})", path
        ) from exc
    try:
        writer(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write file ({exc.strerror or exc})", path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _resolved(path: Path) -> Path:
    """`path.resolve()`, or the absolute path where links loop (that is reported elsewhere)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_path(path: str | Path, *, inputs: Sequence[str | Path], overwrite: bool) -> None:
    """Raise OutputError if `path` cannot (or must not) be written; leaves nothing behind."""
    path = Path(path)
    target = _resolved(path)
    for item in inputs:
        if _resolved(Path(item)) == target:
            raise OutputError("output is the same as an input", path)
    if path.exists() and not overwrite:
        raise OutputError("output exists (use --overwrite to replace it)", path)
    anchor = _nearest_existing(path.parent.absolute())
    if not anchor.is_dir():
        raise OutputError(f"cannot create the output folder: {anchor} is a file", path)
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {anchor} is not writable", path)
    # os.access says yes to root everywhere, and to read-only or virtual file systems
    # (procfs): an unnamed temp file is the real test, before any long computation.
    try:
        with tempfile.TemporaryFile(dir=anchor):
            pass
    except OSError as exc:
        why = f" ({exc.strerror})" if exc.strerror and exc.errno != errno.ENOENT else ""
        raise OutputError(f"output folder {anchor} is not writable{why}", path) from exc
