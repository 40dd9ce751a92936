"""``fit``: epochs of shuffled mini-batches, one optimiser step per batch, validation,
history and callbacks.

``fit`` talks to a *backend* that computes batch gradients over row indices of the
training data: :class:`InProcess` here, or ``workers.WorkerPool`` for several
processes. Both have the same small face::

    backend.train_step(indices, optimiser) -> (loss_sum, n_correct)  # gradient + 1 step
    backend.submit(indices, optimiser)   # the same step, results later from collect()
    backend.collect() -> (loss_sum, n_correct)  # of the oldest submitted step
    backend.ahead                        # how many submitted steps may be in flight
    backend.gradient(indices) -> (loss_sum, n_correct, dW, db)       # sums over the batch
    backend.evaluate(indices) -> (loss_sum, n_correct)
    backend.stats()           -> pandas.DataFrame
    backend.close()
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from stopwatch import Stopwatch

from .backprop import batch_evaluate, batch_gradient
from .checks import require_int
from .files import atomic_write
from .graph import Model
from .optimizers import Optimizer, get_optimizer

EVAL_CHUNK = 4096


class InProcess:
    """Backend that computes everything in this process, through the same
    :func:`~nodenet.backprop.batch_gradient` the workers run.

    ``x`` (n, N_0) and ``t`` (n, N_L) are validated, of the model's dtype. ``chunk``
    splits a batch into pieces of at most that many samples (``None``: whole batch).
    It runs a submitted step at once (``ahead`` is 1).
    """

    ahead = 1

    def __init__(self, model: Model, x: np.ndarray, t: np.ndarray, chunk: int | None = None):
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.model, self.x, self.t, self.chunk = model, x, t, chunk
        self.dW = np.zeros_like(model.weights)
        self.db = np.zeros_like(model.biases)
        self.samples = 0
        self._done: list[tuple[float, float]] = []  # results of submitted steps
        self.watch = Stopwatch()
        self.watch.reset()

    def _pieces(self, indices: np.ndarray, size: int | None) -> list[np.ndarray]:
        size = size or len(indices)
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    def gradient(self, indices: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Loss sum, correct count and flat gradients summed over the rows ``indices``.
        The returned arrays are reused by the next call."""
        self.watch.start()
        pieces = self._pieces(indices, self.chunk)
        loss_sum = n_correct = 0.0
        for k, piece in enumerate(pieces):
            # the first piece writes the gradient arrays, later pieces add to them
            loss, correct = batch_gradient(
                self.model, self.x[piece], self.t[piece], self.dW, self.db, accumulate=k > 0
            )
            loss_sum += loss
            n_correct += correct
        self.samples += len(indices)
        self.watch.stop()
        return loss_sum, n_correct, self.dW, self.db

    def train_step(self, indices: np.ndarray, optimiser: Optimizer) -> tuple[float, float]:
        """Gradient of the rows ``indices``, then one optimiser step on the mean;
        returns ``(loss_sum, n_correct)``."""
        loss, correct, dW, db = self.gradient(indices)
        optimiser.step_mean(self.model.weights, self.model.biases, dW, db, len(indices))
        return loss, correct

    def submit(self, indices: np.ndarray, optimiser: Optimizer) -> None:
        """:meth:`train_step`, its result kept for :meth:`collect`."""
        self._done.append(self.train_step(indices, optimiser))

    def collect(self) -> tuple[float, float]:
        if not self._done:
            raise RuntimeError("collect() without a submitted step")
        return self._done.pop(0)

    def evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        """Loss sum and correct count of a forward pass over the rows ``indices``."""
        loss_sum = n_correct = 0.0
        for piece in self._pieces(indices, EVAL_CHUNK):
            loss, correct = batch_evaluate(self.model, self.x[piece], self.t[piece])
            loss_sum += loss
            n_correct += correct
        return loss_sum, n_correct

    def stats(self) -> pd.DataFrame:
        busy = self.watch.duration
        return pd.DataFrame(
            [
                {
                    "worker": "in-process",
                    "samples": self.samples,
                    "busy_s": busy,
                    "samples_per_s": self.samples / busy if busy else float("nan"),
                }
            ]
        )

    def close(self) -> None:
        pass

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: builds a backend from ``(model, x, t, optimiser=...)``; ``workers.WorkerPool.factory``
#: returns one. The optimiser is given so a backend can keep its state where it steps.
BackendFactory = Callable[..., "InProcess"]


