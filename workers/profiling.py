"""Worker throughput: samples/s, utilisation, time blocked on each queue, per-step
overhead, and a plain-words diagnosis of the bottleneck."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nodenet.graph import Layer, Model
from nodenet.optimizers import Adam

from .pool import WorkerPool


def step_overhead_us(workers: int, steps: int = 1000) -> float:
    """Microseconds per training step of the pool on a 4-3-2 network and 8 samples:
    what the protocol itself costs (messages, wake-ups, the parent's bookkeeping)."""
    model = Model(4, "cross_entropy", [Layer(3, "relu"), Layer(2, "softmax")]).construct()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    t = model.targets(np.arange(64) % 2)
    with WorkerPool(model, x, t, workers=workers) as pool:
        opt, rows = Adam(), np.arange(8)
        for _ in range(100):
            pool.train_step(rows, opt)
        start = time.perf_counter()
        for _ in range(steps):
            pool.train_step(rows, opt)
        return (time.perf_counter() - start) / steps * 1e6


@dataclass
class Measurement:
    """One setting: workers, chunk, batch, and what the counters said."""

    workers: int
    chunk: int | None
    batch: int
    steps: int
    seconds: float
    stats: pd.DataFrame  # per-worker counter deltas over the measured steps

    def row(self) -> dict:
        s = self.stats
        total = s[[c for c in WorkerPool.COUNTERS if c.endswith("_s")]].sum(axis=1)
        share = lambda col: float((s[col] / total).mean())  # noqa: E731
        return {
            "workers": self.workers,
            "chunk": self.chunk or "auto",
            "batch": self.batch,
            "samples_per_s": self.batch * self.steps / self.seconds,
            "ms_per_step": self.seconds / self.steps * 1e3,
            "utilisation": share("busy_s") + share("update_s"),
            "utilisation_per_worker": "/".join(
                f"{u:.2f}" for u in (s["busy_s"] + s["update_s"]) / total
            ),
            "idle_share": share("idle_s"),
            "input_wait_share": share("input_wait_s"),
            "barrier_share": share("barrier_s"),
            "output_put_share": share("output_put_s"),
            "tasks_per_step": float(s["tasks"].sum()) / self.steps,
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
    with WorkerPool(model, x, t, workers=workers) as pool:
        opt = Adam()
        for chunk in chunks:
            pool.chunk = chunk
            for batch in batches:
                pool.train_step(rng.choice(len(x), batch, replace=False), opt)  # warm up
                before = pool.stats()
                steps, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds or steps < 5:
                    pool.train_step(rng.choice(len(x), batch, replace=False), opt)
                    steps += 1
                elapsed = time.perf_counter() - start
                after = pool.stats()
                delta = (
                    after[list(WorkerPool.COUNTERS)].to_numpy()
                    - before[list(WorkerPool.COUNTERS)].to_numpy()
                )
                stats = pd.DataFrame(delta, columns=WorkerPool.COUNTERS)
                results.append(Measurement(workers, chunk, batch, steps, elapsed, stats))
    return results


def diagnose(table: pd.DataFrame, overhead_us: dict[int, float]) -> list[str]:
    """Name the bottleneck of each batch size in plain words."""
    findings = []
    for batch, rows in table.groupby("batch"):
        best = rows.loc[rows["samples_per_s"].idxmax()]
        one = rows[rows["workers"] == 1]["samples_per_s"].max()
        scaling = best["samples_per_s"] / one if one else float("nan")
        step_ms = best["ms_per_step"]
        overhead_ms = overhead_us.get(int(best["workers"]), 0) / 1e3
        if best["idle_share"] + best["barrier_share"] > 0.2:
            cause = (
                f"synchronisation: workers wait {best['idle_share']:.0%} of the time for "
                f"the next step and {best['barrier_share']:.0%} at the barrier for each "
                f"other (the protocol alone costs {overhead_ms * 1e3:.0f} us of a "
                f"{step_ms:.2f} ms step). Larger batches amortise it."
            )
        elif best["input_wait_share"] > 0.2:
            cause = (
                f"task distribution: {best['input_wait_share']:.0%} of the time blocked "
                f"on the input queue ({best['tasks_per_step']:.0f} tasks per step); use "
                f"larger chunks."
            )
        else:
            cause = (
                f"computation: workers are busy {best['utilisation']:.0%} of the time, so "
                f"the cores are the limit."
            )
        findings.append(
            f"batch {batch}: best {int(best['workers'])} workers, chunk "
            f"{best['chunk']}, {best['samples_per_s']:,.0f} samples/s "
            f"({scaling:.2f}x one worker). Bottleneck: {cause}"
        )
    return findings
