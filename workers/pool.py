"""``WorkerPool``: N processes computing mini-batch gradients over shared memory.

Queues (see ``workers/worker.py`` for the worker's side):

- one **instruction queue** per worker: ``("start", step, settings, computed)``,
  ``("stop",)``;
- one shared **input queue**: tasks ``(kind, step, start, stop)`` over row
  ``step % ahead`` of the shared index array ``order`` (kind ``gradient``, ``evaluate``,
  or ``update`` for a range of parameters), then one ``("wait",)`` per worker to close
  the step;
- one shared **output queue**: ``("result", worker, step, n, loss_sum, n_correct, busy_s)``
  per task, ``("waiting", worker, step, counters)`` when a worker has closed the step,
  ``("ready", worker, pid)`` at start-up, or ``("error", worker, traceback_text)``.

Each worker adds its tasks' gradients into its own slot of ``grad_w`` / ``grad_b``
(shape ``(workers, n_weights)`` / ``(workers, n_biases)``). The model's flat ``weights``
and ``biases`` live in shared memory for the life of the pool. A training step either
lets the parent sum the slots and step the optimizer (what the workers compute with
next), or - with a *split step* - is one round of messages: the gradient tasks, then one
``update`` task per worker, which waits at a shared-memory barrier (``workers.worker.
StepBarrier``) until every gradient of the step is in, sums the slots over its range of
parameters and applies the optimizer to that range (its state shared too).

:meth:`WorkerPool.submit` queues a split step without waiting for it, so that the
workers go from one step straight into the next (up to ``ahead`` steps in flight, each
with its own row of ``order``) while the parent records results; :meth:`WorkerPool.
collect` returns them in order. The barrier keeps every worker inside a step until all
have closed it, so the queued steps run one after the other, exactly as if sent singly.
"""

from __future__ import annotations

import collections
import math
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from nodenet.checks import require_int
from nodenet.graph import Model
from nodenet.optimizers import Optimizer

from . import worker
from .channel import Channel
from .shared import SharedArrays

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
AHEAD = 2  # training steps in flight (see WorkerPool.submit)
POLL_S = 0.05  # how often a waiting parent checks that its workers are alive
START_TIMEOUT_S = 120.0


class WorkerError(RuntimeError):
    """A worker raised or died. ``worker`` is its id, ``exitcode`` its exit code (or
    ``None``), ``worker_traceback`` the traceback text it sent (or ``""``)."""

    def __init__(
        self, message: str, worker: int, exitcode: int | None = None, worker_traceback: str = ""
    ):
        super().__init__(message)
        self.worker = worker
        self.exitcode = exitcode
        self.worker_traceback = worker_traceback


