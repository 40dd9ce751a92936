"""Optimizers that update the flat ``weights`` and ``biases`` arrays in place.

``opt.step(weights, biases, dW, db)`` takes the gradients of the *mean* loss of a
mini-batch (the caller divides the summed gradients by the batch size). Each optimizer
keeps its state arrays (one per parameter array) and updates element-wise:
``g`` is the gradient, ``p`` the parameter, ``t`` the step number (from 1).

``weight_decay`` adds ``weight_decay * p`` to the gradient of the weights (L2; biases
are never decayed), except in :class:`AdamW`, which decays the weights directly.

``average`` (0 < average < 1) also keeps an exponential moving average of the
parameters, ``a = average * a + (1 - average) * p`` after every step (Polyak averaging);
:meth:`Optimizer.averaged` returns it bias-corrected, ``a / (1 - average^t)`` as in Adam.
The average of the last few hundred steps generalises better than the last iterate.
"""

from __future__ import annotations

import functools
import inspect
import math

import numpy as np

from . import kernels
from .checks import require_number


class Optimizer:
    """Base class: validates the settings and runs :meth:`update` on each flat array."""

    name = "optimizer"

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0, average: float = 0.0):
        self.lr = require_number("lr", lr, 0, open_low=True)
        self.weight_decay = require_number("weight_decay", weight_decay, 0)
        self.average = require_number("average", average, 0, 1)
        self.t = 0
        self.state: list[dict[str, np.ndarray]] = [{}, {}]

    #: names of the per-parameter state arrays of the update rule
    rule_keys: tuple[str, ...] = ()

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Names of all per-parameter state arrays (what must be shared to split a step)."""
        return self.rule_keys + (("avg",) if self.average else ())

    def step(self, weights: np.ndarray, biases: np.ndarray, dW: np.ndarray, db: np.ndarray):
        """One update of both flat arrays, in place (``dW`` may be used as work space)."""
        self.t += 1
        self.apply(self.state[0], weights, dW, decay=True)
        self.apply(self.state[1], biases, db, decay=False)

    def step_mean(self, weights, biases, dW, db, n: int) -> None:
        """One step from gradients *summed* over ``n`` samples (``dW`` and ``db`` may be
        used as work space)."""
        self.t += 1
        self.apply_sum(self.state[0], weights, dW[None], n, decay=True)
        self.apply_sum(self.state[1], biases, db[None], n, decay=False)

    def apply_sum(
        self, state, p: np.ndarray, slots: np.ndarray, n: int, decay: bool, offset: int = 0
    ) -> None:
        """:meth:`apply` with the gradient ``slots[:, offset : offset + len(p)].sum(0) / n``:
        ``slots`` (W, >= offset + len(p)) holds gradients summed over ``n`` samples in all,
        a worker's slot per row (``slots[0]`` may be used as work space when W is 1)."""
        g = self.slot_sum(slots, offset, p)
        g /= n
        self.apply(state, p, g, decay)

    def slot_sum(self, slots: np.ndarray, offset: int, like: np.ndarray) -> np.ndarray:
        """``slots[:, offset : offset + len(like)]`` summed over the rows: the row itself
        when there is one, else written into a work array of its own (rows added in
        order; the update rules use :meth:`scratch`)."""
        g = slots[:, offset : offset + like.size]
        if len(g) == 1:
            return g[0]
        return np.sum(g, axis=0, out=self.scratch(like, "_sum_scratch"))

    def apply(self, state: dict[str, np.ndarray], p: np.ndarray, g: np.ndarray, decay: bool):
        """Update ``p`` (a whole flat array or any slice of one, with ``state`` sliced
        alike) at step ``self.t``. Every rule is element-wise, so updating slices
        separately gives exactly the result of one update of the whole array.
        ``decay``: ``p`` holds weights (weight decay applies), not biases."""
        if decay and self.weight_decay:
            self.decay_weights(p, g)
        self.update(state, p, g)
        if self.average:
            avg = self.buffer(state, "avg", p)
            avg *= self.average
            avg += np.multiply(p, 1 - self.average, out=self.scratch(p))

    def decay_weights(self, p: np.ndarray, g: np.ndarray) -> None:
        """Weight decay before the update: L2, ``g += weight_decay * p`` (the caller's
        gradient buffer, reused)."""
        g += self.weight_decay * p

    def averaged(self) -> tuple[np.ndarray, np.ndarray]:
        """The bias-corrected moving averages of the flat weights and biases (new arrays,
        shaped like them). Raises ``ValueError`` when the optimizer does not average or
        has not stepped yet."""
        if not self.average or self.t == 0:
            raise ValueError("no parameter average: average is 0 or no step was taken")
        correction = 1 - self.average**self.t
        return self.state[0]["avg"] / correction, self.state[1]["avg"] / correction

    def update(self, state: dict[str, np.ndarray], p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    @staticmethod
    def buffer(state: dict[str, np.ndarray], key: str, like: np.ndarray) -> np.ndarray:
        """The state array ``key`` (zeros the first time), shaped and typed like ``like``."""
        if key not in state or state[key].shape != like.shape:
            state[key] = np.zeros_like(like)
        return state[key]

    def scratch(self, like: np.ndarray, name: str = "_scratch") -> np.ndarray:
        """A work array shaped like ``like``, reused across steps (never saved): the
        updates below run in place, with no temporaries and no float64 promotion."""
        buf = getattr(self, name, None)
        if buf is None or buf.size < like.size or buf.dtype != like.dtype:
            buf = np.empty(like.size, dtype=like.dtype)
            setattr(self, name, buf)
        return buf[: like.size].reshape(like.shape)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """All state as named arrays (for checkpoints); ``t`` included."""
        arrays = {f"{i}_{k}": v for i, s in enumerate(self.state) for k, v in s.items()}
        arrays["t"] = np.array(self.t)
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` returned."""
        self.t = int(arrays["t"])
        self.state = [{}, {}]
        for key, value in arrays.items():
            if key != "t":
                i, name = key.split("_", 1)
                self.state[int(i)][name] = np.array(value)

    def config(self) -> dict:
        return {
            "name": self.name,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "average": self.average,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """``p -= lr * g``."""

    name = "sgd"

    def update(self, state, p, g):
        tmp = np.multiply(g, self.lr, out=self.scratch(p))
        p -= tmp


class Momentum(Optimizer):
    """Heavy ball: ``v = momentum * v + g``; ``p -= lr * v``."""

    name = "momentum"
    rule_keys = ("v",)

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0, average=0.0):
        super().__init__(lr, weight_decay, average)
        self.momentum = require_number("momentum", momentum, 0, 1)

    def update(self, state, p, g):
        v = self.buffer(state, "v", p)
        v *= self.momentum
        v += g
        tmp = np.multiply(v, self.lr, out=self.scratch(p))
        p -= tmp

    def config(self):
        return {**super().config(), "momentum": self.momentum}


class Nesterov(Momentum):
    """Nesterov momentum: ``v = momentum * v + g``; ``p -= lr * (g + momentum * v)``."""

    name = "nesterov"

    def update(self, state, p, g):
        v = self.buffer(state, "v", p)
        v *= self.momentum
        v += g
        tmp = np.multiply(v, self.momentum, out=self.scratch(p))
        tmp += g
        tmp *= self.lr
        p -= tmp


class RMSProp(Optimizer):
    """``s = rho * s + (1 - rho) * g^2``; ``p -= lr * g / (sqrt(s) + eps)``."""

    name = "rmsprop"
    rule_keys = ("s",)

    def __init__(self, lr=0.001, rho=0.9, eps=1e-8, weight_decay=0.0, average=0.0):
        super().__init__(lr, weight_decay, average)
        self.rho = require_number("rho", rho, 0, 1)
        self.eps = require_number("eps", eps, 0, open_low=True)

    def update(self, state, p, g):
        s = self.buffer(state, "s", p)
        tmp = np.multiply(g, g, out=self.scratch(p))
        tmp *= 1 - self.rho
        s *= self.rho
        s += tmp
        _scaled_step(p, g, s, self.lr, self.eps, tmp)

    def config(self):
        return {**super().config(), "rho": self.rho, "eps": self.eps}


class Adagrad(Optimizer):
    """``s += g^2``; ``p -= lr * g / (sqrt(s) + eps)``."""

    name = "adagrad"
    rule_keys = ("s",)

    def __init__(self, lr=0.01, eps=1e-8, weight_decay=0.0, average=0.0):
        super().__init__(lr, weight_decay, average)
        self.eps = require_number("eps", eps, 0, open_low=True)

    def update(self, state, p, g):
        s = self.buffer(state, "s", p)
        tmp = np.multiply(g, g, out=self.scratch(p))
        s += tmp
        _scaled_step(p, g, s, self.lr, self.eps, tmp)

    def config(self):
        return {**super().config(), "eps": self.eps}


class Adam(Optimizer):
    """``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)`` and
    ``v_hat = v / (1 - b2^t)``."""

    name = "adam"
    rule_keys = ("m", "v")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, average=0.0):
        super().__init__(lr, weight_decay, average)
        self.beta1 = require_number("beta1", beta1, 0, 1)
        self.beta2 = require_number("beta2", beta2, 0, 1)
        self.eps = require_number("eps", eps, 0, open_low=True)

    def update(self, state, p, g):
        m = self.buffer(state, "m", p)
        v = self.buffer(state, "v", p)
        tmp = self.scratch(p)
        m *= self.beta1
        np.multiply(g, 1 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        # m_hat / (sqrt(v_hat) + eps) rewritten with the corrections folded into scalars
        correction = math.sqrt(1 - self.beta2**self.t)
        _scaled_step(
            p, m, v, self.lr * correction / (1 - self.beta1**self.t), self.eps * correction, tmp
        )

    def apply_sum(self, state, p, slots, n, decay, offset=0):
        if not kernels.available or not p.flags.c_contiguous:
            super().apply_sum(state, p, slots, n, decay, offset)
            return
        f = p.dtype.type
        correction = math.sqrt(1 - self.beta2**self.t)
        m, v = self.buffer(state, "m", p), self.buffer(state, "v", p)
        avg = self.buffer(state, "avg", p) if self.average else m  # m: never written
        l2, keep = self.decay_factors(decay)
        kernels.adam(
            p,
            self.slot_sum(slots, offset, p),
            m,
            v,
            avg,
            f(n),
            f(l2),
            f(keep),
            f(self.beta1),
            f(1 - self.beta1),
            f(self.beta2),
            f(1 - self.beta2),
            f(self.lr * correction / (1 - self.beta1**self.t)),
            f(self.eps * correction),
            f(self.average),
            f(1 - self.average if self.average else 0.0),
        )

    def decay_factors(self, decay: bool) -> tuple[float, float]:
        """``(l2, keep)``: ``g += l2 * p`` before the rule (L2), ``p *= keep`` (decoupled)."""
        return (self.weight_decay if decay else 0.0), 1.0

    def config(self):
        return {**super().config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``W -= lr * weight_decay * W`` before the Adam
    step (biases are not decayed)."""

    name = "adamw"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, average=0.0):
        super().__init__(lr, beta1, beta2, eps, weight_decay, average)

    def decay_weights(self, p, g):
        p *= 1 - self.lr * self.weight_decay

    def decay_factors(self, decay):
        return 0.0, (1 - self.lr * self.weight_decay if decay else 1.0)


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


def _scaled_step(p, numerator, s, lr: float, eps: float, tmp) -> None:
    """``p -= lr * numerator / (sqrt(s) + eps)`` in place, using ``tmp`` as work space."""
    np.sqrt(s, out=tmp)
    tmp += eps
    np.divide(numerator, tmp, out=tmp)
    tmp *= lr
    p -= tmp
