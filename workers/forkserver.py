"""The fork server: one process that imports NumPy, numba and nodenet once, and forks
every worker process from itself.

A worker started as a program of its own spends 0.3-0.5 s importing and setting numba
up, and every worker of every pool pays it again. The server pays it once per parent
process, at the first pool (while the parent copies the data into shared memory), then
forks each worker in a few milliseconds. It runs ``python -c SERVE``, so it never
imports the user's ``__main__``; its environment has one BLAS thread
(:data:`~workers.processes.SINGLE_THREAD_ENV`) and it starts no thread of its own, so
forking it is safe.

Parent and server talk over a Unix socket: the parent sends the write end of a worker's
message pipe (``SCM_RIGHTS``) and a pickled ``("fork", sys.path, environ, arguments)``
or ``("kill", pid)``; the server answers ``("forked", pid)`` and, whenever one of its
children exits, ``("exited", pid, exitcode)`` (``-N`` for signal ``N``). The server
leaves when the parent closes the socket (at exit, or by dying), after killing any child
still running.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds, sendfds

#: what the server process runs: the parent's ``sys.path`` and the number of its end of
#: the socket come pickled on its standard input
SERVE = (
    "import pickle, sys; path, fd = pickle.load(sys.stdin.buffer); sys.path[:0] = path; "
    "from nodenet.workers.forkserver import serve; serve(fd)"
)
#: what the server imports once, for every worker it forks
PRELOAD = (
    "nodenet.graph",
    "nodenet.backprop",
    "nodenet.dropout",
    "nodenet.optimizers",
    "nodenet.workers.shared",
    "nodenet.workers.worker",
)


def _search_path() -> list[str]:
    """This process's ``sys.path`` (its string entries), for the server and each worker."""
    return [p for p in sys.path if isinstance(p, str)]


class ForkServerGoneError(Exception):
    """The fork server exited (it was killed, or could not import nodenet)."""


