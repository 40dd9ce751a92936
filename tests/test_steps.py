"""The parent's side of the ring (``workers/steps.py``): how long it sleeps while it waits
for the workers, worked out from the work they count, not their idle time."""

from __future__ import annotations

import numpy as np
import pytest

from nodenet.workers import steps as steps_module
from nodenet.workers.counters import COUNTERS
from nodenet.workers.ring import TRAIN, Ring, ring_shapes
from nodenet.workers.steps import MAX_WAIT_S, MIN_WAIT_S, Steps


def ring(slots: int = 16, workers: int = 2) -> Ring:
    arrays = {
        name: np.zeros(shape, dtype)
        for name, (shape, dtype) in ring_shapes(slots, 8, workers).items()
    }
    return Ring(arrays)


def counted(r: Ring, worker: int, steps: int, **seconds: float) -> None:
    """Worker ``worker`` has finished ``steps`` steps, having counted ``seconds``."""
    for name, value in seconds.items():
        r.counters[worker, COUNTERS.index(name)] = value
    r.steps_done[worker] = steps


def never(*_):
    raise AssertionError("not expected")


def test_a_step_lasts_the_work_the_workers_count_not_their_idle_time():
    r = ring()
    steps = Steps(r, lambda: None, never, 30.0)
    counted(r, 0, 10, busy_s=0.008, update_s=0.001, barrier_s=0.0005, sync_s=0.0005, idle_s=5.0)
    assert steps.step_seconds() == pytest.approx(0.001)
    # the next look measures only the steps since this one
    counted(r, 0, 20, busy_s=0.038, update_s=0.001, barrier_s=0.0005, sync_s=0.0005, idle_s=9.0)
    assert steps.step_seconds() == pytest.approx(0.003)
    assert steps.step_seconds() == pytest.approx(0.003)  # no new step: the last figure


@pytest.mark.parametrize(
    ("step_s", "expected"),
    [
        (0.0001, 0.0001 * 16 / 2),  # short steps: wake before the ring runs dry
        (0.004, MAX_WAIT_S),  # long steps: at most MAX_WAIT_S
        (1e-7, MIN_WAIT_S),
    ],
)
def test_a_waiting_parent_sleeps_until_about_half_the_steps_in_flight_are_done(
    monkeypatch, step_s, expected
):
    r = ring()
    steps = Steps(r, lambda: None, never, 30.0)
    for _ in range(16):
        steps.publish(TRAIN, np.arange(4), 1, 0, None, 4.0)
    counted(r, 0, 0, busy_s=0.0)
    steps.step_s = step_s
    naps = []

    def sleep(seconds):  # the workers finish every step while the parent sleeps
        naps.append(seconds)
        r.steps_done[:] = 16

    monkeypatch.setattr(steps_module.time, "sleep", sleep)
    steps.result(0)
    assert naps == [pytest.approx(expected)]
    naps.clear()
    steps.result(1)  # done already: no sleep, no nap worked out
    assert naps == []


def test_a_parent_waiting_for_its_only_step_sleeps_most_of_a_step_then_looks_often(monkeypatch):
    """With one step in flight (a callback reads the model after every batch) the
    workers idle from the moment it is done until the parent looks: a first nap of 0.9
    of a step, then naps of a sixteenth of one."""
    r = ring()
    steps = Steps(r, lambda: None, never, 30.0)
    steps.publish(TRAIN, np.arange(4), 1, 0, None, 4.0)
    steps.step_s = 0.002
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 3:
            r.steps_done[:] = 1

    monkeypatch.setattr(steps_module.time, "sleep", sleep)
    steps.result(0)
    assert naps == [pytest.approx(0.0018), pytest.approx(0.000125), pytest.approx(0.000125)]


def test_every_slot_holds_the_optimizer_settings_of_the_step_in_it():
    """The parent writes a slot's settings only when they differ from what the slot
    holds: a learning rate changed between steps reaches exactly the steps after it."""
    r = ring(slots=4)
    steps = Steps(r, lambda: None, never, 30.0)
    first, second = (0.1, 0.9), (0.05, 0.9)
    published = []
    for s, hyper in enumerate([first] * 6 + [second] * 3 + [first] * 3):
        r.steps_done[:] = max(s - 3, 0)  # the workers have freed the slot this step reuses
        steps.publish(TRAIN, np.arange(4), s + 1, 0, hyper, 4.0)
        published.append(hyper)
        for slot in range(r.slots):  # the last step in each slot, and its settings
            last = max(i for i in range(s + 1) if i % r.slots == slot) if slot <= s else None
            if last is not None:
                assert tuple(r.hyper[slot, :2]) == published[last], (s, slot)


def test_a_steps_results_are_the_workers_added_up_in_worker_order():
    r = ring(workers=3)
    steps = Steps(r, lambda: None, never, 30.0)
    step = steps.publish(TRAIN, np.arange(4), 1, 0, None, 4.0)
    r.results[r.slot(step)] = [[0.1, 1.0], [1e16, 2.0], [-1e16, 0.0]]
    r.steps_done[:] = 1
    # in worker order 0.1 + 1e16 - 1e16 is 0.0 in float64, not 0.1
    assert steps.result(step) == (0.1 + 1e16 - 1e16, 3.0) == (0.0, 3.0)
