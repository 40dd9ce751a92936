"""``Node``: one node of a layer, the slow readable way to compute it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .layer import Layer


class Node:
    """One node ``j`` of a layer. ``z``, ``a`` (shape ``(n,)``), ``weights_in``
    (shape ``(N_{l-1},)``) and ``bias`` (shape ``(1,)``) are views into its layer.

    In an image layer node ``j`` is entry ``j`` of a sample's output laid out
    channels-last, ``(height, width, channels)``: one channel at one position (see
    :class:`nodenet.conv.ConvNode` and the pooling nodes)."""

    def __init__(self, layer: Layer, index: int):
        self.layer = layer
        self.index = index

    @property
    def z(self) -> np.ndarray:
        return self.layer.z.reshape(len(self.layer.z), self.layer.size)[:, self.index]

    @property
    def a(self) -> np.ndarray:
        return self.layer.a.reshape(len(self.layer.a), self.layer.size)[:, self.index]

    @property
    def weights_in(self) -> np.ndarray:
        return self.layer.W[self.index]

    @property
    def bias(self) -> np.ndarray:
        return self.layer.b[self.index : self.index + 1]

    def calculate(self, prev_a: np.ndarray) -> np.ndarray:
        """The slow, readable pre-activation ``z_j = b_j + sum_i w_ji * a_i``.

        ``prev_a`` has shape ``(n, N_{l-1})``; returns ``z_j`` of shape ``(n,)``. The
        layer's vectorised ``z[:, j]`` must equal this (tests check it node by node).
        """
        z = np.full(prev_a.shape[0], self.bias[0], dtype=prev_a.dtype)
        for i, w in enumerate(self.weights_in):
            z += w * prev_a[:, i]
        return z

    def __repr__(self) -> str:
        return f"Node(layer={self.layer.index}, index={self.index})"


class ImageNode(Node):
    """One unit of an image layer: channel (or filter) ``c`` at output position
    ``(y, x)``, the entry ``index`` of a sample's (height, width, channels) output."""

    @property
    def position(self) -> tuple[int, int, int]:
        """``(y, x, c)`` of this unit."""
        channels, height, width = self.layer.shape
        y, x, c = np.unravel_index(self.index, (height, width, channels))
        return int(y), int(x), int(c)


class Nodes(Sequence):
    """A layer's nodes, of class ``kind``, made when asked for (``layer.nodes[j]``,
    ``len``, iteration): a layer of a hundred million units costs nothing until its
    nodes are read."""

    def __init__(self, layer: Layer, kind: type[Node]):
        self.layer, self.kind = layer, kind

    def __len__(self) -> int:
        return self.layer.size

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self.kind(self.layer, k) for k in range(*j.indices(len(self)))]
        k = j + len(self) if j < 0 else j
        if not 0 <= k < len(self):
            raise IndexError(f"node {j} of a layer of {len(self)} nodes")
        return self.kind(self.layer, k)
