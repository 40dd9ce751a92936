"""Cached recursive backpropagation.

For the output layer ``L``, ``dLoss/da(L)`` comes from the loss. Below it::

    delta(l)    = dLoss/dz(l) = vjp of layer l's activation applied to dloss_da(l)
    dloss_da(l) = delta(l + 1) @ W(l + 1)

Both terms are memoised for the current forward pass, so each is computed once; the
cache is cleared whenever a new pass starts (``Model.propagate``). The parameter
gradients follow: ``dW(l) = delta(l).T @ a(l - 1)`` and ``db(l) = delta(l).sum(0)``,
written straight into the flat gradient arrays at the layers' start indices.

For an image layer the two layer-specific steps are its own
(:meth:`~nodenet.layer.Layer.backward_input` for ``dloss_da(l)``,
:meth:`~nodenet.layer.Layer.weight_gradient` for ``dW(l)``: a convolution's are GEMMs
over im2col columns), and ``db(l)`` sums ``delta(l)`` over samples and positions.

A layer with dropout scales ``dloss_da(l)`` by its mask before the activation's vjp. For
a layer with batch norm, ``delta(l)`` is ``dLoss/du`` of its un-normalised ``u = a(l-1)
@ W.T`` (:mod:`nodenet.batchnorm`), and its shift ``beta`` (the bias block) and scale
``gamma`` get ``sum g`` and ``sum g * xhat`` of ``g = dLoss/dz``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .dropout import TrainingPass

if TYPE_CHECKING:
    from .graph import Model


class Backprop:
    """The memo of one forward pass: ``dloss_da(l)`` and ``delta(l)`` per layer.

    ``computed`` counts how often each term was actually evaluated (key
    ``("dloss_da", l)`` or ``("delta", l)``), ``hits`` how often the memo answered.
    """

    def __init__(self, model: Model):
        self.model = model
        self.targets: np.ndarray | None = None
        #: per-sample weights of the pass (n,), or ``None`` (every sample counts once)
        self.weights: np.ndarray | None = None
        #: ``dLoss/da`` of the output layer given from outside (:func:`backward`)
        self.output_gradient: np.ndarray | None = None
        self._dloss_da: dict[int, np.ndarray] = {}
        self._delta: dict[int, np.ndarray] = {}
        #: ``(dgamma, dbeta)`` of each batch-norm layer, found with its ``delta``
        self._normalised: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.computed: Counter = Counter()
        self.hits = 0
        self.passes = 0

    def clear(self) -> None:
        """Forget everything of the previous pass (called when a new pass starts)."""
        self.targets = self.output_gradient = self.weights = None
        self._dloss_da.clear()
        self._delta.clear()
        self._normalised.clear()
        self.computed.clear()
        self.hits = 0
        self.passes += 1

    def begin(self, targets: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Set the targets ``(n, N_L)`` of the current pass, and the samples' weights
        ``(n,)`` if they count differently (the loss is then ``sum w_i loss_i``)."""
        out = self.model.layers[-1].a
        if out is None or targets.shape != out.shape:
            raise ValueError("run a forward pass on the same samples before backpropagating")
        self.targets, self.weights = targets, weights

    def begin_from_output(self, gradient: np.ndarray) -> None:
        """Start the recursion from a given ``dLoss/da`` of the output layer ``(n, N_L)``
        (a loss outside the model, such as another model fed by this one's output)."""
        out = self.model.layers[-1].a
        if out is None or gradient.shape != out.shape:
            raise ValueError(
                f"the output gradient must have the shape of the last forward pass's "
                f"outputs {None if out is None else out.shape}, got {gradient.shape}"
            )
        self.output_gradient = gradient

    def _require_targets(self) -> None:
        if self.targets is None and self.output_gradient is None:
            raise RuntimeError(
                "no targets for this pass: call begin(targets) after the forward pass"
            )

    def dloss_da(self, l: int) -> np.ndarray:
        """``dLoss/da`` of layer ``l``, shape ``(n, N_l)``."""
        if l in self._dloss_da:
            self.hits += 1
            return self._dloss_da[l]
        self._require_targets()
        model = self.model
        if l == model.depth and self.output_gradient is not None:
            value = self.output_gradient
        elif l == model.depth:
            value = model.loss.gradient(model.layers[l].a, self.targets)
            if self.weights is not None:
                value = value * self.weights[:, None]
        else:
            value = model.layers[l + 1].backward_input(self.delta(l + 1))
        self.computed["dloss_da", l] += 1
        self._dloss_da[l] = value
        return value

    def delta(self, l: int) -> np.ndarray:
        """``dLoss/dz`` of layer ``l`` (``dLoss/du`` with batch norm), shape ``(n, N_l)``.
        At the output layer the loss gives ``dLoss/dz`` directly (fused ``a - t`` where
        the activation allows)."""
        if l in self._delta:
            self.hits += 1
            return self._delta[l]
        self._require_targets()
        layer = self.model.layers[l]
        if l == self.model.depth and self.output_gradient is None:
            value = self.model.loss.delta(layer.activation, layer.z, layer.a, self.targets)
            if self.weights is not None:
                value = value * self.weights[:, None]
        else:
            upstream = self.dloss_da(l)
            if layer.keep is not None:
                upstream = upstream * layer.keep
            value = layer.activation.vjp(layer.z, layer.fz, upstream)
        if layer.norm is not None:
            value, *self._normalised[l] = layer.normalise_backward(value)
        self.computed["delta", l] += 1
        self._delta[l] = value
        return value

    def parameter_gradients(self, dW: np.ndarray, db: np.ndarray, accumulate: bool = False) -> None:
        """Write (or with ``accumulate`` add) ``dW(l)`` and ``db(l)`` of every layer into
        the flat arrays ``dW`` (shaped like ``weights``) and ``db`` (like ``biases``)."""
        model = self.model
        for l in range(model.depth, 0, -1):
            if not model.layout.biases[l].shape[0]:
                continue  # a layer without parameters (pooling, flattening)
            delta = self.delta(l)
            layer = model.layers[l]
            db_l = model.layer_biases(db, l)
            layer.weight_gradient(
                delta, model.layers[l - 1].a, model.layer_weights(dW, l), accumulate
            )
            if l in self._normalised:
                dgamma, dbeta = self._normalised[l]
                dgamma_l = model.layout.scales[l].view(dW)
                dgamma_l[...] = dgamma + dgamma_l if accumulate else dgamma
                db_l[...] = dbeta + db_l if accumulate else dbeta
            else:  # sum over samples (and positions) as a GEMV: for the few long
                # columns of a convolution's delta, 10x faster than np.sum
                rows = delta.reshape(-1, len(db_l))
                ones = np.ones(len(rows), rows.dtype)
                if accumulate:
                    db_l += ones @ rows
                else:
                    np.matmul(ones, rows, out=db_l)