@dataclass
class History:
    """Per-batch and per-epoch records of a training run."""

    batches: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    #: the backend's per-worker counters at the end of the run
    worker_stats: pd.DataFrame | None = None

    def frame(self, level: str = "epoch") -> pd.DataFrame:
        """The ``"epoch"`` or ``"batch"`` records as a DataFrame."""
        if level not in ("epoch", "batch"):
            raise ValueError(f"level must be 'epoch' or 'batch', got {level!r}")
        return pd.DataFrame(self.epochs if level == "epoch" else self.batches)

    def to_csv(self, path) -> None:
        """Both levels in one CSV with a ``level`` column (``batch`` or ``epoch``)."""
        frame = pd.concat(
            [self.frame("batch").assign(level="batch"), self.frame("epoch").assign(level="epoch")],
            ignore_index=True,
        )
        atomic_write(path, lambda f: f.write(frame.to_csv(index=False).encode()))

    @classmethod
    def from_csv(cls, path) -> History:
        frame = pd.read_csv(path)
        split = {
            level: frame[frame["level"] == level].drop(columns="level").dropna(axis=1, how="all")
            for level in ("batch", "epoch")
        }
        return cls(split["batch"].to_dict("records"), split["epoch"].to_dict("records"))


class Callback:
    """Hooks called by :func:`fit`; return ``True`` from ``on_epoch_end`` to stop."""

    def on_batch_end(self, record: dict, model: Model) -> None:
        """After each batch, with ``model`` exactly as that batch's step left it. While a
        callback overrides this hook, :func:`fit` runs one step at a time; without one, a
        worker pool runs its next steps while the parent records a batch."""

    def on_interrupt(
        self, model: Model, optimiser: Optimizer, history: History, epoch: int, batch: int
    ) -> None:
        """Ctrl-C: training stops after ``batch`` batches of epoch index ``epoch``."""

    def on_epoch_end(
        self, record: dict, model: Model, optimiser: Optimizer, history: History
    ) -> bool:
        return False


class StepDecay(Callback):
    """Multiply the optimiser's learning rate by ``factor`` every ``every`` epochs."""

    def __init__(self, factor: float = 0.5, every: int = 10):
        if not 0 < factor <= 1:
            raise ValueError(f"StepDecay factor must lie in (0, 1], got {factor!r}")
        self.factor, self.every = factor, require_int("StepDecay every", every, 1)

    def on_epoch_end(self, record, model, optimiser, history):
        if record["epoch"] % self.every == 0:
            optimiser.lr *= self.factor
        return False


