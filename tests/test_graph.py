"""The node graph over flat arrays: start-index tables, views, node-by-node forward."""

import itertools

import numpy as np
import pytest

from nodenet import CrossEntropy, Layer, Model, ReLU, Sigmoid, Softmax, Tanh
from tests.conftest import mlp


@pytest.mark.parametrize(
    "sizes, weight_start, bias_start, count",
    [
        ([784, 128, 64, 10], [0, 0, 100352, 108544], [0, 0, 128, 192], 109386),
        ([784, 512, 200, 50, 10], [0, 0, 401408, 503808, 513808], [0, 0, 512, 712, 762], 515080),
        ([2, 2, 1], [0, 0, 4], [0, 0, 2], 9),
        ([3, 1], [0, 0], [0, 0], 4),
    ],
)
def test_start_index_tables_and_parameter_count(sizes, weight_start, bias_start, count):
    model = mlp(sizes)
    assert model.weight_start == weight_start
    assert model.bias_start == bias_start
    assert model.parameter_count == count
    assert model.weights.size + model.biases.size == count
    assert model.weights.dtype == np.float32
    for l in range(1, len(sizes)):
        assert model.layers[l].W.shape == (sizes[l], sizes[l - 1])
        assert model.layers[l].b.shape == (sizes[l],)


def test_layer_parameters_are_views_into_the_flat_arrays():
    model = mlp([5, 4, 3], dtype=np.float64)
    layer = model.layers[2]
    assert np.shares_memory(layer.W, model.weights) and np.shares_memory(layer.b, model.biases)
    # writing the flat array changes the view ...
    start = model.weight_start[2]
    model.weights[start + 1 * 4 + 2] = 7.5  # row 1 (node 1), column 2
    assert layer.W[1, 2] == 7.5
    model.biases[model.bias_start[2] + 2] = -3.0
    assert layer.b[2] == -3.0
    # ... and writing the view changes the flat array
    layer.W[2, 3] = 1.25
    assert model.weights[start + 2 * 4 + 3] == 1.25
    model.weights *= 2  # an in-place update of the flat array reaches every layer
    assert layer.W[1, 2] == 15.0
    node = layer.nodes[1]
    assert np.shares_memory(node.weights_in, model.weights)
    assert np.shares_memory(node.bias, model.biases)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu", "identity"])
def test_every_node_calculate_equals_the_vectorised_layer(activation):
    model = mlp([6, 5, 4, 3], hidden=activation, dtype=np.float64, seed=3)
    x = np.random.default_rng(1).normal(size=(7, 6))
    model.forward(x)
    for l in range(1, model.depth + 1):
        prev_a = model.layers[l - 1].a
        for node in model.layers[l].nodes:
            z_j = node.calculate(prev_a)
            np.testing.assert_allclose(z_j, node.z, rtol=1e-12, atol=1e-12)
            if model.layers[l].activation.elementwise:  # a_j = f(z_j) node by node
                a_j = model.layers[l].activation.forward(z_j[:, None])[:, 0]
                np.testing.assert_allclose(a_j, node.a, rtol=1e-12, atol=1e-12)


def test_node_views_follow_the_layer():
    model = mlp([3, 2, 2], dtype=np.float64)
    model.forward(np.ones((4, 3)))
    node = model.layers[1].nodes[0]
    assert node.a.shape == (4,) and node.z.shape == (4,)
    np.testing.assert_array_equal(node.a, model.layers[1].a[:, 0])
    np.testing.assert_array_equal(node.weights_in, model.layers[1].W[0])


