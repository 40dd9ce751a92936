"""Batch normalisation of a layer's ``u = a(l-1) @ W.T``, over the whole batch even when
the batch is split across workers (as PyTorch's ``SyncBatchNorm`` does).

Training, for a batch of ``m`` samples::

    mean, var = batch mean and (biased) variance of u          (N,) each
    xhat      = (u - mean) / sqrt(var + EPS)                   (n, N)
    z         = gamma * xhat + beta                             (n, N), then a = f(z)

and, going back, with ``g = dLoss/dz`` (n, N) and the batch sums ``S1 = sum g`` and
``S2 = sum g * xhat`` (which are also ``dLoss/dbeta`` and ``dLoss/dgamma``)::

    dLoss/du = gamma / sqrt(var + EPS) * (g - S1 / m - xhat * S2 / m)

A pass that holds only part of the batch contributes its partial moments and sums
through a *sync* (:class:`WholeBatch` when the pass is the whole batch); every part
combines them in the same order, so every worker gets bit-identical statistics.
Prediction uses the running mean and variance (momentum ``MOMENTUM``, unbiased
variance, as in PyTorch).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

EPS = 1e-5
MOMENTUM = 0.1


class BatchSync(Protocol):
    """How the parts of one batch share per-feature sums (one call per batch-norm layer,
    forward and backward, in the same order in every part)."""

    def gather(self, values: np.ndarray) -> np.ndarray:
        """This part's ``values`` (k, N) -> every part's, stacked in part order
        (parts, k, N)."""
        ...


class WholeBatch:
    """The sync of a pass that holds the whole batch: nothing to share."""

    def gather(self, values: np.ndarray) -> np.ndarray:
        return values[None]


def moments(u: np.ndarray) -> np.ndarray:
    """``[count, mean, sum of squared deviations]`` of each column of ``u`` (n, N), as a
    float64 array (3, N); zeros for no rows."""
    n = len(u)
    mean = u.mean(axis=0, dtype=np.float64) if n else np.zeros(u.shape[1])
    deviations = u - mean
    m2 = np.einsum("ij,ij->j", deviations, deviations, dtype=np.float64)
    return np.stack([np.full(u.shape[1], float(n)), mean, m2])


def combine(parts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(count, mean, biased variance)`` of a batch from its parts' :func:`moments`
    (parts, 3, N), combined in order (Chan, Golub and LeVeque's pairwise update)."""
    count, mean, m2 = parts[0]
    count, mean, m2 = count.copy(), mean.copy(), m2.copy()
    for n_b, mean_b, m2_b in parts[1:]:
        total = count + n_b
        share = np.divide(n_b, total, out=np.zeros_like(total), where=total > 0)
        delta = mean_b - mean
        mean += delta * share
        m2 += m2_b + delta * delta * count * share
        count = total
    m = float(count[0]) if len(count) else 0.0
    return m, mean, m2 / max(m, 1.0)


def update_running(running: np.ndarray, m: float, mean: np.ndarray, var: np.ndarray) -> None:
    """Move ``running`` (2, N: mean, variance) towards the batch's statistics, with the
    variance made unbiased (``m / (m - 1)``)."""
    unbiased = var * (m / (m - 1)) if m > 1 else var
    running[0] += MOMENTUM * (mean - running[0])
    running[1] += MOMENTUM * (unbiased - running[1])


class Normalisation:
    """A layer's batch-norm state between its forward and backward pass."""

    def __init__(self):
        self.xhat: np.ndarray | None = None  # (n, N)
        self.inv_std: np.ndarray | None = None  # (N,)
        self.count = 0.0  # samples in the whole batch (training) or 0 (prediction)
        self.sync: BatchSync | None = None  # the sync of the last training pass

    def forward(
        self,
        u: np.ndarray,
        gamma: np.ndarray,
        beta: np.ndarray,
        running: np.ndarray,
        sync: BatchSync | None,
        update: bool,
        out: np.ndarray,
    ) -> np.ndarray:
        """``z = gamma * xhat + beta`` (n, N) into ``out`` from ``u`` (n, N): batch
        statistics through ``sync`` when training (``update``: move ``running``), the
        running ones when ``sync`` is ``None``."""
        self.sync = sync
        if sync is None:
            mean, var, self.count = running[0], running[1], 0.0
        else:
            self.count, mean, var = combine(sync.gather(moments(u)))
            if update:
                update_running(running, self.count, mean, var)
        self.inv_std = (1.0 / np.sqrt(var + EPS)).astype(u.dtype)
        self.xhat = (u - mean.astype(u.dtype)) * self.inv_std
        np.multiply(self.xhat, gamma, out=out)
        out += beta
        return out

    def backward(
        self, g: np.ndarray, gamma: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """From ``g = dLoss/dz`` (n, N): ``(dLoss/du (n, N), dgamma (N,), dbeta (N,))``,
        the last two summed over this part's rows only (the optimizer sums the parts),
        through the sync of the forward pass."""
        sync = self.sync
        if sync is None:
            raise RuntimeError("backpropagation through batch norm needs a training pass")
        dbeta = g.sum(axis=0)
        dgamma = np.einsum("ij,ij->j", g, self.xhat)
        totals = sync.gather(np.stack([dbeta, dgamma])).sum(axis=0)
        s1, s2 = totals / self.count
        du = (g - s1 - self.xhat * s2) * (gamma * self.inv_std)
        return du.astype(g.dtype, copy=False), dgamma, dbeta
