"""Weight initialisation: He (Kaiming), Xavier, Glorot (scikit-learn's) and LeCun uniform.

Each rule draws a layer's weights ``(fan_out, fan_in)`` and biases ``(fan_out,)``
(a convolution's fans count its kernel: ``channels * kh * kw`` in, ``filters * kh *
kw`` out, as in PyTorch and Keras):

- ``he``: weights normal with std ``sqrt(2 / fan_in)``, biases zero (ReLU-like layers);
- ``xavier``: weights uniform on ``+-sqrt(6 / (fan_in + fan_out))``, biases zero;
- ``glorot``: weights *and* biases uniform on ``+-sqrt(factor / (fan_in + fan_out))``
  with ``factor`` 6, or 2 when the hidden layers are Sigmoid: scikit-learn's MLP init
  (``_init_coef``; it takes the factor from the hidden activation for every layer);
- ``lecun``: weights and biases uniform on ``+-1 / sqrt(fan_in)``, PyTorch's default
  for ``nn.Linear`` (Kaiming uniform with ``a = sqrt(5)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .activations import Sigmoid

if TYPE_CHECKING:
    from .graph import Model


def _limit(rule: str, fan_in: int, fan_out: int, factor: float) -> float:
    """The half-width of a uniform rule's interval."""
    if rule == "lecun":
        return 1.0 / np.sqrt(fan_in)
    return np.sqrt((6.0 if rule == "xavier" else factor) / (fan_in + fan_out))


def weights(rule: str, fan_in: int, fan_out: int, rng, factor: float, shape) -> np.ndarray:
    """A layer's weights of ``shape`` (``(fan_out, fan_in)`` for a dense layer) drawn by
    ``rule``."""
    if rule == "he":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    limit = _limit(rule, fan_in, fan_out, factor)
    return rng.uniform(-limit, limit, size=shape)


def biases(rule: str, fan_in: int, fan_out: int, rng, factor: float, shape) -> np.ndarray:
    """A layer's biases of ``shape`` (one per node, or per filter) drawn by ``rule``
    (zero for he and xavier)."""
    if rule in ("he", "xavier"):
        return np.zeros(shape)
    limit = _limit(rule, fan_in, fan_out, factor)
    return rng.uniform(-limit, limit, size=shape)


#: the rules by name (``kaiming`` is ``he``)
INITIALISERS = {
    "he": "he",
    "kaiming": "he",
    "xavier": "xavier",
    "glorot": "glorot",
    "lecun": "lecun",
}


def initialise(model: Model, method: str, rng: np.random.Generator) -> None:
    """Fill every layer's ``W`` and ``b`` views by ``method`` (a key of
    :data:`INITIALISERS`), in place in the model's flat arrays; a batch-norm layer's
    ``gamma`` starts at one and its shift ``b`` at zero."""
    key = str(method).lower()
    if key not in INITIALISERS:
        raise ValueError(f"unknown init {method!r}; expected one of {sorted(INITIALISERS)}")
    rule = INITIALISERS[key]
    hidden = model.layers[1].activation if model.depth > 1 else None
    factor = 2.0 if isinstance(hidden, Sigmoid) else 6.0
    for layer in model.layers[1:]:
        if not layer.b.size:
            continue  # no parameters (pooling, flattening)
        fan_in, fan_out = layer.fans
        layer.W[...] = weights(rule, fan_in, fan_out, rng, factor, layer.W.shape)
        if layer.batch_norm:  # scale one, shift zero: the layer starts as plain xhat
            layer.gamma[...] = 1
            layer.b[...] = 0
        else:
            layer.b[...] = biases(rule, fan_in, fan_out, rng, factor, layer.b.shape)
