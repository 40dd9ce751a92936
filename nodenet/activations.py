"""Activation functions: forward, derivative, vector-Jacobian product and Jacobian.

Every activation maps a layer's pre-activations ``z`` of shape ``(n, N)`` to its
activations ``a`` of the same shape. Backpropagation only ever needs the
vector-Jacobian product ``vjp(z, a, g) = g @ J`` row by row, where ``g = dLoss/da``
has shape ``(n, N)``; the full Jacobian ``(n, N, N)`` is exposed for teaching and tests.
"""

from __future__ import annotations

import numpy as np


class Activation:
    """Base class. Subclasses that act element by element only define ``forward`` and
    ``derivative``; the Jacobian of such an activation is diagonal."""

    name = "activation"
    elementwise = True

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Return ``a = f(z)``, shape ``(n, N)``, written into ``out`` when given."""
        raise NotImplementedError

    def derivative(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Return the element-wise derivative ``f'(z)``, shape ``(n, N)``."""
        raise NotImplementedError

    def vjp(self, z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Return ``dLoss/dz`` (n, N) given ``g = dLoss/da`` (n, N)."""
        return g * self.derivative(z, a)

    def jacobian(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Return ``da_i/dz_j`` for every sample, shape ``(n, N, N)``."""
        n, size = z.shape
        jac = np.zeros((n, size, size), dtype=z.dtype)
        idx = np.arange(size)
        jac[:, idx, idx] = self.derivative(z, a)
        return jac

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def config(self) -> dict:
        """The JSON-serialisable description that :func:`get_activation` rebuilds."""
        return {"name": self.name}


class Identity(Activation):
    """``a = z``."""

    name = "identity"

    def forward(self, z, out=None):
        if out is None:
            return z.copy()
        np.copyto(out, z)
        return out

    def derivative(self, z, a):
        return np.ones_like(z)

    def vjp(self, z, a, g):
        return g


class ReLU(Activation):
    """``a = max(0, z)``; the derivative at 0 is taken as 0."""

    name = "relu"

    def forward(self, z, out=None):
        return np.maximum(z, 0, out=out)

    def derivative(self, z, a):
        return (z > 0).astype(z.dtype)

    def vjp(self, z, a, g):
        return np.multiply(g, z > 0, dtype=g.dtype)


class LeakyReLU(Activation):
    """``a = z`` for ``z > 0`` else ``alpha * z``."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01):
        if not 0 <= alpha <= 1:  # a slope above 1 is no longer a leak, and 1e300 overflows
            raise ValueError(f"LeakyReLU alpha must lie in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, z, out=None):
        return np.multiply(z, np.where(z > 0, 1, self.alpha).astype(z.dtype), out=out)

    def derivative(self, z, a):
        return np.where(z > 0, 1, self.alpha).astype(z.dtype)

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"

    def config(self):
        return {"name": self.name, "alpha": self.alpha}


class Sigmoid(Activation):
    """``a = 1 / (1 + exp(-z))``, computed without overflow for large ``|z|``."""

    name = "sigmoid"

    def forward(self, z, out=None):
        e = np.exp(-np.abs(z))
        pos = 1 / (1 + e)
        result = np.where(z >= 0, pos, e * pos)
        if out is None:
            return result
        np.copyto(out, result)
        return out

    def derivative(self, z, a):
        return a * (1 - a)


class Tanh(Activation):
    """``a = tanh(z)``."""

    name = "tanh"

    def forward(self, z, out=None):
        return np.tanh(z, out=out)

    def derivative(self, z, a):
        return 1 - a * a


class Softmax(Activation):
    """``a_i = exp(z_i) / sum_j exp(z_j)`` over each row; shifted by the row maximum so
    that logits of any size stay finite."""

    name = "softmax"
    elementwise = False

    def forward(self, z, out=None):
        shifted = np.subtract(z, z.max(axis=1, keepdims=True), out=out)
        np.exp(shifted, out=shifted)
        shifted /= shifted.sum(axis=1, keepdims=True)
        return shifted

    def derivative(self, z, a):
        raise TypeError("Softmax is not element-wise: use vjp() or jacobian()")

    def vjp(self, z, a, g):
        """Closed form of ``g @ J``: ``s * (g - sum(g * s))`` row by row."""
        return a * (g - np.einsum("ij,ij->i", g, a)[:, None])

    def jacobian(self, z, a):
        """``J[k] = diag(s_k) - s_k s_k^T`` for every sample k, shape ``(n, N, N)``."""
        return np.einsum("ij,jk->ijk", a, np.eye(a.shape[1], dtype=a.dtype)) - np.einsum(
            "ij,ik->ijk", a, a
        )


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Identity, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax)
}


def get_activation(spec: str | dict | Activation) -> Activation:
    """Return an :class:`Activation` from an instance, a name (``"relu"``) or a
    :meth:`Activation.config` dict. Unknown names raise ``ValueError``."""
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"activation must be a name, a config dict or an Activation, got {spec!r}")
    params = dict(spec)
    name = str(params.pop("name", "")).lower().replace("-", "_")
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {spec.get('name')!r}; expected one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name](**params)
