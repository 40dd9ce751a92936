"""Worker throughput: samples/s, utilisation, where each worker's time goes (computing,
the optimizer, the barriers, waiting for the parent), its page faults, the per-step
overhead, the ceiling of two cores, and a plain-words diagnosis of the bottleneck."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nodenet.backend import InProcess
from nodenet.graph import Layer, Model
from nodenet.optimizers import Adam

from .pool import WorkerPool
from .processes import minor_faults, worker_environment
from .ring import fence
from .shared import ArraySpec, SharedArrays, attach

CEILING_CHILD = "from nodenet.workers.profiling import ceiling_child; ceiling_child()"
#: page faults a step in a worker above which ``diagnose`` names them: a worker that maps
#: fresh memory every step (LeNet-5's workers took 240-425 before they kept the memory a
#: pass frees, and spent 10-20% of their time in the kernel; 0-10 is usual)
FAULTS_PER_STEP = 64
#: the hypervisor's share of the CPUs' time above which ``diagnose`` names it: on the
#: 2-vCPU KVM hosts measured, a lone process saw 5-7% and two busy workers 11-39%, and
#: at 17-39% a 54-100-7 pool's steps took 1.8-5.3 ms against 0.87-1.0 ms in-process in the
#: same spell
STEAL_SHARE = 0.10


def cpu_ticks(path: str = "/proc/stat") -> tuple[int, int] | None:
    """``(steal, total)``: the clock ticks every CPU has spent since boot that a
    hypervisor gave to other guests ("steal"), and all of them, from the first line of
    ``path``; ``None`` where it cannot be read (not Linux)."""
    try:
        with open(path) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


class Steal:
    """``with Steal() as steal: ...``; then ``steal.share`` is the share of all the
    CPUs' time that the hypervisor took for other guests while the block ran: 0 on
    bare metal, NaN where it cannot be read. Two workers meeting every step each wait
    out any time the other's virtual CPU is taken, so runs with a high share say more
    about the host than about the pool."""

    share = math.nan

    def __enter__(self) -> Steal:
        self.start = cpu_ticks()
        return self

    def __exit__(self, *exc) -> None:
        end = cpu_ticks()
        if self.start is not None and end is not None and end[1] > self.start[1]:
            self.share = (end[0] - self.start[0]) / (end[1] - self.start[1])


def ceiling_runs(
    model: Model,
    batch: int,
    seconds: float,
    data_dir: str | None,
    processes: int = 2,
    meet: bool = False,
) -> list[dict]:
    """The pool's ceiling on this machine: ``processes`` independent single-thread
    processes, each training ``model``'s architecture in itself at ``batch //
    processes`` rows a step on MNIST at the same time, with no communication; their
    samples/s added up is the most a pool of that many workers can reach here. Returns
    each process's ``samples_per_s`` and ``steps`` (timed, after three to warm up).

    With ``meet`` the same processes meet once a step, between the gradient and the
    optimizer step (a barrier; no data passes): the *synced ceiling*. A pool whose steps
    equal in-process ones needs every worker's gradient before any worker starts the
    next step, so it waits at least once a step for its slowest worker: this is the most
    such a pool can reach here, whatever it exchanges and however."""
    job = {
        "config": model.config(),
        "batch": max(batch // processes, 1),
        "seconds": seconds,
        "data_dir": data_dir,
    }
    with Meeting.arranged(processes) if meet else contextlib.nullcontext() as where:
        if where is not None:
            job["meeting"] = where
        commands = [
            [sys.executable, "-c", CEILING_CHILD, json.dumps({**job, "index": i})]
            for i in range(processes)
        ]
        return run_together(commands, worker_environment(), timeout=300 + 10 * seconds)


def run_together(commands: list[list[str]], env: dict, timeout: float) -> list[dict]:
    """Start every command at once, then return the last line each one printed, read as
    JSON. One that fails raises ``RuntimeError`` (its standard error is left on this
    process's); none is left running (a failure, a timeout, Ctrl-C)."""
    children: list[subprocess.Popen] = []
    try:
        for command in commands:
            children.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env))
        results = []
        for command, child in zip(commands, children, strict=True):
            out, _ = child.communicate(timeout=timeout)
            if child.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(command[1:3])} ... failed (exit code {child.returncode})"
                )
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