class EarlyStopping(Callback):
    """Stop when ``monitor`` (an epoch record key) has not improved for ``patience``
    epochs; lower is better for losses, higher for accuracies."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.sign = -1 if "acc" in monitor else 1
        self.best = math.inf
        self.wait = 0

    def on_epoch_end(self, record, model, optimiser, history):
        value = record.get(self.monitor)
        if value is None or math.isnan(value):
            return False
        if self.sign * value < self.best - self.min_delta:
            self.best, self.wait = self.sign * value, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


def fit(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 5,
    batch_size: int = 128,
    optimiser: str | Optimizer = "adam",
    lr: float | None = None,
    validation: float | tuple[np.ndarray, np.ndarray] = 0.2,
    validate_every: int | None = None,
    workers: int = 0,
    chunk: int | None = None,
    seed: int | None = 0,
    callbacks: Sequence[Callback] = (),
    backend: BackendFactory | None = None,
    initial_epoch: int = 0,
    initial_batch: int = 0,
    history: History | None = None,
    progress: bool = False,
) -> History:
    """Train ``model`` on ``x`` (n, N_0) and labels ``y`` (class indices (n,) or
    targets (n, N_L)); return the :class:`History`.

    ``validation`` is a fraction of ``x`` held out (split with ``seed``) or an explicit
    ``(x_valid, y_valid)``. ``validate_every`` is a number of batches (``None``: once per
    epoch). ``workers=0`` trains in this process; ``workers=N`` uses a pool of N processes
    (``chunk`` samples per task), or pass any ``backend`` factory. Epoch ``e`` shuffles
    with the seed ``(seed, e)``, so a run resumed at ``initial_epoch`` (after
    ``initial_batch`` batches of it) continues exactly as if never stopped.

    When the optimiser averages the parameters (``average > 0``), validation measures the
    averaged weights and the model ends with them; checkpoints keep the last iterate and
    the average (in the optimiser state), so a resumed run continues exactly.

    Ctrl-C (SIGINT, when ``fit`` runs in the main thread) ends training after the batch in
    progress: callbacks get ``on_interrupt`` (a checkpoint callback saves) and
    ``KeyboardInterrupt`` is raised. A second Ctrl-C interrupts at once.
    """
    _check_settings(epochs, batch_size, workers, validate_every, initial_epoch)
    if isinstance(optimiser, str):
        optimiser = get_optimizer(optimiser, **({"lr": lr} if lr is not None else {}))
    elif lr is not None:
        optimiser.lr = float(lr)
    x = model.check_inputs(x)
    t = model.targets(y, len(x))
    if isinstance(validation, tuple):
        x_valid = model.check_inputs(validation[0])
        t_valid = model.targets(validation[1], len(x_valid))
        train_idx = np.arange(len(x))
        valid_idx = np.arange(len(x), len(x) + len(x_valid))
        x, t = np.concatenate([x, x_valid]), np.concatenate([t, t_valid])
    else:
        from .data import train_validation_split

        train_idx, valid_idx = train_validation_split(len(x), validation, seed)
    if len(train_idx) == 0:
        raise ValueError("no training samples left after the validation split")

    if backend is None:
        if workers:
            from workers import WorkerPool  # the pool is optional; nodenet runs without it

            backend = WorkerPool.factory(workers=workers, chunk=chunk, seed=seed)
        else:

            def backend(m, xs, ts, optimiser=None):
                return InProcess(m, xs, ts, chunk)

    history = history or History()
    with _DeferredInterrupt() as interrupt, backend(model, x, t, optimiser=optimiser) as engine:
        run = _Run(
            model,
            engine,
            optimiser,
            train_idx,
            valid_idx,
            batch_size,
            validate_every,
            seed,
            callbacks,
            history,
            progress,
            interrupt,
        )
        for epoch in range(initial_epoch, epochs):
            first = initial_batch if epoch == initial_epoch else 0
            if run.epoch(epoch, epochs, first):
                break
        history.worker_stats = engine.stats()
    if optimiser.average and optimiser.t:
        model.weights[...], model.biases[...] = optimiser.averaged()
    return history


@contextlib.contextmanager
def averaged_weights(model: Model, optimiser: Optimizer) -> Iterator[None]:
    """Inside the block ``model`` holds the optimiser's averaged weights and biases
    (written into its flat arrays in place, so a worker pool sees them too); the last
    iterate is put back after it. Does nothing if the optimiser keeps no average."""
    if not optimiser.average or not optimiser.t:
        yield
        return
    iterate = model.weights.copy(), model.biases.copy()
    model.weights[...], model.biases[...] = optimiser.averaged()
    try:
        yield
    finally:
        model.weights[...], model.biases[...] = iterate


class _DeferredInterrupt:
    """While active (main thread only), the first SIGINT only sets ``requested``; the
    training loop checks it between batches. A second SIGINT raises at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _check_settings(epochs, batch_size, workers, validate_every, initial_epoch) -> None:
    for name, value, low in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("workers", workers, 0),
        ("initial_epoch", initial_epoch, 0),
    ):
        require_int(name, value, low)
    if validate_every is not None and (not isinstance(validate_every, int) or validate_every < 1):
        raise ValueError(f"validate_every must be None or an integer >= 1, got {validate_every!r}")


