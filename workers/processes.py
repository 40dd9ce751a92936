"""Starting, watching and stopping the worker processes."""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Sequence
from multiprocessing import util as _mp_util  # noqa: F401  (its exit handler registers first)

from nodenet.backend import BackendError

from .channel import Inbox, pipe

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


#: more worker processes than this many per core are refused: each one holds a copy of
#: NumPy and the model, and every step waits for the slowest
MAX_WORKERS_PER_CORE = 4


def warn_about_cores(workers: int, log) -> None:
    """Warn on ``log`` when there are more workers than cores; ``ValueError`` when there
    are more than :data:`MAX_WORKERS_PER_CORE` per core."""
    cores = os.cpu_count() or 1
    if workers > MAX_WORKERS_PER_CORE * cores:
        raise ValueError(
            f"workers={workers} on {cores} cores: at most {MAX_WORKERS_PER_CORE * cores} "
            f"({MAX_WORKERS_PER_CORE} per core); one per core is fastest"
        )
    if workers > cores:
        log.warning(
            "%d workers on %d cores: every step waits for the slowest of them; "
            "use at most %d (a worker per core)",
            workers,
            cores,
            cores,
        )


#: what a worker process runs: the parent's ``sys.path`` and then the worker's arguments
#: come pickled on its standard input. Its own program, so it never imports the user's
#: ``__main__`` (no ``if __name__ == "__main__":`` guard needed, as with Ray's actors)
BOOT = (
    "import pickle, sys; sys.path[:0] = pickle.load(sys.stdin.buffer); "
    "from nodenet.workers.worker import boot; boot()"
)


class WorkerProcess:
    """One worker: ``python -c BOOT`` with the write end of its message pipe,
    ``output_fd``, inherited, and this process's ``sys.path`` pickled on its standard
    input; :meth:`send` pickles its arguments after it (the worker imports NumPy and
    nodenet meanwhile). The face of a ``multiprocessing.Process`` that the pool uses:
    ``pid``, ``name``, ``exitcode`` (``-N`` for signal ``N``), ``is_alive``, ``join``,
    ``kill``."""

    def __init__(self, index: int, output_fd: int, env: dict):
        self.name, self.output_fd = f"nodenet-worker-{index}", output_fd
        self._popen = subprocess.Popen(
            [sys.executable, "-c", BOOT], stdin=subprocess.PIPE, pass_fds=(output_fd,), env=env
        )
        self.pid = self._popen.pid
        with contextlib.suppress(BrokenPipeError):  # it exited at once: its exit code says
            pickle.dump([p for p in sys.path if isinstance(p, str)], self._popen.stdin)
            self._popen.stdin.flush()

    def send(self, arguments: tuple) -> None:
        """Give the worker its arguments (it starts its loop), once."""
        with contextlib.suppress(BrokenPipeError, ValueError):  # gone, or already closed
            pickle.dump((self.output_fd, *arguments), self._popen.stdin)
        self.close_input()

    def close_input(self) -> None:
        """Close the worker's standard input: a worker still waiting for its arguments
        exits (the pool gave up before sending them)."""
        with contextlib.suppress(BrokenPipeError):
            self._popen.stdin.close()

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()


def start_processes(count: int) -> tuple[list[WorkerProcess], Inbox]:
    """Start ``count`` :class:`WorkerProcess` es (their arguments follow with
    :meth:`WorkerProcess.send`), each with one BLAS thread (:data:`SINGLE_THREAD_ENV`,
    in its environment before NumPy loads) and a message pipe of its own; returns the
    processes and the :class:`Inbox` of their messages. :data:`PARENT_SIGNALS` are blocked while the children start: a child
    inherits the mask across exec, so a signal during its start-up stays pending until
    its loop has set them to be ignored (:func:`ignore_parent_signals`), and the parent
    gets its own after the start."""
    env = {**os.environ, **SINGLE_THREAD_ENV}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
    processes, readers = [], []
    try:
        for i in range(count):
            reader, output_fd = pipe()
            readers.append(reader)
            try:
                processes.append(WorkerProcess(i, output_fd, env))
            finally:
                os.close(output_fd)  # the worker holds it now: its exit closes the pipe
    except BaseException:
        stop_processes(processes)
        for reader in readers:
            reader.close()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return processes, Inbox(readers)


def ignore_parent_signals() -> None:
    """In a child: ignore :data:`PARENT_SIGNALS` (the parent decides when it stops),
    then unblock them (pending ones are dropped)."""
    for signum in PARENT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)


def process_state(pid: int) -> str:
    """The kernel's word for process ``pid`` (``/proc/<pid>/status``): ``"T (stopped)"``,
    ``"S (sleeping)"``, ``"R (running)"``, ...; ``"gone"`` or ``"unknown"``."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("State:"):
                    return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        return "gone"
    except OSError:
        pass
    return "unknown"


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
