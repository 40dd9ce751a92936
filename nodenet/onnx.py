"""Export a trained model as an ONNX graph, so any ONNX runtime can serve it.

The graph takes raw inputs ``x`` (n, N_0) and returns the output layer's activations
``y`` (n, N_L) exactly as :func:`nodenet.predict.predict_proba` computes them::

    x -> Sub(mean) -> Div(std)                      the saved normaliser, if any
      -> Gemm(W, b, transB=1) -> activation         per layer (W is stored (N_l, N_l-1))
         or Gemm(W) -> BatchNormalization(gamma, beta, running mean, running var)
      -> y

Dropout is a training-time operation and is not in the graph. Weights keep the model's
dtype (float32 or float64). Optional: ``pip install 'nodenet[onnx]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .batchnorm import EPS
from .files import atomic_write
from .graph import Model

OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs onnx: pip install 'nodenet[onnx]'") from None
    return onnx


def to_onnx(model: Model):
    """The ``onnx.ModelProto`` of ``model`` (see the module docstring), checked by
    ``onnx.checker``."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    dtype = model.dtype
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    nodes, weights = [], []

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    a = "x"
    if model.normaliser is not None:
        a = node("Sub", [a, constant("normaliser_mean", model.normaliser.mean)], "centred")
        a = node("Div", [a, constant("normaliser_std", model.normaliser.std)], "normalised")
    for layer in model.layers[1:]:
        l = layer.index
        W = constant(f"W{l}", layer.W)
        if layer.norm is None:
            a = node("Gemm", [a, W, constant(f"b{l}", layer.b)], f"z{l}", transB=1)
        else:
            u = node("Gemm", [a, W], f"u{l}", transB=1)
            inputs = [u, constant(f"gamma{l}", layer.gamma), constant(f"beta{l}", layer.b)]
            inputs += [
                constant(f"mean{l}", layer.running[0]),
                constant(f"var{l}", layer.running[1]),
            ]
            a = node("BatchNormalization", inputs, f"z{l}", epsilon=EPS)
        a = _activation(node, layer.activation.config(), a, f"a{l}")
    nodes.append(helper.make_node("Identity", [a], ["y"], name="y"))
    graph = helper.make_graph(
        nodes,
        "nodenet",
        [helper.make_tensor_value_info("x", elem, ["n", model.input_size])],
        [helper.make_tensor_value_info("y", elem, ["n", model.output_size])],
        initializer=weights,
    )
    proto = helper.make_model(
        graph, producer_name="nodenet", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    proto.doc_string = repr(model)
    onnx.checker.check_model(proto)
    return proto


def _activation(node, config: dict, a: str, output: str) -> str:
    name = config["name"]
    if name == "identity":
        return a
    if name == "leaky_relu":
        return node("LeakyRelu", [a], output, alpha=float(config["alpha"]))
    if name == "softmax":
        return node("Softmax", [a], output, axis=1)
    ops = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if name not in ops:
        raise ValueError(f"activation {name!r} has no ONNX export")
    return node(ops[name], [a], output)


def save_onnx(model: Model, path: str | os.PathLike) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically); returns the path."""
    data = to_onnx(model).SerializeToString()
    path = Path(path)
    atomic_write(path, lambda f: f.write(data))
    return path
