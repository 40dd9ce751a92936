"""``Channel``: a multi-producer queue of small messages with a time-out on ``get``.

What ``multiprocessing.SimpleQueue`` is - one pipe, a lock per end, ``put`` writes
directly (no feeder thread, so a worker's last message is out before it exits) - plus
``get(timeout)`` through ``Connection.poll``, so a waiting parent can check that its
workers are alive. Messages (``workers.messages``) pickle to far less than ``PIPE_BUF``
bytes and go out in one ``write``, which the OS makes atomic.
"""

from __future__ import annotations

import queue


class Channel:
    """``put(obj)``, ``get(timeout=None)`` (raises ``queue.Empty`` on time-out), ``close()``."""

    def __init__(self, ctx):
        self._reader, self._writer = ctx.Pipe(duplex=False)
        self._rlock = ctx.Lock()
        self._wlock = ctx.Lock()

    def put(self, obj) -> None:
        with self._wlock:
            self._writer.send(obj)

    def get(self, timeout: float | None = None):
        """The next message, waiting up to ``timeout`` seconds (``None``: for ever)."""
        if not self._rlock.acquire(timeout=-1 if timeout is None else timeout):
            raise queue.Empty
        try:
            if timeout is not None and not self._reader.poll(timeout):
                raise queue.Empty
            return self._reader.recv()
        finally:
            self._rlock.release()

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