@dataclass
class _Run:
    """The state of one call of :func:`fit`: runs epochs and records them."""

    model: Model
    engine: InProcess
    optimiser: Optimizer
    train_idx: np.ndarray
    valid_idx: np.ndarray
    batch_size: int
    validate_every: int | None
    seed: int | None
    callbacks: Sequence[Callback]
    history: History
    progress: bool
    interrupt: _DeferredInterrupt

    @property
    def batch_hooks(self) -> bool:
        """Whether a callback overrides ``on_batch_end`` (then steps run one at a time)."""
        return any(type(c).on_batch_end is not Callback.on_batch_end for c in self.callbacks)

    def validate(self) -> tuple[float, float]:
        if len(self.valid_idx) == 0:
            return math.nan, math.nan
        with averaged_weights(self.model, self.optimiser):
            loss, correct = self.engine.evaluate(self.valid_idx)
        return loss / len(self.valid_idx), correct / len(self.valid_idx)

    def epoch(self, epoch: int, epochs: int, first_batch: int = 0) -> bool:
        """Train epoch index ``epoch`` from batch ``first_batch`` on; return ``True`` when
        a callback asks to stop. Raises ``KeyboardInterrupt`` after Ctrl-C."""
        order = self.train_idx[
            np.random.default_rng([self.seed or 0, epoch]).permutation(len(self.train_idx))
        ]
        batches = range(0, len(order), self.batch_size)
        if not 0 <= first_batch < len(batches):
            raise ValueError(f"initial_batch must lie in [0, {len(batches)}), got {first_batch}")
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(order),
                initial=first_batch * self.batch_size,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="sample",
                leave=False,
                dynamic_ncols=True,
            )
        watch = Stopwatch()
        loss_total = correct_total = 0.0
        samples = 0
        val_loss = val_acc = math.nan
        # steps in flight: a callback with on_batch_end must see the model after its
        # batch, and validation must see no later step
        ahead = 1 if self.batch_hooks else self.engine.ahead
        every = self.validate_every or len(batches)
        submitted = first_batch
        for b in range(first_batch, len(batches)):
            settled = min((b // every + 1) * every, len(batches))  # the next pause
            while (
                submitted < settled
                and submitted - b < ahead
                and (submitted == b or not self.interrupt.requested)
            ):
                start = batches[submitted]
                self.engine.submit(order[start : start + self.batch_size], self.optimiser)
                submitted += 1
            batch = order[batches[b] : batches[b] + self.batch_size]
            loss, correct = self.engine.collect()
            loss_total += loss
            correct_total += correct
            samples += len(batch)
            record = {
                "epoch": epoch + 1,
                "batch": b + 1,
                "loss": loss / len(batch),
                "accuracy": correct / len(batch),
            }
            if self.validate_every and (b + 1) % self.validate_every == 0:
                val_loss, val_acc = self.validate()
                record.update(val_loss=val_loss, val_accuracy=val_acc)
            record["seconds"] = watch.duration
            self.history.batches.append(record)
            for callback in self.callbacks:
                callback.on_batch_end(record, self.model)
            if bar is not None:
                bar.update(len(batch))
                bar.set_postfix(
                    loss=f"{record['loss']:.4f}",
                    acc=f"{record['accuracy']:.3f}",
                    rate=f"{samples / max(watch.duration, 1e-9):.0f}/s",
                    refresh=False,
                )
            in_flight = submitted > b + 1
            if self.interrupt.requested and not in_flight and b + 1 < len(batches):
                if bar is not None:
                    bar.close()
                self.stop_for_interrupt(epoch, b + 1)
        watch.stop()
        if bar is not None:
            bar.close()
        if not self.validate_every or len(batches) % self.validate_every:
            val_loss, val_acc = self.validate()
        record = {
            "epoch": epoch + 1,
            "loss": loss_total / samples,
            "accuracy": correct_total / samples,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "seconds": watch.duration,
            "samples_per_s": samples / watch.duration,
        }
        self.history.epochs.append(record)
        stop = False
        for callback in self.callbacks:
            stop |= bool(callback.on_epoch_end(record, self.model, self.optimiser, self.history))
        if self.interrupt.requested:  # after the last batch: the epoch is complete
            self.stop_for_interrupt(epoch + 1, 0)
        return stop

    def stop_for_interrupt(self, epoch: int, batch: int) -> None:
        """Tell the callbacks where training stopped (epoch index, batches of it done),
        then raise ``KeyboardInterrupt``."""
        for callback in self.callbacks:
            callback.on_interrupt(self.model, self.optimiser, self.history, epoch, batch)
        raise KeyboardInterrupt
