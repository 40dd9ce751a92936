"""What each worker counts, and the per-worker table the pool makes of it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: what a worker counts, in shared memory (``ring_counters``): pieces of steps computed
#: (tasks), samples and seconds computing; split-step updates and their seconds;
#: seconds at the two barriers of a training step (waiting for the other workers);
#: seconds idle (waiting for the parent to publish the next step); seconds at the
#: batch-norm meetings (not counted as busy)
COUNTERS = (
    "tasks",
    "samples",
    "busy_s",
    "updates",
    "update_s",
    "barrier_s",
    "idle_s",
    "sync_s",
)


def stats_frame(counters) -> pd.DataFrame:
    """A ``pandas.DataFrame``, one row per worker, from ``counters`` (workers,
    len(COUNTERS)): the counters above, samples/s while busy, and utilisation (the
    share of the worker's time spent computing gradients and updates)."""
    import pandas as pd  # the workers import this module; they need no pandas

    rows = []
    for i, values in enumerate(counters):
        c = {"worker": i, **dict(zip(COUNTERS, values.tolist(), strict=True))}
        total = sum(c[k] for k in COUNTERS if k.endswith("_s"))
        c["samples_per_s"] = c["samples"] / c["busy_s"] if c["busy_s"] else math.nan
        c["utilisation"] = (c["busy_s"] + c["update_s"]) / total if total else math.nan
        rows.append(c)
    return pd.DataFrame(rows)
