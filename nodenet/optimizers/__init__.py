"""Optimizers that update the flat ``weights`` and ``biases`` arrays in place, and the
registry that builds them by name.

==============  ===========================================================
``base.py``     ``Optimizer``: settings, state arrays, weight decay, averaging
``sgd.py``      SGD, Momentum, Nesterov
``adaptive.py`` RMSProp, Adagrad, Adam, AdamW
==============  ===========================================================
"""

from __future__ import annotations

import functools
import inspect

from .adaptive import Adagrad, Adam, AdamW, RMSProp
from .base import Optimizer
from .sgd import SGD, Momentum, Nesterov

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_HYPERPARAMETERS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "RMSProp",
    "get_optimizer",
    "optimizer_settings",
]

OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, RMSProp, Adagrad, Adam, AdamW)
}


@functools.cache
def optimizer_settings(name: str) -> tuple[str, ...]:
    """The settings the optimizer ``name`` takes (``("lr", "momentum", ...)``)."""
    parameters = inspect.signature(_optimizer_class(name).__init__).parameters
    return tuple(key for key in parameters if key != "self")


def get_optimizer(name: str, **settings) -> Optimizer:
    """Build an optimizer by name with ``settings``; a setting it does not take raises
    ``ValueError`` naming it and the settings it does take."""
    cls = _optimizer_class(name)
    unknown = sorted(set(settings) - set(optimizer_settings(name)))
    if unknown:
        raise ValueError(
            f"{cls.name} takes no setting {', '.join(map(repr, unknown))}; "
            f"its settings are {', '.join(optimizer_settings(name))}"
        )
    return cls(**settings)


def _optimizer_class(name: str) -> type[Optimizer]:
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key]


#: every hyperparameter any optimizer takes, in a stable order
OPTIMIZER_HYPERPARAMETERS: tuple[str, ...] = tuple(
    dict.fromkeys(key for name in OPTIMIZERS for key in optimizer_settings(name))
)
