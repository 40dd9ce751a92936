"""Weight initialisation: He (Kaiming), Xavier (Glorot) and LeCun uniform.

He and Xavier start the biases at zero; LeCun uniform draws them like the weights, as
PyTorch's ``nn.Linear`` does by default.
"""

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


def lecun(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on ``+-1 / sqrt(fan_in)``; shape ``(fan_out, fan_in)``. PyTorch's default
    for ``nn.Linear`` (Kaiming uniform with ``a = sqrt(5)``)."""
    limit = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-limit, limit, size=(fan_out, fan_in))


INITIALISERS = {"he": he, "kaiming": he, "xavier": xavier, "glorot": xavier, "lecun": lecun}


def initialise(model: Model, method: str, rng: np.random.Generator) -> None:
    """Fill every layer's ``W`` and ``b`` views by ``method`` (``"he"``, ``"xavier"`` or
    ``"lecun"``), in place in the model's flat arrays; a batch-norm layer's ``gamma``
    starts at one and its shift ``b`` at zero."""
    key = str(method).lower()
    if key not in INITIALISERS:
        raise ValueError(f"unknown init {method!r}; expected one of {sorted(INITIALISERS)}")
    draw = INITIALISERS[key]
    for layer in model.layers[1:]:
        fan_out, fan_in = layer.W.shape
        layer.W[...] = draw(fan_in, fan_out, rng)
        if layer.batch_norm:  # scale one, shift zero: the layer starts as plain xhat
            layer.gamma[...] = 1
            layer.b[...] = 0
        elif draw is lecun:
            layer.b[...] = rng.uniform(-1.0, 1.0, size=fan_out) / np.sqrt(fan_in)
        else:
            layer.b[...] = 0
