"""The process pool that computes nodenet gradients in parallel (imports nodenet,
never the reverse). ``WorkerPool`` and ``WorkerError`` load on first use, so a worker
process, which imports ``nodenet.workers.worker``, does not import the parent's side.

The repository keeps it in its own folder, ``workers/``; setup.cfg installs it as
``nodenet.workers``."""

__all__ = ["WorkerError", "WorkerPool", "stop_fork_server"]


def __getattr__(name: str):
    if name == "WorkerPool":
        from .pool import WorkerPool

        return WorkerPool
    if name in ("WorkerError", "stop_fork_server"):
        from . import processes

        return getattr(processes, name)
    raise AttributeError(f"module 'nodenet.workers' has no attribute {name!r}")
