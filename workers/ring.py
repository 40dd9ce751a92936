"""The ring of steps in shared memory: how the parent hands steps to the workers
without a message per step.

Arrays (``R`` slots, ``W`` workers, created by ``shared.share_training_arrays``):

- ``ring_rows`` (R, n): the row indices of the step in each slot (step ``s`` uses slot
  ``s % R``); ``ring_info`` (R, 4): kind, rows ``n``, optimizer step ``t``, ``chunk``
  (0: the step split evenly); ``ring_hyper`` (R, 8): the optimizer's settings;
  ``ring_norm`` (R,): what the summed gradient is divided by (rows, or their weight);
- ``ring_results`` (R, W, 2): each worker's loss sum and correct count of the step;
- ``ring_ctl`` (2 + 3W, 8) int64, one 64-byte line per counter so that no two
  processes write the same cache line: ``published`` (steps the parent has written),
  ``closing``, then per worker ``grads_done``, ``steps_done`` and ``syncs_done`` (the
  batch-norm meetings it has reached, ``workers/sync.py``);
- ``ring_counters`` (W, len(COUNTERS)): what each worker counts (``counters.py``).

The parent writes a slot, then raises ``published``; a worker reads the slot only after
it has seen ``published`` pass the step, and the parent reuses a slot only after every
worker's ``steps_done`` has passed the step that used it. On x86-64 (total store order)
NumPy's plain stores and loads keep that order between processes; elsewhere
:func:`fence` orders them.
"""

from __future__ import annotations

import math
import platform

import numpy as np

from .counters import COUNTERS

TRAIN, GRADIENT, EVALUATE = 1, 2, 3
HYPER = 8  # optimizer settings per slot (Adam has six)
STRONG_ORDER = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def ring_shapes(slots: int, rows: int, workers: int) -> dict[str, tuple[tuple[int, ...], type]]:
    """Name -> (shape, dtype) of the ring's arrays."""
    return {
        "ring_rows": ((slots, rows), np.int64),
        "ring_info": ((slots, 4), np.int64),
        "ring_hyper": ((slots, HYPER), np.float64),
        "ring_norm": ((slots,), np.float64),
        "ring_results": ((slots, workers, 2), np.float64),
        "ring_ctl": ((2 + 3 * workers, 8), np.int64),
        "ring_counters": ((workers, len(COUNTERS)), np.float64),
    }


def pieces(n: int, chunk: int, workers: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of each piece of ``n`` rows: ``chunk`` rows each, or (``chunk`` 0)
    the rows split evenly over the workers. Piece ``j`` belongs to worker ``j % W``."""
    size = chunk or max(math.ceil(n / workers), 1)
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def fence() -> None:
    """A full memory barrier where stores may be reordered (not on x86-64)."""
    if not STRONG_ORDER:
        import threading

        with threading.Lock():  # acquiring a lock orders memory on every platform
            pass


class Ring:
    """Views of the ring's arrays (``arrays`` by name) with named counters."""

    def __init__(self, arrays: dict):
        self.rows, self.info = arrays["ring_rows"], arrays["ring_info"]
        self.hyper, self.results = arrays["ring_hyper"], arrays["ring_results"]
        self.norm = arrays["ring_norm"]
        self.counters, self.ctl = arrays["ring_counters"], arrays["ring_ctl"]
        self.slots, self.workers = len(self.rows), self.results.shape[1]
        w = self.workers
        self.grads_done = self.ctl[2 : 2 + w, 0]
        self.steps_done = self.ctl[2 + w : 2 + 2 * w, 0]
        self.syncs_done = self.ctl[2 + 2 * w :, 0]

    @property
    def published(self) -> int:
        return int(self.ctl[0, 0])

    @published.setter
    def published(self, value: int) -> None:
        fence()
        self.ctl[0, 0] = value

    @property
    def closing(self) -> bool:
        return bool(self.ctl[1, 0])

    @closing.setter
    def closing(self, value: bool) -> None:
        self.ctl[1, 0] = int(value)

    def slot(self, step: int) -> int:
        return step % self.slots
