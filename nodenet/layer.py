"""``Layer``: N nodes with one activation, over views into the model's flat arrays, with
optional dropout and batch normalisation; ``InputLayer``, layer 0, which holds the inputs.

Layer ``l`` owns the block ``weights[weight_start[l] : weight_start[l] + N_l * N_{l-1}]``,
seen as ``layer.W`` of shape ``(N_l, N_{l-1})`` (row ``j`` holds the weights into node
``j``), and the block ``biases[bias_start[l] : bias_start[l] + N_l]``, seen as
``layer.b`` of shape ``(N_l,)`` (see :mod:`nodenet.layout`).

``Layer`` is also the base of the image layers (:mod:`nodenet.conv`,
:mod:`nodenet.pooling`, :mod:`nodenet.flatten`): each says what it keeps in the flat
arrays (:attr:`Layer.parameters`), how it maps its inputs to ``z``
(:meth:`Layer.linear`), and the two steps of the cached recursion that belong to it,
``dLoss/da`` of the layer below (:meth:`Layer.backward_input`) and its weight gradient
(:meth:`Layer.weight_gradient`). Bias, batch norm, activation and dropout act on the
last axis (the nodes of a dense layer, the channels of an image) and are shared.
"""

from __future__ import annotations

import numpy as np

from .activations import Activation, Identity, get_activation
from .batchnorm import Normalisation, WholeBatch
from .checks import require_int, require_number
from .dropout import TrainingPass, keep_scale
from .layout import LayerParameters
from .node import Node, Nodes


def shape_text(shape: tuple[int, ...]) -> str:
    """``(1, 28, 28) images`` or ``784 values``: a layer's output, for messages."""
    return f"{tuple(shape)} images" if len(shape) == 3 else f"{shape[0]} values"


