"""Layers by name, for architectures written as JSON (model files, ``nodenet train
--arch``), and the architectures nodenet knows by name (``lenet5``).

A layer is a JSON object: ``{"type": "conv2d", "filters": 6, "kernel": 5, ...}``, its
keys the layer's arguments (``type`` ``"dense"`` may be left out:
``{"size": 128, "activation": "relu"}``). An architecture file for ``--arch`` is
``{"input_shape": [1, 28, 28], "layers": [...]}``: the hidden layers; the command line
adds the output layer for the data (its classes, softmax).
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

from .conv import Conv2D, Conv2DTranspose
from .flatten import Flatten
from .layer import Layer
from .pooling import AvgPool2D, MaxPool2D, UpSampling2D

#: every layer class by its ``type``
LAYERS: dict[str, type[Layer]] = {
    "dense": Layer,
    "conv2d": Conv2D,
    "conv2d_transpose": Conv2DTranspose,
    "max_pool2d": MaxPool2D,
    "avg_pool2d": AvgPool2D,
    "up_sampling2d": UpSampling2D,
    "flatten": Flatten,
}


def layer_from_config(spec: dict) -> Layer:
    """The layer a JSON object describes (see the module docstring); ``ValueError``
    naming an unknown type or argument."""
    if not isinstance(spec, dict):
        raise ValueError(f"a layer must be a JSON object, got {spec!r}")
    kind = spec.get("type", "dense")
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; expected one of {sorted(LAYERS)}")
    cls = LAYERS[kind]
    arguments = {k: v for k, v in spec.items() if k != "type"}
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise ValueError(
            f"layer {kind!r} takes no argument {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(**arguments)


#: LeNet-5 (LeCun et al., 1998) for 28 x 28 images, as it is usually adapted: "same"
#: padding in the first convolution instead of 32 x 32 inputs, ReLU and max pooling
#: instead of scaled tanh and trainable sub-sampling, and no RBF output layer
LENET5 = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "filters": 6, "kernel": 5, "padding": "same", "activation": "relu"},
        {"type": "max_pool2d", "pool": 2},
        {"type": "conv2d", "filters": 16, "kernel": 5, "activation": "relu"},
        {"type": "max_pool2d", "pool": 2},
        {"type": "flatten"},
        {"type": "dense", "size": 120, "activation": "relu"},
        {"type": "dense", "size": 84, "activation": "relu"},
    ],
}

#: every image layer once, small enough for ``nodenet gradcheck --arch every-layer`` to
#: check every parameter: strides, both paddings, odd sizes, batch norm on a
#: convolution, overlapping pooling windows, dropout
EVERY_LAYER = {
    "input_shape": [2, 9, 8],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel": 3, "stride": 2, "padding": "same",
         "activation": "tanh", "batch_norm": True},
        {"type": "max_pool2d", "pool": 2, "stride": 1},
        {"type": "up_sampling2d", "size": [2, 1]},
        {"type": "conv2d_transpose", "filters": 2, "kernel": [3, 2], "stride": 2,
         "activation": "sigmoid", "dropout": 0.2},
        {"type": "avg_pool2d", "pool": 3, "stride": 2},
        {"type": "conv2d", "filters": 2, "kernel": 2, "activation": "tanh"},
        {"type": "flatten"},
        {"type": "dense", "size": 5, "activation": "tanh"},
    ],
}  # fmt: skip

#: the architectures known by name
NAMED = {"lenet5": LENET5, "every-layer": EVERY_LAYER}


def read_architecture(spec: str | os.PathLike) -> tuple[tuple[int, ...], list[Layer]]:
    """``(input_shape, hidden layers)`` of a named architecture (a key of
    :data:`NAMED`) or of a JSON file (see the module docstring)."""
    if str(spec) in NAMED:
        description = NAMED[str(spec)]
    else:
        path = Path(spec)
        try:
            description = json.loads(path.read_text())
        except OSError as exc:
            raise ValueError(
                f"--arch {spec}: not a known architecture ({', '.join(NAMED)}) "
                f"and not a readable file ({exc.strerror})"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"--arch {spec}: not valid JSON ({exc})") from exc
    if not isinstance(description, dict) or not {"input_shape", "layers"} <= set(description):
        raise ValueError(f"--arch {spec}: expected a JSON object with input_shape and layers")
    shape = description["input_shape"]
    if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
        raise ValueError(f"--arch {spec}: input_shape must be a list of ints, got {shape!r}")
    if not isinstance(description["layers"], list):
        raise ValueError(f"--arch {spec}: layers must be a list of layer objects")
    return tuple(shape), [layer_from_config(layer) for layer in description["layers"]]
