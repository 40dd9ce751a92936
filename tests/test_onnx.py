"""ONNX export: onnxruntime gives the probabilities of ``model.predict_proba`` (within
1e-5, the same argmax for every image of the MNIST test set), for every activation, batch
norm, dropout, the normaliser and both dtypes; ``nodenet convert`` writes the file."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="pip install 'nodenet[onnx]' to run these")

from nodenet import Layer, Model, fit, io  # noqa: E402
from nodenet.data import Normaliser  # noqa: E402
from nodenet.onnx import save_onnx, to_onnx  # noqa: E402

NODENET = str(Path(sys.executable).parent / "nodenet")


def run_onnx(proto_or_path, x: np.ndarray) -> np.ndarray:
    source = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


@pytest.fixture(scope="module")
def mnist_model(mnist):
    train, _ = mnist
    normaliser = Normaliser.fit("zscore", train.x[:20000], std_floor="pooled")
    layers = [Layer(64, "relu", dropout=0.1, batch_norm=True), Layer(32, "tanh")]
    model = Model(784, "cross_entropy", [*layers, Layer(10, "softmax")]).construct(seed=0)
    model.normaliser = normaliser
    fit(model, train.x[:20000], train.y[:20000], epochs=1, validation=0.0)
    return model


def test_onnxruntime_equals_predict_proba_on_the_mnist_test_set(mnist, mnist_model, tmp_path):
    _, test = mnist
    path = save_onnx(mnist_model, tmp_path / "model.onnx")
    got = run_onnx(str(path), test.x.astype(np.float32))  # raw pixels: the graph normalises
    expected = mnist_model.predict_proba(test.x)
    assert got.shape == (10000, 10)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert (expected.argmax(axis=1) == test.y).mean() > 0.9  # a trained model, not noise


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("hidden", "output", "loss"),
    [
        (["sigmoid", {"name": "leaky_relu", "alpha": 0.2}], "softmax", "cross_entropy"),
        (["tanh", "relu"], "identity", "squared_error"),
        (["relu", "identity"], "sigmoid", "binary_cross_entropy"),
    ],
)
def test_every_activation_and_dtype(hidden, output, loss, dtype):
    rng = np.random.default_rng(0)
    layers = [Layer(9, a, batch_norm=k == 0) for k, a in enumerate(hidden)]
    model = Model(7, loss, [*layers, Layer(3, output)]).construct(seed=1, dtype=dtype)
    model.weights += rng.normal(scale=0.1, size=model.weights.shape).astype(dtype)
    model.running[...] = rng.uniform(0.5, 2.0, size=model.running.shape)
    x = rng.normal(size=(50, 7)).astype(dtype)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(run_onnx(to_onnx(model), x), model.predict_proba(x), atol=tolerance)


def test_the_convert_command(mnist_model, tmp_path):
    io.save(mnist_model, tmp_path / "run" / "model")
    target = tmp_path / "served" / "model.onnx"
    command = [NODENET, "convert", "--model", str(tmp_path / "run"), "--onnx", str(target)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(2).integers(0, 256, size=(20, 784)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(str(target), x), mnist_model.predict_proba(x), atol=1e-5)
    missing = [NODENET, "convert", "--model", str(tmp_path / "none"), "--onnx", str(target)]
    result = subprocess.run(missing, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "none" in result.stderr


def test_a_conv_model_in_onnxruntime_equals_predict_proba():
    """Every image layer, with batch norm, strides, both paddings, a normaliser and an
    image input, against onnxruntime within 1e-5 (float32: onnxruntime's CPU provider
    has no float64 Conv)."""
    dtype = np.float32
    from nodenet import AvgPool2D, Conv2D, Conv2DTranspose, Flatten, MaxPool2D, UpSampling2D

    rng = np.random.default_rng(0)
    layers = [
        Conv2D(4, 3, padding="same", activation="relu", batch_norm=True),
        MaxPool2D(2),
        Conv2D(5, (3, 2), stride=2, activation="tanh"),
        UpSampling2D((2, 3)),
        Conv2DTranspose(3, 3, stride=2, padding="same", activation="sigmoid"),
        AvgPool2D(2, stride=1),
        Conv2DTranspose(2, (2, 3), activation="leaky_relu", batch_norm=True),
        Flatten(dropout=0.1),
        Layer(6, "softmax"),
    ]
    model = Model((3, 10, 9), "cross_entropy", layers).construct(seed=1, dtype=dtype)
    x = rng.normal(size=(64, 270)) * 3 + 1
    model.normaliser = Normaliser.fit("zscore", x)
    fit(model, x, rng.integers(0, 6, 64), epochs=2, batch_size=16, validation=0.0)
    expected = model.predict_proba(x)
    got = run_onnx(to_onnx(model), x.astype(dtype))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert (got.argmax(1) == expected.argmax(1)).all()
