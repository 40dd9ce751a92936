"""The baseline: a plain vectorised NumPy MLP with Adam, as a person would write it.

Layout ``x @ W + b`` with ``W`` of shape (n_in, n_out); LeCun-uniform initialisation (as PyTorch); softmax +
cross-entropy fused into ``p - y``; Adam with the usual formulas. No node objects, no
caches, no flat arrays: the shortest honest loop to compare nodenet against.
"""

from __future__ import annotations

import itertools

import numpy as np


class NumpyMLP:
    def __init__(self, sizes: list[int], seed: int = 0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        # LeCun uniform for weights and biases: PyTorch's nn.Linear default, used by
        # every trainer of the benchmark so that all start from the same distribution
        limits = [1 / np.sqrt(a) for a in sizes[:-1]]
        self.W = [
            rng.uniform(-c, c, size=(a, b)).astype(dtype)
            for c, (a, b) in zip(limits, itertools.pairwise(sizes), strict=True)
        ]
        self.b = [
            rng.uniform(-c, c, size=b).astype(dtype) for c, b in zip(limits, sizes[1:], strict=True)
        ]
        self.params = self.W + self.b
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [x]
        for i, (W, b) in enumerate(zip(self.W, self.b, strict=True)):
            z = acts[-1] @ W + b
            if i < len(self.W) - 1:
                acts.append(np.maximum(z, 0))
            else:
                z -= z.max(axis=1, keepdims=True)
                e = np.exp(z)
                acts.append(e / e.sum(axis=1, keepdims=True))
        return acts

    def step(self, x: np.ndarray, y_onehot: np.ndarray, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        acts = self.forward(x)
        delta = (acts[-1] - y_onehot) / len(x)
        grads_W, grads_b = [], []
        for i in range(len(self.W) - 1, -1, -1):
            grads_W.append(acts[i].T @ delta)
            grads_b.append(delta.sum(axis=0))
            if i:
                delta = (delta @ self.W[i].T) * (acts[i] > 0)
        grads = grads_W[::-1] + grads_b[::-1]
        self.t += 1
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (lr / c1) * m / (np.sqrt(v / c2) + eps)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.forward(x)[-1].argmax(axis=1) == y).mean())


def train(x, y, x_test, y_test, epochs, batch_size, seed, on_epoch):
    """Train 784-128-64-10; ``on_epoch(seconds)`` after each epoch; returns accuracy."""
    import time

    model = NumpyMLP([784, 128, 64, 10], seed=seed)
    onehot = np.eye(10, dtype=np.float32)[y]
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            rows = order[i : i + batch_size]
            model.step(x[rows], onehot[rows])
        on_epoch(time.perf_counter() - start)
    return model.accuracy(x_test, y_test)