class Meeting:
    """Processes meeting once a step over shared counters ``ctl`` (processes + 1, 8)
    int64, one 64-byte line each: row ``i`` holds the steps process ``i`` has finished,
    the last row the step after which everyone stops (process 0 decides). The parent
    holds them (:meth:`arranged`); each process :meth:`join`, then :meth:`meet` once a step,
    then :meth:`leave`."""

    TIMEOUT_S = 60.0  # a process that waits this long: another one has stopped meeting

    def __init__(self, ctl: np.ndarray, index: int):
        self.ctl, self.index, self.steps = ctl, index, 0
        self.processes = len(ctl) - 1
        self.blocks: list = []

    @staticmethod
    @contextlib.contextmanager
    def arranged(processes: int) -> Iterator[str]:
        """The counters of ``processes`` processes in shared memory, for as long as the
        ``with`` block runs; yields where they are, for :meth:`join` (JSON text)."""
        shared = SharedArrays()
        try:
            shared.create("meeting", (processes + 1, 8), np.int64)
            spec = shared.specs()["meeting"]
            yield json.dumps([spec.block, list(spec.shape), spec.dtype])
        finally:
            shared.unlink()

    @classmethod
    def join(cls, where: str, index: int) -> Meeting:
        """Process ``index``'s side of the meeting :meth:`arranged` put ``where``."""
        block, shape, dtype = json.loads(where)
        arrays, blocks = attach({"meeting": ArraySpec(block, tuple(shape), dtype)})
        meeting = cls(arrays["meeting"], index)
        meeting.blocks = blocks
        return meeting

    def leave(self) -> None:
        """Close the shared block (no view of it is left)."""
        self.ctl = None
        for block in self.blocks:
            block.close()
        self.blocks = []

    def meet(self, stop: bool = False) -> bool:
        """Finish a step and wait until every process has finished it; ``stop``
        (process 0's say): make it the last. Returns whether it is the last."""
        ctl, last = self.ctl, self.processes
        if stop and self.index == 0:
            ctl[last, 0] = self.steps + 1
        self.steps += 1
        fence()
        ctl[self.index, 0] = self.steps
        deadline = time.monotonic() + self.TIMEOUT_S
        while ctl[:last, 0].min() < self.steps:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no other process met at step {self.steps} within {self.TIMEOUT_S:.0f} s"
                )
            os.sched_yield()
        fence()
        return 0 < ctl[last, 0] <= self.steps


def ceiling_child() -> None:
    """One process of :func:`ceiling_runs`: the job as its argument, its samples/s and
    steps on standard output (JSON)."""
    from nodenet.data import Normaliser, load_mnist

    job = json.loads(sys.argv[1])
    train, _ = load_mnist(job["data_dir"])
    model = Model.from_config(job["config"]).construct(seed=0)
    x = Normaliser.fit("zscore", train.x)(train.x).astype(model.dtype)
    t = model.targets(train.y)
    engine, optimizer, rng = InProcess(model, x, t), Adam(), np.random.default_rng(0)
    meeting = Meeting.join(job["meeting"], job["index"]) if "meeting" in job else None

    def step(stop: bool) -> bool:
        """One training step of ``job["batch"]`` random rows; whether it is the last."""
        rows = rng.choice(len(x), job["batch"], replace=False)
        if meeting is None:
            engine.train_step(rows, optimizer)
            return stop
        _, _, dW, db = engine.gradient(rows, optimizer.t + 1, update_running=True)
        last = meeting.meet(stop)
        optimizer.step_mean(model.weights, model.biases, dW, db, len(rows))
        return last

    for _ in range(3):  # warm up
        step(False)
    steps, start = 0, time.perf_counter()
    while True:
        steps += 1
        if step(time.perf_counter() - start >= job["seconds"] and steps >= 5):
            break
    rate = steps * job["batch"] / (time.perf_counter() - start)
    if meeting is not None:
        meeting.leave()
    print(json.dumps({"samples_per_s": rate, "steps": steps}))


