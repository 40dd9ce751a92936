"""Optimizers with a per-parameter step size from running squares of the gradient:
RMSProp, Adagrad, Adam and AdamW (Adam's family runs the fused kernel when numba is
there, see ``nodenet/kernels.py``)."""

from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..checks import require_number
from .base import Optimizer


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
            *self.slot_pair(slots, offset, p),
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


def _scaled_step(p, numerator, s, lr: float, eps: float, tmp) -> None:
    """``p -= lr * numerator / (sqrt(s) + eps)`` in place, using ``tmp`` as work space."""
    np.sqrt(s, out=tmp)
    tmp += eps
    np.divide(numerator, tmp, out=tmp)
    tmp *= lr
    p -= tmp
