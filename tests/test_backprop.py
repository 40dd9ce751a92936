"""Cached recursive backprop: memo counts, cache clearing, gradients against finite
differences, and the numerics of Softmax / CrossEntropy."""

import numpy as np
import pytest

from nodenet import CrossEntropy, Softmax
from nodenet.activations import get_activation
from nodenet.gradcheck import check_gradients, main
from tests.conftest import mlp


def _data(n_in, n_out, n=6, seed=0, kind="classes"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in))
    if kind == "classes":
        return x, rng.integers(0, n_out, size=n)
    if kind == "binary":
        return x, rng.integers(0, 2, size=(n, n_out)).astype(float)
    return x, rng.normal(size=(n, n_out))


def test_each_term_is_computed_once_per_pass():
    model = mlp([5, 6, 5, 4, 3], dtype=np.float64)
    x, y = _data(5, 3)
    model.gradient(x, y)
    bp = model.backprop
    L = model.depth
    assert bp.computed == {
        **{("delta", l): 1 for l in range(1, L + 1)},
        **{("dloss_da", l): 1 for l in range(1, L)},  # the output's is fused into delta(L)
    }
    assert bp.hits == L - 1  # parameter_gradients re-reads delta(l) for l < L from the memo
    before = dict(bp.computed)
    for l in range(1, L + 1):
        bp.delta(l)
        bp.dloss_da(l) if l < L else None
    assert bp.computed == before  # asking again never recomputes
    bp.dloss_da(L)  # not needed by the fused path; computed on request, once
    bp.dloss_da(L)
    assert bp.computed["dloss_da", L] == 1


def test_cache_is_cleared_by_a_new_pass_and_never_stale():
    model = mlp([4, 5, 3], dtype=np.float64, seed=2)
    fresh = mlp([4, 5, 3], dtype=np.float64, seed=2)
    x1, y1 = _data(4, 3, seed=1)
    x2, y2 = _data(4, 3, seed=2)
    model.gradient(x1, y1)
    passes = model.backprop.passes
    model.forward(x2)
    assert model.backprop.passes == passes + 1
    assert not model.backprop.computed and model.backprop.targets is None
    with pytest.raises(RuntimeError, match="no targets"):
        model.backprop.delta(1)  # the old targets and terms are gone
    loss, dW, db = model.gradient(x2, y2)
    loss_f, dW_f, db_f = fresh.gradient(x2, y2)
    assert loss == loss_f
    np.testing.assert_array_equal(dW, dW_f)
    np.testing.assert_array_equal(db, db_f)


def test_gradient_is_the_sum_over_samples():
    model = mlp([4, 5, 3], dtype=np.float64)
    x, y = _data(4, 3, n=5)
    loss, dW, db = model.gradient(x, y)
    parts = [model.gradient(x[i : i + 1], y[i : i + 1]) for i in range(5)]
    assert loss == pytest.approx(sum(p[0] for p in parts))
    np.testing.assert_allclose(dW, sum(p[1] for p in parts), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, sum(p[2] for p in parts), rtol=1e-12, atol=1e-14)


PAIRINGS = [
    # hidden, output, loss, targets
    ("relu", "softmax", "cross_entropy", "classes"),
    ("leaky_relu", "softmax", "cross_entropy", "classes"),
    ("sigmoid", "softmax", "cross_entropy", "classes"),
    ("tanh", "softmax", "cross_entropy", "classes"),
    ("identity", "softmax", "cross_entropy", "classes"),
    ("tanh", "sigmoid", "binary_cross_entropy", "binary"),
    ("relu", "sigmoid", "binary_cross_entropy", "binary"),
    ("tanh", "identity", "squared_error", "real"),
    ("sigmoid", "identity", "squared_error", "real"),
    ("leaky_relu", "identity", "squared_error", "real"),
    ("tanh", "softmax", "squared_error", "real"),  # not fused: full Softmax VJP
    ("tanh", "sigmoid", "squared_error", "real"),
    ("tanh", "tanh", "squared_error", "real"),
    ("tanh", "identity", "half_squared_error", "real"),  # scikit-learn's regression loss
]


@pytest.mark.parametrize("hidden, output, loss, kind", PAIRINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_finite_differences(hidden, output, loss, kind, seed):
    sizes = [5, 7, 6, 3]
    model = mlp(sizes, hidden=hidden, output=output, loss=loss, dtype=np.float64, seed=seed)
    x, y = _data(5, 3, n=8, seed=seed, kind=kind)
    if hidden in ("relu", "leaky_relu"):
        model.biases[:] = 0.1  # keep pre-activations away from the kink at 0
    checks = check_gradients(model, x, y, max_per_layer=None)
    assert len(checks) == 3
    worst = max(c.max_error for c in checks)
    assert worst < 1e-6, checks


def test_gradient_check_notices_a_wrong_gradient(monkeypatch):
    """The checker itself can fail: break the output delta and it must say so."""
    model = mlp([4, 5, 3], hidden="tanh", dtype=np.float64)
    x, y = _data(4, 3)
    original = CrossEntropy.delta
    monkeypatch.setattr(CrossEntropy, "delta", lambda self, *a: 1.01 * original(self, *a))
    assert max(c.max_error for c in check_gradients(model, x, y)) > 1e-4


def test_gradients_on_real_mnist_images(mnist):
    train, _ = mnist
    x = train.x[:16].astype(np.float64) / 255
    model = mlp([784, 24, 12, 10], hidden="relu", dtype=np.float64, seed=4)
    model.biases[:] = 0.05
    checks = check_gradients(model, x, train.y[:16], max_per_layer=150)
    assert max(c.max_error for c in checks) < 1e-6, checks


def test_gradcheck_command_line(capsys):
    assert main(["--hidden", "16", "8", "--activation", "tanh"]) == 0
    out = capsys.readouterr().out
    assert "largest relative error" in out and "ok" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 3


def test_softmax_is_finite_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    a = Softmax().forward(z)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-6)


