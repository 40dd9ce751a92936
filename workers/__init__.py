"""The process pool that computes nodenet gradients in parallel (imports nodenet,
never the reverse)."""

from .pool import WorkerError, WorkerPool

__all__ = ["WorkerError", "WorkerPool"]
