"""Where each layer's parameters live in the ONE flat weight and ONE flat bias array.

For layer sizes ``[N_0, N_1, ..., N_L]`` layer ``l`` (``l = 1..L``) owns the weight block
``weights[start : stop]`` seen as shape ``(N_l, N_{l-1})`` (row ``j`` holds the weights
into node ``j``) and the bias block ``biases[start : stop]`` of shape ``(N_l,)``. Every
piece of code that slices the flat arrays by layer (the layer views, gradients, gradient
checks, the workers' split optimizer step) goes through this table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Block:
    """One layer's slice ``[start, stop)`` of a flat array, seen with ``shape``."""

    start: int
    stop: int
    shape: tuple[int, ...]

    def view(self, flat: np.ndarray) -> np.ndarray:
        """The block of ``flat`` (any array shaped like the flat one) as ``shape``; a view."""
        return flat[self.start : self.stop].reshape(self.shape)


class ParameterLayout:
    """The start-index tables of a model with layer sizes ``sizes`` (input first).

    ``weights[l]`` and ``biases[l]`` are the :class:`Block` of layer ``l``; index 0 (the
    input layer, no parameters) holds empty blocks so that indices match layer numbers.
    ``n_weights`` and ``n_biases`` are the lengths of the flat arrays.
    """

    def __init__(self, sizes: Sequence[int]):
        self.sizes = tuple(int(n) for n in sizes)
        self.weights: list[Block] = [Block(0, 0, (0, 0))]
        self.biases: list[Block] = [Block(0, 0, (0,))]
        w = b = 0
        for l in range(1, len(self.sizes)):
            n, n_prev = self.sizes[l], self.sizes[l - 1]
            self.weights.append(Block(w, w + n * n_prev, (n, n_prev)))
            self.biases.append(Block(b, b + n, (n,)))
            w, b = w + n * n_prev, b + n
        self.n_weights, self.n_biases = w, b

    @property
    def weight_start(self) -> list[int]:
        """``weight_start[l]``: where layer ``l``'s weight block begins."""
        return [block.start for block in self.weights]

    @property
    def bias_start(self) -> list[int]:
        """``bias_start[l]``: where layer ``l``'s bias block begins."""
        return [block.start for block in self.biases]

    @property
    def size(self) -> int:
        """All parameters: ``n_weights + n_biases``."""
        return self.n_weights + self.n_biases

    def split(self, start: int, stop: int) -> Iterator[tuple[str, int, int]]:
        """The range ``[start, stop)`` of the concatenation ``[weights, biases]`` as
        ``(part, lo, hi)`` pieces, ``part`` being ``"weights"`` or ``"biases"`` and
        ``[lo, hi)`` a non-empty range of that flat array."""
        offset = 0
        for part, length in (("weights", self.n_weights), ("biases", self.n_biases)):
            lo, hi = max(start - offset, 0), min(stop - offset, length)
            if lo < hi:
                yield part, lo, hi
            offset += length

    def ranges(self, parts: int) -> list[tuple[int, int]]:
        """``[start, stop)`` of ``parts`` near-equal ranges covering every parameter."""
        bounds = np.linspace(0, self.size, parts + 1).astype(int).tolist()
        return list(itertools.pairwise(bounds))
