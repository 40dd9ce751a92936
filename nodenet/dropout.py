"""Inverted dropout with masks that depend on nothing but where a sample sits.

A training pass drops unit ``j`` of layer ``l`` for the sample at position ``i`` of the
data set (its row in ``x``) at optimizer step ``t`` of a run with seed ``s`` when
``u(s, t, l, i, j) < rate``, where ``u`` is a counter-based hash (SplitMix64's
finaliser) mapped to ``[0, 1)``. Kept units are scaled by ``1 / (1 - rate)``, so
prediction uses the layer unchanged. The mask is a pure function of those five
numbers: whichever worker computes a sample, in whatever piece, draws the same mask,
and a redone or resumed step draws it again exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class TrainingPass:
    """What a training forward pass needs beyond its inputs.

    ``rows`` (n,): each sample's position in the data set (its dropout masks);
    ``seed`` and ``step``: the run's seed and the optimizer step (1, 2, ...);
    ``sync``: how batch-norm sums are combined over the whole batch when this pass holds
    only part of it (``None``: the pass is the whole batch, see
    :mod:`nodenet.batchnorm`); ``update_running``: whether batch-norm layers move their
    running mean and variance (a training step does; a gradient check does not).
    """

    rows: np.ndarray
    seed: int = 0
    step: int = 0
    sync: object | None = None
    update_running: bool = False


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place on a uint64 array (wrapping arithmetic)."""
    h ^= h >> np.uint64(30)
    h *= _MIX_1
    h ^= h >> np.uint64(27)
    h *= _MIX_2
    h ^= h >> np.uint64(31)
    return h


def keep_scale(
    training: TrainingPass, layer: int, size: int, rate: float, dtype=np.float32
) -> np.ndarray:
    """The mask of layer ``layer`` (``size`` units) for the pass's rows, (n, size): 0
    for a dropped unit, ``1 / (1 - rate)`` for a kept one."""
    key = np.array([training.seed, training.step, layer], dtype=np.uint64)
    base = np.uint64(0)
    rows = np.asarray(training.rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in key:  # fold the three keys into one 64-bit stream position
            base = _mix(np.array([base ^ (part + _GOLDEN)], dtype=np.uint64))[0]
        if kernels.available:
            out = np.empty((len(rows), size), dtype=dtype)
            scale = 1.0 / (1.0 - rate)
            kernels.dropout_mask(
                rows, np.uint64(size), base, _GOLDEN, _MIX_1, _MIX_2, rate, scale, out
            )
            return out
        h = rows[:, None] * np.uint64(size) + np.arange(size, dtype=np.uint64)
        h *= _GOLDEN
        h += base
        _mix(h)
    uniform = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.where(uniform >= rate, 1.0 / (1.0 - rate), 0.0).astype(dtype)
