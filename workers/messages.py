"""The messages a worker sends its parent (the only ones: steps travel through the
shared-memory ring). Frozen dataclasses, pickled through ``workers.channel.Channel``."""

from __future__ import annotations

import queue
import sys
from dataclasses import dataclass
from typing import NoReturn

from .processes import check_alive


@dataclass(frozen=True)
class Ready:
    """Worker ``worker`` (process ``pid``) is attached and waits for steps."""

    worker: int
    pid: int


@dataclass(frozen=True)
class Failed:
    """Worker ``worker`` raised ``error_type(message)`` at step ``step`` (-1: while
    starting); ``error_module`` is the module that defines the type and ``traceback`` the
    worker's formatted traceback. The worker then exits."""

    worker: int
    step: int
    error_type: str
    message: str
    traceback: str
    error_module: str = "builtins"


def receive(channel, processes, timeout: float):
    """The next message on ``channel`` (``None`` when none came within ``timeout``,
    after checking that ``processes`` are alive); a :class:`Failed` is re-raised by
    :func:`reraise`."""
    try:
        message = channel.get(timeout=timeout)
    except queue.Empty:
        if timeout:
            check_alive(processes)
        return None
    if isinstance(message, Failed):
        reraise(message)
    return message


def reraise(failed: Failed) -> NoReturn:
    """Raise what a worker raised, as its own type (as PyTorch's ``ExceptionWrapper``
    does): the message names the worker and the step and carries the worker's
    traceback; the exception has ``worker``, ``step`` and ``worker_traceback``. An
    exception is the user's bug, not a lost worker, so it is not a
    :class:`~workers.processes.WorkerError` and ``fit`` does not retry it. A type the
    parent cannot find, or cannot build from one message, becomes ``RuntimeError``."""
    where = f"at step {failed.step}" if failed.step >= 0 else "while starting"
    text = (
        f"worker {failed.worker} raised {failed.error_type}: {failed.message} {where}\n\n"
        f"Worker traceback:\n{failed.traceback}"
    )
    error_class = _exception_class(failed.error_module, failed.error_type)
    try:
        error = error_class(text)
    except Exception:  # a constructor that needs other arguments
        error = RuntimeError(text)
    error.worker, error.step, error.worker_traceback = failed.worker, failed.step, failed.traceback
    raise error


def _exception_class(module: str, qualname: str) -> type[BaseException]:
    """The exception class ``module.qualname`` if this process has it, else
    ``RuntimeError``."""
    found = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return RuntimeError