def test_forward_output_is_probabilities_and_a_copy():
    model = mlp([10, 8, 4], seed=1)
    x = np.random.default_rng(0).normal(size=(5, 10)).astype(np.float32)
    out = model.forward(x)
    assert out.shape == (5, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    again = model.forward(x * 2)
    assert not np.allclose(out, again)  # the first result was not overwritten


def test_float64_on_request_and_init_choices():
    he = mlp([100, 50, 10], dtype=np.float64, seed=0)
    assert he.weights.dtype == np.float64 and he.biases.dtype == np.float64
    assert np.all(he.biases == 0)
    std = he.layers[1].W.std()
    assert abs(std - np.sqrt(2 / 100)) < 0.01
    xav = Model(100, "cross_entropy", [Layer(50, Tanh()), Layer(10, Softmax())])
    xav.construct(seed=0, init="xavier")
    limit = np.sqrt(6 / 150)
    assert np.abs(xav.layers[1].W).max() <= limit
    assert abs(xav.layers[1].W.std() - limit / np.sqrt(3)) < 0.01
    same = mlp([100, 50, 10], dtype=np.float64, seed=0)
    np.testing.assert_array_equal(he.weights, same.weights)


def test_bad_input_raises_value_error_naming_the_problem():
    model = Model(784, CrossEntropy(), [Layer(16, ReLU()), Layer(10, Softmax())]).construct()
    with pytest.raises(ValueError, match=r"shape \(n, 784\)"):
        model.forward(np.zeros((2, 783)))
    x = np.zeros((3, 784))
    x[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.forward(x)
    with pytest.raises(ValueError, match=r"outside the class range 0\.\.9"):
        model.gradient(np.zeros((2, 784)), np.array([3, 10]))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Layer(3, "swish")
    with pytest.raises(ValueError, match="layer size"):
        Layer(0, "relu")
    with pytest.raises(ValueError, match="unknown loss"):
        Model(3, "hinge", [Layer(2, "softmax")])
    with pytest.raises(ValueError, match="got 2 input rows but 3 targets"):
        model.gradient(np.zeros((2, 784)), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="unknown init"):
        Model(3, "cross_entropy", [Layer(2, Sigmoid())]).construct(init="zeros")


def test_repr_names_the_architecture(mnist_model):
    assert repr(mnist_model) == (
        "Model(784, CrossEntropy(), [Layer(128, ReLU()), Layer(64, ReLU()), Layer(10, Softmax())])"
    )


def test_lecun_uniform_draws_weights_and_biases_within_one_over_sqrt_fan_in():
    model = Model(400, "cross_entropy", [Layer(300, ReLU()), Layer(10, Softmax())])
    model.construct(seed=0, init="lecun")
    limit = 1 / np.sqrt(400)
    layer = model.layers[1]
    assert np.abs(layer.W).max() <= limit and np.abs(layer.b).max() <= limit
    assert abs(layer.W.std() - limit / np.sqrt(3)) < 0.002  # uniform: std = limit / sqrt(3)
    assert layer.b.std() > limit / 3  # biases are drawn too, not zero


def test_the_layout_table_is_what_the_views_and_gradients_use():
    model = mlp([5, 4, 3], dtype=np.float64)
    layout = model.layout
    assert layout.weights[2].start == model.weight_start[2] == 20
    assert (layout.weights[2].stop, layout.weights[2].shape) == (32, (3, 4))
    assert (layout.biases[2].start, layout.biases[2].stop, layout.biases[2].shape) == (4, 7, (3,))
    assert layout.size == model.parameter_count == 20 + 4 + 12 + 3
    for l in (1, 2):
        assert np.shares_memory(model.layers[l].W, layout.weights[l].view(model.weights))
        np.testing.assert_array_equal(model.layers[l].W, layout.weights[l].view(model.weights))
    _, dW, _ = model.gradient(np.ones((2, 5)), np.array([0, 2]))
    np.testing.assert_array_equal(model.layer_weights(dW, 2), layout.weights[2].view(dW))
    # a range of the concatenation [weights, biases], as a worker's share of a step
    assert list(layout.split(30, 34)) == [("weights", 30, 32), ("biases", 0, 2)]
    assert list(layout.split(0, 3)) == [("weights", 0, 3)]
    ranges = layout.ranges(3)
    assert ranges[0][0] == 0 and ranges[-1][1] == layout.size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_the_input_layer_has_no_nodes_or_parameters():
    model = mlp([5, 4, 3])
    assert model.layers[0].nodes == [] and model.layers[0].W is None
    assert len(model.layers[1].nodes) == 4


def test_a_huge_layer_costs_nothing_until_built_and_is_refused_past_the_memory():
    import time
    import tracemalloc

    from nodenet.graph import available_memory

    tracemalloc.start()
    started = time.perf_counter()
    model = Model(784, "cross_entropy", [Layer(100_000_000, "relu"), Layer(10, "softmax")])
    assert len(model.layers[1].nodes) == 100_000_000  # made when read, not up front
    assert model.layers[1].nodes[-1].index == 99_999_999
    if available_memory() is not None:
        with pytest.raises(MemoryError, match=r"parameters need \d+\.\d GiB, and this machine has"):
            model.construct()
    assert tracemalloc.get_traced_memory()[1] < 10 * 2**20
    tracemalloc.stop()
    assert time.perf_counter() - started < 2
