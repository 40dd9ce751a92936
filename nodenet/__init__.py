"""nodenet: a node-graph multi-layer perceptron with cached recursive backpropagation.

>>> from nodenet import Model, Layer, ReLU, Softmax, CrossEntropy
>>> model = Model(784, CrossEntropy(), [Layer(128, ReLU()), Layer(10, Softmax())])
>>> model.construct(seed=0).parameter_count
101770
"""

from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .backend import Backend, InProcess, available_backends, get_backend, register_backend
from .callbacks import (
    Callback,
    DivergenceError,
    EarlyStopping,
    EpochLines,
    ProgressBar,
    StepDecay,
    TerminateOnNaN,
)
from .checkpoint import Checkpoint, load_checkpoint
from .conv import Conv2D, Conv2DTranspose
from .data import DataError, Normaliser, load_mnist
from .flatten import Flatten
from .graph import Model
from .history import History
from .io import load
from .layer import Layer
from .losses import BinaryCrossEntropy, CrossEntropy, SquaredError
from .node import Node
from .optimizers import SGD, Adagrad, Adam, AdamW, Momentum, Nesterov, RMSProp
from .pooling import AvgPool2D, MaxPool2D, UpSampling2D
from .training import fit

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "AvgPool2D",
    "Backend",
    "BinaryCrossEntropy",
    "Callback",
    "Checkpoint",
    "Conv2D",
    "Conv2DTranspose",
    "CrossEntropy",
    "DataError",
    "DivergenceError",
    "EarlyStopping",
    "EpochLines",
    "Flatten",
    "History",
    "Identity",
    "InProcess",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Model",
    "Momentum",
    "Nesterov",
    "Node",
    "Normaliser",
    "ProgressBar",
    "RMSProp",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SquaredError",
    "StepDecay",
    "Tanh",
    "TerminateOnNaN",
    "UpSampling2D",
    "available_backends",
    "fit",
    "get_backend",
    "load",
    "load_checkpoint",
    "load_mnist",
    "register_backend",
]
