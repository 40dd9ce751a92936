"""The node graph: ``Model``, its layers (:mod:`nodenet.layer`) and their nodes
(:mod:`nodenet.node`) over one flat weight array and one flat bias array.

Layer ``l`` (``l = 1..L``; layer 0 is the input) owns the block
``weights[weight_start[l] : weight_start[l] + N_l * N_{l-1}]``, seen as ``layer.W`` of
shape ``(N_l, N_{l-1})`` (row ``j`` holds the weights into node ``j``), and the block
``biases[bias_start[l] : bias_start[l] + N_l]``, seen as ``layer.b`` of shape ``(N_l,)``.
Both are views, so an optimizer step on the flat arrays updates every layer at once.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .architectures import layer_from_config
from .backprop import Backprop, backward, batch_gradient, input_gradient
from .data.sparse import SparseRows, is_sparse
from .dropout import TrainingPass
from .init import initialise
from .layer import InputLayer, Layer, shape_text
from .layout import ParameterLayout
from .losses import Loss, get_loss
from .node import Node
from .settings import SETTINGS

if TYPE_CHECKING:
    from .history import History

__all__ = ["InputLayer", "Layer", "Model", "Node"]


#: the most rows a prediction or evaluation pass takes at once
MAX_PASS_ROWS = 4096
#: the memory a prediction or evaluation pass may use (64 MiB), see Model.pass_rows
PASS_BYTES = 64 * 2**20
#: the memory a training pass may keep (8 MiB), see Model.train_rows: a larger batch is
#: computed in passes of equal size whose gradients add up, which stay in the caches
TRAIN_PASS_BYTES = 8 * 2**20


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``), or ``None``
    where the system does not say."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class Model:
    """A multi-layer perceptron: ``Model(784, CrossEntropy(), [Layer(128, ReLU()), ...])``,
    or a convolutional net over images of ``(channels, height, width)``:
    ``Model((1, 28, 28), "cross_entropy", [Conv2D(6, 5), MaxPool2D(2), Flatten(),
    Layer(10, "softmax")])``. Inputs always arrive flat, (n, N_0).

    ``layers[0]`` is the input layer; ``layers[1:]`` are the given layers, each built
    for the shape of the one before it. Call :meth:`construct` before use.
    """

    def __init__(self, input_size: int | Sequence[int], loss: str | Loss, layers: Sequence[Layer]):
        if not layers:
            raise ValueError("a model needs at least one layer")
        for layer in layers:
            if not isinstance(layer, Layer) or isinstance(layer, InputLayer):
                raise ValueError(f"layers must be Layer objects, got {layer!r}")
        if layers[-1].dropout:
            raise ValueError("dropout on the output layer is not supported: drop hidden units")
        if len(set(map(id, layers))) != len(layers):
            raise ValueError("a layer object appears twice: make one per position")
        self.loss = get_loss(loss)
        self.layers: list[Layer] = [InputLayer(input_size), *layers]
        for prev, layer in itertools.pairwise(self.layers):
            layer.build(prev.shape)
        if len(self.layers[-1].shape) != 1:
            raise ValueError(
                f"the output layer gives {shape_text(self.layers[-1].shape)}: the output "
                f"must be flat, so end the model with Flatten() (or a dense Layer)"
            )
        self.layout = ParameterLayout([layer.parameters for layer in self.layers[1:]])
        self.weights: np.ndarray | None = None
        self.biases: np.ndarray | None = None
        #: running mean and variance of the batch-norm layers (see ``layout.running``)
        self.running: np.ndarray | None = None
        self.backprop = Backprop(self)
        #: optional input transform (see nodenet.data.Normaliser), saved with the model
        self.normaliser = None
        # set by fit() for its callbacks, as Keras does: the optimizer and History of the
        # run, the callbacks, and the flag a callback sets to end training
        self.optimizer = None
        self.history = None
        self.callbacks: list = []
        self.stop_training = False

    # ----------------------------------------------------------------- structure
    @property
    def sizes(self) -> list[int]:
        """Nodes per layer, input layer first: ``[N_0, N_1, ..., N_L]``."""
        return [layer.size for layer in self.layers]

    @property
    def depth(self) -> int:
        """Number of layers with parameters, ``L``."""
        return len(self.layers) - 1

    @property
    def input_size(self) -> int:
        """Inputs per sample, ``N_0`` (the product of an image input's shape)."""
        return self.layers[0].size

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(N_0,)``, or ``(channels, height, width)`` for images."""
        return self.layers[0].shape

    @property
    def output_size(self) -> int:
        return self.layers[-1].size

    def pass_rows(self) -> int:
        """Rows per prediction or evaluation pass: :data:`MAX_PASS_ROWS`, or fewer where
        one sample's pass keeps many numbers (a convolution's columns), so that a pass
        stays within :data:`PASS_BYTES` (LeNet-5 in float32: 268 rows)."""
        return int(min(MAX_PASS_ROWS, max(1, PASS_BYTES // self._bytes_per_row())))

    def train_rows(self) -> int:
        """Rows per training pass (forward and cached backprop): at most as many as keep
        :data:`TRAIN_PASS_BYTES` in the layers (LeNet-5 in float32: 33 rows; 784-128-64-10:
        708), or every row of a model with batch norm, whose statistics need the whole
        batch in one pass. Measured on one core: LeNet-5 at batch 128 in 4 passes of 32
        rows, 6% off an epoch (4 alternating pairs); 784-512-512-10 at batch 1024 in 2 or
        4 passes, 11% off a step; 784-128-64-10 at batch 128 in 2 passes, 12% slower."""
        if self.layout.normalised:
            return sys.maxsize
        return max(1, TRAIN_PASS_BYTES // self._bytes_per_row())

    def _bytes_per_row(self) -> int:
        """What a pass keeps per sample in the layers (see ``Layer.pass_values``)."""
        return sum(layer.pass_values for layer in self.layers) * self.dtype.itemsize

    @property
    def dtype(self) -> np.dtype:
        return self.weights.dtype

    @property
    def parameter_count(self) -> int:
        return self.layout.size

    @property
    def weight_start(self) -> list[int]:
        """Start index of each layer's block in ``weights`` (layer 0, the input: 0)."""
        return self.layout.weight_start

    @property
    def bias_start(self) -> list[int]:
        """Start index of each layer's block in ``biases`` (layer 0, the input: 0)."""
        return self.layout.bias_start

    def construct(
        self,
        seed: int | None = SETTINGS["seed"].default,
        init: str = SETTINGS["init"].default,
        dtype=SETTINGS["dtype"].default,
    ) -> Model:
        """Number the layers, allocate the flat ``weights`` and ``biases`` arrays laid out
        by ``layout`` (the start-index tables), bind every layer's views and initialise.
        The defaults are the settings table's (``seed`` 0, ``init`` lecun, ``dtype``
        float32), as for ``nodenet train``."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        layout = self.layout
        needed = (layout.n_weights + layout.n_biases + layout.n_running) * dtype.itemsize
        available = available_memory()
        if available is not None and needed > available:
            raise MemoryError(
                f"the model's {layout.size:,} parameters need {needed / 2**30:,.1f} GiB, "
                f"and this machine has {available / 2**30:,.1f} GiB available: use "
                f"smaller layers (sizes {self.sizes})"
            )
        running = np.zeros(layout.n_running, dtype)
        for block in layout.running:
            block.view(running)[1] = 1.0  # the running variance starts at one
        self.rebind(np.zeros(layout.n_weights, dtype), np.zeros(layout.n_biases, dtype), running)
        initialise(self, init, np.random.default_rng(seed))
        return self

    def rebind(
        self, weights: np.ndarray, biases: np.ndarray, running: np.ndarray | None = None
    ) -> None:
        """Use ``weights`` and ``biases`` (e.g. arrays in shared memory), and ``running``
        if given, as the flat arrays and re-create every layer's views into them."""
        layout = self.layout
        running = self.running if running is None else running
        expected = ((layout.n_weights,), (layout.n_biases,), (layout.n_running,))
        if (weights.shape, biases.shape, np.shape(running)) != expected:
            raise ValueError(
                f"flat arrays must have shapes {expected[0]}, {expected[1]} and "
                f"{expected[2]}, got {weights.shape}, {biases.shape} and {np.shape(running)}"
            )
        if biases.dtype != weights.dtype:
            raise ValueError(
                f"weights ({weights.dtype}) and biases ({biases.dtype}) differ in dtype"
            )
        self.weights, self.biases, self.running = weights, biases, running
        for l in range(1, len(self.layers)):
            self.layers[l].bind(
                l,
                self.layer_weights(weights, l),
                self.layer_biases(biases, l),
                layout.scales[l].view(weights),
                layout.running[l].view(running),
            )
        self.backprop.clear()

    def layer_weights(self, flat: np.ndarray, l: int) -> np.ndarray:
        """Layer ``l``'s view into any flat weight-shaped array: ``(N_l, N_{l-1})`` for a
        dense layer (see :mod:`nodenet.layout` for the others)."""
        return self.layout.weights[l].view(flat)

    def layer_biases(self, flat: np.ndarray, l: int) -> np.ndarray:
        """Layer ``l``'s ``(N_l,)`` view into any flat bias-shaped array."""
        return self.layout.biases[l].view(flat)

    # ---------------------------------------------------------------- validation
    def _require_constructed(self) -> None:
        if self.weights is None:
            raise RuntimeError("call model.construct() before using the model")

    def check_inputs(self, x: np.ndarray) -> np.ndarray:
        """Validate inputs at the API edge and return them as a (n, N_0) array of the
        model's dtype (a scipy sparse matrix as :class:`~nodenet.data.sparse.SparseRows`,
        its rows made dense on demand). Raises ``ValueError`` on a wrong width or
        NaN/infinity."""
        self._require_constructed()
        if isinstance(x, SparseRows):
            return x
        if is_sparse(x):
            if len(x.shape) != 2 or x.shape[1] != self.input_size:
                raise ValueError(f"inputs must have shape (n, {self.input_size}), got {x.shape}")
            if not np.isfinite(x.data).all():
                raise ValueError("inputs contain NaN or infinity")
            return SparseRows(x, self.dtype)
        x = np.asarray(x)
        if x.ndim == 1 and x.shape[0] == self.input_size:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"inputs must have shape (n, {self.input_size}), got {np.shape(x)}")
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"inputs must be numeric, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if not np.isfinite(x).all():
            row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise ValueError(f"inputs contain NaN or infinity (first at row {row})")
        return x

    def targets(self, y: np.ndarray, n: int | None = None) -> np.ndarray:
        """Convert labels (class indices ``(n,)`` or one-hot ``(n, K)``) to the target
        matrix ``(n, K)`` of the model's dtype, validated by the loss."""
        self._require_constructed()
        t = self.loss.targets(y, self.output_size, self.dtype)
        if n is not None and len(t) != n:
            raise ValueError(f"got {n} input rows but {len(t)} targets")
        return t

    # ------------------------------------------------------------------ passes
    def propagate(self, x: np.ndarray, training: TrainingPass | None = None) -> np.ndarray:
        """Forward pass without validation (the hot path): ``x`` (n, N_0) of the
        model's dtype -> output layer ``a`` (n, N_L), a buffer reused by the next pass.
        ``training``: a training pass (dropout masks, batch statistics); ``None``
        predicts (no dropout, running statistics). Starts a new pass: the backprop
        cache is cleared."""
        self.backprop.clear()
        a = x
        for layer in self.layers:
            a = layer.forward(a, training)
        return a

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Raw inputs ``x`` (n, N_0), validated (:meth:`check_inputs`) and passed through
        the model's :attr:`normaliser` when it has one: the one place where every public
        pass over raw inputs (``model(x)``, :meth:`forward`, :meth:`predict`, ``fit``, ...)
        meets the normaliser. Returns (n, N_0) of the model's dtype."""
        x = self.check_inputs(x)
        if self.normaliser is None:
            return x
        if isinstance(x, SparseRows):
            return x.normalised(self.normaliser)
        return self.normaliser(x, self.dtype)

    def _dense(self, x) -> np.ndarray:
        """:meth:`normalise` of ``x`` as one dense array (a pass over all of it)."""
        x = self.normalise(x)
        return x.dense() if isinstance(x, SparseRows) else x

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Forward pass of raw inputs ``x`` (n, N_0) (normalised by the model's
        normaliser) -> a copy of the outputs (n, N_L). Every layer keeps its ``z`` and
        ``a``. :meth:`propagate` is the pass over inputs already normalised."""
        return self.propagate(self._dense(x)).copy()

    __call__ = forward

    def gradient(
        self, x: np.ndarray, y: np.ndarray, training: TrainingPass | None = None
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Loss and flat parameter gradients summed over the ``n`` samples.

        ``x`` (n, N_0) raw inputs (normalised by the model's normaliser); ``y`` class
        indices (n,) or targets (n, N_L); ``training`` as in :meth:`propagate` (a model
        with batch norm needs one). Returns ``(loss_sum, dW, db)`` with ``dW`` shaped like
        ``weights`` and ``db`` like ``biases``.
        """
        x = self._dense(x)
        t = self.targets(y, len(x))
        dW, db = np.zeros_like(self.weights), np.zeros_like(self.biases)
        loss_sum, _ = batch_gradient(self, x, t, dW, db, training=training)
        return loss_sum, dW, db

    def backward(self, dloss_da_output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(dW, db, dx)`` from a given ``dLoss/da`` of the output layer (n, N_L) of the
        last :meth:`forward` (see :func:`nodenet.backprop.backward`); ``dx`` (n, N_0)
        is the gradient to the raw inputs (through the normaliser)."""
        dW, db, dx = backward(self, dloss_da_output)
        return dW, db, self._through_normaliser(dx)

    def input_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``dLoss/dx`` (n, N_0) of the model's loss for raw inputs ``x``, summed over
        the samples (through the normaliser: ``dLoss/dx = dLoss/dx_normalised / std``)."""
        x = self._dense(x)
        return self._through_normaliser(input_gradient(self, x, self.targets(y, len(x))))

    def _through_normaliser(self, dx: np.ndarray) -> np.ndarray:
        """A gradient to the normalised inputs (n, N_0) as one to the raw inputs."""
        if self.normaliser is not None:
            dx /= self.normaliser.std.astype(dx.dtype)
        return dx

    def fit(self, x: np.ndarray, y: np.ndarray, **keywords) -> History:
        """Train on raw inputs ``x`` (n, N_0) and targets ``y``: :func:`nodenet.fit`
        with this model, the same keywords and defaults (the settings table's)."""
        from .training import fit

        return fit(self, x, y, **keywords)

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Write the model (parameters, architecture, normaliser, ``metadata``) to
        ``path`` (``.npz`` + ``.json``), atomically; :func:`nodenet.load` reads it."""
        from .io import save

        return save(self, path, metadata=metadata)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Output activations (n, N_L) for raw inputs ``x`` (n, N_0), normalised by the
        model's normaliser (see :func:`nodenet.predict.predict_proba`)."""
        from .predict import predict_proba

        return predict_proba(self, x)

    def predict(self, x: np.ndarray, threshold: str | float | None = "argmax") -> np.ndarray:
        """Decisions for raw inputs ``x`` (see :func:`nodenet.predict.predict`)."""
        from .predict import predict

        return predict(self, x, threshold)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Mean loss and accuracy of raw inputs ``x`` against ``y`` (see
        :func:`nodenet.predict.evaluate`)."""
        from .predict import evaluate

        return evaluate(self, x, y)

    def __repr__(self) -> str:
        body = ", ".join(repr(layer) for layer in self.layers[1:])
        shape = self.input_shape
        return f"Model({shape if len(shape) == 3 else shape[0]}, {self.loss!r}, [{body}])"

    # ------------------------------------------------------------ description
    def config(self) -> dict:
        """JSON-serialisable architecture; ``Model.from_config`` rebuilds it."""
        shape = self.input_shape
        return {
            "input_size": list(shape) if len(shape) == 3 else self.input_size,
            "loss": self.loss.name,
            "layers": [layer.config() for layer in self.layers[1:]],
        }

    def process_config(self) -> dict:
        """:meth:`config` for another process of this run (a worker): the loss object
        itself instead of its name, so a user's :class:`~nodenet.losses.Loss` subclass
        is the loss there too (it travels pickled, by reference to its class)."""
        return {**self.config(), "loss": self.loss}

    @classmethod
    def from_config(cls, config: dict) -> Model:
        """Rebuild an (unconstructed) model from :meth:`config` output."""
        try:
            layers = [layer_from_config(spec) for spec in config["layers"]]
            shape = config["input_size"]
            shape = tuple(int(n) for n in shape) if isinstance(shape, list) else int(shape)
            return cls(shape, config["loss"], layers)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid model architecture: missing or bad field {exc}") from exc
