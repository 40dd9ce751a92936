"""The distance row: one sample at a time, one node at a time.

Forward through ``Node.calculate`` (a Python loop over each node's inputs), backward with
per-node loops over the weights - the way a node-object implementation computes it.
The gradient is checked against ``Model.gradient`` before it is timed.
"""

from __future__ import annotations

import time

import numpy as np

from nodenet.graph import Model


def node_gradient(model: Model, x_row: np.ndarray, t_row: np.ndarray):
    """Flat ``(dW, db)`` of one sample (784,) with one-hot target (10,), node by node.
    Hidden layers must be ReLU and the output Softmax + CrossEntropy."""
    a = [x_row]
    z = [None]
    for layer in model.layers[1:]:
        z_l = np.array([node.calculate(a[-1][None, :])[0] for node in layer.nodes])
        z.append(z_l)
        a.append(layer.activation.forward(z_l[None, :])[0])
    dW, db = np.zeros_like(model.weights), np.zeros_like(model.biases)
    delta_next = None
    for l in range(model.depth, 0, -1):
        layer, prev_a = model.layers[l], a[l - 1]
        W_next = model.layers[l + 1].W if l < model.depth else None
        delta = np.empty(layer.size)
        dW_l, db_l = model.layer_weights(dW, l), model.layer_biases(db, l)
        for j in range(layer.size):
            if l == model.depth:
                delta[j] = a[l][j] - t_row[j]  # softmax + cross-entropy
            else:
                dloss_da = 0.0
                for k in range(len(delta_next)):
                    dloss_da += delta_next[k] * W_next[k, j]
                delta[j] = dloss_da if z[l][j] > 0 else 0.0
            for i in range(layer.W.shape[1]):
                dW_l[j, i] = delta[j] * prev_a[i]
            db_l[j] = delta[j]
        delta_next = delta
    return dW, db


def seconds_per_sample(model: Model, x: np.ndarray, y: np.ndarray, samples: int = 3) -> float:
    """Median seconds for one sample's forward + backward, node by node."""
    t = model.targets(y[:samples])
    _, dW_ref, db_ref = model.gradient(x[:1], y[:1])
    dW, db = node_gradient(model, x[0], t[0])
    if not (np.allclose(dW, dW_ref, atol=1e-4) and np.allclose(db, db_ref, atol=1e-4)):
        raise AssertionError("the node-by-node gradient differs from Model.gradient")
    times = []
    for i in range(samples):
        start = time.perf_counter()
        node_gradient(model, x[i], t[i])
        times.append(time.perf_counter() - start)
    return float(np.median(times))
