"""``Run``: the epochs of one ``fit``, and the state saved at each epoch's start so the
epoch can be redone exactly when a backend loses a worker."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np

from .backend import Backend
from .batches import EpochBatches
from .callbacks import CallbackList
from .graph import Model
from .optimizers import Optimizer
from .signals import DeferredSignals


class Run:
    """The epochs of one ``fit``, and the state at the start of the epoch in hand, to
    redo it exactly (every shuffle and split is a function of the seed) when the
    backend loses a worker."""

    def __init__(
        self, model, hooks, train_idx, valid_idx, batch_size, validate_every, seed, n, shuffle
    ):
        self.model, self.hooks, self.history = model, hooks, model.history
        self.train_idx, self.valid_idx, self.batch_size = train_idx, valid_idx, batch_size
        self.validate_every, self.seed, self.n_epochs = validate_every, seed, n
        self.shuffle = shuffle
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
            order = self.train_idx
            if self.shuffle:
                generator = np.random.default_rng([self.seed, epoch])
                order = order[generator.permutation(len(order))]
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
        parameters = (model.weights.copy(), model.biases.copy(), model.running.copy())
        self.saved = (epoch, first, parameters, state, len(history.batches), partial, self.steps)

    def restore(self) -> tuple[int, int]:
        """Put the model, optimizer and history back as :meth:`save` found them; return
        ``(epoch, first batch)`` to go on from."""
        epoch, first, parameters, state, n_batches, partial, steps = self.saved
        for flat, saved in zip(
            (self.model.weights, self.model.biases, self.model.running), parameters, strict=True
        ):
            flat[...] = saved
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
