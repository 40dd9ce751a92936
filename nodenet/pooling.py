"""Sub-sampling and super-sampling layers, without parameters: ``MaxPool2D``,
``AvgPool2D`` and ``UpSampling2D``.

Each maps channels-last images (n, h, w, c) to (n, out_h, out_w, c), channel by
channel, with the identity as activation (``z = a``), and takes ``dropout=``. Going
back, ``dLoss/da`` of the layer below is:

- max pooling: each window's gradient to the entry that was its maximum (the first
  one in the window's row-major order when several tie, as PyTorch does);
- average pooling: each window's gradient shared equally by its ``kh * kw`` entries;
- up-sampling (nearest): the sum of the gradients of the ``s x s`` copies of an entry.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .layer import Layer
from .layout import LayerParameters
from .node import ImageNode
from .windows import pair, positions, spread, windows


class _Resampling(Layer):
    """An image layer without parameters that keeps the channels."""

    kind = ""

    def __init__(self, dropout: float = 0.0):
        super().__init__(1, "identity", dropout)

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.build_image(input_shape, None)

    @property
    def parameters(self) -> LayerParameters:
        return LayerParameters((0, 0), 0)

    def settings(self) -> dict:
        """The layer's own arguments, for :meth:`config` and ``repr``."""
        raise NotImplementedError

    def config(self) -> dict:
        return {"type": self.kind, **self.settings(), **self.options()}

    def __repr__(self) -> str:
        settings = {**self.settings(), **self.options()}
        body = ", ".join(f"{k}={square(v)}" for k, v in settings.items())
        return f"{type(self).__name__}({body})"


def square(value):
    """``[2, 2]`` as ``2``, for ``repr``."""
    return value[0] if isinstance(value, list) and value[0] == value[-1] else value


class PoolNode(ImageNode):
    """One unit of a pooling layer: channel ``c`` of the window at ``(y, x)``."""

    def window(self, prev_a: np.ndarray) -> list[np.ndarray]:
        """The entries ``(n,)`` of ``prev_a`` (n, h, w, c) in this unit's window, in
        row-major order."""
        y, x, c = self.position
        (kh, kw), (sh, sw) = self.layer.pool, self.layer.stride
        return [prev_a[:, y * sh + i, x * sw + j, c] for i in range(kh) for j in range(kw)]


class MaxNode(PoolNode):
    def calculate(self, prev_a: np.ndarray) -> np.ndarray:
        """The slow, readable maximum of the unit's window, entry by entry."""
        entries = self.window(prev_a)
        z = entries[0].copy()
        for entry in entries[1:]:
            z = np.where(entry > z, entry, z)
        return z


class AverageNode(PoolNode):
    def calculate(self, prev_a: np.ndarray) -> np.ndarray:
        """The slow, readable mean of the unit's window."""
        entries = self.window(prev_a)
        return sum(entries[1:], entries[0].copy()) / len(entries)


class _Pooling(_Resampling):
    """Pooling over ``pool`` (kh, kw) windows ``stride`` apart (``pool`` by default),
    without padding: ``out = (size - pool) // stride + 1`` per axis."""

    def __init__(self, pool: int | tuple[int, int] = 2, stride=None, dropout: float = 0.0):
        super().__init__(dropout)
        self.pool = pair("pool", pool)
        self.stride = self.pool if stride is None else pair("stride", stride)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return positions(size[0], self.pool[0], self.stride[0]), positions(
            size[1], self.pool[1], self.stride[1]
        )

    def settings(self) -> dict:
        return {"pool": list(self.pool), "stride": list(self.stride)}

    def _image(self, n: int) -> tuple[int, int, int, int]:
        channels, height, width = self.input_shape
        return n, height, width, channels


class MaxPool2D(_Pooling):
    """The maximum of each window, channel by channel."""

    kind = "max_pool2d"
    node_kind = MaxNode

    def linear(self, prev_a: np.ndarray) -> np.ndarray:
        """Each window's maximum; ``argmax`` keeps where it was (offset ``i * kw + j``)."""
        view = windows(prev_a, self.pool, self.stride)
        if kernels.available:  # one compiled pass (NumPy's is several, over short rows)
            z = np.empty(view.shape[:4], prev_a.dtype)
            self.argmax = np.empty(view.shape[:4], np.int32)
            kernels.max_pool(prev_a, *self.pool, *self.stride, z, self.argmax)
            return z
        entries = view.reshape(*view.shape[:4], self.pool[0] * self.pool[1])
        self.argmax = entries.argmax(axis=-1)
        return np.take_along_axis(entries, self.argmax[..., None], axis=-1)[..., 0]

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        """Each window's gradient onto the entry that was its maximum."""
        if kernels.available:
            dx = np.zeros(self._image(len(delta)), delta.dtype)
            kernels.max_unpool(delta, self.argmax, *self.pool, *self.stride, dx)
            return dx
        kw = self.pool[1]
        return spread(
            lambda i, j: np.where(self.argmax == i * kw + j, delta, 0),
            self._image(len(delta)),
            self.pool,
            self.stride,
        )


class AvgPool2D(_Pooling):
    """The mean of each window, channel by channel."""

    kind = "avg_pool2d"
    node_kind = AverageNode

    def linear(self, prev_a: np.ndarray) -> np.ndarray:
        return windows(prev_a, self.pool, self.stride).mean(axis=(-2, -1), dtype=prev_a.dtype)

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        share = delta / (self.pool[0] * self.pool[1])
        return spread(lambda i, j: share, self._image(len(delta)), self.pool, self.stride)


class CopyNode(ImageNode):
    """One unit of :class:`UpSampling2D`: a copy of the entry it was made from."""

    def calculate(self, prev_a: np.ndarray) -> np.ndarray:
        """The entry ``(y // s, x // s)`` of channel ``c``, read where it sits."""
        y, x, c = self.position
        sh, sw = self.layer.scale
        return prev_a[:, y // sh, x // sw, c].copy()


class UpSampling2D(_Resampling):
    """Nearest-neighbour super-sampling: every entry becomes a ``size`` (sh, sw) block
    of copies, so ``out = size * in`` per axis."""

    kind = "up_sampling2d"
    node_kind = CopyNode

    def __init__(self, size: int | tuple[int, int] = 2, dropout: float = 0.0):
        super().__init__(dropout)
        self.scale = pair("size", size)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size[0] * self.scale[0], size[1] * self.scale[1]

    def settings(self) -> dict:
        return {"size": list(self.scale)}

    def linear(self, prev_a: np.ndarray) -> np.ndarray:
        sh, sw = self.scale
        return prev_a.repeat(sh, axis=1).repeat(sw, axis=2)

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        n, height, width, channels = delta.shape
        sh, sw = self.scale
        blocks = delta.reshape(n, height // sh, sh, width // sw, sw, channels)
        return blocks.sum(axis=(2, 4))
