"""The messages a worker sends its parent (the only ones: steps travel through the
shared-memory ring). Frozen dataclasses, pickled through ``workers.channel.Channel``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ready:
    """Worker ``worker`` (process ``pid``) is attached and waits for steps."""

    worker: int
    pid: int


@dataclass(frozen=True)
class Failed:
    """Worker ``worker`` raised ``error_type(message)`` at step ``step`` (-1: while
    starting); ``traceback`` is its formatted traceback. The worker then exits."""

    worker: int
    step: int
    error_type: str
    message: str
    traceback: str
