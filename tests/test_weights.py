"""Sample and class weights: integer weights equal duplicated samples, the pool equals
this process, ``"balanced"`` follows scikit-learn's definition, bad weights are named."""

import numpy as np
import pytest

from nodenet import Adam, fit
from nodenet.backend import InProcess
from nodenet.weights import row_weights
from nodenet.workers import WorkerPool
from tests.conftest import mlp


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=90)
    return rng.normal(size=(90, 6)) + 2.0 * np.eye(3, 6)[y], y


def test_integer_weights_equal_duplicated_samples(blobs):
    x, y = blobs
    counts = np.random.default_rng(1).integers(0, 4, size=len(x))
    duplicated = np.repeat(np.arange(len(x)), counts)
    model = mlp([6, 5, 3], dtype=np.float64, seed=2)
    weighted = InProcess(model, x, y, sample_weight=counts.astype(float))
    loss_w, _, dW_w, db_w = weighted.gradient(np.arange(len(x)))
    dW_w, db_w = dW_w.copy(), db_w.copy()
    loss_d, dW_d, db_d = model.gradient(x[duplicated], y[duplicated])
    assert loss_w == pytest.approx(loss_d, rel=1e-12)
    np.testing.assert_allclose(dW_w, dW_d, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db_w, db_d, rtol=1e-10, atol=1e-12)
    # a whole training run with one full batch per epoch: the same weights as duplication
    a, b = (mlp([6, 5, 3], dtype=np.float64, seed=3) for _ in range(2))
    common = {"epochs": 3, "validation": 0.0, "optimizer": "adam", "lr": 0.05}
    fit(a, x, y, batch_size=len(x), sample_weight=counts, **common)
    fit(b, x[duplicated], y[duplicated], batch_size=len(duplicated), **common)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-9, atol=1e-12)


def test_the_pool_with_weights_equals_this_process(blobs):
    x, y = blobs
    w = np.random.default_rng(4).uniform(0.1, 3.0, size=len(x))
    reference, pooled = (mlp([6, 5, 3], dtype=np.float64, seed=5) for _ in range(2))
    opt_ref, opt_pool = Adam(lr=1e-2), Adam(lr=1e-2)
    engine = InProcess(reference, x, y, sample_weight=w)
    batches = [np.arange(i * 30, (i + 1) * 30) for i in range(3)] * 2
    with WorkerPool(pooled, x, y, workers=2, chunk=7, optimizer=opt_pool, sample_weight=w) as pool:
        for rows in batches:
            expected = engine.train_step(rows, opt_ref)
            got = pool.train_step(rows, opt_pool)
            assert got[0] == pytest.approx(expected[0], rel=1e-10) and got[1] == expected[1]
    np.testing.assert_allclose(pooled.weights, reference.weights, rtol=1e-9, atol=1e-12)
    # and through fit, with the epoch losses as weighted means
    runs = []
    for workers in (0, 2):
        model = mlp([6, 5, 3], dtype=np.float64, seed=6)
        history = fit(
            model, x, y, epochs=2, batch_size=20, workers=workers, sample_weight=w, seed=1
        )
        runs.append((model.weights.copy(), history))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-9, atol=1e-12)
    assert runs[1][1].history["loss"] == pytest.approx(runs[0][1].history["loss"], rel=1e-9)


def test_class_weights_balanced_and_by_label(blobs):
    x, y = blobs
    t = np.eye(3)[y]
    rows = np.arange(len(y))
    balanced = row_weights(t, rows, class_weight="balanced")
    counts = np.bincount(y)
    np.testing.assert_allclose(balanced, len(y) / (3 * counts[y]))  # scikit-learn's rule
    by_label = row_weights(t, rows, sample_weight=np.full(len(y), 2.0), class_weight={1: 3.0})
    np.testing.assert_allclose(by_label, np.where(y == 1, 6.0, 2.0))
    assert row_weights(t, rows) is None  # every sample counts once: the fast path
    history = fit(mlp([6, 3]), x, y, epochs=1, class_weight="balanced", validation=0.2)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"sample_weight": -np.ones(90)}, "finite and >= 0"),
        ({"sample_weight": np.ones(5)}, "one weight per row of x"),
        ({"class_weight": "even"}, r"class_weight must be one of \['balanced'\], None or a dict"),
        ({"class_weight": {7: 1.0}}, "7 is not a class"),
        ({"sample_weight": np.zeros(90)}, "add up to 0"),
    ],
)
def test_bad_weights_are_named(blobs, settings, message):
    x, y = blobs
    with pytest.raises(ValueError, match=message):
        fit(mlp([6, 3]), x, y, epochs=1, **settings)