class Layer:
    """``N`` nodes with one activation (a dense layer). After :meth:`Model.construct`,
    ``W`` (N, N_prev) and ``b`` (N,) are views into the model's flat arrays; after a
    forward pass ``z`` and ``a`` hold the pre-activations and activations of the samples
    in hand, shape (n, N). ``shape`` is ``(N,)`` and ``input_shape`` the previous
    layer's ``shape`` (set by :meth:`build`).

    ``dropout``: the rate of inverted dropout on the layer's activations in training
    passes (:mod:`nodenet.dropout`); ``a`` is then the masked activation the next layer
    sees and ``fz`` the unmasked ``f(z)``. ``batch_norm``: normalise ``u = prev_a @ W.T``
    over the batch before the activation (:mod:`nodenet.batchnorm`); the layer then has
    a scale ``gamma`` (N,) in the flat weights, uses ``b`` as the shift ``beta``, and
    keeps its running mean and variance in ``running`` (2, N).
    """

    #: the class of the layer's nodes (``layer.nodes[j]``)
    node_kind: type[Node] = Node

    def __init__(
        self,
        size: int,
        activation: str | dict | Activation = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        self.size = require_int("layer size", size, 1)
        self.shape: tuple[int, ...] = (self.size,)
        self.input_shape: tuple[int, ...] | None = None
        self.activation = get_activation(activation)
        self.dropout = require_number("dropout", dropout, 0.0, 1.0)
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be True or False, got {batch_norm!r}")
        self.batch_norm = batch_norm
        self.index: int | None = None
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.gamma: np.ndarray | None = None
        self.running: np.ndarray | None = None
        self.z: np.ndarray | None = None
        self.fz: np.ndarray | None = None
        self.a: np.ndarray | None = None
        self.keep: np.ndarray | None = None  # the dropout mask of the last pass, or None
        self.norm = Normalisation() if batch_norm else None
        self.nodes: Nodes | list = Nodes(self, self.node_kind)

    def build(self, input_shape: tuple[int, ...]) -> None:
        """Fix ``input_shape``, the previous layer's ``shape`` (and so this layer's own
        shape and parameters). Raises ``ValueError`` for inputs the layer cannot take."""
        if len(input_shape) != 1:
            raise ValueError(
                f"{self!r} takes flat inputs but gets {shape_text(input_shape)}: put a "
                f"Flatten() before it"
            )
        self.input_shape = tuple(input_shape)

    @property
    def parameters(self) -> LayerParameters:
        """What the layer keeps in the flat arrays (see :mod:`nodenet.layout`)."""
        n = self.size
        return LayerParameters((n, self.input_shape[0]), n, n if self.batch_norm else 0)

    @property
    def fans(self) -> tuple[int, int]:
        """``(fan_in, fan_out)``: the inputs of one node and the nodes one input feeds,
        for the init rules (:mod:`nodenet.init`)."""
        return self.input_shape[0], self.size

    @property
    def pass_values(self) -> int:
        """Numbers a pass keeps per sample in this layer (``z``, ``f(z)``, ``a`` and any
        working array), for the size of prediction passes (:meth:`Model.pass_rows`)."""
        return 3 * self.size

    def bind(
        self,
        index: int,
        W: np.ndarray,
        b: np.ndarray,
        gamma: np.ndarray | None = None,
        running: np.ndarray | None = None,
    ) -> None:
        """Attach this layer to position ``index`` with parameter views ``W`` (N, N_prev)
        and ``b`` (N,) (and, with batch norm, ``gamma`` (N,) and ``running`` (2, N))."""
        self.index, self.W, self.b = index, W, b
        self.gamma, self.running = gamma, running

    def linear(self, prev_a: np.ndarray) -> np.ndarray:
        """``prev_a @ W.T``: ``prev_a`` (n, N_prev) -> (n, N), into a buffer reused while
        the number of samples stays the same."""
        shape = (prev_a.shape[0], self.size)
        if self.z is None or self.z.shape != shape or self.z.dtype != self.W.dtype:
            self.z = np.empty(shape, dtype=self.W.dtype)
        return np.matmul(prev_a, self.W.T, out=self.z)

    def forward(self, prev_a: np.ndarray, training: TrainingPass | None = None) -> np.ndarray:
        """``z = linear(prev_a) + b`` (or its batch norm), ``a = f(z)`` (masked in a
        training pass with dropout): for a dense layer ``prev_a`` (n, N_prev) -> ``a``
        (n, N). Bias, batch norm and dropout act on the last axis."""
        self.z = z = self.linear(prev_a)
        if self.norm is None:
            if self.b.size:
                z += self.b
        else:
            sync = None if training is None else (training.sync or WholeBatch())
            update = training is not None and training.update_running
            rows = z.reshape(-1, z.shape[-1])
            self.norm.forward(rows, self.gamma, self.b, self.running, sync, update, rows)
        if self.fz is None or self.fz.shape != z.shape or self.fz.dtype != z.dtype:
            self.fz = np.empty_like(z)
        self.activation.forward(z, out=self.fz)
        if training is not None and self.dropout:
            keep = keep_scale(training, self.index, self.size, self.dropout, z.dtype)
            self.keep = keep.reshape(z.shape)
            self.a = self.fz * self.keep
        else:
            self.keep, self.a = None, self.fz
        return self.a

    def normalise_backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch norm's backward step (:meth:`Normalisation.backward`) over the last
        axis: ``g = dLoss/dz`` -> ``(dLoss/du, dgamma, dbeta)``."""
        du, dgamma, dbeta = self.norm.backward(g.reshape(-1, g.shape[-1]), self.gamma)
        return du.reshape(g.shape), dgamma, dbeta

    def backward_input(self, delta: np.ndarray) -> np.ndarray:
        """``dLoss/da`` of the layer below from this layer's ``delta = dLoss/dz``:
        ``delta @ W``, (n, N) -> (n, N_prev)."""
        return delta @ self.W

    def weight_gradient(
        self, delta: np.ndarray, prev_a: np.ndarray, out: np.ndarray, accumulate: bool
    ) -> None:
        """Write (or with ``accumulate`` add) ``dLoss/dW = delta.T @ prev_a`` (N, N_prev)
        into ``out``, the layer's block of a flat gradient."""
        if accumulate:
            out += delta.T @ prev_a
        else:
            np.matmul(delta.T, prev_a, out=out)

    def options(self) -> dict:
        """``dropout`` and ``batch_norm`` when set, for :meth:`config`."""
        return {
            **({"dropout": self.dropout} if self.dropout else {}),
            **({"batch_norm": True} if self.batch_norm else {}),
        }

    def config(self) -> dict:
        """``size``, ``activation`` and, when set, ``dropout`` and ``batch_norm``."""
        return {"size": self.size, "activation": self.activation.config(), **self.options()}

    def build_image(self, input_shape: tuple[int, ...], channels: int | None) -> None:
        """:meth:`build` for an image layer: fix ``input_shape`` (channels, height,
        width) and ``shape`` (``channels``, or the input's when ``None``; the height and
        width that ``self.output_size`` gives), and make the layer's nodes."""
        if len(input_shape) != 3:
            raise ValueError(
                f"{self!r} takes (channels, height, width) images but gets "
                f"{shape_text(input_shape)}: give the model an image input shape"
            )
        self.input_shape = tuple(input_shape)
        height, width = self.output_size(input_shape[1:])
        if height < 1 or width < 1:
            raise ValueError(f"{self!r} does not fit {shape_text(input_shape)}")
        self.shape = (input_shape[0] if channels is None else channels, height, width)
        self.size = int(np.prod(self.shape))
        self.nodes = Nodes(self, self.node_kind)

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout else ""
        extra += ", batch_norm=True" if self.batch_norm else ""
        return f"Layer({self.size}, {self.activation!r}{extra})"


class InputLayer(Layer):
    """Layer 0: holds the input samples as its ``a`` (and ``z``); has no parameters and
    no nodes. ``shape``: ``(N_0,)``, or ``(channels, height, width)`` for images, which
    arrive flat (n, channels * height * width) in that order and are seen channels-last,
    (n, height, width, channels), as every image layer works."""

    def __init__(self, shape: int | tuple[int, ...]):
        shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
        if len(shape) not in (1, 3):
            raise ValueError(
                f"the input shape must be a size or (channels, height, width), got {shape}"
            )
        for n in shape:
            require_int("input shape", n, 1)
        super().__init__(int(np.prod(shape)), Identity())
        self.shape = tuple(int(n) for n in shape)
        self.index = 0
        self.nodes = []  # the inputs are not nodes: nothing computes them

    def forward(self, prev_a: np.ndarray, training: TrainingPass | None = None) -> np.ndarray:
        if len(self.shape) == 3:
            prev_a = prev_a.reshape(len(prev_a), *self.shape).transpose(0, 2, 3, 1)
        self.z = self.fz = self.a = prev_a
        return prev_a

    def flat(self, g: np.ndarray) -> np.ndarray:
        """A gradient to the inputs as the layer sees them -> one to the flat inputs
        (n, N_0), a new array."""
        if len(self.shape) == 3:
            return np.ascontiguousarray(g.transpose(0, 3, 1, 2)).reshape(len(g), self.size)
        return g.copy()

    def __repr__(self) -> str:
        return f"InputLayer({self.shape if len(self.shape) == 3 else self.size})"
