"""``Layer``: N nodes with one activation, over views into the model's flat arrays, with
optional dropout and batch normalisation; ``InputLayer``, layer 0, which holds the inputs.

Layer ``l`` owns the block ``weights[weight_start[l] : weight_start[l] + N_l * N_{l-1}]``,
seen as ``layer.W`` of shape ``(N_l, N_{l-1})`` (row ``j`` holds the weights into node
``j``), and the block ``biases[bias_start[l] : bias_start[l] + N_l]``, seen as
``layer.b`` of shape ``(N_l,)`` (see :mod:`nodenet.layout`).
"""

from __future__ import annotations

import numpy as np

from .activations import Activation, Identity, get_activation
from .batchnorm import Normalisation, WholeBatch
from .checks import require_int, require_number
from .dropout import TrainingPass, keep_scale
from .node import Nodes


class Layer:
    """``N`` nodes with one activation. After :meth:`Model.construct`, ``W`` (N, N_prev)
    and ``b`` (N,) are views into the model's flat arrays; after a forward pass ``z`` and
    ``a`` hold the pre-activations and activations of the samples in hand, shape (n, N).

    ``dropout``: the rate of inverted dropout on the layer's activations in training
    passes (:mod:`nodenet.dropout`); ``a`` is then the masked activation the next layer
    sees and ``fz`` the unmasked ``f(z)``. ``batch_norm``: normalise ``u = prev_a @ W.T``
    over the batch before the activation (:mod:`nodenet.batchnorm`); the layer then has
    a scale ``gamma`` (N,) in the flat weights, uses ``b`` as the shift ``beta``, and
    keeps its running mean and variance in ``running`` (2, N).
    """

    def __init__(
        self,
        size: int,
        activation: str | dict | Activation = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        self.size = require_int("layer size", size, 1)
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
        self.nodes: Nodes | list = Nodes(self)

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

    def forward(self, prev_a: np.ndarray, training: TrainingPass | None = None) -> np.ndarray:
        """``z = prev_a @ W.T + b`` (or its batch norm), ``a = f(z)`` (masked in a
        training pass with dropout); ``prev_a`` (n, N_prev) -> ``a`` (n, N).

        The ``z`` and ``a`` buffers are reused while the number of samples stays the same.
        """
        shape = (prev_a.shape[0], self.size)
        if self.z is None or self.z.shape != shape or self.z.dtype != self.W.dtype:
            self.z = np.empty(shape, dtype=self.W.dtype)
            self.fz = np.empty(shape, dtype=self.W.dtype)
        np.matmul(prev_a, self.W.T, out=self.z)
        if self.norm is None:
            self.z += self.b
        else:
            sync = None if training is None else (training.sync or WholeBatch())
            update = training is not None and training.update_running
            self.norm.forward(self.z, self.gamma, self.b, self.running, sync, update, self.z)
        self.activation.forward(self.z, out=self.fz)
        if training is not None and self.dropout:
            self.keep = keep_scale(training, self.index, self.size, self.dropout, self.W.dtype)
            self.a = self.fz * self.keep
        else:
            self.keep, self.a = None, self.fz
        return self.a

    def config(self) -> dict:
        """``size``, ``activation`` and, when set, ``dropout`` and ``batch_norm``."""
        config = {"size": self.size, "activation": self.activation.config()}
        if self.dropout:
            config["dropout"] = self.dropout
        if self.batch_norm:
            config["batch_norm"] = True
        return config

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout else ""
        extra += ", batch_norm=True" if self.batch_norm else ""
        return f"Layer({self.size}, {self.activation!r}{extra})"


class InputLayer(Layer):
    """Layer 0: holds the input samples as its ``a`` (and ``z``); has no parameters and
    no nodes."""

    def __init__(self, size: int):
        super().__init__(size, Identity())
        self.index = 0
        self.nodes = []  # the inputs are not nodes: nothing computes them

    def forward(self, prev_a: np.ndarray, training: TrainingPass | None = None) -> np.ndarray:
        self.z = self.fz = self.a = prev_a
        return prev_a

    def __repr__(self) -> str:
        return f"InputLayer({self.size})"
