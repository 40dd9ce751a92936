"""``fit``: epochs of shuffled mini-batches, one optimizer step per batch.

The loop reads like Keras' ``Model.fit``: an :class:`EpochBatches` iterator owns the
shuffle, the resume position and the steps queued on the backend; everything else
(history, progress bar, printed lines, checkpoints, early stopping) is a callback.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np

from .backend import Backend, BackendError, BackendFactory, choose_workers, get_backend
from .batches import EpochBatches
from .callbacks import Callback, CallbackList, ProgressBar, TerminateOnNaN
from .checks import require_int
from .data.split import train_validation_split
from .graph import Model
from .history import History
from .optimizers import Optimizer, get_optimizer
from .signals import DeferredSignals
from .weights import row_weights

LOG = logging.getLogger("nodenet")


def fit(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 5,
    batch_size: int = 128,
    optimizer: str | Optimizer = "adam",
    lr: float | None = None,
    validation: float | tuple[np.ndarray, np.ndarray] = 0.2,
    validate_every: int | None = None,
    backend: str | BackendFactory | None = None,
    workers: int | str = 0,
    chunk: int | None = None,
    seed: int | None = 0,
    callbacks: Sequence[Callback] = (),
    initial_epoch: int = 0,
    initial_batch: int = 0,
    history: History | None = None,
    progress: bool = False,
    max_failures: int = 3,
    sample_weight: np.ndarray | None = None,
    class_weight: dict | str | None = None,
    **backend_options,
) -> History:
    """Train ``model`` on ``x`` (n, N_0) and ``y`` (class labels (n,) or targets
    (n, N_L)); return the :class:`~nodenet.callbacks.History`.

    ``optimizer`` is a name (with ``lr``) or an :class:`Optimizer` (then ``lr`` must be
    ``None``). ``validation`` is a fraction of ``x`` held out or ``(x_valid, y_valid)``;
    ``validate_every`` a number of batches (``None``: once per epoch). ``backend`` is a
    registered name (``"inprocess"``, ``"pool"``, ...) or a factory; by default
    ``workers=0`` trains in this process and ``workers=N`` in a pool of N processes
    (``chunk`` samples per task); ``"auto"`` picks by :func:`~nodenet.backend.
    choose_workers` and records the choice and why in ``history.params``. ``seed`` fixes the split and the shuffles (epoch ``e``
    shuffles with ``(seed, e)``); ``None`` draws fresh entropy, recorded as
    ``history.params["seed"]`` so the run can be repeated. A run resumed at
    ``initial_epoch`` after ``initial_batch`` batches (with the checkpoint's optimizer
    and history) continues exactly as if never stopped. ``backend_options`` go to the
    backend's factory (``fit(..., backend="ray", workers=4, address="auto")``).

    ``sample_weight`` (one per training row of ``x``) and ``class_weight``
    (``{label: weight}`` or ``"balanced"``) make the training loss and its gradients
    weighted means (:mod:`nodenet.weights`); validation stays unweighted.

    ``max_failures``: how many lost workers a run survives. A backend that can redo a
    step itself (Ray) replaces the worker; for one that cannot (the pool, whose split
    step changes the shared parameters in place) ``fit`` restores the model, optimizer
    and history saved at the start of the epoch, opens the backend again and redoes
    the epoch: the run ends with the weights of a run without the fault.

    When the optimizer averages the parameters, validation measures the average and the
    model ends with it. A non-finite loss raises :class:`~nodenet.callbacks.
    DivergenceError` (:class:`~nodenet.callbacks.TerminateOnNaN` is always among the
    callbacks). Ctrl-C, SIGTERM or SIGHUP (in the main thread) end training after the
    steps in flight: callbacks get ``on_interrupt`` (a checkpoint is written, shielded
    from a second signal) and :class:`~nodenet.signals.Interrupted` is raised.
    """
    if workers == "auto" and backend is None:
        workers, why = choose_workers(model, batch_size)
        LOG.info(why)
    else:
        why = None
    _check_settings(epochs, batch_size, workers, validate_every, initial_epoch, initial_batch)
    optimizer = _optimizer(optimizer, lr)
    seed = int(np.random.SeedSequence().entropy) if seed is None else require_int("seed", seed, 0)
    x, t, train_idx, valid_idx = _training_rows(model, x, y, validation, seed)
    weights = row_weights(t, train_idx, _split(sample_weight, validation, train_idx), class_weight)
    history = History() if history is None else history
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "samples": len(train_idx),
        "steps": math.ceil(len(train_idx) / batch_size),
        "seed": seed,
        "workers": workers,
        "workers_chosen": why,
    }
    extra = [ProgressBar()] if progress else []
    if not any(isinstance(c, TerminateOnNaN) for c in callbacks):
        extra.append(TerminateOnNaN())
    hooks = CallbackList([history, *callbacks, *extra], model, params)
    model.optimizer, model.history, model.callbacks = optimizer, history, hooks.callbacks
    model.stop_training = False
    open_backend = _backend_factory(backend, workers)
    run = _Run(model, hooks, train_idx, valid_idx, batch_size, validate_every, seed, epochs)
    run.weights = weights
    start, failures = (initial_epoch, initial_batch), 0
    hooks.on_train_begin()
    while True:
        try:
            with (
                DeferredSignals() as signals,
                open_backend(
                    model,
                    x,
                    t,
                    optimizer=optimizer,
                    workers=workers,
                    chunk=chunk,
                    seed=seed,
                    max_failures=max_failures,
                    sample_weight=weights,
                    **backend_options,
                ) as engine,
            ):
                run.epochs(engine, signals, *start)
                history.worker_stats = engine.stats()
            break
        except BackendError as exc:
            failures += 1
            if exc.final or failures > max_failures:
                raise
            start = run.restore()
            LOG.warning(
                "%s: the backend is restarted and epoch %d redone from batch %d "
                "(failure %d of at most %d)",
                str(exc).splitlines()[0],
                start[0] + 1,
                start[1],
                failures,
                max_failures,
            )
    if optimizer.average and optimizer.t:
        model.weights[...], model.biases[...] = optimizer.averaged()
    hooks.on_train_end()
    return history


class _Run:
    """The epochs of one ``fit``, and the state at the start of the epoch in hand, to
    redo it exactly (every shuffle and split is a function of the seed) when the
    backend loses a worker."""

    def __init__(self, model, hooks, train_idx, valid_idx, batch_size, validate_every, seed, n):
        self.model, self.hooks, self.history = model, hooks, model.history
        self.train_idx, self.valid_idx, self.batch_size = train_idx, valid_idx, batch_size
        self.validate_every, self.seed, self.n_epochs = validate_every, seed, n
        self.steps = 0  # run by this call of fit
        self.saved: tuple | None = None
        self.weights: np.ndarray | None = None  # of every row (nodenet.weights)

    def epochs(self, engine: Backend, signals: DeferredSignals, first_epoch: int, first: int):
        """Train epochs ``first_epoch..`` (the first from batch ``first``)."""
        model, hooks, history, optimizer = (
            self.model,
            self.hooks,
            self.history,
            self.model.optimizer,
        )
        for epoch in range(first_epoch, self.n_epochs):
            self.save(epoch, first)
            order = self.train_idx[
                np.random.default_rng([self.seed, epoch]).permutation(len(self.train_idx))
            ]
            batches = EpochBatches(
                engine,
                optimizer,
                epoch,
                order,
                self.batch_size,
                first,
                ahead=1 if hooks.need_model_after_batch else engine.ahead,
                pause_every=self.validate_every,
                halt=lambda: signals.requested or model.stop_training,
                before_step=hooks.on_train_batch_begin,
                carried=history.pop_partial_epoch() if first else None,
                weights=self.weights,
            )
            hooks.on_epoch_begin(epoch, {"first_batch": first})
            logs = {}
            for b, logs in batches:
                if self.validate_every and (b + 1) % self.validate_every == 0:
                    logs.update(_validate(model, engine, self.valid_idx))
                hooks.on_train_batch_end(b, logs)
            self.steps += batches.done - first
            if signals.requested and not batches.finished:
                history.partial_epoch = batches.totals()
                _stop(hooks, signals, epoch, batches.done, self.steps)
            logs = {**batches.summary(), **_validation_of(logs, model, engine, self.valid_idx)}
            hooks.on_epoch_end(epoch, logs)
            if signals.requested:  # after the last batch: the epoch is complete
                _stop(hooks, signals, epoch + 1, 0, self.steps)
            if model.stop_training:
                break
            first = 0

    def save(self, epoch: int, first: int) -> None:
        """Keep what :meth:`restore` needs to redo epoch ``epoch`` from batch ``first``."""
        model, history = self.model, self.history
        state = {k: np.array(v, copy=True) for k, v in model.optimizer.state_arrays().items()}
        partial = None if history.partial_epoch is None else dict(history.partial_epoch)
        self.saved = (epoch, first, model.weights.copy(), model.biases.copy(), state)
        self.saved += (len(history.batches), partial, self.steps)

    def restore(self) -> tuple[int, int]:
        """Put the model, optimizer and history back as :meth:`save` found them; return
        ``(epoch, first batch)`` to go on from."""
        epoch, first, weights, biases, state, n_batches, partial, steps = self.saved
        self.model.weights[...], self.model.biases[...] = weights, biases
        self.model.optimizer.load_state_arrays(state)
        del self.history.batches[n_batches:]
        self.history.partial_epoch, self.steps = partial, steps
        return epoch, first


@contextlib.contextmanager
def averaged_weights(model: Model, optimizer: Optimizer) -> Iterator[None]:
    """Inside the block ``model`` holds the optimizer's averaged weights and biases
    (written into its flat arrays in place, so a worker pool sees them too); the last
    iterate is put back after it. Does nothing if the optimizer keeps no average."""
    if not optimizer.average or not optimizer.t:
        yield
        return
    iterate = model.weights.copy(), model.biases.copy()
    model.weights[...], model.biases[...] = optimizer.averaged()
    try:
        yield
    finally:
        model.weights[...], model.biases[...] = iterate


def _validation_of(logs: dict, model: Model, engine: Backend, rows: np.ndarray) -> dict:
    """The epoch's validation: the last batch's if it validated, else measured now."""
    if "val_loss" in logs:
        return {"val_loss": logs["val_loss"], "val_accuracy": logs["val_accuracy"]}
    return _validate(model, engine, rows)


def _validate(model: Model, engine: Backend, rows: np.ndarray) -> dict:
    """``val_loss`` and ``val_accuracy`` of ``rows`` (NaN when there are none)."""
    if len(rows) == 0:
        return {"val_loss": math.nan, "val_accuracy": math.nan}
    with averaged_weights(model, model.optimizer):
        loss, correct = engine.evaluate(rows)
    return {"val_loss": loss / len(rows), "val_accuracy": correct / len(rows)}


def _stop(hooks: CallbackList, signals: DeferredSignals, epoch: int, batch: int, steps: int):
    """Tell the callbacks where training stopped (``steps``: steps run by this ``fit``),
    shielded from further signals, then raise :class:`~nodenet.signals.Interrupted`."""
    with signals.shield():
        hooks.on_interrupt(epoch, {"batch": batch, "steps": steps})


def _split(sample_weight, validation, train_idx: np.ndarray):
    """``sample_weight`` given for every row of ``x``, as the training rows' weights
    (a validation fraction holds some rows out)."""
    if sample_weight is None or isinstance(validation, tuple):
        return sample_weight
    given = np.asarray(sample_weight, dtype=np.float64)
    if given.ndim != 1 or len(given) <= train_idx.max(initial=-1):
        raise ValueError(
            f"sample_weight must have one weight per row of x, got shape {given.shape}"
        )
    return given[train_idx]


def _optimizer(optimizer: str | Optimizer, lr: float | None) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        if lr is not None:
            raise ValueError(
                "lr is given twice: set it on the optimizer object, or pass the optimizer "
                "by name with lr="
            )
        return optimizer
    return get_optimizer(optimizer, **({"lr": lr} if lr is not None else {}))


def _training_rows(model: Model, x, y, validation, seed: int):
    """``(x, t, train_idx, valid_idx)``: validated inputs and targets of every row (an
    explicit validation set appended), and which rows train and which validate."""
    x = model.check_inputs(x)
    t = model.targets(y, len(x))
    if isinstance(validation, tuple):
        x_valid = model.check_inputs(validation[0])
        t_valid = model.targets(validation[1], len(x_valid))
        train_idx = np.arange(len(x))
        valid_idx = np.arange(len(x), len(x) + len(x_valid))
        x, t = np.concatenate([x, x_valid]), np.concatenate([t, t_valid])
    else:
        train_idx, valid_idx = train_validation_split(len(x), validation, seed)
    if len(train_idx) == 0:
        raise ValueError("no training samples left after the validation split")
    return x, t, train_idx, valid_idx


def _backend_factory(backend: str | BackendFactory | None, workers: int) -> BackendFactory:
    if backend is None:
        backend = "pool" if workers else "inprocess"
    return get_backend(backend) if isinstance(backend, str) else backend


def _check_settings(epochs, batch_size, workers, validate_every, initial_epoch, initial_batch):
    require_int("epochs", epochs, 1)
    require_int("batch_size", batch_size, 1)
    require_int("workers", workers, 0)
    require_int("initial_epoch", initial_epoch, 0)
    require_int("initial_batch", initial_batch, 0)
    if validate_every is not None:
        require_int("validate_every", validate_every, 1)
