from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wavesr.errors import OutputError
from wavesr.io_atomic import atomic_write, check_output_path


def test_writes_via_temp_file_keeping_suffix(tmp_path):
    seen = []

    def writer(tmp):
        seen.append(tmp)
        tmp.write_bytes(b"data")

    target = tmp_path / "new" / "out.nii.gz"
    atomic_write(target, writer)
    assert target.read_bytes() == b"data"
    assert seen[0].parent == target.parent and seen[0].name.endswith(".nii.gz")
    assert ".tmp-" in seen[0].name and not seen[0].exists()
    assert os.listdir(target.parent) == ["out.nii.gz"]


def test_existing_file_needs_overwrite(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="exists"):
        atomic_write(target, lambda p: p.write_bytes(b"new"))
    assert target.read_bytes() == b"old"
    atomic_write(target, lambda p: p.write_bytes(b"new"), overwrite=True)
    assert target.read_bytes() == b"new"


def test_failing_writer_leaves_nothing(tmp_path):
    def writer(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(tmp_path / "a.nii", writer)
    assert os.listdir(tmp_path) == []
    target = tmp_path / "b.nii"
    target.write_bytes(b"keep")
    with pytest.raises(RuntimeError):
        atomic_write(target, writer, overwrite=True)
    assert target.read_bytes() == b"keep" and os.listdir(tmp_path) == ["b.nii"]


def test_os_error_becomes_output_error(tmp_path):
    def writer(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left"):
        atomic_write(tmp_path / "a.nii", writer)
    assert os.listdir(tmp_path) == []


def test_parent_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError):
        atomic_write(tmp_path / "f" / "a.png", lambda p: p.write_bytes(b""))
    with pytest.raises(OutputError, match="is a file"):
        check_output_path(tmp_path / "f" / "sub" / "a.png", inputs=[], overwrite=False)


def test_check_output_path(tmp_path):
    src = tmp_path / "in.nii.gz"
    src.write_bytes(b"x")
    with pytest.raises(OutputError, match="same as an input"):
        check_output_path(tmp_path / "." / "in.nii.gz", inputs=[src], overwrite=True)
    with pytest.raises(OutputError, match="exists"):
        check_output_path(src, inputs=[], overwrite=False)
    check_output_path(src, inputs=[], overwrite=True)
    check_output_path(tmp_path / "new" / "deeper" / "out.nii.gz", inputs=[src], overwrite=False)
    assert not (tmp_path / "new").exists()


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write into: a read-only one for a user; for root, who
    writes anywhere permissions allow, procfs (as tests/reliability/test_bad_inputs.py does)."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    yield locked
    locked.chmod(0o700)


def test_unwritable_folder(unwritable_folder: Path) -> None:
    target = unwritable_folder / "a.png"
    with pytest.raises(OutputError, match="not writable"):
        check_output_path(target, inputs=[], overwrite=False)
    written = []
    with pytest.raises(OutputError, match="output folder"):
        atomic_write(target, written.append)
    assert written == [] and not target.exists()  # refused before the writer ran