def step_overhead_us(workers: int, steps: int = 1000) -> float:
    """Microseconds per training step of the pool on a 4-3-2 network and 8 samples:
    what the protocol itself costs (the ring, the barriers, the parent's bookkeeping)."""
    model = Model(4, "cross_entropy", [Layer(3, "relu"), Layer(2, "softmax")]).construct()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    t = model.targets(np.arange(64) % 2)
    opt, rows = Adam(), np.arange(8)
    with WorkerPool(model, x, t, workers=workers, optimizer=opt) as pool:
        run_steps(pool, opt, [rows] * 100)
        start = time.perf_counter()
        run_steps(pool, opt, [rows] * steps)
        return (time.perf_counter() - start) / steps * 1e6


def averaging_cost_us(model: Model, average: float, rounds: int = 9, steps: int = 50):
    """``(plain_us, averaged_us)``: microseconds of one Adam step over ``model``'s flat
    arrays (the whole update, which the pool splits across its workers) without and with
    Polyak averaging at ``average``, in alternating rounds of ``steps`` steps, medians.
    Private copies of the arrays are stepped, with a random gradient."""
    rng = np.random.default_rng(0)
    dtype = model.dtype
    dW = rng.normal(size=model.weights.shape).astype(dtype)
    db = rng.normal(size=model.biases.shape).astype(dtype)
    times: dict[float, list[float]] = {0.0: [], average: []}
    optimizers = {a: (Adam(average=a), model.weights.copy(), model.biases.copy()) for a in times}
    for _ in range(rounds):
        for a, (optimizer, weights, biases) in optimizers.items():
            start = time.perf_counter()
            for _ in range(steps):
                optimizer.step_mean(weights, biases, dW, db, 128)
            times[a].append((time.perf_counter() - start) / steps * 1e6)
    return float(np.median(times[0.0])), float(np.median(times[average]))


def run_steps(pool: WorkerPool, optimizer, batches) -> int:
    """Train on ``batches`` (row indices) as ``fit`` does: up to ``pool.ahead`` steps in
    flight, each result collected in order. Returns the number of steps."""
    in_flight = steps = 0
    for rows in batches:
        steps += 1
        if in_flight == pool.ahead:
            pool.collect()
            in_flight -= 1
        pool.submit(rows, optimizer)
        in_flight += 1
    for _ in range(in_flight):
        pool.collect()
    return steps


def _batches_for(seconds: float, draw):
    """Batches from ``draw()`` for ``seconds``, at least 5: one stream, so the ring stays
    full as in ``fit`` (a stream cut every ``ahead`` steps leaves the workers idle at
    each cut)."""
    start, drawn = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or drawn < 5:
        drawn += 1
        yield draw()


@dataclass
class Measurement:
    """One setting: workers, chunk, batch, and what the counters said."""

    workers: int
    chunk: int | None
    batch: int
    steps: int
    seconds: float
    stats: pd.DataFrame  # per-worker counter deltas over the measured steps
    faults: list[int | None]  # per-worker page faults over the measured steps
    steal: float  # the hypervisor's share of the CPUs' time over the measured steps

    def row(self) -> dict:
        s = self.stats
        total = s[[c for c in WorkerPool.COUNTERS if c.endswith("_s")]].sum(axis=1)
        share = lambda col: float((s[col] / total).mean())  # noqa: E731
        per_step = lambda col: float(s[col].mean()) / self.steps * 1e3  # noqa: E731
        return {
            "workers": self.workers,
            "chunk": self.chunk or "auto",
            "batch": self.batch,
            "samples_per_s": self.batch * self.steps / self.seconds,
            "ms_per_step": self.seconds / self.steps * 1e3,
            "compute_ms": per_step("busy_s"),
            "optimizer_ms": per_step("update_s"),
            "barrier_ms": per_step("barrier_s"),
            "idle_ms": per_step("idle_s"),
            "utilisation": share("busy_s") + share("update_s"),
            "utilisation_per_worker": "/".join(
                f"{u:.2f}" for u in (s["busy_s"] + s["update_s"]) / total
            ),
            "idle_share": share("idle_s"),
            "barrier_share": share("barrier_s"),
            "tasks_per_step": float(s["tasks"].sum()) / self.steps,
            "faults_per_step": (
                float(np.mean(self.faults)) / self.steps
                if self.faults and None not in self.faults
                else float("nan")
            ),
            "steal": self.steal,
        }


