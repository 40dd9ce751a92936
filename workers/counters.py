"""What each worker counts, and the per-worker table the pool makes of it."""

from __future__ import annotations

import math

#: what a worker counts and reports with each ``waiting`` message: gradient/evaluation
#: tasks, samples and seconds; split-step updates and seconds; seconds at the barrier
#: (waiting for the other workers' gradients); seconds idle (waiting for an instruction)
#: and blocked on the input and output queues
COUNTERS = (
    "tasks",
    "samples",
    "busy_s",
    "updates",
    "update_s",
    "barrier_s",
    "idle_s",
    "input_wait_s",
    "output_put_s",
)


def stats_frame(counters: dict[int, dict], workers: int):
    """A ``pandas.DataFrame``, one row per worker ``0..workers-1`` (zeros for one that
    has reported nothing): the counters above, samples/s while busy, and utilisation
    (the share of the worker's time spent computing gradients and updates)."""
    import pandas as pd  # the workers import this module; they need no pandas

    rows = []
    for i in range(workers):
        c = {"worker": i, **{k: counters.get(i, {}).get(k, 0.0) for k in COUNTERS}}
        total = sum(c[k] for k in COUNTERS if k.endswith("_s"))
        c["samples_per_s"] = c["samples"] / c["busy_s"] if c["busy_s"] else math.nan
        c["utilisation"] = (c["busy_s"] + c["update_s"]) / total if total else math.nan
        rows.append(c)
    return pd.DataFrame(rows)