def test_cross_entropy_of_zero_probability_is_finite():
    loss = CrossEntropy()
    for dtype in (np.float32, np.float64):
        a = np.array([[0.0, 1.0]], dtype=dtype)
        t = np.array([[1.0, 0.0]], dtype=dtype)
        assert np.isfinite(loss.value(a, t)) and loss.value(a, t) > 10
        assert np.isfinite(loss.gradient(a, t)).all()


def numeric_jacobian(forward, z: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences ``da_i/dz_j`` of ``forward`` at ``z`` (n, N): (n, N, N)."""
    columns = []
    for j in range(z.shape[1]):
        dz = np.zeros_like(z)
        dz[:, j] = eps
        columns.append((forward(z + dz) - forward(z - dz)) / (2 * eps))
    return np.stack(columns, axis=2)


def test_softmax_jacobian_matches_finite_differences_and_the_fused_path():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 5))
    sm = Softmax()
    a = sm.forward(z)
    jac = sm.jacobian(z, a)
    np.testing.assert_allclose(jac, numeric_jacobian(sm.forward, z), atol=1e-9)
    # the closed-form VJP equals g @ J, and with CrossEntropy it is a - y
    g = rng.normal(size=(4, 5))
    np.testing.assert_allclose(sm.vjp(z, a, g), np.einsum("ni,nij->nj", g, jac), atol=1e-12)
    t = np.eye(5)[[0, 3, 1, 4]]
    ce = CrossEntropy()
    via_jacobian = np.einsum("ni,nij->nj", ce.gradient(a, t), jac)
    np.testing.assert_allclose(via_jacobian, a - t, atol=1e-10)
    np.testing.assert_allclose(ce.delta(sm, z, a, t), a - t, atol=0)


@pytest.mark.parametrize("name", ["identity", "relu", "leaky_relu", "sigmoid", "tanh"])
def test_elementwise_jacobian_is_the_diagonal_of_finite_differences(name):
    activation = get_activation(name)
    z = np.array([[0.5, -1.0, 2.0], [-0.3, 0.7, -2.5]])
    a = activation.forward(z)
    jac = activation.jacobian(z, a)
    np.testing.assert_allclose(jac, numeric_jacobian(activation.forward, z), atol=1e-8)
    off_diagonal = jac * (1 - np.eye(3))
    assert not off_diagonal.any()


def test_a_batch_larger_than_a_training_pass_goes_through_in_equal_passes(monkeypatch):
    """More rows than ``model.train_rows()`` are computed in passes of equal size whose
    sums equal one pass over all of them (float64, to rounding), with each row's dropout
    mask and weight; a model with batch norm always takes the batch in one pass."""
    import nodenet.backprop as backprop
    import nodenet.graph as graph
    from nodenet import Layer, Model
    from nodenet.backprop import batch_gradient
    from nodenet.dropout import TrainingPass

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 6)), rng.integers(0, 3, size=50)
    weights = rng.uniform(0.5, 2.0, size=50)
    layers = [Layer(8, "tanh", dropout=0.3), Layer(5, "relu"), Layer(3, "softmax")]
    model = Model(6, "cross_entropy", layers).construct(seed=0, dtype=np.float64)
    t = model.targets(y)
    training = TrainingPass(np.arange(100, 150), seed=7, step=2)

    def gradient():
        dW, db = np.zeros_like(model.weights), np.zeros_like(model.biases)
        loss, correct = batch_gradient(model, x, t, dW, db, weights=weights, training=training)
        return loss, correct, dW, db

    whole = gradient()
    sizes = []
    one_pass = backprop._one_pass
    monkeypatch.setattr(
        backprop,
        "_one_pass",
        lambda model, x, *rest: sizes.append(len(x)) or one_pass(model, x, *rest),
    )
    per_row = sum(layer.pass_values for layer in model.layers) * 8
    monkeypatch.setattr(graph, "TRAIN_PASS_BYTES", 12 * per_row)  # 12 rows a pass
    assert model.train_rows() == 12
    parted = gradient()
    assert sizes == [10] * 5  # 50 rows: 5 passes of 10, not 12 + 12 + 12 + 12 + 2
    assert parted[1] == whole[1]
    assert parted[0] == pytest.approx(whole[0], rel=1e-13)
    np.testing.assert_allclose(parted[2], whole[2], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(parted[3], whole[3], rtol=1e-12, atol=1e-15)
    normalised = Model(6, "cross_entropy", [Layer(8, "relu", batch_norm=True), Layer(3, "softmax")])
    assert normalised.construct(seed=0).train_rows() >= 2**31
