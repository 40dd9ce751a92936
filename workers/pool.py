"""``WorkerPool``: N processes computing mini-batch gradients over shared memory.

The training data, the flat ``weights`` and ``biases``, one gradient slot per worker and
the optimizer's state live in shared memory for the life of the pool. Steps reach the
workers through a ring in shared memory (``ring.py``, ``steps.py``), no message per step;
in a training step each worker computes its pieces into its slot, the workers meet at a
barrier, each applies the optimizer to its range of the parameters, and they meet again
(``worker.py``). The output channel carries only ``Ready`` and ``Failed``.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from nodenet.backend import weight_sum
from nodenet.checks import require_int, require_number
from nodenet.data.sparse import require_dense
from nodenet.graph import Model
from nodenet.optimizers import Optimizer, optimizer_settings

from .counters import COUNTERS, stats_frame
from .messages import Ready, receive
from .processes import (
    START_TIMEOUT_S,
    WorkerError,
    check_alive,
    close_at_exit,
    fork_server,
    process_state,
    start_processes,
    stop_processes,
    warn_about_cores,
)
from .ring import EVALUATE, GRADIENT, TRAIN, Ring
from .shared import (
    SharedArrays,
    remove_stale_blocks,
    share_optimizer_state,
    share_training_arrays,
    start_resource_tracker,
)
from .steps import Steps

if TYPE_CHECKING:
    import pandas as pd

LOG = logging.getLogger("nodenet.workers")
AHEAD = 16  # ring slots: training steps in flight (see WorkerPool.submit)
POLL_S = 0.02  # how long the parent waits for a message before it looks at the workers
HANG_S = 30.0  # the least a step waits before its workers are called hung


class WorkerPool:
    """A context manager running ``workers`` processes over the training data.

    Parameters
    ----------
    model : constructed :class:`~nodenet.graph.Model`; its flat arrays move to shared
        memory until :meth:`close`, when private copies are put back.
    x : (n, N_0) inputs.
    y : (n,) class labels or (n, N_L) targets.
    workers : number of processes, 1 <= workers <= n.
    chunk : rows per piece of a step; ``None`` splits each step evenly across the
        workers. Piece ``j`` goes to worker ``j % workers``.
    optimizer : the optimizer :meth:`train_step` will use. Its state arrays then live in
        shared memory too, so the workers can split the step between them.
    split_step : with an ``optimizer``, step it inside the workers (default): each
        updates a range of the parameters. ``False``: the parent sums the slots and
        steps while the workers idle.
    ahead : slots of the ring: how many steps :meth:`submit` keeps in flight.
    sample_weight : (n,) how much each row counts (``None``: once each).
    seed : the run's seed, which keys the dropout masks (with the optimizer step and the
        rows, so a sample's mask does not depend on the worker that computes it).
    hang_s : a step that waits longer than this and 50 times the longest step before it
        names the workers still on it and their process state (stopped, ...) in a
        :class:`WorkerError`, which ``fit`` answers with a new pool.
    """

    def __init__(
        self,
        model: Model,
        x: np.ndarray,
        y: np.ndarray,
        workers: int = 2,
        chunk: int | None = None,
        optimizer: Optimizer | None = None,
        split_step: bool = True,
        ahead: int = AHEAD,
        sample_weight: np.ndarray | None = None,
        seed: int | None = None,
        hang_s: float = HANG_S,
    ):
        require_int("workers", workers, 1)
        self.hang_s = require_number("hang_s", hang_s, 0, open_low=True)
        require_int("ahead", ahead, 1)
        if type(model.loss).__module__ == "__main__":
            raise ValueError(
                f"the loss {type(model.loss).__name__} is defined in the script being run "
                "(__main__), which worker processes do not import: define it in a module "
                "of its own and import it from there"
            )
        if chunk is not None:
            require_int("chunk", chunk, 1)
        x = model.check_inputs(x)
        require_dense(x, "the worker pool (shared memory)")
        t = model.targets(y, len(x))
        if workers > len(x):
            raise ValueError(
                f"workers ({workers}) must not exceed the number of samples ({len(x)})"
            )
        warn_about_cores(workers, LOG)
        stale = remove_stale_blocks()
        if stale:
            LOG.warning("removed %d shared-memory blocks of dead nodenet processes", len(stale))
        self.model, self.workers, self.chunk, self.ahead = model, workers, chunk, ahead
        self.optimizer = optimizer if split_step else None
        self.w, self.seed = sample_weight, seed or 0
        self._submitted: collections.deque = collections.deque()  # see submit / collect
        self.processes: list = []
        self._closed = False
        start_resource_tracker()
        close_at_exit(self)
        self._shared = SharedArrays()
        try:
            fork_server()  # at the first pool its imports overlap the shared arrays' set-up
            self._setup_arrays(x, t)
            self._start()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- start-up
    def _setup_arrays(self, x: np.ndarray, t: np.ndarray) -> None:
        arrays = share_training_arrays(
            self._shared, self.model, x, t, self.workers, self.ahead, self.w
        )
        if self.optimizer is not None:  # its state moves to shared memory, like the weights
            share_optimizer_state(self._shared, self.optimizer)
        self.grad_w, self.grad_b = arrays["grad_w"], arrays["grad_b"]
        self.ring = Ring(arrays)
        self.steps = Steps(self.ring, self._check_workers, self._hung, self.hang_s)
        self.dW = np.empty_like(self.model.weights)
        self.db = np.empty_like(self.model.biases)

    def _start(self) -> None:
        """Fork the workers with their arguments, then wait until each says it is
        ready."""
        name = self.optimizer.name if self.optimizer is not None else "sgd"
        config, specs = self.model.process_config(), self._shared.specs()
        arguments = [(i, specs, config, name, self.seed) for i in range(self.workers)]
        self.processes, self.outputs = start_processes(arguments)
        ready, deadline = 0, time.monotonic() + START_TIMEOUT_S
        while ready < self.workers:
            if time.monotonic() > deadline:
                raise WorkerError(f"workers did not start within {START_TIMEOUT_S:.0f} s", -1)
            ready += isinstance(self._receive(timeout=POLL_S), Ready)

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
        max_failures: int = 0,
        sample_weight: np.ndarray | None = None,
        **options,
    ) -> WorkerPool:
        """The backend factory registered as ``"pool"`` (``fit(..., backend="pool")``).
        ``seed`` keys the dropout masks; a lost worker is not replaced here (the split step has changed the shared parameters in place), so
        ``max_failures`` is left to ``fit``, which restarts the pool and redoes the
        epoch. ``options`` are the other settings of :class:`WorkerPool`."""
        return cls(
            model,
            x,
            y,
            workers,
            chunk,
            optimizer=optimizer,
            sample_weight=sample_weight,
            seed=seed,
            **options,
        )

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

    @property
    def step(self) -> int:
        """Steps published so far."""
        return self.steps.published if hasattr(self, "steps") else 0

    def gradient(
        self, indices: np.ndarray, step: int = 0
    ) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Forward + cached backprop of rows ``indices`` across the workers.

        Returns ``(loss_sum, n_correct, dW, db)``, gradients summed over the samples
        (arrays reused by the next call). ``step`` > 0: the gradient of training step
        ``step`` (its dropout masks; batch-norm running statistics move)."""
        if len(indices) == 0:
            self.dW.fill(0)
            self.db.fill(0)
            return 0.0, 0.0, self.dW, self.db
        loss, correct = self._result(self._publish(GRADIENT, indices, step=step))
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
        """Publish the training step :meth:`train_step` would run, without waiting for
        it (when the ring is full, wait for its oldest step first). :meth:`collect`
        returns the results in the order submitted."""
        self._submitted.append(self._train(indices, optimizer))

    def collect(self) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of the oldest submitted step, once it is done."""
        if not self._submitted:
            raise RuntimeError("collect() without a submitted step")
        started = self._submitted.popleft()
        return started if isinstance(started, tuple) else self._result(started)

    def evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of a forward pass over rows ``indices`` (after every
        step published before it)."""
        if len(indices) == 0:
            return 0.0, 0.0
        return self._result(self._publish(EVALUATE, indices))

    COUNTERS = COUNTERS

    def stats(self) -> pd.DataFrame:
        """Per worker counters (see :func:`workers.counters.stats_frame`)."""
        return stats_frame(self.ring.counters if self._running else self._last_counters)

    # ------------------------------------------------------------ one step
    def _train(self, indices: np.ndarray, optimizer: Optimizer) -> int | tuple[float, float]:
        """Start a training step: the number of a split step in flight, or the
        ``(loss_sum, n_correct)`` of a step the parent has finished."""
        if optimizer is not self.optimizer:
            loss, correct, dW, db = self.gradient(indices, optimizer.t + 1)
            n = weight_sum(self.w, indices)
            optimizer.step_mean(self.model.weights, self.model.biases, dW, db, n)
            return loss, correct
        if len(indices) == 0:
            return 0.0, 0.0
        optimizer.t += 1
        return self._publish(TRAIN, indices, optimizer)

    def _publish(
        self, kind: int, indices: np.ndarray, optimizer: Optimizer | None = None, step: int = 0
    ):
        """Write a step into the ring and publish it; returns its number."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        hyper = None
        if optimizer is not None:
            config = optimizer.config()
            hyper = tuple(map(config.__getitem__, optimizer_settings(optimizer.name)))
        t = optimizer.t if optimizer is not None else step
        norm = weight_sum(self.w, indices)
        return self.steps.publish(kind, indices, t, self.chunk or 0, hyper, norm)

    def _result(self, step: int) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of ``step`` once every worker has done it."""
        return self.steps.result(step)

    def _check_workers(self) -> None:
        """Raise :class:`WorkerError` for an error a worker sent, or a dead worker."""
        self._receive(timeout=0.0)
        try:
            check_alive(self.processes)
        except WorkerError:
            self._receive(timeout=0.2)  # its error message may be on the way
            raise

    def _hung(self, step: int, waited: float) -> None:
        """Raise :class:`WorkerError` naming the workers that have not finished ``step``
        and their process state."""
        done = self.ring.steps_done
        behind = [w for w in range(self.workers) if done[w] <= step]
        states = "; ".join(
            f"worker {w} (pid {self.pids[w]}) is {process_state(self.pids[w])}" for w in behind
        )
        raise WorkerError(
            f"step {step} has waited {waited:.1f} s, far longer than any step before it: {states}",
            behind[0] if behind else -1,
        )

    def _receive(self, timeout: float):
        """The next output message, or ``None`` (see :func:`workers.messages.receive`)."""
        return receive(self.outputs, self.processes, timeout)

    # ------------------------------------------------------------- shutdown
    @property
    def _running(self) -> bool:
        return not self._closed and "ring_counters" in self._shared.arrays

    def close(self) -> None:
        """Stop and join every worker, restore private parameter arrays in the model,
        close the output channel and unlink every shared-memory block. Safe to call
        twice."""
        if self._closed:
            return
        self._last_counters = (
            self.ring.counters.copy() if hasattr(self, "ring") else np.zeros((0, len(COUNTERS)))
        )
        self._closed = True
        try:
            if hasattr(self, "ring"):
                self.ring.closing = True  # every waiting worker leaves
            stop_processes(self.processes)
        finally:
            if hasattr(self, "outputs"):
                self.outputs.close()
            if self.model.weights is not None and "weights" in self._shared.arrays:
                model = self.model
                model.rebind(model.weights.copy(), model.biases.copy(), model.running.copy())
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


#: ``fit`` and ``nodenet train`` start the fork server as soon as they know the pool will
#: train (``nodenet.backend.prepare_backend``): its imports overlap their work on the data
WorkerPool.open.__func__.prepare = fork_server
