"""Signals that end training politely: Ctrl-C (SIGINT), SIGTERM (``timeout``, ``docker
stop``, job schedulers) and SIGHUP (a closed terminal).

While :class:`DeferredSignals` is active, the first such signal only sets
``requested``; ``fit`` checks it between batches, lets the steps in flight finish,
tells the callbacks (a checkpoint is written) and raises :class:`Interrupted`. Inside
:meth:`DeferredSignals.shield` (while that checkpoint is written) further signals are
only counted, so a second Ctrl-C cannot cut a save short; outside it a second signal
raises at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """Training stopped on signal ``signum``; a program exits with ``128 + signum``."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class DeferredSignals:
    """Context manager (effective in the main thread only) deferring :data:`HANDLED`."""

    def __init__(self):
        self.signum: int | None = None  # the first signal received
        self.shielded = False
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        elif not self.shielded:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """Inside the block no signal interrupts; then raise :class:`Interrupted`."""
        self.shielded = True
        try:
            yield
        finally:
            self.shielded = False
        raise Interrupted(self.signum or signal.SIGINT)

    def __enter__(self) -> DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in HANDLED}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
