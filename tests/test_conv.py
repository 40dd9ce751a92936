"""Convolution, pooling, up-sampling, transposed convolution and Flatten: gradients
against finite differences (float64), the fast path against the readable node view,
output shapes, the compiled kernels against the NumPy path, and the flat storage
(views, files, checkpoints)."""

import numpy as np
import pytest

from nodenet import (
    AvgPool2D,
    Conv2D,
    Conv2DTranspose,
    Flatten,
    Layer,
    MaxPool2D,
    Model,
    UpSampling2D,
    io,
)
from nodenet import kernels
from nodenet.architectures import NAMED, layer_from_config, read_architecture
from nodenet.dropout import TrainingPass
from nodenet.gradcheck import check_gradients

RNG = np.random.default_rng(0)


def conv_model(shape, layers, outputs=4, dtype=np.float64, seed=1, loss="cross_entropy"):
    output = Layer(outputs, "softmax" if loss == "cross_entropy" else "identity")
    return Model(shape, loss, [*layers, output]).construct(seed=seed, dtype=dtype)


CASES = {
    "conv-3x3": ((2, 7, 6), lambda: [Conv2D(3, 3, activation="tanh"), Flatten()]),
    "conv-stride2-same-2x3": (
        (2, 7, 6),
        lambda: [Conv2D(3, (2, 3), stride=2, padding="same", activation="tanh"), Flatten()],
    ),
    "conv-stack-odd": (
        (2, 9, 7),
        lambda: [
            Conv2D(3, 3, stride=2, activation="tanh"),
            Conv2D(2, 3, padding="same", activation="sigmoid"),
            Flatten(),
        ],
    ),
    "conv-batch-norm": (
        (2, 7, 6),
        lambda: [Conv2D(3, 3, activation="tanh", batch_norm=True), Flatten()],
    ),
    "conv-dropout-max-pool": (
        (2, 7, 6),
        lambda: [Conv2D(3, 3, activation="tanh", dropout=0.3), MaxPool2D(2), Flatten()],
    ),
    "avg-pool-overlapping": (
        (2, 7, 6),
        lambda: [Conv2D(3, 3, activation="tanh"), AvgPool2D(2, stride=1), Flatten()],
    ),
    "max-pool-stride-3": (
        (1, 9, 8),
        lambda: [Conv2D(2, 2, activation="tanh"), MaxPool2D((3, 2), stride=(2, 3)), Flatten()],
    ),
    "up-sampling": (
        (2, 5, 4),
        lambda: [
            Conv2D(3, 3, activation="tanh"),
            UpSampling2D((2, 3)),
            Conv2D(2, 3, stride=2, activation="tanh"),
            Flatten(),
        ],
    ),
    "transposed-valid": ((2, 5, 4), lambda: [Conv2DTranspose(3, 3, activation="tanh"), Flatten()]),
    "transposed-stride2-same": (
        (2, 5, 4),
        lambda: [
            Conv2D(2, 2, activation="tanh"),
            Conv2DTranspose(3, 3, stride=2, padding="same", activation="tanh"),
            Flatten(),
        ],
    ),
    "transposed-batch-norm-3x2": (
        (2, 5, 4),
        lambda: [
            Conv2DTranspose(3, (3, 2), stride=(2, 1), activation="tanh", batch_norm=True),
            Flatten(),
        ],
    ),
    "dense-after-flatten-dropout": (
        (1, 6, 6),
        lambda: [Conv2D(2, 3), Flatten(dropout=0.2), Layer(5, "tanh", dropout=0.2)],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_equal_finite_differences(case):
    shape, layers = CASES[case]
    model = conv_model(shape, layers())
    x = RNG.normal(size=(5, int(np.prod(shape))))
    y = RNG.integers(0, 4, size=5)
    training = TrainingPass(np.arange(5), seed=3, step=1)  # dropout masks, batch statistics
    checks = check_gradients(model, x, y, max_per_layer=60, training=training)
    for check in checks:
        assert check.max_error < 1e-6, (case, check)
    assert {c.layer for c in checks} == set(range(1, model.depth + 1))


def test_the_input_gradient_through_convolutions_equals_finite_differences():
    shape, layers = (2, 7, 6), [
        Conv2D(3, 3, stride=2, padding="same", activation="tanh"),
        MaxPool2D(2),
        UpSampling2D(2),
        Conv2DTranspose(2, 3, activation="sigmoid"),
        Flatten(),
    ]
    model = conv_model(shape, layers)
    x, y = RNG.normal(size=(3, 84)), np.array([0, 3, 1])
    analytic = model.input_gradient(x, y)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        for sign in (1, -1):
            shifted = x.copy()
            shifted[index] += sign * 1e-6
            numeric[index] += sign * model.evaluate(shifted, y)["loss"] * 3 / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-9)
    assert np.abs(analytic).max() > 1e-3  # the gradient is not trivially zero


def test_max_pool_ties_send_the_whole_gradient_to_the_first_maximum():
    """A window of equal entries has no derivative; the gradient goes to its first entry
    (row-major), as PyTorch does, so it is neither lost nor counted twice, and matches the
    one-sided derivative of that entry."""
    model = Model((1, 4, 4), "squared_error", [MaxPool2D(2), Flatten()]).construct(
        dtype=np.float64
    )
    x = np.zeros((1, 16))
    x[0, [0, 1, 4, 5]] = 2.0  # first window: four tied maxima
    x[0, [2, 3, 6, 7]] = [1, 3, 3, 0]  # second window: a tie at offsets 1 and 2
    x[0, [8, 9, 12, 13]] = [5, 1, 1, 1]
    g = np.array([[1.0, 2.0, 3.0, 4.0]])
    model(x)
    _, _, dx = model.backward(g)
    expected = np.zeros(16)
    expected[[0, 3, 8]] = [1.0, 2.0, 3.0]
    expected[10] = 4.0  # last window all zero: its first entry
    np.testing.assert_array_equal(dx[0], expected)
    # one-sided: raising the chosen entry raises the output by as much
    for k, out in ((0, 0), (3, 1)):
        raised = x.copy()
        raised[0, k] += 1e-3
        assert model(raised)[0, out] - model(x)[0, out] == pytest.approx(1e-3)


@pytest.mark.parametrize("use_kernels", [True, False], ids=["numba", "numpy"])
def test_the_compiled_kernels_equal_the_numpy_path(monkeypatch, use_kernels):
    """Max pooling (with ties) and col2im give the same numbers either way."""
    shape, layers = CASES["transposed-stride2-same"][0], [
        Conv2D(3, 3, padding="same", activation="relu"),
        MaxPool2D(2, stride=1),
        Conv2DTranspose(2, 3, stride=2),
        Flatten(),
    ]
    model = conv_model(shape, layers)
    x = np.round(RNG.normal(size=(4, 40)), 1)  # rounded: ties in the pooling windows
    y = RNG.integers(0, 4, size=4)
    monkeypatch.setattr(kernels, "available", use_kernels)
    loss, dW, db = model.gradient(x, y)
    dx = model.input_gradient(x, y)
    monkeypatch.setattr(kernels, "available", not use_kernels)
    loss_2, dW_2, db_2 = model.gradient(x, y)
    np.testing.assert_allclose(dW, dW_2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, db_2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, model.input_gradient(x, y), rtol=1e-12, atol=1e-14)
    assert loss == pytest.approx(loss_2, rel=1e-14)


def test_every_unit_of_every_image_layer_equals_its_readable_node():
    layers = [
        Conv2D(3, 3, stride=2, padding="same", activation="tanh"),
        Conv2DTranspose(2, 3, stride=2, padding="same"),
        MaxPool2D(2),
        AvgPool2D((2, 1)),
        UpSampling2D((1, 2)),
        Conv2DTranspose(2, (2, 3)),
        Flatten(),
    ]
    model = conv_model((2, 7, 6), layers)
    model(RNG.normal(size=(3, 84)))
    for layer in model.layers[1:-2]:
        prev_a = model.layers[layer.index - 1].a
        assert len(layer.nodes) == layer.size == int(np.prod(layer.shape))
        for node in layer.nodes:
            np.testing.assert_allclose(node.calculate(prev_a), node.z, rtol=0, atol=1e-12)
    node = model.layers[1].nodes[5]
    assert node.position == (0, 1, 2)  # (y, x, filter): channels-last order
    np.testing.assert_array_equal(node.weights_in, model.layers[1].kernels[2])


def test_a_convolution_with_known_kernels_gives_known_outputs():
    """A hand-computed case: a 3x3 image, a 2x2 kernel of ones and one picking the
    top-left entry, stride 1, no padding; and its transpose."""
    model = Model((1, 3, 3), "squared_error", [Conv2D(2, 2, activation="identity"), Flatten()])
    model.construct(dtype=np.float64)
    conv = model.layers[1]
    conv.kernels[0] = 1.0
    conv.kernels[1] = [[1.0, 0.0], [0.0, 0.0]]
    conv.b[:] = [0.5, 0.0]
    image = np.arange(9.0).reshape(1, 9)  # [[0 1 2] [3 4 5] [6 7 8]]
    out = model(image).reshape(2, 2, 2)  # channels first after Flatten
    np.testing.assert_array_equal(out[0], [[8.5, 12.5], [20.5, 24.5]])
    np.testing.assert_array_equal(out[1], [[0, 1], [3, 4]])
    up = Model((1, 2, 2), "squared_error", [Conv2DTranspose(1, 2, 2, activation="identity"),
                                           Flatten()]).construct(dtype=np.float64)  # fmt: skip
    up.layers[1].kernels[0, 0] = [[1.0, 2.0], [3.0, 4.0]]
    up.layers[1].b[:] = 0
    out = up(np.array([[1.0, 10.0, 100.0, 1000.0]])).reshape(4, 4)
    np.testing.assert_array_equal(
        out, [[1, 2, 10, 20], [3, 4, 30, 40], [100, 200, 1000, 2000], [300, 400, 3000, 4000]]
    )


@pytest.mark.parametrize(
    "layer, shape",
    [
        (Conv2D(4, 5), (4, 24, 24)),
        (Conv2D(4, 5, padding="same"), (4, 28, 28)),
        (Conv2D(4, 3, stride=2), (4, 13, 13)),
        (Conv2D(4, 3, stride=2, padding="same"), (4, 14, 14)),
        (Conv2D(4, (1, 5), stride=(1, 3)), (4, 28, 8)),
        (MaxPool2D(2), (1, 14, 14)),
        (MaxPool2D(3), (1, 9, 9)),
        (AvgPool2D(3, stride=1), (1, 26, 26)),
        (UpSampling2D(2), (1, 56, 56)),
        (Conv2DTranspose(3, 3), (3, 30, 30)),
        (Conv2DTranspose(3, 3, stride=2), (3, 57, 57)),
        (Conv2DTranspose(3, 4, stride=2, padding="same"), (3, 56, 56)),
    ],
    ids=repr,
)
def test_output_shapes_follow_keras(layer, shape):
    model = Model((1, 28, 28), "squared_error", [layer, Flatten()])
    assert layer.shape == shape
    assert model.layers[-1].shape == (int(np.prod(shape)),)


@pytest.mark.parametrize(
    "shape, layers, message",
    [
        ((1, 8, 8), [Conv2D(2, 3), Layer(3)], "Flatten"),
        (64, [Conv2D(2, 3), Flatten()], "(channels, height, width)"),
        ((1, 8, 8), [Conv2D(2, 3)], "end the model with Flatten"),
        ((1, 4, 4), [Conv2D(2, 5), Flatten()], "does not fit"),
        ((1, 4, 4), [MaxPool2D(5), Flatten()], "does not fit"),
        ((1, 4, 4), [Conv2DTranspose(2, 2, stride=3, padding="same"), Flatten()], "at least"),
        ((1, 8), [Flatten()], "input shape"),
    ],
)
def test_architectures_that_cannot_work_are_refused_with_the_reason(shape, layers, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Model(shape, "squared_error", layers)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Conv2D(2, 0), "kernel"),
        (lambda: Conv2D(2, 3, stride=(1, 2, 3)), "stride"),
        (lambda: Conv2D(2, 3, padding="full"), "padding"),
        (lambda: MaxPool2D(True), "pool"),
        (lambda: layer_from_config({"type": "conv3d"}), "unknown layer type"),
        (lambda: layer_from_config({"type": "conv2d", "filters": 2, "kernal": 3}), "kernal"),
    ],
)
def test_bad_layer_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def lenet(dtype=np.float32, batch_norm=False):
    shape, hidden = read_architecture("lenet5")
    if batch_norm:
        hidden[0] = Conv2D(6, 5, padding="same", batch_norm=True)
    return Model(shape, "cross_entropy", [*hidden, Layer(10, "softmax")]).construct(dtype=dtype)


