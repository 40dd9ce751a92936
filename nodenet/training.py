"""``fit``: epochs of shuffled mini-batches, one optimizer step per batch.

The loop reads like Keras' ``Model.fit``: an :class:`EpochBatches` iterator owns the
shuffle, the resume position and the steps queued on the backend; everything else
(history, progress bar, printed lines, checkpoints, early stopping) is a callback.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence

import numpy as np

from .backend import BackendError, get_backend, plan_workers, prepare_backend
from .callbacks import Callback, CallbackList, ProgressBar, StepDecay, TerminateOnNaN
from .checks import require_int
from .data.sparse import stack_rows
from .data.split import train_validation_split
from .graph import Model
from .history import History
from .optimizers import OPTIMIZER_HYPERPARAMETERS, Optimizer, get_optimizer, optimizer_settings
from .run import Run
from .settings import FIT, SettingsError, resolve, settings_doc, with_settings
from .signals import DeferredSignals
from .weights import row_weights

LOG = logging.getLogger("nodenet")


def fit(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    callbacks: Sequence[Callback] = (),
    sample_weight: np.ndarray | None = None,
    history: History | None = None,
    initial_epoch: int = 0,
    initial_batch: int = 0,
    progress: bool = False,
    backend_options: dict | None = None,
    **settings,
) -> History:
    """Train ``model`` on raw inputs ``x`` (n, N_0) and ``y`` (class labels (n,) or
    targets (n, N_L)); return the :class:`~nodenet.callbacks.History`. A model with a
    ``normaliser`` normalises ``x`` (and validation inputs) once, up front.

    ``settings`` are the rows of :data:`nodenet.settings.SETTINGS` that ``fit`` takes
    (listed below, with their defaults: the same as the ``nodenet train`` flags). The
    resolved settings are recorded in ``history.params["settings"]`` and stored in
    checkpoints.

    ``optimizer`` is a name (with ``lr`` and the other hyperparameters, each ``None``
    for the optimizer's own default) or an :class:`Optimizer` (then they stay ``None``).
    ``validation`` is a fraction of ``x`` held out or ``(x_valid, y_valid)``;
    ``validate_every`` a number of batches (``None``: once per epoch). ``backend`` is a
    registered name (``"inprocess"``, ``"pool"``, ...) or a factory; by default
    ``workers=0`` trains in this process and ``workers=N`` in a pool of N processes
    (``chunk`` samples per task); ``"auto"`` picks by :func:`~nodenet.backend.
    choose_workers`, and the choice and why are in ``history.params``. ``seed`` fixes
    the split and the shuffles (epoch ``e`` shuffles with ``(seed, e)``); ``None`` draws
    fresh entropy, recorded as ``history.params["seed"]`` so the run can be repeated. A
    run resumed at ``initial_epoch`` after ``initial_batch`` batches (with the
    checkpoint's optimizer and history) continues exactly as if never stopped.
    ``backend_options`` go to the backend's factory. ``lr_decay < 1`` adds a
    :class:`~nodenet.callbacks.StepDecay`.

    ``sample_weight`` (one per row of ``x``) and ``class_weight`` (``{label: weight}``
    or ``"balanced"``) make the training loss and its gradients weighted means
    (:mod:`nodenet.weights`); validation stays unweighted.

    ``max_failures``: how many lost workers (a signal, an exit without a message, a
    lost Ray node) a run survives. A backend that can redo a step itself (Ray) replaces
    the worker; for one that cannot (the pool, whose split step changes the shared
    parameters in place) ``fit`` restores the model, optimizer and history saved at the
    start of the epoch, opens the backend again and redoes the epoch: the run ends with
    the weights of a run without the fault. An exception raised in a worker is the
    user's bug: it is raised here as its own type, with the worker's traceback, at once.

    When the optimizer averages the parameters, validation measures the average and the
    model ends with it. A non-finite loss raises :class:`~nodenet.callbacks.
    DivergenceError` (:class:`~nodenet.callbacks.TerminateOnNaN` is always among the
    callbacks). Ctrl-C, SIGTERM or SIGHUP (in the main thread) end training after the
    steps in flight: callbacks get ``on_interrupt`` (a checkpoint is written, shielded
    from a second signal) and :class:`~nodenet.signals.Interrupted` is raised.
    """
    s = resolve(FIT, settings)
    epochs, batch_size = s["epochs"], s["batch_size"]
    backend, workers, why = plan_workers(model, s["backend"], s["workers"], batch_size)
    LOG.info(why)
    require_int("initial_epoch", initial_epoch, 0)
    require_int("initial_batch", initial_batch, 0)
    optimizer = build_optimizer(s, model)
    if optimizer.average and model.layout.normalised:
        raise SettingsError(
            "weight averaging (average=) does not go with batch norm: the running "
            "statistics belong to the last iterate, not to the averaged weights (PyTorch "
            "recomputes them with swa_utils.update_bn); use average=0"
        )
    seed = int(np.random.SeedSequence().entropy) if s["seed"] is None else s["seed"]
    validation = s["validation"]
    prepare_backend(backend, workers)  # the pool's fork server starts while the rows are made
    x, t, train_idx, valid_idx = _training_rows(model, x, y, validation, seed)
    weights = row_weights(
        t, train_idx, _split(sample_weight, validation, train_idx, len(x)), s["class_weight"]
    )
    history = History() if history is None else history
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "samples": len(train_idx),
        "steps": math.ceil(len(train_idx) / batch_size),
        "seed": seed,
        "workers": workers,
        "workers_chosen": why,
        "settings": {**s, "seed": seed, "workers": workers},
    }
    extra = [ProgressBar()] if progress else []
    if not any(isinstance(c, TerminateOnNaN) for c in callbacks):
        extra.append(TerminateOnNaN())
    if s["lr_decay"] < 1 and not any(isinstance(c, StepDecay) for c in callbacks):
        extra.append(StepDecay(s["lr_decay"], s["lr_decay_every"]))
    hooks = CallbackList([history, *callbacks, *extra], model, params)
    model.optimizer, model.history, model.callbacks = optimizer, history, hooks.callbacks
    model.stop_training = False
    open_backend = get_backend(backend) if isinstance(backend, str) else backend
    options = dict(backend_options or {})
    if s["ray_address"] is not None:
        options["address"] = s["ray_address"]
    run = Run(
        model,
        hooks,
        train_idx,
        valid_idx,
        batch_size,
        s["validate_every"],
        seed,
        epochs,
        s["shuffle"],
    )
    run.weights = weights
    start, failures, max_failures = (initial_epoch, initial_batch), 0, s["max_failures"]
    hooks.on_train_begin()
    while True:
        try:
            with (
                # a diverging run overflows on its way to the NaN that TerminateOnNaN
                # reports: that one clear error, not NumPy's warnings before it
                np.errstate(over="ignore", invalid="ignore", divide="ignore"),
                DeferredSignals() as signals,
                open_backend(
                    model,
                    x,
                    t,
                    optimizer=optimizer,
                    workers=workers,
                    chunk=s["chunk"],
                    seed=seed,
                    max_failures=max_failures,
                    sample_weight=weights,
                    **options,
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


fit.__doc__ += settings_doc(FIT)
fit.__signature__ = with_settings(fit, FIT)  # help(fit) and editors list every setting
# model.fit(x, y, ...) is this function: the same keywords, shown the same way
Model.fit.__signature__ = fit.__signature__.replace(
    parameters=[
        p.replace(name="self", annotation=inspect.Parameter.empty) if p.name == "model" else p
        for p in fit.__signature__.parameters.values()
    ]
)


def _split(sample_weight, validation, train_idx: np.ndarray, n: int):
    """``sample_weight`` given for every row of ``x`` (``n`` rows), as the training rows'
    weights (a validation fraction holds some rows out)."""
    if sample_weight is None:
        return None
    given = np.asarray(sample_weight, dtype=np.float64)
    rows = len(train_idx) if isinstance(validation, tuple) else n
    if given.ndim != 1 or len(given) != rows:
        raise ValueError(
            f"sample_weight must have one weight per row of x: x has {rows} rows, "
            f"sample_weight has shape {given.shape}"
        )
    return given if isinstance(validation, tuple) else given[train_idx]


#: the ``average`` a named optimizer gets when the setting is left at ``None``: Polyak
#: averaging measured +0.4 points on MNIST at the default settings (README, "Accuracy")
DEFAULT_AVERAGE = 0.995


def build_optimizer(s: dict, model: Model) -> Optimizer:
    """The optimizer of resolved settings ``s``: the object given, or the named one with
    every hyperparameter that is not ``None`` (``average`` left at ``None`` is
    :data:`DEFAULT_AVERAGE`, or 0 when ``model`` has batch norm). A hyperparameter given
    for an optimizer that has none of that name, or given beside an optimizer object, is
    refused."""
    given = {k: s[k] for k in OPTIMIZER_HYPERPARAMETERS if s[k] is not None}
    if isinstance(s["optimizer"], Optimizer):
        if given:
            raise SettingsError(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} given twice: set "
                "it on the optimizer object, or pass the optimizer by name"
            )
        return s["optimizer"]
    name = s["optimizer"]
    unused = sorted(set(given) - set(optimizer_settings(name)))
    if unused:
        raise SettingsError(
            f"{', '.join(unused)} does not apply to {name}; its settings are "
            f"{', '.join(optimizer_settings(name))}"
        )
    given.setdefault("average", 0.0 if model.layout.normalised else DEFAULT_AVERAGE)
    return get_optimizer(name, **given)


def _training_rows(model: Model, x, y, validation, seed: int):
    """``(x, t, train_idx, valid_idx)``: validated inputs and targets of every row (an
    explicit validation set appended), and which rows train and which validate."""
    x = model.normalise(x)  # once, up front: the backends see normalised rows only
    t = _targets(model, y, len(x), "x", "y")
    if isinstance(validation, tuple):
        if len(validation) != 2:
            raise ValueError(
                f"validation must be a fraction or (x_valid, y_valid), got a tuple of "
                f"{len(validation)}"
            )
        x_valid = model.normalise(validation[0])
        t_valid = _targets(model, validation[1], len(x_valid), "validation x", "validation y")
        train_idx = np.arange(len(x))
        valid_idx = np.arange(len(x), len(x) + len(x_valid))
        x, t = stack_rows(x, x_valid), np.concatenate([t, t_valid])
    else:
        train_idx, valid_idx = train_validation_split(len(x), validation, seed)
    if len(train_idx) == 0:
        raise ValueError("no training samples left after the validation split")
    return x, t, train_idx, valid_idx


def _targets(model: Model, y, n: int, x_name: str, y_name: str) -> np.ndarray:
    """``y`` as the model's targets, one row per input row (``ValueError`` naming both
    arguments and both sizes)."""
    rows = len(y) if hasattr(y, "__len__") else None
    if rows is not None and rows != n:
        raise ValueError(f"{y_name} has {rows} rows but {x_name} has {n}: one target per input")
    return model.targets(y, n)
