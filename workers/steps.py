"""The parent's side of the ring: publishing steps and reading their results."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .counters import COUNTERS
from .ring import Ring

MIN_WAIT_S = 0.00005  # the shortest sleep of a waiting parent
FIRST_STEP_S = 0.0005  # the work a step is assumed to take before one was measured
FIRST_NAP_ALONE = 0.9  # the first nap, in steps, when the parent waits for its only step
CHECK_S = 0.02  # how often a waiting parent checks on its workers
#: the longest sleep: a parent that wakes less often takes less CPU from the workers.
#: Measured on LeNet-5 (8 ms steps, 16 in flight), 2 workers: at 5 ms the parent woke
#: about 8 times a step and used 0.45-0.58 ms of CPU a step; at 20 ms, 0.13-0.19 ms,
#: and an epoch took 0.75-1.07x as long (median 0.965x, 9 alternating pairs)
MAX_WAIT_S = CHECK_S
HANG_FACTOR = 50  # a step that waits this many times the longest step before it is hung
WORK = [i for i, name in enumerate(COUNTERS) if name.endswith("_s") and name != "idle_s"]


class Steps:
    """Publishes steps into ``ring`` and returns their results in any order asked.

    A slot is reused only once every worker has finished the step that used it; that
    step's results are kept first if nobody has read them yet. ``check()`` is called
    every ``CHECK_S`` while waiting and raises when a worker has failed or died;
    ``hung(step, waited_s)`` is called (and must raise) when a step has waited more than
    ``hang_floor_s`` and :data:`HANG_FACTOR` times the longest step before it: a worker
    that is stopped (``kill -STOP``) or stuck is named within bounded time.
    """

    def __init__(
        self,
        ring: Ring,
        check: Callable[[], None],
        hung: Callable[[int, float], None],
        hang_floor_s: float,
    ):
        self.ring, self.check, self.hung, self.hang_floor_s = ring, check, hung, hang_floor_s
        self.longest_s = 0.0  # the longest a step the parent waited for took
        self.started = [0.0] * ring.slots  # when the step in each slot was published
        self.published = 0
        self.done = 0  # every worker had finished the steps before this when last seen
        self.hyper = [None] * ring.slots  # the optimizer settings written into each slot
        self.kept: dict[int, tuple[float, float]] = {}  # results saved from reused slots
        self.pending: set[int] = set()  # steps published whose results are not read
        #: worker 0's seconds of work per step (all but idle), and where it was measured
        self.step_s, self.seen = FIRST_STEP_S, (0, 0.0)

    def publish(
        self, kind: int, rows: np.ndarray, t: int, chunk: int, hyper: tuple | None, norm: float
    ) -> int:
        """Write step ``published`` (``kind``, row indices ``rows``, optimizer step ``t``,
        ``chunk``, optimizer settings ``hyper`` or ``None``, the divisor ``norm`` of the
        summed gradient) and publish it."""
        step, ring = self.published, self.ring
        previous = step - ring.slots  # the step that last used this slot
        self.wait_done(previous)
        if previous in self.pending:
            self.kept[previous] = self.read(previous)
        slot = ring.slot(step)
        ring.rows[slot, : len(rows)] = rows
        ring.info[slot] = kind, len(rows), t, chunk
        ring.norm[slot] = norm
        if hyper is not None and hyper != self.hyper[slot]:
            ring.hyper[slot, : len(hyper)] = self.hyper[slot] = hyper
        self.pending.add(step)
        self.started[slot] = time.monotonic()
        self.published = ring.published = step + 1
        return step

    def result(self, step: int) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of ``step`` over every worker, once it is done."""
        if step in self.kept:
            self.pending.discard(step)
            return self.kept.pop(step)
        self.wait_done(step)
        return self.read(step)

    def read(self, step: int) -> tuple[float, float]:
        """The workers' loss sums and correct counts of ``step`` added up, in worker
        order."""
        self.pending.discard(step)
        rows = self.ring.results[self.ring.slot(step)].tolist()
        loss, correct = map(sum, zip(*rows, strict=True))
        return float(loss), float(correct)

    def wait_done(self, step: int) -> None:
        """Sleep until every worker has finished ``step`` (at once for ``step`` < 0).

        The parent sleeps until about half of the steps in flight are done: long enough
        that it seldom takes a core from the workers, short enough that the ring never
        runs dry. A step's length is the work the workers count (computing, the
        optimizer, the barriers; not their idle time, which a late parent would inflate).
        Measured at batch 128, 2 workers: a fixed 0.5 ms per step ahead cost 0.472
        s/epoch, a fixed 5 ms 0.432 s; a fixed nap starves the workers of short steps
        (a 4-3-2 net: 335 us a step against 47 us in-process)."""
        if step < self.done:  # (the parent's common case: a plain comparison)
            return
        if self.look() <= step:  # (the nap is worked out only when the parent must sleep)
            self.sleep_until(step, max(1, self.published - step))
            if step > 0:  # step 0 carries the workers' warm-up
                waited = time.monotonic() - self.started[self.ring.slot(step)]
                self.longest_s = max(self.longest_s, waited)

    def sleep_until(self, step: int, ahead: int) -> None:
        """Sleep until every worker has finished ``step``, ``ahead`` steps in flight: a
        first nap until about half of them should be done (most of the one step when it
        is the only one), then naps of a sixteenth of a step."""
        step_s = self.step_seconds()
        nap = step_s * max(ahead / 2, FIRST_NAP_ALONE)
        last_check = time.monotonic()
        while self.look() <= step:
            time.sleep(min(MAX_WAIT_S, max(MIN_WAIT_S, nap)))
            nap = step_s / 16
            now = time.monotonic()
            if now - last_check > CHECK_S:
                last_check = now
                self.check()
                waited = now - self.started[self.ring.slot(step)]
                if waited > max(self.hang_floor_s, HANG_FACTOR * self.longest_s):
                    self.hung(step, waited)

    def look(self) -> int:
        """Read how many steps every worker has finished into ``done``; return it."""
        self.done = min(self.ring.steps_done.tolist())
        return self.done

    def step_seconds(self) -> float:
        """Worker 0's seconds of work per step over the steps since the last look."""
        finished = int(self.ring.steps_done[0])
        work = float(self.ring.counters[0, WORK].sum())
        steps, seconds = self.seen
        if finished > steps:
            self.step_s = (work - seconds) / (finished - steps)
            self.seen = finished, work
        return self.step_s