class WorkerPool:
    """A context manager running ``workers`` processes over the training data.

    Parameters
    ----------
    model : constructed :class:`~nodenet.graph.Model`; its flat arrays move to shared
        memory until :meth:`close`, when private copies are put back.
    x : (n, N_0) inputs.
    y : (n,) class labels or (n, N_L) targets.
    workers : number of processes, 1 <= workers <= n.
    chunk : samples per task; ``None`` splits each batch evenly across the workers.
    start_method : ``"spawn"`` (default), ``"forkserver"`` or ``"fork"``.
    optimizer : the optimizer :meth:`train_step` will use. Its state arrays then live in
        shared memory too, so the workers can split the step between them.
    split_step : with an ``optimizer``, step it inside the workers (default): each
        updates a range of the parameters, in the same round of messages as the
        gradients. ``False``: the parent sums the slots and steps while workers idle.
    ahead : how many training steps :meth:`submit` keeps in flight; the workers run
        them back to back, meeting at the barrier between them.
    """

    def __init__(
        self,
        model: Model,
        x: np.ndarray,
        y: np.ndarray,
        workers: int = 2,
        chunk: int | None = None,
        start_method: str = "spawn",
        optimizer: Optimizer | None = None,
        split_step: bool = True,
        ahead: int = AHEAD,
    ):
        require_int("workers", workers, 1)
        require_int("ahead", ahead, 1)
        if chunk is not None:
            require_int("chunk", chunk, 1)
        x = model.check_inputs(x)
        t = model.targets(y, len(x))
        if workers > len(x):
            raise ValueError(
                f"workers ({workers}) must not exceed the number of samples ({len(x)})"
            )
        self.model, self.workers, self.chunk, self.ahead = model, workers, chunk, ahead
        self.optimizer = optimizer if split_step else None
        self.step = 0
        self._computed = 0  # compute tasks sent so far (what the barrier counts)
        self._tally: dict[int, list] = {}  # step -> [loss_sum, n_correct, workers waiting]
        self._submitted: collections.deque = collections.deque()  # see submit / collect
        self.processes: list = []
        self._closed = False
        self._counters: dict[int, dict] = {}
        self._shared = SharedArrays()
        try:
            self._setup_arrays(x, t)
            self._start(start_method)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- start-up
    def _setup_arrays(self, x: np.ndarray, t: np.ndarray) -> None:
        model, sh = self.model, self._shared
        sh.create("x", x.shape, x.dtype)[...] = x
        sh.create("t", t.shape, t.dtype)[...] = t
        sh.create("order", (self.ahead, len(x)), np.int64)  # row: step % ahead
        weights = sh.create("weights", model.weights.shape, model.dtype)
        biases = sh.create("biases", model.biases.shape, model.dtype)
        weights[...], biases[...] = model.weights, model.biases
        self.grad_w = sh.create("grad_w", (self.workers, model.weights.size), model.dtype)
        self.grad_b = sh.create("grad_b", (self.workers, model.biases.size), model.dtype)
        self.order = sh.arrays["order"]
        sh.create("sync", (3, self.workers), np.int64)  # see workers.worker.StepBarrier
        sh.create("closing", (1,), np.int64)
        #: the split step's parameter ranges, one per worker
        self._update_ranges = model.layout.ranges(self.workers)
        self.dW = np.empty_like(model.weights)
        self.db = np.empty_like(model.biases)
        model.rebind(weights, biases)
        if self.optimizer is not None:  # its state moves to shared memory, like the weights
            for i, (part, flat) in enumerate((("w", weights), ("b", biases))):
                state = self.optimizer.state[i]
                for key in self.optimizer.state_keys:
                    shared = sh.create(f"opt_{part}_{key}", flat.shape, flat.dtype)
                    if key in state:
                        shared[...] = state[key]
                    state[key] = shared

    def _start(self, start_method: str) -> None:
        ctx = mp.get_context(start_method)
        self.instructions = [Channel(ctx) for _ in range(self.workers)]
        self.inputs, self.outputs = Channel(ctx), Channel(ctx)
        sync_lock = ctx.Lock()
        saved = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
        os.environ.update(SINGLE_THREAD_ENV)
        # children start with SIGINT ignored (kept across exec), so a Ctrl-C during their
        # start-up cannot kill them before the worker loop ignores it for good
        in_main = threading.current_thread() is threading.main_thread()
        previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for i in range(self.workers):
                process = ctx.Process(
                    target=worker.main,
                    args=(
                        i,
                        self._shared.specs(),
                        self.model.config(),
                        self.model.dtype.str,
                        self.instructions[i],
                        self.inputs,
                        self.outputs,
                        sync_lock,
                        os.getpid(),
                    ),
                    name=f"nodenet-worker-{i}",
                    daemon=True,
                )
                process.start()
                self.processes.append(process)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous_sigint)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        ready = 0
        deadline = time.monotonic() + START_TIMEOUT_S
        while ready < self.workers:
            if time.monotonic() > deadline:
                raise WorkerError(f"workers did not start within {START_TIMEOUT_S:.0f} s", -1)
            if self._receive()[0] == "ready":
                ready += 1

    @classmethod
    def open(
        cls,
        model: Model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        optimizer: Optimizer | None = None,
        workers: int = 2,
        chunk: int | None = None,
        seed: int | None = None,
        **options,
    ) -> WorkerPool:
        """The backend factory registered as ``"pool"`` (``fit(..., backend="pool")``).
        Nothing in a worker is random, so ``seed`` is not used; ``options`` are the
        other settings of :class:`WorkerPool`."""
        return cls(model, x, y, workers, chunk, optimizer=optimizer, **options)

    @classmethod
    def factory(cls, workers: int = 2, **settings) -> Callable[..., WorkerPool]:
        """A backend factory with settings of its own (``backend=WorkerPool.factory(2,
        ahead=3)``); they take the place of the ones ``fit`` passes."""

        def build(model: Model, x: np.ndarray, y: np.ndarray, **run) -> WorkerPool:
            return cls.open(model, x, y, **{**run, "workers": workers, **settings})

        return build

    # --------------------------------------------------------------- the face
    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    @property
    def shared_blocks(self) -> list[str]:
        """Names of every shared-memory block this pool created (also after close)."""
        return self._shared.block_names

    def gradient(self, indices: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Forward + cached backprop of rows ``indices`` across the workers.

        Returns ``(loss_sum, n_correct, dW, db)``, gradients summed over the samples
        (arrays reused by the next call)."""
        loss, correct = self._run("gradient", indices)
        np.sum(self.grad_w, axis=0, out=self.dW)
        np.sum(self.grad_b, axis=0, out=self.db)
        return loss, correct, self.dW, self.db

    def train_step(self, indices: np.ndarray, optimizer: Optimizer) -> tuple[float, float]:
        """Gradient of rows ``indices`` and one optimizer step on the mean; returns
        ``(loss_sum, n_correct)``. With a split step the workers update the parameters,
        each its own range; otherwise the parent steps on the summed slots."""
        started = self._train(indices, optimizer)
        return started if isinstance(started, tuple) else self._result(started)

    def submit(self, indices: np.ndarray, optimizer: Optimizer) -> None:
        """Start the training step :meth:`train_step` would run, without waiting for it:
        with a split step the call returns once its messages are sent, so the workers go
        on to it straight from the step before. :meth:`collect` returns the results, in
        the order submitted. Keep at most :attr:`ahead` steps submitted and not collected
        (more wait for the oldest to finish, which costs nothing but the overlap)."""
        self._submitted.append(self._train(indices, optimizer))

    def collect(self) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of the oldest submitted step, once it is done."""
        if not self._submitted:
            raise RuntimeError("collect() without a submitted step")
        started = self._submitted.popleft()
        return started if isinstance(started, tuple) else self._result(started)

    def evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of a forward pass over rows ``indices``."""
        return self._run("evaluate", indices)

    COUNTERS = worker.COUNTERS

    def stats(self) -> pd.DataFrame:
        """Per worker: gradient/evaluation tasks, samples and busy seconds; split-step
        updates and their seconds; seconds idle (waiting for an instruction) and blocked
        on the input and output queues; samples/s while busy; utilisation (the share of
        the worker's time spent computing)."""
        rows = []
        for i in range(self.workers):
            c = {"worker": i, **{k: self._counters.get(i, {}).get(k, 0.0) for k in self.COUNTERS}}
            total = sum(c[k] for k in self.COUNTERS if k.endswith("_s"))
            c["samples_per_s"] = c["samples"] / c["busy_s"] if c["busy_s"] else math.nan
            c["utilisation"] = (c["busy_s"] + c["update_s"]) / total if total else math.nan
            rows.append(c)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------ one step
    def _train(self, indices: np.ndarray, optimizer: Optimizer) -> int | tuple[float, float]:
        """Start a training step: the step number of a split step in flight, or the
        ``(loss_sum, n_correct)`` of a step the parent has finished."""
        if optimizer is not self.optimizer:
            loss, correct, dW, db = self.gradient(indices)
            optimizer.step_mean(self.model.weights, self.model.biases, dW, db, len(indices))
            return loss, correct
        if len(indices) == 0:
            return 0.0, 0.0
        optimizer.t += 1
        tasks = self._tasks("gradient", len(indices))
        tasks += [("update", lo, hi) for lo, hi in self._update_ranges]
        settings = {**optimizer.config(), "t": optimizer.t, "n": len(indices)}
        return self._dispatch(tasks, indices, settings)

    def _run(self, kind: str, indices: np.ndarray) -> tuple[float, float]:
        """A ``gradient`` or ``evaluate`` step over rows ``indices``, in chunks."""
        if len(indices) == 0:
            return 0.0, 0.0
        return self._result(self._dispatch(self._tasks(kind, len(indices)), indices))

    def _tasks(self, kind: str, n: int) -> list[tuple[str, int, int]]:
        """``n`` rows of a step as tasks of ``chunk`` rows (or one per worker)."""
        chunk = self.chunk or math.ceil(n / self.workers)
        return [(kind, s, min(s + chunk, n)) for s in range(0, n, chunk)]

    def _dispatch(
        self, tasks: list[tuple[str, int, int]], indices: np.ndarray, settings: dict | None = None
    ) -> int:
        """Send one step of the protocol and return its number, without waiting: write
        ``indices`` into the step's row of ``order``; ``start`` to every worker (with the
        optimizer ``settings`` when the step ends with ``update`` tasks), the tasks, one
        ``wait`` per worker."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        self._check_alive()
        self.step += 1
        step = self.step
        self._finish(step - len(self.order))  # the step that last used this row of order
        self.order[step % len(self.order), : len(indices)] = indices
        self._computed += sum(kind != "update" for kind, _, _ in tasks)
        self._tally[step] = [0.0, 0.0, 0]
        for instruction in self.instructions:
            instruction.put(("start", step, settings, self._computed))
        for kind, start, stop in tasks:
            self.inputs.put((kind, step, start, stop))
        for _ in range(self.workers):
            self.inputs.put(("wait",))
        return step

    def _finish(self, step: int) -> None:
        """Collect messages until every worker is waiting after ``step`` (or it is long
        done), tallying each step's results as they come."""
        tally = self._tally.get(step)
        while tally is not None and tally[2] < self.workers:
            message = self._receive()
            if message[0] == "result":
                entry = self._tally[message[2]]
                entry[0] += message[4]
                entry[1] += message[5]
            elif message[0] == "waiting":
                self._counters[message[1]] = message[3]
                self._tally[message[2]][2] += 1

    def _result(self, step: int) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of ``step`` once it is finished."""
        self._finish(step)
        loss, correct, _ = self._tally.pop(step)
        return loss, correct

    def _receive(self) -> tuple:
        """Next output message; raises :class:`WorkerError` on an error message or a
        dead worker instead of waiting forever."""
        while True:
            try:
                message = self.outputs.get(timeout=POLL_S)
            except queue.Empty:
                self._check_alive()
                continue
            if message[0] == "error":
                worker_id, text = message[1], message[2]
                last = text.strip().splitlines()[-1] if text.strip() else "unknown error"
                raise WorkerError(
                    f"worker {worker_id} raised {last}\n{text}", worker_id, worker_traceback=text
                )
            return message

    def _check_alive(self) -> None:
        for i, process in enumerate(self.processes):
            if process.exitcode is not None:
                raise WorkerError(
                    f"worker {i} (pid {process.pid}) died with exit code {process.exitcode}",
                    i,
                    exitcode=process.exitcode,
                )

    # ------------------------------------------------------------- shutdown
    def close(self) -> None:
        """Stop and join every worker, restore private parameter arrays in the model,
        close the queues and unlink every shared-memory block. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if "closing" in self._shared.arrays:  # frees workers waiting at the barrier
                self._shared.arrays["closing"][0] = 1
            for instruction in getattr(self, "instructions", []):
                instruction.put(("stop",))
            for _ in self.processes:
                self.inputs.put(("stop",))
            deadline = time.monotonic() + 3.0
            for process in self.processes:
                process.join(timeout=max(deadline - time.monotonic(), 0.05))
            for process in self.processes:
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=1.0)
                if process.is_alive():
                    process.kill()
                    process.join()
        finally:
            for q in [
                *getattr(self, "instructions", []),
                getattr(self, "inputs", None),
                getattr(self, "outputs", None),
            ]:
                if q is not None:
                    q.close()
            if self.model.weights is not None and "weights" in self._shared.arrays:
                self.model.rebind(self.model.weights.copy(), self.model.biases.copy())
            if getattr(self, "optimizer", None) is not None:
                for state in self.optimizer.state:
                    for key, value in state.items():
                        state[key] = value.copy()
            self._shared.unlink()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.close()

    def __repr__(self) -> str:
        return f"WorkerPool(workers={self.workers}, chunk={self.chunk}, step={self.step})"
