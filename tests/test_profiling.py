"""The pool's ceilings in ``nodenet profile``: independent processes run at once, and the
synced ceiling's processes really meet once a step."""

import multiprocessing
import os
import time

import numpy as np
import pytest

from nodenet.workers import profiling
from nodenet.workers.profiling import Meeting, Steal, ceiling_runs, cpu_ticks


def _meet(where: str, index: int, delay_s: float, stop_after: int, out) -> None:
    """Steps that each take ``delay_s``, then meet; process 0 stops after ``stop_after``."""
    meeting = Meeting.join(where, index)
    steps, start = 0, time.perf_counter()
    while True:
        time.sleep(delay_s)
        steps += 1
        if meeting.meet(stop=steps >= stop_after):
            break
    out.put((index, steps, time.perf_counter() - start))
    meeting.leave()


def test_a_meeting_waits_for_the_slowest_and_everyone_stops_at_the_same_step():
    processes = []
    with Meeting.arranged(2) as where:
        try:
            context = multiprocessing.get_context("fork")
            out = context.Queue()
            # process 0 is quick and decides to stop after 3 steps; process 1 takes 50 ms
            # a step and would go on for ever without process 0's say
            processes = [
                context.Process(target=_meet, args=(where, 0, 0.0, 3, out)),
                context.Process(target=_meet, args=(where, 1, 0.05, 10**9, out)),
            ]
            for process in processes:
                process.start()
            results = sorted(out.get(timeout=20) for _ in processes)
            for process in processes:
                process.join(timeout=10)
                assert process.exitcode == 0
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
    (_, steps_0, seconds_0), (_, steps_1, _) = results
    assert steps_0 == steps_1 == 3
    assert seconds_0 >= 3 * 0.05 * 0.9  # the quick one waited for the slow one each step


def test_a_process_left_alone_at_a_meeting_says_so_within_its_time_limit():
    ctl = np.zeros((3, 8), np.int64)  # two processes
    meeting = Meeting(ctl, 0)
    meeting.TIMEOUT_S = 0.1
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="no other process met at step 1 within"):
        meeting.meet()
    assert time.monotonic() - start < 5


def test_the_ceiling_processes_run_at_once_and_the_synced_ones_meet_every_step(mnist, mnist_model):
    independent = ceiling_runs(mnist_model, 32, 0.3, None)  # None: $NODENET_DATA
    synced = ceiling_runs(mnist_model, 32, 0.3, None, meet=True)
    assert len(independent) == len(synced) == 2
    assert all(run["samples_per_s"] > 0 and run["steps"] >= 5 for run in independent + synced)
    # meeting once a step, they take the same steps (were they run one after the other,
    # the first would wait alone at its first meeting and fail)
    assert synced[0]["steps"] == synced[1]["steps"]
    assert synced[0]["samples_per_s"] == pytest.approx(synced[1]["samples_per_s"], rel=0.05)
    assert not [
        name for name in os.listdir("/dev/shm") if name.startswith(f"nodenet_{os.getpid()}_")
    ]


def test_cpu_ticks_reads_the_steal_and_the_total_of_every_cpu(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 2 30 500 4 0 6 58 0 0\ncpu0 50 1 15 250 2 0 3 29 0 0\n")
    assert cpu_ticks(str(stat)) == (58, 700)
    assert cpu_ticks(str(tmp_path / "missing")) is None
    stat.write_text("intr 1 2 3\n")
    assert cpu_ticks(str(stat)) is None


def test_steal_is_the_hypervisors_share_of_the_time_the_block_took(monkeypatch):
    readings = iter([(10, 1000), (40, 1200)])
    monkeypatch.setattr(profiling, "cpu_ticks", lambda: next(readings))
    with Steal() as steal:
        pass
    assert steal.share == pytest.approx(30 / 200)
    monkeypatch.setattr(profiling, "cpu_ticks", lambda: None)  # not Linux
    with Steal() as steal:
        pass
    assert np.isnan(steal.share)
    if os.path.exists("/proc/stat"):  # the real counters move forward
        monkeypatch.undo()
        with Steal() as steal:
            time.sleep(0.2)  # about 40 ticks of two CPUs at 100 a second
        assert 0 <= steal.share <= 1
