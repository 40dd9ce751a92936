"""Gradients beyond the loss: ``model.backward`` from a given output gradient and
``model.input_gradient``, checked by finite differences (float64), alone and with one
model feeding another."""

import numpy as np
import pytest

from tests.conftest import mlp


def _central(f, array: np.ndarray, index, eps: float = 1e-6) -> float:
    saved = array[index]
    array[index] = saved + eps
    plus = f()
    array[index] = saved - eps
    minus = f()
    array[index] = saved
    return (plus - minus) / (2 * eps)


@pytest.mark.parametrize(
    "hidden, output, loss",
    [("tanh", "softmax", "cross_entropy"), ("relu", "sigmoid", "squared_error")],
)
def test_input_gradient_matches_finite_differences(hidden, output, loss):
    model = mlp([5, 7, 3], hidden=hidden, output=output, loss=loss, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5))
    y = rng.integers(0, 3, size=4) if loss == "cross_entropy" else rng.uniform(size=(4, 3))
    dx = model.input_gradient(x, y)
    assert dx.shape == x.shape

    def total_loss():
        return model.gradient(x, y)[0]

    for index in [(0, 0), (1, 3), (3, 4), (2, 2)]:
        assert dx[index] == pytest.approx(_central(total_loss, x, index), rel=1e-6, abs=1e-9)


def test_backward_from_a_given_output_gradient_matches_finite_differences():
    model = mlp([4, 6, 3], hidden="tanh", output="softmax", dtype=np.float64, seed=2)
    rng = np.random.default_rng(1)
    x, g = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))

    def outer():  # a loss outside the model: sum(g * outputs)
        return float((g * model.forward(x)).sum())

    model.forward(x)
    dW, db, dx = model.backward(g)
    for index in [(0, 0), (2, 1), (4, 3)]:
        assert dx[index] == pytest.approx(_central(outer, x, index), rel=1e-6, abs=1e-9)
    for i in [0, 5, 11, 23, 30]:
        assert dW[i] == pytest.approx(_central(outer, model.weights, i), rel=1e-6, abs=1e-9)
    for i in [0, 4, 8]:
        assert db[i] == pytest.approx(_central(outer, model.biases, i), rel=1e-6, abs=1e-9)
    with pytest.raises(ValueError, match="shape of the last forward pass"):
        model.backward(g[:2])


def test_gradients_flow_back_through_two_models():
    """An encoder feeds a decoder (as in an autoencoder or a GAN): the decoder's input
    gradient, fed to the encoder's backward, gives the encoder's parameter gradients of
    the composite loss, with no autograd."""
    encoder = mlp(
        [6, 5, 3], hidden="tanh", output="identity", loss="squared_error", dtype=np.float64
    )
    decoder = mlp(
        [3, 5, 6], hidden="tanh", output="identity", loss="squared_error", dtype=np.float64, seed=3
    )
    x = np.random.default_rng(2).normal(size=(4, 6))

    def composite():
        return decoder.gradient(encoder.forward(x), x)[0]

    code = encoder.forward(x)
    d_code = decoder.input_gradient(code, x)
    dW, db, _ = encoder.backward(d_code)
    for i in [0, 7, 19, 29, 40]:
        assert dW[i] == pytest.approx(_central(composite, encoder.weights, i), rel=1e-6, abs=1e-9)
    for i in [0, 6]:
        assert db[i] == pytest.approx(_central(composite, encoder.biases, i), rel=1e-6, abs=1e-9)
