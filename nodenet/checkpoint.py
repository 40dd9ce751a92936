"""Checkpoints: everything a training run needs to continue exactly where it stopped,
in one atomically replaced ``.npz`` (no pickle), and the callback that writes them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .callbacks import Callback, callback_states, restore_callback_states
from .checks import require_int
from .files import strict_json
from .graph import Model
from .history import History
from .io import ModelFileError, load_arrays, model_arrays, model_from_arrays, save_arrays
from .optimizers import Optimizer, get_optimizer
from .settings import SETTINGS, stored

#: prefixes of the arrays of a checkpoint besides the model's
OPTIMIZER_PREFIX, CALLBACK_PREFIX = "opt_", "callback_"


@dataclass
class CheckpointState:
    """What a training run needs to continue exactly where it stopped."""

    model: Model
    optimizer: Optimizer
    history: History
    epoch: int  # epochs completed before the one in progress (0-based index of it)
    batch: int  # batches of that epoch already applied
    settings: dict
    #: ``{key: state}`` of the run's callbacks (see ``callbacks.callback_states``)
    callbacks: dict[str, dict] = field(default_factory=dict)

    def restore(self, callbacks) -> None:
        """Give ``callbacks`` (as passed to the resumed ``fit``) their saved state."""
        restore_callback_states(callbacks, self.callbacks)


def save_checkpoint(path: str | os.PathLike, state: CheckpointState) -> Path:
    """Write one self-contained ``.npz``: the model (loadable with ``io.load``), the
    optimizer's settings and state, the history, the callbacks' state and the position.
    Callback arrays are stored as ``callback_<key>/<name>``, the rest as JSON."""
    arrays = model_arrays(state.model)
    arrays.update({OPTIMIZER_PREFIX + k: v for k, v in state.optimizer.state_arrays().items()})
    callbacks = {}
    for key, values in state.callbacks.items():
        callbacks[key] = {}
        for name, value in values.items():
            if isinstance(value, np.ndarray):
                arrays[f"{CALLBACK_PREFIX}{key}/{name}"] = value
            else:
                callbacks[key][name] = value
    progress = {
        "epoch": state.epoch,
        "batch": state.batch,
        "optimizer": state.optimizer.config(),
        "settings": state.settings,
        "history": {
            "batches": state.history.batches,
            "epochs": state.history.epochs,
            "partial_epoch": state.history.partial_epoch,
        },
        "callbacks": callbacks,
    }
    arrays["progress"] = np.array(strict_json(progress, default=float))
    return save_arrays(path, arrays)


def load_checkpoint(path: str | os.PathLike) -> CheckpointState:
    """Read what :func:`save_checkpoint` wrote (a file, or a folder holding
    ``checkpoint.npz``); :class:`~nodenet.io.ModelFileError` on any problem."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    arrays = load_arrays(path)
    model = model_from_arrays(arrays, path)
    try:
        progress = json.loads(str(arrays["progress"]))
        settings = dict(progress["optimizer"])
        optimizer = get_optimizer(settings.pop("name"), **settings)
        run_settings = _renamed(progress["settings"])
        for key, value in run_settings.items():  # checked as the table checks them
            if key in SETTINGS:
                SETTINGS[key].check(value)
        optimizer.load_state_arrays(_with_prefix(arrays, OPTIMIZER_PREFIX))
        callbacks = {key: dict(values) for key, values in progress.get("callbacks", {}).items()}
        for name, value in _with_prefix(arrays, CALLBACK_PREFIX).items():
            key, field_name = name.split("/", 1)
            callbacks.setdefault(key, {})[field_name] = value
        history = History(progress["history"]["batches"], progress["history"]["epochs"])
        history.partial_epoch = progress["history"].get("partial_epoch")
        return CheckpointState(
            model,
            optimizer,
            history,
            int(progress["epoch"]),
            int(progress["batch"]),
            run_settings,
            callbacks,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a nodenet checkpoint ({exc})") from exc


#: settings stored under an older name by earlier versions
RENAMED = {"valid_fraction": "validation"}


def _renamed(settings: dict) -> dict:
    return {RENAMED.get(key, key): value for key, value in settings.items()}


def _with_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


class Checkpoint(Callback):
    """Writes ``directory/checkpoint.npz`` (atomically) every ``every`` epochs and when
    training is interrupted. The run's settings (``fit``'s, from the settings table)
    and ``settings`` (more of them, JSON-serialisable: the command line gives the
    network's and the data's) are stored with it for ``--resume``. It runs after the other callbacks of an epoch, so the state it saves
    includes what they changed."""

    priority = 1

    def __init__(self, directory: str | os.PathLike, every: int = 1, settings: dict | None = None):
        super().__init__()
        self.path = Path(directory) / "checkpoint.npz"
        self.every = require_int("checkpoint every", every, 1)
        self.settings = settings or {}
        #: ``(epoch, batch)`` of the last checkpoint written in this run, or ``None``
        self.saved: tuple[int, int] | None = None

    def save(self, epoch: int, batch: int) -> Path:
        """Write the run's state at ``batch`` batches into epoch index ``epoch``."""
        model = self.model
        state = CheckpointState(
            model,
            model.optimizer,
            model.history,
            epoch,
            batch,
            {**self.settings, **stored(self.params.get("settings", {}))},
            callback_states(model.callbacks),
        )
        path = save_checkpoint(self.path, state)
        self.saved = (epoch, batch)
        return path

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.save(epoch + 1, 0)

    def on_interrupt(self, epoch, logs=None):
        """Save where training stopped, unless no step ran since the run (re)started:
        then the checkpoint already on disk (if any) is that very point."""
        if logs.get("steps", 1):
            self.save(epoch, logs["batch"])
