"""NumPy arrays in ``multiprocessing.shared_memory``.

The parent *owns* the blocks (creates and unlinks them); workers *attach* by name.
Every block's name starts with ``nodenet_`` and the parent's pid, so a leftover is easy to
spot in ``/dev/shm``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

PREFIX = "nodenet_"


@dataclass(frozen=True)
class ArraySpec:
    """What a worker needs to attach to one array: block name, shape, dtype string."""

    block: str
    shape: tuple[int, ...]
    dtype: str


class SharedArrays:
    """Named arrays created by the parent in shared memory.

    ``create(name, shape, dtype)`` returns a zero-filled array backed by a new block;
    ``specs()`` tells workers how to attach; ``unlink()`` frees every block (idempotent).
    """

    def __init__(self):
        self._tag = f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}_"
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
        array.fill(0)
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


def attach(specs: dict[str, ArraySpec]) -> tuple[dict[str, np.ndarray], list]:
    """In a worker: map every block of ``specs``; returns ``(arrays, blocks)``.

    The parent owns the blocks and registered them with the resource tracker, which
    its spawned workers share. A worker must not register them again (Python 3.11 has
    no ``track=False``): a late registration after the parent's unlink would make the
    tracker unlink a block twice and report it as leaked.
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


def leftover_blocks(tag: str = PREFIX) -> list[str]:
    """Names in ``/dev/shm`` starting with ``tag`` (for tests and diagnostics)."""
    try:
        return sorted(name for name in os.listdir("/dev/shm") if name.startswith(tag))
    except FileNotFoundError:
        return []
