"""``WorkerPool``: N processes computing mini-batch gradients over shared memory.

The queue protocol is in ``workers/protocol.py`` (parent) and ``workers/worker.py``.

Each worker adds its tasks' gradients into its own slot of ``grad_w`` / ``grad_b``; the
model's flat ``weights`` and ``biases`` (and the optimizer's state) live in shared memory
for the life of the pool. A *split* training step is one round of messages: the
gradient tasks, then one ``update`` task per worker, which waits at the shared-memory
``workers.barrier.StepBarrier`` until every gradient is in and applies the optimizer to
its range of the parameters. :meth:`WorkerPool.submit` keeps up to ``ahead`` such steps
in flight (each with its own row of ``order``); :meth:`WorkerPool.collect` returns their
results in order, exactly as if the steps had been sent singly.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import multiprocessing as mp
import os
import time
import weakref
from collections.abc import Callable

import numpy as np
import pandas as pd

from nodenet.checks import require_int
from nodenet.graph import Model
from nodenet.optimizers import Optimizer

from . import worker
from .counters import COUNTERS, stats_frame
from .processes import WorkerError, check_alive, start_processes, stop_processes
from .protocol import StepProtocol
from .shared import (
    SharedArrays,
    remove_stale_blocks,
    share_optimizer_state,
    share_training_arrays,
    start_resource_tracker,
)

LOG = logging.getLogger("nodenet.workers")
_OPEN_POOLS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_pools() -> None:
    """Close every pool still open at exit. Registered after multiprocessing's own exit
    handler, so it runs first: that handler would SIGTERM and join the workers, which
    ignore SIGTERM (it is the parent's to handle), and wait for ever."""
    for pool in list(_OPEN_POOLS):
        pool.close()


AHEAD = 2  # training steps in flight (see WorkerPool.submit)
START_TIMEOUT_S = 120.0


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
        cores = os.cpu_count() or 1
        if workers > cores:
            LOG.warning(
                "%d workers on %d cores: every step waits for the slowest of them; "
                "use at most %d (a worker per core)",
                workers,
                cores,
                cores,
            )
        stale = remove_stale_blocks()
        if stale:
            LOG.warning(
                "removed %d shared-memory blocks left in /dev/shm by nodenet processes "
                "that no longer exist",
                len(stale),
            )
        self.model, self.workers, self.chunk, self.ahead = model, workers, chunk, ahead
        self.optimizer = optimizer if split_step else None
        self._submitted: collections.deque = collections.deque()  # see submit / collect
        self.processes: list = []
        self._closed = False
        start_resource_tracker()
        _OPEN_POOLS.add(self)
        self._shared = SharedArrays()
        try:
            self._setup_arrays(x, t)
            self._start(start_method)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- start-up
    def _setup_arrays(self, x: np.ndarray, t: np.ndarray) -> None:
        arrays = share_training_arrays(self._shared, self.model, x, t, self.workers, self.ahead)
        if self.optimizer is not None:  # its state moves to shared memory, like the weights
            share_optimizer_state(self._shared, self.optimizer)
        self.grad_w, self.grad_b, self.order = arrays["grad_w"], arrays["grad_b"], arrays["order"]
        #: the split step's parameter ranges, one per worker
        self._update_ranges = self.model.layout.ranges(self.workers)
        self.dW = np.empty_like(self.model.weights)
        self.db = np.empty_like(self.model.biases)

    def _start(self, start_method: str) -> None:
        ctx = mp.get_context(start_method)
        self.protocol = StepProtocol(ctx, self.workers, self.order, self._check_alive)
        sync_lock = ctx.Lock()
        self.processes = start_processes(
            ctx,
            worker.main,
            [
                (
                    i,
                    self._shared.specs(),
                    self.model.config(),
                    self.model.dtype.str,
                    *self.protocol.channels(i),
                    sync_lock,
                    os.getpid(),
                )
                for i in range(self.workers)
            ],
        )
        ready = 0
        deadline = time.monotonic() + START_TIMEOUT_S
        while ready < self.workers:
            if time.monotonic() > deadline:
                raise WorkerError(f"workers did not start within {START_TIMEOUT_S:.0f} s", -1)
            if self.protocol.receive()[0] == "ready":
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
        return started if isinstance(started, tuple) else self.protocol.result(started)

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
        return started if isinstance(started, tuple) else self.protocol.result(started)

    def evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of a forward pass over rows ``indices``."""
        return self._run("evaluate", indices)

    COUNTERS = COUNTERS

    def stats(self) -> pd.DataFrame:
        """Per worker counters (see :func:`workers.counters.stats_frame`)."""
        return stats_frame(self.protocol.counters, self.workers)

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
        return self._send(tasks, indices, settings)

    def _run(self, kind: str, indices: np.ndarray) -> tuple[float, float]:
        """A ``gradient`` or ``evaluate`` step over rows ``indices``, in chunks."""
        if len(indices) == 0:
            return 0.0, 0.0
        return self.protocol.result(self._send(self._tasks(kind, len(indices)), indices))

    def _tasks(self, kind: str, n: int) -> list[tuple[str, int, int]]:
        """``n`` rows of a step as tasks of ``chunk`` rows (or one per worker)."""
        chunk = self.chunk or math.ceil(n / self.workers)
        return [(kind, s, min(s + chunk, n)) for s in range(0, n, chunk)]

    def _send(self, tasks, indices: np.ndarray, settings: dict | None = None) -> int:
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        return self.protocol.dispatch(tasks, indices, settings)

    @property
    def step(self) -> int:
        """Steps sent so far."""
        return self.protocol.step if hasattr(self, "protocol") else 0

    def _check_alive(self) -> None:
        check_alive(self.processes)

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
            if hasattr(self, "protocol"):
                self.protocol.stop()
            stop_processes(self.processes)
        finally:
            if hasattr(self, "protocol"):
                self.protocol.close()
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