def batch_gradient(
    model: Model,
    x: np.ndarray,
    t: np.ndarray,
    dW: np.ndarray,
    db: np.ndarray,
    accumulate: bool = False,
    weights: np.ndarray | None = None,
    training: TrainingPass | None = None,
) -> tuple[float, float]:
    """Forward pass and cached backprop of one batch: the one code path that the
    in-process backend and every worker run.

    ``x`` (n, N_0) and ``t`` (n, N_L) are already validated and of the model's dtype.
    Writes (or adds) the gradients summed over the samples into ``dW`` and ``db``;
    returns ``(loss_sum, n_correct)``. With ``weights`` (n,) each sample's loss and
    gradient count ``weights[i]`` times (the correct count does not). ``training``: the
    pass's dropout key and batch-norm sync (see :meth:`Model.propagate`). More rows than
    :meth:`Model.train_rows` go through in passes of equal size (the sums are the same
    to float rounding; each row keeps its dropout masks).
    """
    passes = -(-len(x) // model.train_rows())
    if passes > 1:
        size, loss, correct = -(-len(x) // passes), 0.0, 0.0
        for k, lo in enumerate(range(0, len(x), size)):
            part = slice(lo, lo + size)
            part_loss, part_correct = _one_pass(
                model,
                x[part],
                t[part],
                dW,
                db,
                accumulate or k > 0,
                None if weights is None else weights[part],
                None if training is None else replace(training, rows=training.rows[part]),
            )
            loss += part_loss
            correct += part_correct
        return loss, correct
    return _one_pass(model, x, t, dW, db, accumulate, weights, training)


def gather(a, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of ``a`` (N, ...) -> (len(rows), ...): ``np.take`` for an array (the
    random rows of a batch gather in 0.64x the time of ``a[rows]``: 71 against 111 us
    for 200 rows of a 200,000 x 54 float64 set with their targets), else ``a[rows]``
    (sparse rows made dense)."""
    return np.take(a, rows, axis=0) if isinstance(a, np.ndarray) else a[rows]


def pieces_gradient(
    model: Model,
    x: np.ndarray,
    t: np.ndarray,
    pieces: Sequence[np.ndarray],
    dW: np.ndarray,
    db: np.ndarray,
    weights: np.ndarray | None = None,
    seed: int = 0,
    step: int = 0,
    sync=None,
    update_running: bool = False,
) -> tuple[float, float]:
    """:func:`batch_gradient` of each piece of row indices into ``x`` (N, N_0), ``t``
    (N, N_L) and ``weights`` (N,) or ``None``, summed: ``(loss_sum, n_correct)``. The
    first piece writes ``dW`` and ``db``, later ones add to them; no piece writes zeros.
    Each piece is a training pass of the step keyed by ``seed`` and ``step``, with
    ``sync`` and ``update_running`` as in :class:`~nodenet.dropout.TrainingPass`: the
    loop of every backend that computes a batch in pieces (in this process, and each of
    the pool's workers over its share)."""
    if not pieces:
        dW.fill(0)
        db.fill(0)
    loss = correct = 0.0
    for k, rows in enumerate(pieces):
        part_loss, part_correct = batch_gradient(
            model,
            gather(x, rows),
            gather(t, rows),
            dW,
            db,
            accumulate=k > 0,
            weights=None if weights is None else gather(weights, rows),
            training=TrainingPass(rows, seed, step, sync, update_running),
        )
        loss += part_loss
        correct += part_correct
    return loss, correct


def pieces_evaluate(
    model: Model, x: np.ndarray, t: np.ndarray, pieces: Sequence[np.ndarray]
) -> tuple[float, float]:
    """:func:`batch_evaluate` (prediction passes) of each piece of row indices into ``x``
    (N, N_0) and ``t`` (N, N_L), summed: ``(loss_sum, n_correct)``; only one piece's rows
    are gathered at a time (in this process, and each of the pool's workers)."""
    loss = correct = 0.0
    for rows in pieces:
        part_loss, part_correct = batch_evaluate(model, gather(x, rows), gather(t, rows))
        loss += part_loss
        correct += part_correct
    return loss, correct


def _one_pass(model, x, t, dW, db, accumulate, weights, training) -> tuple[float, float]:
    """:func:`batch_gradient` of rows that go through in one pass."""
    a = model.propagate(x, training)
    model.backprop.begin(t, weights)
    model.backprop.parameter_gradients(dW, db, accumulate)
    return model.loss.value(a, t, weights), model.loss.count_correct(a, t)


def batch_evaluate(
    model: Model, x: np.ndarray, t: np.ndarray, training: TrainingPass | None = None
) -> tuple[float, float]:
    """Forward pass only: ``(loss_sum, n_correct)`` of validated ``x`` and ``t``: a
    prediction pass, ``model.pass_rows()`` rows at a time (every backend and
    :func:`nodenet.predict.evaluate` evaluate through here); or one training pass over
    all of them when ``training`` is given (batch statistics need the whole batch)."""
    if training is not None:
        a = model.propagate(x, training)
        return model.loss.value(a, t), model.loss.count_correct(a, t)
    rows, loss, correct = model.pass_rows(), 0.0, 0.0
    for i in range(0, len(x), rows):
        a = model.propagate(x[i : i + rows])
        loss += model.loss.value(a, t[i : i + rows])
        correct += model.loss.count_correct(a, t[i : i + rows])
    return loss, correct


def backward(
    model: Model, output_gradient: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cached recursion from ``dLoss/da`` of the output layer ``(n, N_L)`` of the
    last forward pass: ``(dW, db, dx)``, the parameter gradients (shaped like the flat
    ``weights`` and ``biases``) and ``dLoss/dx`` ``(n, N_0)``, summed over the samples."""
    model.backprop.begin_from_output(np.asarray(output_gradient, dtype=model.dtype))
    dW, db = np.zeros_like(model.weights), np.zeros_like(model.biases)
    model.backprop.parameter_gradients(dW, db)
    return dW, db, model.layers[0].flat(model.backprop.dloss_da(0))


def input_gradient(model: Model, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``dLoss/dx`` ``(n, N_0)`` of the model's own loss for validated ``x`` and
    targets ``t``: the recursion carried one layer further, to the inputs."""
    model.propagate(x)
    model.backprop.begin(t)
    return model.layers[0].flat(model.backprop.dloss_da(0))
