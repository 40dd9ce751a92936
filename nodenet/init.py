"""Weight initialisation: He (Kaiming) and Xavier (Glorot). Biases start at zero."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .graph import Model


def he(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Normal with standard deviation ``sqrt(2 / fan_in)``; shape ``(fan_out, fan_in)``.
    Suits ReLU-like activations."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))


def xavier(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on ``+-sqrt(6 / (fan_in + fan_out))``; shape ``(fan_out, fan_in)``.
    Suits Sigmoid, Tanh and Softmax."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_out, fan_in))


INITIALISERS = {"he": he, "kaiming": he, "xavier": xavier, "glorot": xavier}


def initialise(model: Model, method: str, rng: np.random.Generator) -> None:
    """Fill every layer's ``W`` view with ``method`` (``"he"`` or ``"xavier"``) and set
    the biases to zero, in place in the model's flat arrays."""
    key = str(method).lower()
    if key not in INITIALISERS:
        raise ValueError(f"unknown init {method!r}; expected one of {sorted(INITIALISERS)}")
    draw = INITIALISERS[key]
    for layer in model.layers[1:]:
        fan_out, fan_in = layer.W.shape
        layer.W[...] = draw(fan_in, fan_out, rng)
    model.biases[...] = 0
