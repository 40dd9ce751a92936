"""``StepBarrier``: where the workers of a split step meet, in shared memory."""

from __future__ import annotations

import os
import time

POLL_S = 1.0  # how often a waiting worker checks that its parent is alive
SPIN_S = 0.002  # how long a worker polls before it sleeps or blocks


class ParentGoneError(Exception):
    """The parent process is no longer alive, or is closing the pool."""


class StepBarrier:
    """Where the workers meet inside a step: an update may read the gradient slots only
    once every worker has zeroed its slot for the step and every gradient task of the
    step is finished; a worker leaves a step only once every worker has taken its
    ``wait`` of the step.

    The last rule is what lets the parent queue the next steps early: the input queue
    holds one ``wait`` per worker per step, so a worker that went on to the next step
    while another still had its ``wait`` to take could take that ``wait`` as its own -
    and the other worker the next step's tasks. When every worker has taken its
    ``wait``, every task of the step is taken, and finished.

    ``sync`` is a shared int64 array (3, workers): per worker, row 0 the last step it
    has started, row 1 how many compute (gradient, evaluation) tasks it has finished
    since the pool started, row 2 the last step whose ``wait`` it has taken. ``closing``
    (1,) is set by a closing parent. They are written under ``lock``; a waiting worker
    reads them without it and takes the lock once when they are complete, so that (on
    any CPU architecture) it sees everything written before they were published.
    """

    def __init__(self, sync, closing, lock, worker_id: int, parent_pid: int):
        self.sync, self.closing, self.lock = sync, closing, lock
        self.worker_id, self.parent_pid = worker_id, parent_pid

    def started(self, step: int) -> None:
        with self.lock:
            self.sync[0, self.worker_id] = step

    def computed(self) -> None:
        """One more gradient or evaluation task finished by this worker."""
        with self.lock:
            self.sync[1, self.worker_id] += 1

    def finished(self, step: int) -> None:
        """This worker has taken its ``wait`` of ``step``."""
        with self.lock:
            self.sync[2, self.worker_id] = step

    def wait(self, step: int, computed: int = 0, finished: bool = False) -> None:
        """Return once every worker has started ``step``, ``computed`` compute tasks are
        done in all and, if ``finished``, every worker has taken its ``wait`` of
        ``step``. Polls for ``SPIN_S``, then sleeps 100 us between looks; raises
        :class:`ParentGoneError` if the parent closes the pool or dies meanwhile (a
        worker that died or raised never arrives)."""
        sync = self.sync
        start = last_check = time.perf_counter()
        while True:
            if (
                sync[0].min() >= step
                and sync[1].sum() >= computed
                and (not finished or sync[2].min() >= step)
            ):
                with self.lock:  # acquire: what the others wrote is visible after it
                    return
            if self.closing[0]:
                raise ParentGoneError
            now = time.perf_counter()
            if now - start < SPIN_S:
                os.sched_yield()
                continue
            time.sleep(1e-4)
            if now - last_check > POLL_S:
                last_check = now
                if os.getppid() != self.parent_pid:
                    raise ParentGoneError