def test_kernels_and_biases_are_views_of_the_one_flat_array():
    model = lenet(batch_norm=True)
    conv = model.layers[1]
    assert np.shares_memory(conv.W, model.weights) and np.shares_memory(conv.kernels, model.weights)
    assert conv.kernels.shape == (6, 1, 5, 5) and conv.b.shape == (6,)
    assert conv.gamma.shape == (6,) and conv.running.shape == (2, 6)
    start = model.layout.weights[3].start
    assert model.layers[3].kernels.shape == (16, 6, 5, 5)
    model.weights[start] = 7.0  # filter 0, channel 0, offset (0, 0)
    assert model.layers[3].kernels[0, 0, 0, 0] == 7.0
    assert model.parameter_count == 61_706 + 6  # LeNet-5 and a batch-norm scale per filter
    for l in (2, 4, 5):  # pooling and Flatten own nothing
        assert model.layout.weights[l].start == model.layout.weights[l].stop


def test_a_conv_model_survives_a_file_and_a_checkpoint(tmp_path, mnist_small):
    from nodenet import Checkpoint, fit, load_checkpoint

    x, y = mnist_small
    model = lenet(batch_norm=True)
    fit(model, x[:512], y[:512], epochs=1, batch_size=128, validation=0.0)
    path = model.save(tmp_path / "lenet")
    loaded = io.load(path)
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(loaded.predict_proba(x[:50]), model.predict_proba(x[:50]))
    # a checkpoint resumes into the same conv model
    model_2 = lenet(batch_norm=True)
    callbacks = [Checkpoint(tmp_path / "run")]
    fit(model_2, x[:512], y[:512], epochs=1, batch_size=128, validation=0.0, callbacks=callbacks)
    state = load_checkpoint(tmp_path / "run")
    np.testing.assert_array_equal(state.model.weights, model_2.weights)
    assert repr(state.model) == repr(model_2)


def test_named_architectures_build():
    for name in NAMED:
        shape, hidden = read_architecture(name)
        Model(shape, "cross_entropy", [*hidden, Layer(10, "softmax")])
