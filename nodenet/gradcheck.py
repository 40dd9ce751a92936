"""Finite-difference gradient check.

``check_gradients(model, x, y)`` perturbs parameters one at a time by ``+-eps`` and
compares the central difference of the summed loss with the analytic gradient from
the cached recursive backprop. Run it in float64.

From the command line::

    nodenet gradcheck --hidden 16 8 --activation tanh      # or python -m nodenet.gradcheck
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS
from .architectures import read_architecture
from .backprop import batch_evaluate
from .cli.flags import add_flags
from .dropout import TrainingPass
from .graph import Model
from .layer import Layer
from .losses import LOSSES
from .settings import HIDDEN_ACTIVATIONS, Setting


@dataclass
class LayerCheck:
    """Largest relative error of layer ``layer``'s weights, biases and (with batch norm)
    scales."""

    layer: int
    weight_error: float
    bias_error: float
    scale_error: float = 0.0

    @property
    def max_error(self) -> float:
        return max(self.weight_error, self.bias_error, self.scale_error)


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """``|a - n| / max(|a| + |n|, 1e-12)`` element-wise (0 where both are ~0)."""
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-12)


def numeric_gradient(
    model: Model,
    x: np.ndarray,
    t: np.ndarray,
    flat: np.ndarray,
    indices: np.ndarray,
    eps: float,
    training: TrainingPass | None = None,
) -> np.ndarray:
    """Central differences of the summed loss w.r.t. ``flat[indices]``, where ``flat`` is
    ``model.weights`` or ``model.biases``, in passes like ``training`` (fixed dropout
    masks, batch statistics) or prediction passes (``None``)."""
    grads = np.empty(len(indices))
    for k, i in enumerate(indices):
        saved = flat[i]
        flat[i] = saved + eps
        plus, _ = batch_evaluate(model, x, t, training)
        flat[i] = saved - eps
        minus, _ = batch_evaluate(model, x, t, training)
        flat[i] = saved
        grads[k] = (plus - minus) / (2 * eps)
    return grads


def check_gradients(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    eps: float = 1e-5,
    max_per_layer: int | None = 200,
    seed: int = 0,
    training: TrainingPass | None = None,
) -> list[LayerCheck]:
    """Per layer, the largest relative error between analytic and numeric gradients.

    ``max_per_layer`` parameters per layer and kind are checked (chosen at random with
    ``seed``; ``None`` checks them all). The model should be float64. ``training``: check
    training passes (dropout with the masks it keys, batch norm with batch statistics);
    a model with batch norm needs one, and by default gets ``TrainingPass(rows 0..n-1)``.
    """
    if model.dtype != np.float64:
        raise ValueError("gradient checks need a float64 model: construct(dtype=np.float64)")
    x = model.check_inputs(x)
    t = model.targets(y, len(x))
    if training is None and model.layout.normalised:
        training = TrainingPass(np.arange(len(x)))
    _, dW, db = model.gradient(x, y, training)
    rng = np.random.default_rng(seed)
    layout = model.layout
    results = []
    for l in range(1, model.depth + 1):
        errors = []
        for flat, grad, block in (
            (model.weights, dW, layout.weights[l]),
            (model.biases, db, layout.biases[l]),
            (model.weights, dW, layout.scales[l]),
        ):
            idx = np.arange(block.start, block.stop)
            if max_per_layer is not None and len(idx) > max_per_layer:
                idx = rng.choice(idx, size=max_per_layer, replace=False)
            numeric = numeric_gradient(model, x, t, flat, idx, eps, training)
            errors.append(float(relative_error(grad[idx], numeric).max(initial=0.0)))
        results.append(LayerCheck(l, *errors))
    return results


#: the flags of ``nodenet gradcheck``, as rows of a settings table (checked the same way)
GRADCHECK_SETTINGS = {
    row.name: row
    for row in (
        Setting("arch", "str", None, "an image network instead of --inputs and --hidden: a name (every-layer, lenet5) or a JSON file as for nodenet train --arch; --outputs are added", "network", also=(None,), metavar="NAME|FILE"),
        Setting("inputs", "int", 10, "input width", "network", low=1),
        Setting("hidden", "ints", [16, 8], "hidden layer sizes", "network", low=1, metavar="N"),
        Setting("outputs", "int", 4, "output nodes", "network", low=1),
        Setting("activation", "str", "tanh", "hidden activation", "network", choices=HIDDEN_ACTIVATIONS),
        Setting("output_activation", "str", "softmax", "output activation", "network", choices=tuple(sorted(ACTIVATIONS))),
        Setting("loss", "str", "cross_entropy", "loss", "network", choices=tuple(sorted(LOSSES))),
        Setting("dropout", "float", 0.0, "hidden dropout rate", "network", low=0, high=1),
        Setting("batch_norm", "bool", False, "batch norm in the hidden layers", "network"),
        Setting("samples", "int", 8, "batch size", "check", low=1),
        Setting("per_layer", "int", None, "check this many parameters of each kind per layer, chosen at random (default: all)", "check", low=1, also=(None,), metavar="N"),
        Setting("eps", "float", 1e-5, "finite-difference step", "check", low=0, high=1, open_low=True),
        Setting("seed", "int", 0, "seed of the network and the data", "check", low=0),
        Setting("tolerance", "float", 1e-6, "fail above this relative error", "check", low=0, open_low=True),
    )
}  # fmt: skip


def main(argv: list[str] | None = None, prog: str = "nodenet gradcheck") -> int:
    """Command line: build a random float64 network, check it, print errors per layer."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Finite-difference check of nodenet's backprop on a random network.",
    )
    add_flags(parser, GRADCHECK_SETTINGS)
    args = parser.parse_args(argv)
    if args.output_activation == "softmax" and args.outputs < 2:
        parser.error("--outputs 1 with a softmax output is always 1: use 2 or more outputs")

    if args.arch is None:
        shape = args.inputs
        layers = [Layer(n, args.activation, args.dropout, args.batch_norm) for n in args.hidden]
    else:
        try:
            shape, layers = read_architecture(args.arch)
        except ValueError as exc:
            parser.error(str(exc))
    layers.append(Layer(args.outputs, args.output_activation))
    # He init: weights large enough that every gradient stands well above the
    # finite-difference noise of float64
    model = Model(shape, args.loss, layers).construct(args.seed, "he", np.float64)
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.samples, model.input_size))
    if model.loss.name == "cross_entropy":
        y = rng.integers(0, args.outputs, size=args.samples)
    else:
        y = rng.uniform(size=(args.samples, args.outputs))
    print(f"{model}\n{'layer':>5} {'weights':>12} {'biases':>12} {'scales':>12}")
    worst = 0.0
    training = TrainingPass(np.arange(args.samples), args.seed, step=1)
    for check in check_gradients(model, x, y, args.eps, args.per_layer, training=training):
        errors = (check.weight_error, check.bias_error, check.scale_error)
        print(f"{check.layer:>5} " + " ".join(f"{e:>12.3e}" for e in errors))
        worst = max(worst, check.max_error)
    verdict = "ok" if worst <= args.tolerance else "FAILED"
    print(f"largest relative error {worst:.3e}: {verdict} (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())
