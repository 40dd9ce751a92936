"""``Inbox``: the parent's end of one pipe per worker, read with a time-out.

A worker writes its few small messages (``workers.messages``) to a pipe of its own, so
no lock is needed and a message of any size arrives whole; the parent waits on all the
pipes at once (``multiprocessing.connection.wait``). A pipe whose worker has exited
reads as closed and is dropped: that the worker is gone is for ``check_alive`` to say.
"""

from __future__ import annotations

import collections
import os
import queue
import time
from multiprocessing.connection import Connection, wait


def pipe() -> tuple[Connection, int]:
    """``(reader, writer_fd)``: the parent's end as a ``Connection`` and the descriptor a
    worker process inherits to write into (:func:`writer`)."""
    read_fd, write_fd = os.pipe()
    return Connection(read_fd, writable=False), write_fd


def writer(fd: int) -> Connection:
    """In a worker: the ``Connection`` over the inherited descriptor ``fd``."""
    return Connection(fd, readable=False)


class Inbox:
    """``get(timeout=None)`` (raises ``queue.Empty`` on time-out), ``close()``."""

    def __init__(self, readers: list[Connection]):
        self._open = list(readers)
        self._ready: collections.deque = collections.deque()

    def get(self, timeout: float | None = None):
        """The next message from any worker, waiting up to ``timeout`` seconds (``None``:
        for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not self._open:  # every worker is gone: nothing will come
                if left:
                    time.sleep(left)
                raise queue.Empty
            readable = wait(self._open, left)
            if not readable:  # timed out
                raise queue.Empty
            for reader in readable:
                try:
                    self._ready.append(reader.recv())
                except (EOFError, OSError):  # its worker exited
                    self._open.remove(reader)
                    reader.close()
        return self._ready.popleft()

    def close(self) -> None:
        for reader in self._open:
            reader.close()
        self._open = []