def measure(
    model: Model,
    x: np.ndarray,
    t: np.ndarray,
    workers: int,
    chunks,
    batches,
    seconds: float = 1.5,
    seed: int = 0,
) -> list[Measurement]:
    """Train with one pool of ``workers`` for about ``seconds`` per (chunk, batch)."""
    results = []
    rng = np.random.default_rng(seed)
    opt = Adam()
    with WorkerPool(model, x, t, workers=workers, optimizer=opt) as pool:
        for chunk in chunks:
            pool.chunk = chunk
            for batch in batches:
                draw = lambda: rng.choice(len(x), batch, replace=False)  # noqa: B023, E731
                run_steps(pool, opt, [draw() for _ in range(pool.ahead)])  # warm up
                faults = [minor_faults(pid) for pid in pool.pids]
                before, start = pool.stats(), time.perf_counter()
                with Steal() as steal:
                    steps = run_steps(pool, opt, _batches_for(seconds, draw))
                elapsed = time.perf_counter() - start
                after = pool.stats()
                faults = [
                    None if a is None or b is None else b - a
                    for a, b in zip(faults, map(minor_faults, pool.pids), strict=True)
                ]
                delta = (
                    after[list(WorkerPool.COUNTERS)].to_numpy()
                    - before[list(WorkerPool.COUNTERS)].to_numpy()
                )
                stats = pd.DataFrame(delta, columns=WorkerPool.COUNTERS)
                results.append(
                    Measurement(workers, chunk, batch, steps, elapsed, stats, faults, steal.share)
                )
    return results


def diagnose(table: pd.DataFrame, overhead_us: dict[int, float]) -> list[str]:
    """Name the bottleneck of each batch size in plain words."""
    findings = []
    for batch, rows in table.groupby("batch"):
        best = rows.loc[rows["samples_per_s"].idxmax()]
        one = rows[rows["workers"] == 1]["samples_per_s"].max()  # NaN: not measured
        scaling = f" ({best['samples_per_s'] / one:.2f}x one worker)" if one > 0 else ""
        step_ms = best["ms_per_step"]
        overhead_ms = overhead_us.get(int(best["workers"]), 0) / 1e3
        if best["idle_share"] + best["barrier_share"] > 0.2:
            cause = (
                f"synchronisation: workers wait {best['idle_share']:.0%} of the time for "
                f"the parent's next step and {best['barrier_share']:.0%} at the barriers "
                f"for each other (the protocol alone costs {overhead_ms * 1e3:.0f} us of "
                f"a {step_ms:.2f} ms step). Larger batches amortise it."
            )
        else:
            cause = (
                f"computation: workers are busy {best['utilisation']:.0%} of the time, so "
                f"the cores are the limit."
            )
        if best["faults_per_step"] > FAULTS_PER_STEP:
            cause += (
                f" Each worker also faults in {best['faults_per_step']:.0f} fresh pages a "
                f"step ({best['faults_per_step'] * 4 / 1024:.1f} MB): memory given back "
                f"and mapped again every step, time spent in the kernel."
            )
        if best["steal"] > STEAL_SHARE:
            cause += (
                f" The hypervisor took {best['steal']:.0%} of the CPUs' time (steal) while "
                f"it ran: a worker whose virtual CPU is taken holds the other at the "
                f"barrier, so this run says more about the host than the pool."
            )
        findings.append(
            f"batch {batch}: best {int(best['workers'])} workers, chunk "
            f"{best['chunk']}, {best['samples_per_s']:,.0f} samples/s{scaling}. "
            f"Bottleneck: {cause}"
        )
    return findings