class ForkServer:
    """The parent's side: :meth:`fork` a worker, its :meth:`exitcode`, :meth:`kill` it,
    :meth:`close` the server. Thread-safe. ``pid`` is the server's; ``env`` its
    environment; ``signals`` the ones it ignores (the parent's to handle)."""

    def __init__(self, env: dict, signals: tuple):
        ours, theirs = socket.socketpair()
        # ``signals`` (Ctrl-C, ...) are blocked while it starts: the mask is inherited
        # across exec, so one that comes before the server ignores them stays pending
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", SERVE],
                stdin=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            theirs_fd = theirs.detach()
            os.close(theirs_fd)
        with contextlib.suppress(BrokenPipeError):  # it exited at once: fork() will say
            pickle.dump((_search_path(), theirs_fd), self._process.stdin)
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        self.pid, self.owner = self._process.pid, os.getpid()
        self._socket = ours
        self._channel = Connection(os.dup(ours.fileno()))
        self._lock = threading.Lock()
        self._exitcodes: dict[int, int] = {}
        self._forked: set[int] = set()
        self._gone = False

    # ------------------------------------------------------------------ requests
    def fork(self, output_fd: int, arguments: tuple, env: dict, timeout: float) -> int:
        """Fork a worker that runs ``workers.worker.main(output_fd, *arguments)`` with
        this process's ``sys.path`` and environment ``env``; returns its pid. Waits up to
        ``timeout`` seconds (the server's imports, at its first fork). Raises
        :class:`ForkServerGoneError`."""
        path = _search_path()
        with self._lock:
            try:
                sendfds(self._socket, [output_fd])
                self._channel.send(("fork", path, env, arguments))
            except OSError as exc:
                self._gone = True
                raise ForkServerGoneError(self._why()) from exc
            while True:
                if not self._channel.poll(timeout):
                    raise ForkServerGoneError(f"it forked no worker within {timeout:.0f} s")
                message = self._read()
                if message[0] == "forked":
                    self._forked.add(message[1])
                    return message[1]

    def exitcode(self, pid: int) -> int | None:
        """The exit code of worker ``pid`` (``-N`` for signal ``N``), ``None`` while it
        runs. Once the server is gone, its workers are killed and reported so."""
        with self._lock:
            self._drain(0.0)
            return self._exitcodes.get(pid)

    def wait(self, pid: int, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for worker ``pid`` to exit."""
        with self._lock:
            self._drain(timeout, until=pid)

    def kill(self, pid: int) -> None:
        """SIGKILL worker ``pid``: the server does it, as its parent, so a pid reused
        after the worker was reaped is never hit."""
        with self._lock:
            if pid in self._exitcodes:
                return
            try:
                self._channel.send(("kill", pid))
            except OSError:
                self._gone = True
                self._drain(0.0)

    def close(self, timeout: float) -> None:
        """Close the socket: the server kills any worker still running and exits; wait
        up to ``timeout`` seconds for it, then kill it."""
        with self._lock:
            self._channel.close()
            self._socket.close()
            self._gone = True
        if os.getpid() != self.owner:  # a copy of the parent: the server is not ours
            return
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def abandon(self) -> None:
        """In a child forked from the parent: close this copy of the socket, without the
        lock (a thread of the parent may have held it at the fork, and no thread of the
        child ever will release it), and never wait for the server, which is not ours."""
        self._gone = True
        with contextlib.suppress(OSError):
            self._channel.close()
        with contextlib.suppress(OSError):
            self._socket.close()

    @property
    def alive(self) -> bool:
        return not self._gone and self._process.poll() is None and os.getpid() == self.owner

    # ------------------------------------------------------------------ replies
    def _read(self) -> tuple:
        """The server's next message (blocks); an ``"exited"`` one is recorded too."""
        try:
            message = self._channel.recv()
        except (EOFError, OSError) as exc:
            self._gone = True
            self._bury_orphans()
            raise ForkServerGoneError(self._why()) from exc
        if message[0] == "exited":
            self._exitcodes[message[1]] = message[2]
        return message

    def _drain(self, timeout: float, until: int | None = None) -> None:
        """Record the exits the server has reported, waiting up to ``timeout`` seconds
        for more (for ``until``'s, if given)."""
        deadline = time.monotonic() + timeout
        while not self._gone and (until is None or until not in self._exitcodes):
            if not self._channel.poll(max(deadline - time.monotonic(), 0.0)):
                return
            with contextlib.suppress(ForkServerGoneError):
                self._read()
        if self._gone:
            self._bury_orphans()

    def _bury_orphans(self) -> None:
        """The server is gone: kill the workers it forked that have not been reported
        (they would leave by themselves within a second, seeing their parent gone)."""
        for pid in self._forked - self._exitcodes.keys():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._exitcodes[pid] = -signal.SIGKILL

    def _why(self) -> str:
        try:
            code = self._process.wait(1.0)
        except subprocess.TimeoutExpired:
            return f"the fork server (pid {self.pid}) stopped answering"
        return f"the fork server (pid {self.pid}) exited with code {code}"


# ---------------------------------------------------------------------- the server
def serve(fd: int) -> None:
    """The server's loop (``SERVE``): preload, then fork workers on request and report
    their exits until the parent closes the socket."""
    from .processes import ignore_parent_signals, keep_freed_memory

    ignore_parent_signals()  # its workers inherit this
    keep_freed_memory()  # and this
    for name in PRELOAD:
        importlib.import_module(name)
    importlib.import_module("nodenet.kernels").warm_up()
    sock = socket.socket(fileno=fd)
    channel = Connection(os.dup(fd))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # exits wake the loop up
    children: set[int] = set()
    try:
        while True:
            readable, _, _ = select.select([sock, wake_r], [], [])
            if wake_r in readable:
                os.read(wake_r, 4096)
            _report_exits(channel, children)
            if sock not in readable:
                continue
            try:
                fds = recvfds(sock, 1)
                request = channel.recv()
            except (EOFError, OSError, RuntimeError):  # the parent closed it, or died
                break
            if request[0] == "fork":
                pid = _fork(fds[0], request[1:], closing=(sock, channel, wake_r, wake_w))
                os.close(fds[0])
                children.add(pid)
                try:
                    channel.send(("forked", pid))
                except OSError:  # the parent died
                    break
            elif request[0] == "kill" and request[1] in children:
                os.kill(request[1], signal.SIGKILL)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    os._exit(0)  # nothing to flush: skip the slow teardown of numba and LLVM (0.4 s)


def _report_exits(channel: Connection, children: set[int]) -> None:
    """Reap every child that has exited and tell the parent its exit code."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        with contextlib.suppress(OSError):
            channel.send(("exited", pid, os.waitstatus_to_exitcode(status)))


def _fork(output_fd: int, request: tuple, closing: tuple) -> int:
    """Fork a worker: in the child, drop the server's descriptors and signal set-up, take
    the parent's ``sys.path`` and environment, run the worker and exit."""
    path, env, arguments = request
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for thing in closing:
            thing.close() if hasattr(thing, "close") else os.close(thing)
        sys.path[:] = path
        os.environ.clear()
        os.environ.update(env)
        from .worker import main

        main(output_fd, *arguments)
        code = 0
    finally:
        os._exit(code)
