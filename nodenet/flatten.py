"""``Flatten``: images (channels, height, width) as one flat row per sample, the way
from image layers to dense ones.

A pass holds images channels-last, (n, h, w, c); ``Flatten`` lays each sample out in
the order ``(channel, row, column)`` (a copy), PyTorch's ``flatten`` of an NCHW tensor,
so a dense layer's weights after it mean the same as in PyTorch or ONNX.
"""

from __future__ import annotations

import numpy as np

from .layer import Layer
from .layout import LayerParameters


class Flatten(Layer):
    """(n, h, w, c) images -> (n, c * h * w) rows, in ``(c, h, w)`` order; ``shape``
    ``(c * h * w,)``. No parameters, the identity as activation, ``dropout=`` allowed.
    A flat input passes unchanged."""

    kind = "flatten"

    def __init__(self, dropout: float = 0.0):
        super().__init__(1, "identity", dropout)
        self.nodes = []  # it only reorders: no unit computes anything

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = tuple(input_shape)
        self.size = int(np.prod(input_shape))
        self.shape = (self.size,)

    @property
    def parameters(self) -> LayerParameters:
        return LayerParameters((0, 0), 0)

    def linear(self, prev_a: np.ndarray) -> np.ndarray:
        if prev_a.ndim == 4:
            flat = np.ascontiguousarray(prev_a.transpose(0, 3, 1, 2))
            return flat.reshape(len(prev_a), self.size)
        return prev_a

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        if len(self.input_shape) == 3:
            channels, height, width = self.input_shape
            return delta.reshape(len(delta), channels, height, width).transpose(0, 2, 3, 1)
        return delta

    def config(self) -> dict:
        return {"type": self.kind, **self.options()}

    def __repr__(self) -> str:
        return f"Flatten({f'dropout={self.dropout}' if self.dropout else ''})"
