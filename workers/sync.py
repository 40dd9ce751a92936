"""Batch-norm sums across the workers: a meeting in shared memory per batch-norm layer,
forward and backward (``nodenet.batchnorm.BatchSync`` for the pool).

Each worker writes its part's values (k, N) into its row of ``bn_sums`` (2, W, 3,
N_max) float64, raises its ``syncs_done`` counter and waits until every worker's has
passed the same meeting; then it reads every row, in worker order, so all workers
combine the same numbers in the same order. Meeting ``c`` uses buffer ``c % 2``: a
worker can write meeting ``c + 1`` while a slower one still reads meeting ``c``, but it
cannot reach meeting ``c + 2`` before that one has arrived at ``c + 1`` and so finished
reading ``c``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .ring import Ring, fence


def sums_shape(model, workers: int) -> tuple[int, ...]:
    """Shape of the ``bn_sums`` array for ``model`` (empty without batch norm)."""
    widths = [model.layout.scales[l].shape[0] for l in model.layout.normalised]
    return (2, workers, 3, max(widths, default=0))


class PoolSync:
    """Worker ``me``'s side of the meetings. ``wait(ready)`` is the worker's wait (it
    leaves when the pool closes); ``count`` says how long it waited."""

    def __init__(self, sums: np.ndarray, ring: Ring, me: int, wait: Callable, count: Callable):
        self.sums, self.ring, self.me = sums, ring, me
        self.wait, self.count = wait, count
        self.meetings = 0

    def gather(self, values: np.ndarray) -> np.ndarray:
        """This worker's ``values`` (k, N) -> every worker's (W, k, N), in worker order."""
        k, n = values.shape
        meeting, buffer = self.meetings, self.sums[self.meetings % 2]
        buffer[self.me, :k, :n] = values
        fence()
        self.ring.syncs_done[self.me] = meeting + 1
        done = self.ring.syncs_done
        self.count("sync_s", self.wait(lambda: done.min() > meeting))
        self.meetings += 1
        return buffer[:, :k, :n].copy()
