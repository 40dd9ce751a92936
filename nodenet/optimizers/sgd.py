"""Plain and momentum gradient descent: SGD, heavy-ball Momentum, Nesterov."""

from __future__ import annotations

import numpy as np

from ..checks import require_number
from .base import Optimizer


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
