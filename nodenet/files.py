"""Writing files so that a crash never leaves a half-written one under its final name.

``atomic_write`` writes to a temporary file beside the target, flushes it to disk and
renames it over the target. The file gets the mode any new file would get (0666 less
the umask), temporary files left by a write that was killed are removed the next time
the same file is written, and a failed write (a full disk, say) raises
:class:`FileWriteError` naming the file and the free space, with the old file intact.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (``"no such file"``, ``"not a regular file
    (a folder, device or FIFO)"``), or ``None`` when it can."""
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a regular file (a folder, device or FIFO)"
    return None


class FileWriteError(OSError):
    """A file could not be written; the message names it and the space left."""


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then
    rename it over ``path``. On any error the temporary file is removed. A ``path`` that
    is there but is no regular file (a device such as ``/dev/null``, a FIFO, a folder, a
    link to one of them) is refused: renaming over it would replace it."""
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise FileWriteError(errno.EINVAL, f"cannot write {str(path)!r}: not a file name")
    if path.exists() and not path.is_file():
        raise FileWriteError(
            errno.EEXIST, f"cannot write {path}: it exists and is not a regular file"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
            raise _write_error(path, exc) from exc
        raise
    return path


class FolderInUseError(FileWriteError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike):
    """Hold an exclusive ``flock`` on ``folder/.nodenet.lock`` (created, with this pid in
    it) for the ``with`` block, so two runs never write into one folder at once (their
    temporary files and checkpoints would cross). Raises :class:`FolderInUseError` naming the
    pid that holds it. The lock goes with the process, however it ends."""
    path = Path(folder) / ".nodenet.lock"
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666 & ~_umask())
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise FolderInUseError(
                errno.EBUSY,
                f"{folder} is in use by another nodenet run (pid {holder}); wait for it, "
                "or give another --out",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield Path(folder)
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, value) -> Path:
    """Write ``value`` as indented JSON, atomically. NaN and infinities, which JSON
    cannot hold, are written as ``null``."""
    text = strict_json(value, indent=2).encode()
    return atomic_write(path, lambda f: f.write(text))


def strict_json(value, **options) -> str:
    """``value`` as strict JSON text: NaN and infinities, which JSON cannot hold, become
    ``null`` (Python's ``json`` would write ``NaN``, which no other reader accepts)."""
    return json.dumps(_finite(value), allow_nan=False, **options)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files an interrupted :func:`atomic_write` of ``path`` left
    (``.<name>.*.tmp`` beside it); returns what was removed."""
    stale = list(path.parent.glob(f".{path.name}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it; raises
    :class:`FileWriteError` naming it otherwise (it is a file, read-only, full, ...)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise _write_error(folder, exc) from exc
    return folder


def _write_error(path: Path, exc: OSError) -> FileWriteError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += f" ({_free_space(path)} free on its file system)"
    return FileWriteError(exc.errno, f"cannot write {path}: {reason}")


def _free_space(path: Path) -> str:
    for folder in (path, *path.parents):
        if folder.exists():
            free = shutil.disk_usage(folder).free
            return f"{free / 2**20:,.1f} MiB"
    return "unknown"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _finite(value):
    if isinstance(value, np.generic):  # NumPy scalars as the Python numbers they hold
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
