"""Atomic writes: file modes, leftovers of killed writes, full disks, JSON without NaN."""

import errno
import json
import os

import pytest

from nodenet.files import FileWriteError, atomic_write, check_writable, write_json


def test_files_get_the_mode_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"))
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        path = atomic_write(tmp_path / "b.txt", lambda f: f.write(b"x"))
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_temporaries_of_a_killed_write_are_removed_next_time(tmp_path):
    stale = tmp_path / ".checkpoint.npz.abc123.tmp"
    stale.write_bytes(b"half")
    other = tmp_path / ".other.npz.abc123.tmp"  # another file's: not ours to remove
    other.write_bytes(b"half")
    atomic_write(tmp_path / "checkpoint.npz", lambda f: f.write(b"whole"))
    assert not stale.exists() and other.exists()
    assert (tmp_path / "checkpoint.npz").read_bytes() == b"whole"


def test_a_full_disk_names_the_file_and_the_free_space_and_keeps_the_old_file(tmp_path):
    path = atomic_write(tmp_path / "model.npz", lambda f: f.write(b"good"))

    def fill(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileWriteError) as info:
        atomic_write(path, fill)
    message = str(info.value)
    assert str(path) in message and "No space left on device" in message
    assert "MiB free on its file system" in message
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["model.npz"]


def test_check_writable_names_a_folder_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(FileWriteError, match=r"cannot write .*taken"):
        check_writable(tmp_path / "taken")
    assert check_writable(tmp_path / "new" / "folder").is_dir()


def test_json_holds_null_where_python_has_nan(tmp_path):
    path = write_json(tmp_path / "m.json", {"loss": float("nan"), "x": [1.0, float("inf")]})
    assert json.loads(path.read_text()) == {"loss": None, "x": [1.0, None]}
