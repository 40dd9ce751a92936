"""Export a trained model as an ONNX graph, so any ONNX runtime can serve it.

The graph takes raw inputs ``x`` (n, N_0) and returns the output layer's activations
``y`` (n, N_L) exactly as :func:`nodenet.predict.predict_proba` computes them::

    x -> Sub(mean) -> Div(std)                      the saved normaliser, if any
      -> Reshape(n, C, H, W)                        an image input
      -> Gemm(W, b, transB=1) -> activation         a dense layer (W is (N_l, N_l-1))
         or Gemm(W) -> BatchNormalization(gamma, beta, running mean, running var)
         or Conv / ConvTranspose(kernels, b)      an image layer, channels first
            (-> BatchNormalization) -> activation   (ONNX's NCHW; nodenet's kernels
         or MaxPool / AveragePool / Resize          read in PyTorch's layout)
         or Flatten                                 (C, H, W) order, as nodenet's
      -> y

Dropout is a training-time operation and is not in the graph. Weights keep the model's
dtype (float32 or float64; onnxruntime's CPU provider runs Conv in float32 only). Optional: ``pip install 'nodenet[onnx]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .batchnorm import EPS
from .conv import Conv2D
from .files import atomic_write
from .flatten import Flatten
from .graph import Model
from .layer import Layer
from .pooling import AvgPool2D, MaxPool2D, UpSampling2D

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

    def constant(name: str, value: np.ndarray, kind=dtype) -> str:
        weights.append(numpy_helper.from_array(np.asarray(value, dtype=kind), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    a = "x"
    if model.normaliser is not None:
        a = node("Sub", [a, constant("normaliser_mean", model.normaliser.mean)], "centred")
        a = node("Div", [a, constant("normaliser_std", model.normaliser.std)], "normalised")
    if len(model.input_shape) == 3:
        shape = constant("input_shape", [-1, *model.input_shape], np.int64)
        a = node("Reshape", [a, shape], "images")
    for layer in model.layers[1:]:
        l = layer.index
        if layer.b.size:  # a layer with parameters: dense or a convolution
            a = _linear(node, constant, layer, a)
            if layer.norm is not None:
                inputs = [a, constant(f"gamma{l}", layer.gamma), constant(f"beta{l}", layer.b)]
                inputs += [
                    constant(f"mean{l}", layer.running[0]),
                    constant(f"var{l}", layer.running[1]),
                ]
                a = node("BatchNormalization", inputs, f"z{l}", epsilon=EPS)
            a = _activation(node, layer.activation.config(), a, f"a{l}")
        else:
            a = _resampling(node, constant, layer, a)
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


def _linear(node, constant, layer, a: str) -> str:
    """The layer's ``u`` (with batch norm) or ``z``: a Gemm, Conv or ConvTranspose."""
    l = layer.index
    name = f"u{l}" if layer.norm is not None else f"z{l}"
    bias = [] if layer.norm is not None else [constant(f"b{l}", layer.b)]
    if type(layer) is Layer:
        return node("Gemm", [a, constant(f"W{l}", layer.W), *bias], name, transB=1)
    (top, bottom), (left, right) = layer.pads
    op = "Conv" if isinstance(layer, Conv2D) else "ConvTranspose"
    kernels = constant(f"W{l}", np.ascontiguousarray(layer.kernels))
    return node(
        op,
        [a, kernels, *bias],
        name,
        kernel_shape=list(layer.kernel),
        strides=list(layer.stride),
        pads=[top, left, bottom, right],
    )


def _resampling(node, constant, layer, a: str) -> str:
    """A layer without parameters: pooling, up-sampling or Flatten."""
    l = layer.index
    if isinstance(layer, Flatten):
        return node("Flatten", [a], f"a{l}", axis=1) if len(layer.input_shape) == 3 else a
    if isinstance(layer, MaxPool2D | AvgPool2D):
        op = "MaxPool" if isinstance(layer, MaxPool2D) else "AveragePool"
        return node(op, [a], f"a{l}", kernel_shape=list(layer.pool), strides=list(layer.stride))
    if isinstance(layer, UpSampling2D):
        scales = constant(f"scales{l}", [1, 1, *layer.scale], np.float32)
        return node(
            "Resize",
            [a, "", scales],
            f"a{l}",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    raise ValueError(f"{layer!r} has no ONNX export")


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
