"""nodenet: a node-graph multi-layer perceptron with cached recursive backpropagation.

>>> from nodenet import Model, Layer, ReLU, Softmax, CrossEntropy
>>> model = Model(784, CrossEntropy(), [Layer(128, ReLU()), Layer(10, Softmax())])
>>> model.construct(seed=0).parameter_count
101770
"""

from .activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .data import DataError, Normaliser
from .graph import Layer, Model, Node
from .losses import BinaryCrossEntropy, CrossEntropy, SquaredError
from .optimizers import SGD, Adagrad, Adam, AdamW, Momentum, Nesterov, RMSProp
from .training import Callback, EarlyStopping, History, InProcess, StepDecay, fit

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "BinaryCrossEntropy",
    "Callback",
    "CrossEntropy",
    "DataError",
    "EarlyStopping",
    "History",
    "Identity",
    "InProcess",
    "Layer",
    "LeakyReLU",
    "Model",
    "Momentum",
    "Nesterov",
    "Node",
    "Normaliser",
    "RMSProp",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SquaredError",
    "StepDecay",
    "Tanh",
    "fit",
]
