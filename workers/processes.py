"""Starting, watching and stopping the worker processes."""

from __future__ import annotations

import atexit
import os
import signal
import time
import weakref
from collections.abc import Callable, Sequence
from multiprocessing import util as _mp_util  # noqa: F401  (its exit handler registers first)

from nodenet.backend import BackendError

#: environment of the children: one BLAS/OpenMP thread each, set before NumPy loads
SINGLE_THREAD_ENV = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}
#: signals the children ignore: the parent decides when they stop (Ctrl-C, ``timeout``
#: and a closed terminal reach the whole process group)
PARENT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_S = 3.0


class WorkerError(BackendError):
    """A worker was lost: it died (a signal, an exit without a message) or never
    started. ``worker`` is its id, ``exitcode`` its exit code (or ``None``),
    ``worker_traceback`` the traceback text it sent (or ``""``). An exception a worker
    raises is re-raised as its own type instead (:func:`workers.messages.reraise`)."""

    def __init__(
        self, message: str, worker: int, exitcode: int | None = None, worker_traceback: str = ""
    ):
        super().__init__(message)
        self.worker = worker
        self.exitcode = exitcode
        self.worker_traceback = worker_traceback


_OPEN: weakref.WeakSet = weakref.WeakSet()


def close_at_exit(pool) -> None:
    """Have ``pool.close()`` run at interpreter exit if it is still open then."""
    _OPEN.add(pool)


@atexit.register
def _close_open_pools() -> None:
    """Close every pool still open at exit. Registered after multiprocessing's own exit
    handler (imported above), so it runs first: that handler would SIGTERM and join the
    workers, which ignore SIGTERM, and wait for ever."""
    for pool in list(_OPEN):
        pool.close()


def warn_about_cores(workers: int, log) -> None:
    """Warn on ``log`` when there are more workers than cores."""
    cores = os.cpu_count() or 1
    if workers > cores:
        log.warning(
            "%d workers on %d cores: every step waits for the slowest of them; "
            "use at most %d (a worker per core)",
            workers,
            cores,
            cores,
        )


def start_processes(ctx, target: Callable, args: Sequence[tuple]) -> list:
    """Start one daemon process of ``target`` per argument tuple in ``args``, named
    ``nodenet-worker-<i>``, each with one BLAS thread (:data:`SINGLE_THREAD_ENV`, set
    before NumPy loads in the child). :data:`PARENT_SIGNALS` are blocked while the
    children start: a child inherits the mask (across exec too), so a signal during its
    start-up stays pending until its loop has set them to be ignored
    (:func:`ignore_parent_signals`), and the parent gets its own after the start."""
    saved = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
    os.environ.update(SINGLE_THREAD_ENV)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
    processes = []
    try:
        for i, arguments in enumerate(args):
            process = ctx.Process(
                target=target, args=arguments, name=f"nodenet-worker-{i}", daemon=True
            )
            process.start()
            processes.append(process)
    except BaseException:
        stop_processes(processes)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return processes


def ignore_parent_signals() -> None:
    """In a child: ignore :data:`PARENT_SIGNALS` (the parent decides when it stops),
    then unblock them (pending ones are dropped)."""
    for signum in PARENT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)


def check_alive(processes: Sequence) -> None:
    """Raise :class:`WorkerError` naming the first process that has exited."""
    for i, process in enumerate(processes):
        if process.exitcode is not None:
            raise WorkerError(
                f"worker {i} (pid {process.pid}) died with exit code {process.exitcode}",
                i,
                exitcode=process.exitcode,
            )


def stop_processes(processes: Sequence, grace_s: float = STOP_GRACE_S) -> None:
    """Join every process within ``grace_s`` in all (they were asked to stop), then kill
    what is left (SIGKILL: the workers ignore SIGTERM); returns when every one is
    joined."""
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(timeout=max(deadline - time.monotonic(), 0.05))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
