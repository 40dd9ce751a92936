"""NumPy arrays in ``multiprocessing.shared_memory``.

The parent *owns* the blocks (creates and unlinks them); workers *attach* by name.
Every block's name starts with ``nodenet_``, the parent's pid and a random token, so a
leftover is easy to spot in ``/dev/shm``. Beside its blocks the owner holds an exclusive
``flock`` on ``<tag>lock`` for as long as they live: a block is another run's leftover
only when that lock can be taken, which a pid cannot prove (``os.kill(pid, 0)`` does
not see across PID namespaces that share ``/dev/shm``, as ``docker --ipc=host`` does).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import threading
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import numpy as np

from .ring import ring_shapes
from .sync import sums_shape

PREFIX = "nodenet_"
SHM = Path("/dev/shm")


@dataclass(frozen=True)
class ArraySpec:
    """What a worker needs to attach to one array: block name, shape, dtype string."""

    block: str
    shape: tuple[int, ...]
    dtype: str


class SharedArrays:
    """Named arrays created by the parent in shared memory.

    ``create(name, shape, dtype)`` returns a zero-filled array backed by a new block
    (the kernel hands a new block's pages out zeroed as they are first touched: writing
    zeros first would touch all of a 188 MB data set's pages once more before the copy);
    ``specs()`` tells workers how to attach; ``unlink()`` frees every block (idempotent).
    """

    def __init__(self):
        self._tag = f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}_"
        self._lock = _hold_lock(self._tag)
        self._blocks: dict[str, shared_memory.SharedMemory] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.created: list[str] = []  # every block name, kept after unlink

    def create(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = max(int(np.prod(shape)) * dtype.itemsize, 1)
        block = shared_memory.SharedMemory(name=self._tag + name, create=True, size=size)
        self._blocks[name] = block
        self.created.append(block.name)
        array = np.ndarray(shape, dtype=dtype, buffer=block.buf)
        self.arrays[name] = array
        return array

    def specs(self) -> dict[str, ArraySpec]:
        return {
            name: ArraySpec(self._blocks[name].name, a.shape, a.dtype.str)
            for name, a in self.arrays.items()
        }

    @property
    def block_names(self) -> list[str]:
        """Names of every block created, including the ones already unlinked."""
        return list(self.created)

    def unlink(self) -> None:
        """Drop the arrays, close and unlink every block."""
        self.arrays.clear()
        for block in self._blocks.values():
            with contextlib.suppress(BufferError):  # a view still exported: unlink anyway
                block.close()
            with contextlib.suppress(FileNotFoundError):
                block.unlink()
        self._blocks.clear()
        if self._lock is not None:  # last: the blocks are gone before the lock is
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SHM / f"{self._tag}lock")
            os.close(self._lock)
            self._lock = None


def share_training_arrays(
    shared: SharedArrays,
    model,
    x: np.ndarray,
    t: np.ndarray,
    workers: int,
    slots: int,
    weights: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Create the pool's blocks in ``shared`` and move ``model``'s flat parameters into
    them (the model is rebound to the shared ``weights``, ``biases`` and batch-norm
    ``running`` statistics): the data ``x`` (n, N_0) and ``t`` (n, N_L) (and the rows'
    ``weights`` (n,), when given); ``bn_sums``, where the workers meet for batch norm
    (``workers/sync.py``); ``grad_w`` (workers, n_weights) and ``grad_b`` (workers,
    n_biases), one gradient slot per worker; the ring of ``slots`` steps
    (``workers/ring.py``). Returns ``shared.arrays``."""
    shared.create("x", x.shape, x.dtype)[...] = x
    shared.create("t", t.shape, t.dtype)[...] = t
    if weights is not None:
        shared.create("w", weights.shape, weights.dtype)[...] = weights
    weights = shared.create("weights", model.weights.shape, model.dtype)
    biases = shared.create("biases", model.biases.shape, model.dtype)
    running = shared.create("running", model.running.shape, model.dtype)
    weights[...], biases[...], running[...] = model.weights, model.biases, model.running
    shared.create("bn_sums", sums_shape(model, workers), np.float64)
    shared.create("grad_w", (workers, model.weights.size), model.dtype)
    shared.create("grad_b", (workers, model.biases.size), model.dtype)
    for name, (shape, dtype) in ring_shapes(slots, len(x), workers).items():
        shared.create(name, shape, dtype)
    model.rebind(weights, biases, running)
    return shared.arrays


def share_optimizer_state(shared: SharedArrays, optimizer) -> None:
    """Move every state array of ``optimizer`` (``opt_w_<key>`` / ``opt_b_<key>``, shaped
    like the flat weights / biases) into ``shared``, keeping values it already has."""
    for i, part in enumerate(("w", "b")):
        flat = shared.arrays["weights" if part == "w" else "biases"]
        state = optimizer.state[i]
        for key in optimizer.state_keys:
            block = shared.create(f"opt_{part}_{key}", flat.shape, flat.dtype)
            if key in state:
                block[...] = state[key]
            state[key] = block


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (which unlinks the blocks of a parent
    that died) so that it survives a closed terminal: it ignores SIGINT and SIGTERM by
    itself but not SIGHUP, which a hang-up sends to the whole process group. Started
    with SIGHUP ignored, it keeps ignoring it. Does nothing if it already runs."""
    if threading.current_thread() is not threading.main_thread():
        resource_tracker.ensure_running()
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


def attach(specs: dict[str, ArraySpec]) -> tuple[dict[str, np.ndarray], list]:
    """In a worker: map every block of ``specs``; returns ``(arrays, blocks)``.

    The parent owns the blocks and registered them with its resource tracker. A worker
    must not register them (Python 3.11 has no ``track=False``): it would start a
    tracker of its own, which unlinks them when the worker exits, or a late
    registration would unlink a block twice and report it as leaked.
    """
    arrays, blocks = {}, []
    register = resource_tracker.register
    resource_tracker.register = lambda name, rtype: None
    try:
        for name, spec in specs.items():
            block = shared_memory.SharedMemory(name=spec.block)
            blocks.append(block)
            arrays[name] = np.ndarray(spec.shape, dtype=np.dtype(spec.dtype), buffer=block.buf)
    finally:
        resource_tracker.register = register
    return arrays, blocks


def _hold_lock(tag: str) -> int | None:
    """Create ``<tag>lock`` in ``/dev/shm`` and hold an exclusive ``flock`` on it (the
    descriptor, which child processes do not inherit); ``None`` where there is no
    ``/dev/shm``."""
    if not SHM.is_dir():
        return None
    fd = os.open(SHM / f"{tag}lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def remove_stale_blocks() -> list[str]:
    """Unlink the blocks in ``/dev/shm`` whose owner is provably gone (a process group
    killed with SIGKILL leaves its blocks for good); returns their names. A run's blocks
    are its owner's while its lock file is locked; blocks without a lock file are not
    provably anyone's leftovers and are left alone."""
    runs: dict[str, list[str]] = {}
    for name in leftover_blocks():
        parts = name.split("_", 3)
        if len(parts) == 4:
            runs.setdefault("_".join(parts[:3]) + "_", []).append(name)
    removed = []
    for tag, names in runs.items():
        lock = f"{tag}lock"
        if lock not in names:
            continue
        try:
            fd = os.open(SHM / lock, os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # gone meanwhile, or not ours to open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its owner is alive, in this namespace or another
            os.close(fd)
            continue
        for name in sorted(names, key=lambda n: n == lock):  # the lock file last
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.unlink(SHM / name)
                removed.append(name)
        os.close(fd)
    return removed


def leftover_blocks(tag: str = PREFIX) -> list[str]:
    """Names in ``/dev/shm`` starting with ``tag`` (for tests and diagnostics)."""
    try:
        return sorted(name for name in os.listdir("/dev/shm") if name.startswith(tag))
    except FileNotFoundError:
        return []
