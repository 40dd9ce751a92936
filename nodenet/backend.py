"""Backends: what :func:`~nodenet.training.fit` talks to, the in-process one, the registry.

A backend holds the training data (``x`` (n, N_0), targets (n, N_L)) and computes over
*row indices* of it, so a batch is only ever a small index array. ``fit`` sees nothing
but the :class:`Backend` protocol; which backend runs is a name looked up in a registry:

- ``"inprocess"``: :class:`InProcess`, in this process (built in);
- ``"pool"``: ``nodenet.workers.WorkerPool`` (the repository's ``workers/`` folder), a
  pool of local processes over shared memory;
- any other name a package registers in the ``nodenet.backends`` entry-point group (as
  ``workers`` does for ``"pool"`` in ``setup.cfg``), or :func:`register_backend` at
  run time.

A registered name maps to a *factory*, called as ``factory(model, x, y, optimizer=...,
workers=..., chunk=..., seed=...)`` and returning an open :class:`Backend` (a context
manager). ``nodenet`` never imports a backend module: entry points are loaded by name.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from stopwatch import Stopwatch

from .backprop import batch_gradient, pieces_evaluate, pieces_gradient
from .checks import require_int
from .dropout import TrainingPass
from .graph import Model
from .optimizers import Optimizer

if TYPE_CHECKING:
    import pandas as pd

ENTRY_POINT_GROUP = "nodenet.backends"


@runtime_checkable
class Backend(Protocol):
    """The face every backend shows to ``fit``.

    Row indices are int arrays into the backend's data; every result is a *sum* over
    the rows (``loss_sum``, ``n_correct``), so any split of a batch adds up the same.
    """

    #: how many training steps :meth:`submit` may keep in flight before :meth:`collect`
    ahead: int

    def train_step(self, indices: np.ndarray, optimizer: Optimizer) -> tuple[float, float]:
        """Gradient of rows ``indices``, then one optimizer step on its mean; returns
        ``(loss_sum, n_correct)`` of the rows before the step."""
        ...

    def submit(self, indices: np.ndarray, optimizer: Optimizer) -> None:
        """Start the step :meth:`train_step` would run; its result comes from
        :meth:`collect`. Steps run in the order submitted, each seeing the parameters the
        step before it left."""
        ...

    def collect(self) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of the oldest submitted step, once it is done."""
        ...

    def gradient(self, indices: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        """``(loss_sum, n_correct, dW, dB)``: gradients summed over rows ``indices``,
        shaped like the flat ``weights`` and ``biases`` (reused by the next call)."""
        ...

    def evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of a forward pass over rows ``indices``."""
        ...

    def stats(self) -> pd.DataFrame:
        """Counters, one row per worker (samples, busy seconds, samples/s, ...)."""
        ...

    def close(self) -> None:
        """Release every resource; safe to call twice."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc) -> None: ...


#: ``factory(model, x, y, *, optimizer, workers, chunk, seed, max_failures,
#: sample_weight) -> Backend``. A factory may also have a ``prepare`` attribute, a
#: function of no arguments that starts what the backend needs before the data is ready
#: (the pool's fork server): see :func:`prepare_backend`
BackendFactory = Callable[..., Backend]


class BackendError(RuntimeError):
    """A backend lost a worker. ``final``: the backend already replaced as many workers
    as it may (``fit`` gives up); otherwise ``fit`` restarts the backend and redoes the
    epoch from the state it had at the epoch's start."""

    final = False


def weight_sum(weights: np.ndarray | None, rows: np.ndarray) -> float:
    """What a step's summed gradients are divided by: the rows' total weight, or their
    number when every sample counts once (``weights`` is ``None``)."""
    return float(len(rows)) if weights is None else float(weights[rows].sum())


class InProcess:
    """Backend that computes everything in this process, through the same
    :func:`~nodenet.backprop.pieces_gradient` every pool worker runs.

    ``x`` (n, N_0) inputs and ``y`` class labels (n,) or targets (n, N_L), validated
    here; ``sample_weight`` (n,): how much each row counts (``None``: once each).
    ``chunk`` splits a batch into pieces of at most that many samples (``None``: the
    whole batch; a model with batch norm always takes the whole batch, whose statistics
    it needs). ``seed``: the run's seed, which keys the dropout masks with the optimizer
    step and the rows. A submitted step runs at once (``ahead`` is 1).
    """

    ahead = 1

    def __init__(
        self,
        model: Model,
        x: np.ndarray,
        y: np.ndarray,
        chunk: int | None = None,
        sample_weight: np.ndarray | None = None,
        seed: int | None = None,
    ):
        if chunk is not None:
            require_int("chunk", chunk, 1)
        self.model, self.chunk, self.seed = model, chunk, seed or 0
        if model.layout.normalised:
            self.chunk = None
        self.x = model.check_inputs(x)
        self.t = model.targets(y, len(self.x))
        self.w = sample_weight
        self.dW = np.zeros_like(model.weights)
        self.db = np.zeros_like(model.biases)
        self.samples = 0
        self._done: deque[tuple[float, float]] = deque()  # results of submitted steps
        self.watch = Stopwatch()
        self.watch.reset()

    @classmethod
    def open(
        cls,
        model: Model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        optimizer: Optimizer | None = None,
        workers: int = 0,
        chunk: int | None = None,
        seed: int | None = None,
        max_failures: int = 0,
        sample_weight: np.ndarray | None = None,
    ) -> InProcess:
        """The registry's factory for ``"inprocess"``. ``optimizer`` and ``max_failures``
        are not needed here (the step runs where the optimizer lives, and there is no
        worker to lose)."""
        if workers:
            raise ValueError(f"the inprocess backend runs no workers; got workers={workers!r}")
        return cls(model, x, y, chunk, sample_weight, seed)

    def _pieces(self, indices: np.ndarray, size: int | None) -> list[np.ndarray]:
        size = size or len(indices)
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    def gradient(
        self, indices: np.ndarray, step: int = 0, update_running: bool = False
    ) -> tuple[float, float, np.ndarray, np.ndarray]:
        """See :class:`Backend`; ``step`` keys the dropout masks, ``update_running``
        moves the batch-norm running statistics (a training step does both)."""
        self.watch.start()
        loss_sum, n_correct = pieces_gradient(
            self.model,
            self.x,
            self.t,
            self._pieces(indices, self.chunk),
            self.dW,
            self.db,
            self.w,
            self.seed,
            step,
            update_running=update_running,
        )
        self.samples += len(indices)
        self.watch.stop()
        return loss_sum, n_correct, self.dW, self.db

    def train_step(self, indices: np.ndarray, optimizer: Optimizer) -> tuple[float, float]:
        loss, correct, dW, db = self.gradient(indices, optimizer.t + 1, update_running=True)
        n = weight_sum(self.w, indices)
        optimizer.step_mean(self.model.weights, self.model.biases, dW, db, n)
        return loss, correct

    def submit(self, indices: np.ndarray, optimizer: Optimizer) -> None:
        self._done.append(self.train_step(indices, optimizer))

    def collect(self) -> tuple[float, float]:
        if not self._done:
            raise RuntimeError("collect() without a submitted step")
        return self._done.popleft()

    def evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        pieces = self._pieces(indices, self.model.pass_rows())
        return pieces_evaluate(self.model, self.x, self.t, pieces)

    def stats(self) -> pd.DataFrame:
        import pandas as pd  # only here: workers import nodenet and need no pandas

        busy = self.watch.duration
        rate = self.samples / busy if busy else float("nan")
        return pd.DataFrame(
            [
                {
                    "worker": "in-process",
                    "samples": self.samples,
                    "busy_s": busy,
                    "samples_per_s": rate,
                }
            ]
        )

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: ``workers="auto"`` uses the pool when one training pass of a batch takes at least
#: this long in this process. Measured (``make bench``, 2-core AMD EPYC): LeNet-5 at
#: batch 128, 13 ms a pass, trains 1.67x faster with 2 workers; 784-512-512-10 at batch
#: 1024, 20 ms with 2 BLAS threads, 1.02x; 784-128-64-10 at batch 128, 0.7 ms, no
#: faster and 1 s more to start. 3 ms is where the earlier rule (batch x parameters >=
#: 1e8, which missed convolutions: LeNet-5 at batch 128 is 7.9e6) put 784-512-512-10.
#: Checked on a 2-core Intel Xeon (``bench/auto_rule.py``, bench/auto_results.md): right
#: for 7 of 8 nets and batch sizes (784-512-512-10 at batch 64, a 2.97 ms pass: the pool
#: 0.86x; at 128, 5.1 ms: 1.05x), the eighth a toss-up (784-128-64-10 at batch 128, 1.1
#: ms: the pool 1.18x here, 1.02x in that day's ``make bench``).
POOL_STEP_S = 0.003


def step_seconds(model: Model, batch_size: int) -> float:
    """Seconds of one forward pass and cached backprop of ``batch_size`` random samples
    in this process: the median of three after a warm-up (just the warm-up when it alone
    takes ten times :data:`POOL_STEP_S`). The model's weights are not changed."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size, model.input_size)).astype(model.dtype)
    t = np.zeros((batch_size, model.output_size), model.dtype)
    dW, db = np.zeros_like(model.weights), np.zeros_like(model.biases)
    training = TrainingPass(np.arange(batch_size))  # batch statistics, running ones kept
    times = []
    for _ in range(4):
        start = time.perf_counter()
        batch_gradient(model, x, t, dW, db, training=training)
        times.append(time.perf_counter() - start)
        if times[0] >= 10 * POOL_STEP_S:
            return times[0]
    return float(np.median(times[1:]))


def choose_workers(model: Model, batch_size: int, cores: int | None = None) -> tuple[int, str]:
    """``workers="auto"``: ``(workers, why)``, the pool with one worker per core when
    there are at least 2 cores and one training pass of a batch takes at least
    :data:`POOL_STEP_S` here (:func:`step_seconds`), else this process (0)."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    if cores < 2:
        return 0, "auto: in this process (1 core; the pool would not be faster)"
    step_ms, limit_ms = step_seconds(model, batch_size) * 1e3, POOL_STEP_S * 1e3
    if step_ms >= limit_ms:
        return cores, f"auto: {cores} workers (a batch takes {step_ms:.1f} ms >= {limit_ms:g})"
    return 0, (
        f"auto: in this process (a batch takes {step_ms:.2f} ms < {limit_ms:g}; "
        "the pool would not be faster)"
    )


def plan_workers(
    model: Model, backend: str | BackendFactory | None, workers: int | str, batch_size: int
) -> tuple[str | BackendFactory, int, str]:
    """``(backend, workers, why)``: which backend trains and with how many workers, from
    the ``backend`` and ``workers`` settings, and the choice in words. No backend:
    ``"pool"`` for ``workers >= 1``, ``"inprocess"`` for 0, :func:`choose_workers` for
    ``"auto"``. A named backend of workers (``"pool"``, ``"ray"``) given 0 or ``"auto"``
    workers gets one per core."""
    if backend is None:
        if workers == "auto":
            workers, why = choose_workers(model, batch_size)
        else:
            why = f"{workers} workers" if workers else "in this process"
        return ("pool" if workers else "inprocess"), workers, why
    if backend == "inprocess":
        return backend, 0, "in this process"
    if workers in ("auto", 0) and backend in ("pool", "ray"):
        workers = os.cpu_count() or 2
    workers = 0 if workers == "auto" else workers
    unit = "Ray actors" if backend == "ray" else "workers"
    name = backend if isinstance(backend, str) else getattr(backend, "__qualname__", "backend")
    return (
        backend,
        workers,
        f"{workers} {unit} ({name})" if backend != "pool" else f"{workers} {unit}",
    )


def prepare_backend(backend: str | BackendFactory | None, workers: int | str) -> None:
    """Call the ``prepare`` of the backend the ``backend`` and ``workers`` settings name
    (as :func:`plan_workers` reads them), if it has one, so that what it starts overlaps
    the caller's work on the data: ``fit`` calls it before it normalises the rows, and
    ``nodenet train`` before it loads them. ``workers="auto"`` without a backend decides
    later, by timing the model: nothing is prepared."""
    if backend is None:
        if workers == "auto" or not workers:
            return
        backend = "pool"
    if backend == "inprocess":
        return
    factory = get_backend(backend) if isinstance(backend, str) else backend
    prepare = getattr(factory, "prepare", None)
    if prepare is not None:
        prepare()


_REGISTRY: dict[str, BackendFactory] = {"inprocess": InProcess.open}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``fit(..., backend=name)`` use ``factory`` (replacing any earlier entry)."""
    _REGISTRY[str(name)] = factory


def available_backends() -> list[str]:
    """Every backend name: the built-in, the registered and the installed entry points."""
    names = set(_REGISTRY) | {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def get_backend(name: str) -> BackendFactory:
    """The factory registered as ``name``; ``ValueError`` listing the names known."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    found = metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")
    factory = next(iter(found)).load()
    _REGISTRY[name] = factory
    return factory
