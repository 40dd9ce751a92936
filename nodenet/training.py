"""``fit``: epochs of shuffled mini-batches, one optimizer step per batch.

The loop reads like Keras' ``Model.fit``: an :class:`EpochBatches` iterator owns the
shuffle, the resume position and the steps queued on the backend; everything else
(history, progress bar, printed lines, checkpoints, early stopping) is a callback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from .backend import BackendError, BackendFactory, choose_workers, get_backend
from .callbacks import Callback, CallbackList, ProgressBar, TerminateOnNaN
from .checks import require_int
from .data.split import train_validation_split
from .graph import Model
from .history import History
from .optimizers import Optimizer, get_optimizer
from .run import Run
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
    if optimizer.average and model.layout.normalised:
        raise ValueError(
            "weight averaging (average=) does not go with batch norm: the running "
            "statistics belong to the last iterate, not to the averaged weights (PyTorch "
            "recomputes them with swa_utils.update_bn); use average=0"
        )
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
    run = Run(model, hooks, train_idx, valid_idx, batch_size, validate_every, seed, epochs)
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
            if run.saved is not None:  # else the backend failed before the first epoch
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
