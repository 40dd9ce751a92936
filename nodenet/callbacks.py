"""Callbacks: what :func:`~nodenet.training.fit` calls around every batch and epoch.

Every hook has the shape ``on_<event>(index, logs)``, as in Keras: ``index`` is the
0-based epoch or batch (of the epoch) and ``logs`` the record of it (``loss``,
``accuracy``, ``val_loss``, ``val_accuracy``, ``seconds``, ...). ``fit`` sets
``self.model`` (the :class:`~nodenet.graph.Model`, whose ``optimizer`` and ``history``
are those of the run) and ``self.params`` (``epochs``, ``batch_size``, ``samples``,
``steps``, ``seed``). A callback ends training by setting ``self.model.stop_training``.

While a callback overrides a batch hook, ``fit`` runs one step at a time, so the hook
sees the model exactly after its batch; a callback that only reads ``logs`` says so with
``reads_logs_only = True`` and lets a worker pool run ahead.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from .checks import require_int, require_number


class Callback:
    """Base class; every hook does nothing. ``priority``: callbacks with a higher one run
    later at the same event (a checkpoint runs last, after every state it saves moved)."""

    reads_logs_only = False
    priority = 0

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Before the first epoch of this call of ``fit``."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """After the last epoch (not after an interrupt)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """``logs``: ``first_batch``, the batch the epoch starts at (non-zero on resume)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """``logs``: the epoch's record (with validation)."""

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Before batch ``batch``'s step is sent."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After batch ``batch``'s step; ``logs``: its record."""

    def on_interrupt(self, epoch: int, logs: dict | None = None) -> None:
        """Ctrl-C: training stops in epoch ``epoch`` after ``logs["batch"]`` batches of it
        (``0``: at its start, the epoch before being complete)."""

    def get_state(self) -> dict:
        """What a checkpoint must keep for a resumed run to behave as an uninterrupted one
        (JSON values or NumPy arrays)."""
        return {}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned."""

    def overrides_batch_hooks(self) -> bool:
        cls = type(self)
        return (
            cls.on_train_batch_end is not Callback.on_train_batch_end
            or cls.on_train_batch_begin is not Callback.on_train_batch_begin
        )


class CallbackList:
    """The callbacks of one ``fit``, in ``priority`` order; calls each hook on all."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = sorted(callbacks, key=lambda c: c.priority)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    @property
    def need_model_after_batch(self) -> bool:
        """Whether a callback reads the model in a batch hook (then steps run singly)."""
        return any(c.overrides_batch_hooks() and not c.reads_logs_only for c in self.callbacks)

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call

    def __iter__(self):
        return iter(self.callbacks)


def callback_states(callbacks) -> dict[str, dict]:
    """``{key: state}`` of every callback with state; the key is the class name, with
    ``#k`` added for the k-th (k >= 1) further one of the same class."""
    states, seen = {}, {}
    for callback in callbacks:
        state = callback.get_state()
        if state:
            name = type(callback).__name__
            seen[name] = seen.get(name, -1) + 1
            states[name if not seen[name] else f"{name}#{seen[name]}"] = state
    return states


def restore_callback_states(callbacks, states: dict[str, dict]) -> None:
    """Give each callback the state :func:`callback_states` saved under its key."""
    seen: dict[str, int] = {}
    for callback in callbacks:
        name = type(callback).__name__
        seen[name] = seen.get(name, -1) + 1
        key = name if not seen[name] else f"{name}#{seen[name]}"
        if key in states:
            callback.set_state(states[key])


