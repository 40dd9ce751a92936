"""Starting, watching and stopping the worker processes."""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
import weakref
from collections.abc import Sequence
from multiprocessing import util as _mp_util  # noqa: F401  (its exit handler registers first)

from nodenet.backend import BackendError

from .channel import Inbox, pipe
from .forkserver import ForkServer, ForkServerGoneError

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


def worker_environment() -> dict[str, str]:
    """This process's environment with :data:`SINGLE_THREAD_ENV` over it: the fork
    server's (read before NumPy loads there) and each worker's."""
    return {**os.environ, **SINGLE_THREAD_ENV}


_OPEN: weakref.WeakSet = weakref.WeakSet()


def close_at_exit(pool) -> None:
    """Have ``pool.close()`` run at interpreter exit if it is still open then."""
    _OPEN.add(pool)


@atexit.register
def _close_open_pools() -> None:
    """Close every pool still open at exit, then the fork server. Registered after
    multiprocessing's own exit handler (imported above), so it runs first: that handler
    would SIGTERM and join the workers, which ignore SIGTERM, and wait for ever."""
    for pool in list(_OPEN):
        pool.close()
    stop_fork_server()


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


class WorkerProcess:
    """One worker, forked by the :class:`~workers.forkserver.ForkServer`. The face of a
    ``multiprocessing.Process`` that the pool uses: ``pid``, ``name``, ``exitcode``
    (``-N`` for signal ``N``), ``is_alive``, ``join``, ``kill``."""

    def __init__(self, index: int, pid: int, server: ForkServer):
        self.name, self.pid, self._server = f"nodenet-worker-{index}", pid, server

    @property
    def exitcode(self) -> int | None:
        return self._server.exitcode(self.pid)

    def is_alive(self) -> bool:
        return self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker to exit, at most ``timeout`` seconds (``None``:
        :data:`START_TIMEOUT_S`, never for ever)."""
        self._server.wait(self.pid, START_TIMEOUT_S if timeout is None else timeout)

    def kill(self) -> None:
        self._server.kill(self.pid)


#: how long the first fork may wait for the fork server's imports
START_TIMEOUT_S = 120.0
_SERVER: ForkServer | None = None
_SERVER_LOCK = threading.Lock()


def fork_server() -> ForkServer:
    """This process's fork server, started on first use (and again if it has exited, or
    if this process is a fork of the one that started it): its imports then overlap
    whatever the caller does next."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None or not _SERVER.alive:
            if _SERVER is not None:  # it has exited: reap it
                _SERVER.close(STOP_GRACE_S)
            _SERVER = ForkServer(worker_environment(), PARENT_SIGNALS)
        return _SERVER


def _forget_fork_server() -> None:
    """In a child forked from this process (``os.fork``, ``multiprocessing``'s "fork"):
    close its copies of the server's socket, so that the server still sees this
    process's exit, and start a server of its own if it opens a pool."""
    global _SERVER, _SERVER_LOCK
    _SERVER_LOCK = threading.Lock()  # a thread of the parent may have held it
    if _SERVER is not None:
        _SERVER.abandon()
        _SERVER = None


os.register_at_fork(after_in_child=_forget_fork_server)


def stop_fork_server() -> None:
    """Stop this process's fork server, if it has one (at exit)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is not None:
            _SERVER.close(STOP_GRACE_S)
            _SERVER = None


def start_processes(arguments: Sequence[tuple]) -> tuple[list[WorkerProcess], Inbox]:
    """Fork one :class:`WorkerProcess` per entry of ``arguments`` (worker ``i`` runs
    ``workers.worker.main(fd, *arguments[i])``), each with a message pipe of its own and
    one BLAS thread (:data:`SINGLE_THREAD_ENV`); returns the processes and the
    :class:`Inbox` of their messages. The fork server ignores :data:`PARENT_SIGNALS`,
    and so do the workers it forks."""
    server, env = fork_server(), worker_environment()
    processes, readers = [], []
    try:
        for i, worker_arguments in enumerate(arguments):
            reader, output_fd = pipe()
            readers.append(reader)
            try:
                pid = server.fork(output_fd, worker_arguments, env, START_TIMEOUT_S)
            except ForkServerGoneError as exc:
                raise WorkerError(f"worker {i} could not start: {exc}", i) from None
            finally:
                os.close(output_fd)  # the worker holds it now: its exit closes the pipe
            processes.append(WorkerProcess(i, pid, server))
    except BaseException:
        stop_processes(processes, grace_s=0.0)  # never asked to stop: kill them now
        for reader in readers:
            reader.close()
        raise
    return processes, Inbox(readers)


def ignore_parent_signals() -> None:
    """In a child: ignore :data:`PARENT_SIGNALS` (the parent decides when it stops),
    then unblock them (pending ones are dropped)."""
    for signum in PARENT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)


#: glibc's ``mallopt`` parameters (``<malloc.h>``)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: allocations up to this size come from the heap, not a fresh ``mmap`` (glibc's most)
MMAP_THRESHOLD = 32 * 2**20
#: free memory at the heap's top is given back above this much
TRIM_THRESHOLD = 64 * 2**20


def keep_freed_memory() -> bool:
    """In a process that only trains (the fork server, whose workers inherit it; a Ray
    actor): let glibc's ``malloc`` keep the memory a training pass frees for the next
    pass (``mallopt``), instead of unmapping it and faulting fresh zeroed pages in again.
    glibc raises its thresholds only after freeing a chunk it had mapped, so a fresh
    process kept them at the pass's largest array (LeNet-5: 2.5 MB of columns) while a
    pass frees ~8 MB: each pool worker took 240-425 page faults a step (1-1.7 MB) and
    10-20% of its time in the kernel, each Ray actor 600-1,250. Returns whether it took
    effect (``False`` where the C library has no ``mallopt``). The process's memory then
    stays at its peak, which it reaches every step anyway."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command's name (state, ppid, ...,
    ``minflt`` at 7), ``None`` where the process is gone or the system does not say."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def minor_faults(pid: int) -> int | None:
    """The page faults process ``pid`` has taken that needed no disk (``minflt``: most
    of them fresh zeroed pages), ``None`` where the system does not say."""
    fields = proc_stat(pid)
    return None if fields is None else int(fields[7])


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
