"""The messages a worker sends its parent (the only ones: steps travel through the
shared-memory ring). Frozen dataclasses, pickled through ``workers.channel.Channel``."""

from __future__ import annotations

import queue
from dataclasses import dataclass

from .processes import WorkerError, check_alive


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


def receive(channel, processes, timeout: float):
    """The next message on ``channel`` (``None`` when none came within ``timeout``,
    after checking that ``processes`` are alive); :class:`Failed` is raised as
    :class:`~workers.processes.WorkerError` naming the worker, the exception type, the
    step and carrying the worker's traceback."""
    try:
        message = channel.get(timeout=timeout)
    except queue.Empty:
        if timeout:
            check_alive(processes)
        return None
    if isinstance(message, Failed):
        where = f"at step {message.step}" if message.step >= 0 else "while starting"
        raise WorkerError(
            f"worker {message.worker} raised {message.error_type}: {message.message} "
            f"{where}\n{message.traceback}",
            message.worker,
            worker_traceback=message.traceback,
        )
    return message
