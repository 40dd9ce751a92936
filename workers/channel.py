"""``Channel``: a low-latency multi-producer, multi-consumer queue of small messages.

``multiprocessing.Queue`` hands every ``put`` to a feeder thread, which costs tens of
microseconds per message and shows in every step of the pool. A ``Channel`` is what
``multiprocessing.SimpleQueue`` is - one pipe, a lock per end, ``put`` writes directly -
plus ``get(timeout)`` through ``Connection.poll``, so a waiting reader can still check
that its peers are alive, and ``get(spin=...)``, which polls busily for a while before it
blocks: a blocked process takes ~40 us to wake on this machine, a polling one ~10 us. Messages are tuples of a few numbers: each is pickled to far
less than ``PIPE_BUF`` bytes and written in one ``write``, which the OS makes atomic.
"""

from __future__ import annotations

import os
import queue
import time


class Channel:
    """``put(obj)``, ``get(timeout=None, spin=0.0)`` (raises ``queue.Empty`` on time-out),
    ``close()``."""

    def __init__(self, ctx):
        self._reader, self._writer = ctx.Pipe(duplex=False)
        self._rlock = ctx.Lock()
        self._wlock = ctx.Lock()

    def put(self, obj) -> None:
        with self._wlock:
            self._writer.send(obj)

    def put_many(self, objs) -> None:
        """``put`` each of ``objs``, taking the write lock once."""
        with self._wlock:
            for obj in objs:
                self._writer.send(obj)

    def get(self, timeout: float | None = None, spin: float = 0.0):
        """The next message. ``spin``: seconds to poll (yielding the CPU between polls)
        before blocking for up to ``timeout`` seconds (``None``: for ever)."""
        end = time.perf_counter() + spin
        while time.perf_counter() < end:  # poll, holding the lock only to look
            if self._rlock.acquire(False):
                try:
                    if self._reader.poll(0):
                        return self._reader.recv()
                finally:
                    self._rlock.release()
            os.sched_yield()
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
