"""The process pool that computes nodenet gradients in parallel (imports nodenet,
never the reverse)."""

from .pool import WorkerPool
from .processes import WorkerError

__all__ = ["WorkerError", "WorkerPool"]