class ProgressBar(Callback):
    """A tqdm bar per epoch: samples done, batch loss and accuracy, samples/s."""

    reads_logs_only = True

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm  # a notebook bar in Jupyter, text elsewhere

        size = self.params["batch_size"]
        self.bar = tqdm(
            total=self.params["samples"],
            initial=min(logs["first_batch"] * size, self.params["samples"]),
            desc=f"epoch {epoch + 1}/{self.params['epochs']}",
            unit="sample",
            leave=False,
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(logs["samples"])
        self.bar.set_postfix(
            loss=f"{logs['loss']:.4f}", acc=f"{logs['accuracy']:.3f}", refresh=False
        )

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()

    on_interrupt = on_epoch_end


class EpochLines(Callback):
    """A line naming the model, its optimizer and where it trains, then a line every
    ``every`` epochs (and after the last): loss, accuracy, validation, seconds,
    samples/s."""

    def __init__(self, stream=None, every: int = 1):
        super().__init__()
        self.stream = stream
        self.every = require_int("EpochLines every", every, 1)

    def on_train_begin(self, logs=None):
        model = self.model
        print(
            f"{model}\n{model.parameter_count:,} parameters, {model.optimizer!r}, "
            f"{self.params.get('workers_chosen') or 'in this process'}",
            file=self.stream or sys.stdout,
            flush=True,
        )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and epoch + 1 != self.params["epochs"]:
            return
        figures = [f"epoch {epoch + 1}/{self.params['epochs']}"]
        for key, name in (
            ("loss", "loss"),
            ("accuracy", "acc"),
            ("val_loss", "val_loss"),
            ("val_accuracy", "val_acc"),
        ):
            if math.isfinite(logs[key]):  # no validation, or no accuracy in regression
                figures.append(f"{name} {logs[key]:.4f}")
        figures += [f"{logs['seconds']:.2f} s", f"{logs['samples_per_s']:,.0f} samples/s"]
        print("  ".join(figures), file=self.stream or sys.stdout, flush=True)


class DivergenceError(ArithmeticError):
    """Training diverged: a batch's loss is NaN or infinite."""


class TerminateOnNaN(Callback):
    """Raise :class:`DivergenceError` at the first batch whose loss is not finite (the
    step before it left non-finite parameters, or the loss overflowed), naming the
    batch, the loss and what to try. Training stops there, so no checkpoint or model
    with non-finite parameters is written. ``fit`` always includes one."""

    reads_logs_only = True

    def on_train_batch_end(self, batch, logs=None):
        loss = logs["loss"]
        if not math.isfinite(loss):
            optimizer = self.model.optimizer
            raise DivergenceError(
                f"training diverged at epoch {logs['epoch']}, batch {logs['batch']}: the loss "
                f"is {loss} (the step before it left non-finite parameters); try a lower "
                f"learning rate than {optimizer.lr:g}"
            )


class StepDecay(Callback):
    """Multiply the optimizer's learning rate by ``factor`` every ``every`` epochs."""

    def __init__(self, factor: float = 0.5, every: int = 10):
        super().__init__()
        self.factor = require_number(
            "StepDecay factor", factor, 0, 1, open_low=True, closed_high=True
        )
        self.every = require_int("StepDecay every", every, 1)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.model.optimizer.lr *= self.factor


class EarlyStopping(Callback):
    """Stop when ``monitor`` (an epoch record key) has not improved by more than
    ``min_delta`` for ``patience`` epochs.

    ``mode``: ``"min"``, ``"max"``, or ``"auto"`` (``max`` when the name holds ``acc``,
    as Keras decides). ``restore_best_weights``: when the run ends, the model gets the
    weights of its best epoch (the weights validated then, averaged ones when the
    optimizer averages). The state travels in checkpoints, so a resumed run stops at the
    epoch an uninterrupted one would. ``verbose``: print one line saying when and why it
    stopped (to ``stream``, standard output by default).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best_weights: bool = False,
        verbose: bool = True,
        stream=None,
    ):
        super().__init__()
        self.verbose, self.stream = bool(verbose), stream
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.patience = require_int("patience", patience, 0)
        self.min_delta = require_number("min_delta", min_delta, 0)
        self.restore_best_weights = bool(restore_best_weights)
        self.set_state({})

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which the epoch records lack; "
                f"they hold {', '.join(logs)}"
            )
        value = logs[self.monitor]
        if math.isnan(value):
            warnings.warn(f"EarlyStopping: {self.monitor} is NaN (no validation?)", stacklevel=2)
            return
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self._validated_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                restored = (
                    f"; the weights of epoch {self.best_epoch + 1} are restored"
                    if self.restore_best_weights and self.best_weights is not None
                    else ""
                )
                print(
                    f"early stopping after epoch {epoch + 1}: {self.monitor} has not "
                    f"improved by more than {self.min_delta:g} for {self.wait} epochs (best "
                    f"{self.best:.4g} at epoch {self.best_epoch + 1}){restored}",
                    file=self.stream or sys.stdout,
                    flush=True,
                )

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            model = self.model
            flats = (model.weights, model.biases, model.running)
            for flat, best in zip(flats, self.best_weights, strict=True):
                if best is not None:
                    flat[...] = best

    def _validated_weights(self) -> tuple[np.ndarray, ...]:
        """``(weights, biases, running)`` as validated (batch-norm statistics too)."""
        optimizer, model = self.model.optimizer, self.model
        if optimizer is not None and optimizer.average and optimizer.t:
            return (*optimizer.averaged(), model.running.copy())
        return model.weights.copy(), model.biases.copy(), model.running.copy()

    def get_state(self) -> dict:
        state = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        state["stopped_epoch"] = self.stopped_epoch
        if self.best_weights is not None:
            state["best_weights"], state["best_biases"], state["best_running"] = self.best_weights
        return state

    def set_state(self, state: dict) -> None:
        self.best = float(state.get("best", math.inf if self.mode == "min" else -math.inf))
        self.best_epoch = int(state.get("best_epoch", -1))
        self.wait = int(state.get("wait", 0))
        self.stopped_epoch = int(state.get("stopped_epoch", -1))
        weights = state.get("best_weights")
        if weights is None:
            self.best_weights = None
        else:  # checkpoints from before batch norm hold no running statistics
            self.best_weights = (weights, state["best_biases"], state.get("best_running"))
