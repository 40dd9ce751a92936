"""Where each layer's parameters live in the ONE flat weight and ONE flat bias array.

Layer ``l`` (``l = 1..L``) owns the weight block ``weights[start : stop]`` seen with the
layer's own weight shape: ``(N_l, N_{l-1})`` for a dense layer (row ``j`` holds the
weights into node ``j``), ``(filters, kh * kw * channels)`` for a convolution (its
kernels, see :mod:`nodenet.conv`), ``(0, 0)`` for a
layer without weights (pooling, flattening). Its bias block ``biases[start : stop]``
holds one bias per node of a dense layer, per filter of a convolution. A layer with
batch normalisation also owns the scale block ``gamma`` (one per node, or per channel)
right after its weight block; its bias block is the shift ``beta`` (the normalised
``z`` needs no other bias). Its running mean and variance (not trained, so kept apart
from the parameters) are the block ``running[start : stop]`` of shape ``(2, k)``. Every
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


@dataclass(frozen=True)
class LayerParameters:
    """What one layer keeps in the flat arrays: its weight block's ``weights`` shape,
    ``biases`` (how many) and ``scales`` (batch-norm scales, and running mean and
    variance pairs: 0 without batch norm)."""

    weights: tuple[int, ...]
    biases: int
    scales: int = 0


class ParameterLayout:
    """The start-index tables of a model whose layers ``1..L`` keep ``parameters``
    (a :class:`LayerParameters` per layer, in order).

    ``weights[l]``, ``scales[l]``, ``biases[l]`` and ``running[l]`` are the
    :class:`Block` of layer ``l`` (empty where the layer has none; index 0 is the input
    layer, with no parameters, so that indices match layer numbers). ``normalised``:
    the numbers of the layers with batch normalisation. ``n_weights``, ``n_biases`` and
    ``n_running`` are the lengths of the flat arrays.
    """

    def __init__(self, parameters: Sequence[LayerParameters]):
        self.weights: list[Block] = [Block(0, 0, (0, 0))]
        self.scales: list[Block] = [Block(0, 0, (0,))]
        self.biases: list[Block] = [Block(0, 0, (0,))]
        self.running: list[Block] = [Block(0, 0, (2, 0))]
        w = b = r = 0
        for p in parameters:
            n_w = int(np.prod(p.weights))
            self.weights.append(Block(w, w + n_w, tuple(p.weights)))
            w += n_w
            k = p.scales
            self.scales.append(Block(w, w + k, (k,)))
            self.running.append(Block(r, r + 2 * k, (2, k)))
            self.biases.append(Block(b, b + p.biases, (p.biases,)))
            w, b, r = w + k, b + p.biases, r + 2 * k
        self.n_weights, self.n_biases, self.n_running = w, b, r
        self.normalised = tuple(l for l, block in enumerate(self.scales) if block.shape[0])

    @property
    def weight_start(self) -> list[int]:
        """``weight_start[l]``: where layer ``l``'s weight block begins."""
        return [block.start for block in self.weights]

    @property
    def scale_start(self) -> list[int]:
        """``scale_start[l]``: where layer ``l``'s batch-norm scale block begins in the
        weights (an empty block for a layer without batch normalisation)."""
        return [block.start for block in self.scales]

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
