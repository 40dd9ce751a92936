"""Loss functions, summed over the samples.

A loss compares the output activations ``a`` of shape ``(n, K)`` with targets ``t`` of
the same shape. ``value`` is the loss summed over the ``n`` samples, ``gradient`` is
``dLoss/da`` and ``delta`` is ``dLoss/dz`` of the output layer, using the fused closed
form where the output activation allows it (Softmax + CrossEntropy and
Sigmoid + BinaryCrossEntropy both give ``a - t``).
"""

from __future__ import annotations

import numpy as np

from .activations import Activation, Sigmoid, Softmax


def _floor(dtype: np.dtype) -> float:
    """Smallest probability used inside a logarithm: finite log, finite 1/p."""
    return float(np.finfo(dtype).tiny) ** 0.5


class Loss:
    """Base class: ``value``, ``gradient``, ``delta``, ``targets``, ``count_correct``."""

    name = "loss"
    #: the output activation for which ``delta`` has the closed form ``a - t``
    fused_activation: type[Activation] | None = None

    def value(self, a: np.ndarray, t: np.ndarray, weights: np.ndarray | None = None) -> float:
        """Loss summed over the samples, each weighted by ``weights`` (n,) when given;
        ``a`` and ``t`` have shape ``(n, K)``."""
        raise NotImplementedError

    def gradient(self, a: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``dLoss/da``, shape ``(n, K)``."""
        raise NotImplementedError

    def delta(self, activation: Activation, z: np.ndarray, a: np.ndarray, t: np.ndarray):
        """``dLoss/dz`` of the output layer, shape ``(n, K)``."""
        if self.fused_activation is not None and isinstance(activation, self.fused_activation):
            return a - t
        return activation.vjp(z, a, self.gradient(a, t))

    def targets(self, y: np.ndarray, n_outputs: int, dtype=np.float32) -> np.ndarray:
        """Turn labels into a target matrix ``(n, n_outputs)``; validates them."""
        y = np.asarray(y)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(f"targets must have shape (n,) or (n, {n_outputs}), got {y.shape}")
        if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y).all():
            raise ValueError("targets contain NaN, infinity or non-numeric values")
        return y.astype(dtype)

    def count_correct(self, a: np.ndarray, t: np.ndarray) -> float:
        """Number of samples whose predicted class matches the target (ArgMax)."""
        return float(np.count_nonzero(a.argmax(axis=1) == t.argmax(axis=1)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """``-sum_k t_k log a_k``; targets are one-hot rows or class indices."""

    name = "cross_entropy"
    fused_activation = Softmax

    def value(self, a, t, weights=None):
        return _total(-(t * np.log(np.maximum(a, _floor(a.dtype)))), weights)

    def gradient(self, a, t):
        return -t / np.maximum(a, _floor(a.dtype))

    def targets(self, y, n_outputs, dtype=np.float32):
        y = np.asarray(y)
        if y.ndim == 1:
            if n_outputs < 2:
                raise ValueError("CrossEntropy needs at least 2 output nodes")
            labels = _class_indices(y, n_outputs)
            t = np.zeros((len(y), n_outputs), dtype=dtype)
            t[np.arange(len(y)), labels] = 1
            return t
        t = super().targets(y, n_outputs, dtype)
        if (t < 0).any() or not np.allclose(t.sum(axis=1), 1, atol=1e-4):
            raise ValueError("CrossEntropy targets must be one-hot or probability rows")
        return t


class BinaryCrossEntropy(Loss):
    """``-sum (t log a + (1 - t) log(1 - a))`` for independent 0/1 outputs."""

    name = "binary_cross_entropy"
    fused_activation = Sigmoid

    def _clip(self, a):
        floor = _floor(a.dtype)
        return np.clip(a, floor, 1 - np.finfo(a.dtype).epsneg)

    def value(self, a, t, weights=None):
        p = self._clip(a)
        return _total(-(t * np.log(p) + (1 - t) * np.log1p(-p)), weights)

    def gradient(self, a, t):
        p = self._clip(a)
        return (p - t) / (p * (1 - p))

    def targets(self, y, n_outputs, dtype=np.float32):
        t = super().targets(y, n_outputs, dtype)
        if ((t < 0) | (t > 1)).any():
            raise ValueError("BinaryCrossEntropy targets must lie in [0, 1]")
        return t

    def count_correct(self, a, t):
        return float(np.count_nonzero(np.all((a >= 0.5) == (t >= 0.5), axis=1)))


class SquaredError(Loss):
    """Residual sum of squares ``sum (a - t)^2`` (no factor 1/2), for regression or
    one-hot classification. Accuracy is counted by ArgMax when there are several
    outputs and is not defined (NaN) for a single regression output."""

    name = "squared_error"

    def value(self, a, t, weights=None):
        return _total((a - t) ** 2, weights)

    def gradient(self, a, t):
        return 2 * (a - t)

    def targets(self, y, n_outputs, dtype=np.float32):
        t = super().targets(y, n_outputs, dtype)
        largest = float(np.abs(t).max(initial=0.0))
        if largest > np.sqrt(np.finfo(t.dtype).max) / 4:  # its square would overflow
            raise ValueError(
                f"targets up to {largest:.3g} overflow when squared in {t.dtype}: scale them "
                "down first (divide by their standard deviation, say)"
            )
        return t

    def count_correct(self, a, t):
        if a.shape[1] == 1:
            return float("nan")
        return super().count_correct(a, t)


class HalfSquaredError(SquaredError):
    """``sum_k (a_k - t_k)^2 / 2`` per sample: the objective ``MLPRegressor`` descends
    (its output delta is ``a - t``). scikit-learn *reports* this divided by the number
    of outputs ``K`` as its loss (``NodenetRegressor.loss_`` does the same)."""

    name = "half_squared_error"

    def value(self, a, t, weights=None):
        return super().value(a, t, weights) / 2

    def gradient(self, a, t):
        return a - t


def _total(terms: np.ndarray, weights: np.ndarray | None) -> float:
    """The sum of the (n, K) loss ``terms``; with ``weights`` (n,), of each sample's sum
    times its weight."""
    if weights is None:
        return float(np.sum(terms))
    return float(weights @ terms.sum(axis=1))


def _class_indices(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Validate a vector of class labels and return it as integers."""
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"class labels must be numbers, got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise ValueError("class labels contain NaN or infinity")
    labels = y.astype(np.int64)
    if (labels != y).any():
        raise ValueError("class labels must be whole numbers")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"label {labels[i]} at index {i} is outside the class range 0..{n_classes - 1}"
        )
    return labels


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (CrossEntropy, BinaryCrossEntropy, SquaredError, HalfSquaredError)
}


def get_loss(spec: str | Loss) -> Loss:
    """Return a :class:`Loss` from an instance or a name; unknown names raise ``ValueError``."""
    if isinstance(spec, Loss):
        return spec
    key = str(spec).lower().replace("-", "_")
    if key not in LOSSES:
        raise ValueError(f"unknown loss {spec!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[key]()
