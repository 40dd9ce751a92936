"""Batch normalisation: the maths against NumPy, gradients by finite differences, the
running statistics, the pool's synchronised statistics equal to this process for 1-3
workers and any chunk size, files and checkpoints that keep the statistics."""

import itertools
import json

import numpy as np
import pytest

from nodenet import fit, io
from nodenet.batchnorm import EPS, MOMENTUM, combine, moments
from nodenet.checkpoint import Checkpoint, load_checkpoint
from nodenet.dropout import TrainingPass
from nodenet.gradcheck import check_gradients
from nodenet.graph import Layer, Model
from nodenet.io import ModelFileError
from nodenet.optimizers import Adam
from nodenet.workers import WorkerPool
from tests.conftest import run


def bn_model(seed=0, dropout=0.0, dtype=np.float64, hidden="relu"):
    layers = [
        Layer(10, hidden, dropout=dropout, batch_norm=True),
        Layer(7, "tanh", batch_norm=True),
        Layer(3, "softmax"),
    ]
    return Model(6, "cross_entropy", layers).construct(seed, dtype=dtype)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=120)
    return rng.normal(size=(120, 6)) * 3.0 + 1.0 + 2.0 * np.eye(3, 6)[y], y


def test_the_layout_puts_gamma_in_the_weights_and_beta_in_the_biases():
    model = bn_model()
    layout = model.layout
    assert layout.normalised == (1, 2)
    assert layout.scale_start[1] == layout.weights[1].stop  # right after W(1)
    assert layout.weights[2].start == layout.scales[1].stop
    assert layout.n_weights == 6 * 10 + 10 + 10 * 7 + 7 + 7 * 3
    assert layout.n_running == 2 * (10 + 7)
    assert np.shares_memory(model.layers[1].gamma, model.weights)
    np.testing.assert_array_equal(model.layers[1].gamma, 1.0)
    np.testing.assert_array_equal(model.layers[1].running[1], 1.0)  # running variance
    assert model.layers[3].gamma.size == 0


def test_a_training_pass_normalises_over_the_batch(blobs):
    x, _ = blobs
    model = bn_model(seed=1)
    layer = model.layers[1]
    layer.gamma[...] = np.linspace(0.5, 2.0, 10)
    layer.b[...] = np.linspace(-1.0, 1.0, 10)
    model.propagate(model.check_inputs(x), TrainingPass(np.arange(len(x))))
    u = x @ layer.W.T
    expected = (u - u.mean(0)) / np.sqrt(u.var(0) + EPS) * layer.gamma + layer.b
    np.testing.assert_allclose(layer.z, expected, rtol=1e-10, atol=1e-12)


def test_running_statistics_move_in_training_steps_and_serve_prediction(blobs):
    x, y = blobs
    model = bn_model(seed=1)
    layer = model.layers[1]
    before = layer.running.copy()
    model.gradient(x, y, TrainingPass(np.arange(len(x))))  # a gradient alone: no move
    np.testing.assert_array_equal(layer.running, before)
    model.propagate(model.check_inputs(x), TrainingPass(np.arange(len(x)), update_running=True))
    u = x @ layer.W.T
    np.testing.assert_allclose(layer.running[0], MOMENTUM * u.mean(0), rtol=1e-12)
    unbiased = u.var(0, ddof=1)
    np.testing.assert_allclose(layer.running[1], 1 - MOMENTUM + MOMENTUM * unbiased, rtol=1e-12)
    # prediction normalises with the running statistics, whatever the batch
    proba = model.predict_proba(x)
    np.testing.assert_array_equal(model.predict_proba(x[:5]), proba[:5])
    model.propagate(model.check_inputs(x[:7]))
    mean, var = layer.running
    expected = (x[:7] @ layer.W.T - mean) / np.sqrt(var + EPS) * layer.gamma + layer.b
    np.testing.assert_allclose(layer.z, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("hidden", "dropout"), [("relu", 0.0), ("sigmoid", 0.0), ("tanh", 0.3)])
def test_gradients_match_finite_differences(blobs, hidden, dropout):
    x, y = blobs
    model = bn_model(seed=2, dropout=dropout, hidden=hidden)
    rng = np.random.default_rng(3)
    model.weights += rng.normal(scale=0.1, size=model.weights.shape)  # gamma away from 1
    model.biases += rng.normal(scale=0.1, size=model.biases.shape)
    training = TrainingPass(np.arange(30), seed=1, step=2)
    checks = check_gradients(model, x[:30], y[:30], max_per_layer=None, training=training)
    for check in checks:
        assert check.max_error < 1e-6, check
    assert checks[0].scale_error > 0  # gamma was checked


def test_moments_of_parts_combine_to_the_whole():
    rng = np.random.default_rng(5)
    u = rng.normal(loc=3.0, scale=2.0, size=(50, 4))
    for bounds in ([0, 50], [0, 20, 50], [0, 0, 13, 13, 40, 50]):
        parts = np.stack([moments(u[lo:hi]) for lo, hi in itertools.pairwise(bounds)])
        count, mean, var = combine(parts)
        assert count == 50
        np.testing.assert_allclose(mean, u.mean(0), rtol=1e-12)
        np.testing.assert_allclose(var, u.var(0), rtol=1e-12)


@pytest.mark.parametrize(
    ("workers", "chunk"), [(1, None), (2, None), (2, 5), (3, 7), (2, 64)]
)  # (2, 64): worker 1 has no rows in a batch of 16 and still meets the others
def test_the_pool_synchronises_statistics_like_this_process(blobs, workers, chunk):
    x, y = blobs
    settings = {"epochs": 2, "batch_size": 16, "seed": 4, "validation": 0.25}
    reference = bn_model(seed=1, dropout=0.2)
    expected = fit(reference, x, y, **settings)
    model = bn_model(seed=1, dropout=0.2)
    history = fit(model, x, y, workers=workers, chunk=chunk, **settings)
    for name in ("weights", "biases", "running"):
        np.testing.assert_allclose(
            getattr(model, name), getattr(reference, name), rtol=1e-9, atol=1e-12, err_msg=name
        )
    for key in ("loss", "val_loss", "val_accuracy"):
        assert history.history[key] == pytest.approx(expected.history[key], rel=1e-9), key


def test_statistics_of_pieces_alone_would_differ(blobs):
    """What the meetings are for: normalising each worker's rows by themselves gives
    other gradients than the whole batch (so the equality above is not a given)."""
    x, y = blobs
    model = bn_model(seed=1)
    _, whole, _ = model.gradient(x[:16], y[:16], TrainingPass(np.arange(16)))
    halves = sum(
        model.gradient(x[lo:hi], y[lo:hi], TrainingPass(np.arange(lo, hi)))[1]
        for lo, hi in ((0, 8), (8, 16))
    )
    assert not np.allclose(halves, whole, rtol=1e-3)


def test_a_pool_step_by_step_and_its_gradient_equal_this_process(blobs):
    x, y = blobs
    reference, pooled = bn_model(seed=3), bn_model(seed=3)
    opt_ref, opt_pool = Adam(lr=0.01), Adam(lr=0.01)
    from nodenet.backend import InProcess

    engine = InProcess(reference, x, y)
    with WorkerPool(pooled, x, y, workers=2, chunk=5, optimizer=opt_pool) as pool:
        for rows in [np.arange(i, i + 24) for i in range(0, 96, 24)]:
            assert pool.train_step(rows, opt_pool) == pytest.approx(
                engine.train_step(rows, opt_ref), rel=1e-10
            )
        got = pool.gradient(np.arange(40))
        expected = engine.gradient(np.arange(40))
        np.testing.assert_allclose(got[2], expected[2], rtol=1e-9, atol=1e-12)
        assert pool.evaluate(np.arange(120)) == pytest.approx(engine.evaluate(np.arange(120)))
    np.testing.assert_allclose(pooled.running, reference.running, rtol=1e-10)


def test_files_and_checkpoints_keep_the_running_statistics(blobs, tmp_path):
    x, y = blobs
    settings = {"epochs": 2, "batch_size": 16, "seed": 4, "validation": 0.0}
    straight = bn_model(seed=5)
    fit(straight, x, y, **settings)
    io.save(straight, tmp_path / "model")
    loaded = io.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.running, straight.running)
    np.testing.assert_array_equal(loaded.predict_proba(x), straight.predict_proba(x))
    # a run stopped after its first epoch and resumed from the checkpoint ends the same
    first = bn_model(seed=5)
    fit(first, x, y, callbacks=[Checkpoint(tmp_path / "run")], **{**settings, "epochs": 1})
    state = load_checkpoint(tmp_path / "run")
    np.testing.assert_array_equal(state.model.running, first.running)
    fit(
        state.model,
        x,
        y,
        optimizer=state.optimizer,
        initial_epoch=1,
        history=state.history,
        **settings,
    )
    np.testing.assert_array_equal(state.model.running, straight.running)
    np.testing.assert_array_equal(state.model.weights, straight.weights)
    # a file without them is refused by name
    arrays = dict(np.load(tmp_path / "model.npz"))
    del arrays["running"]
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ModelFileError, match="running"):
        io.load(tmp_path / "broken.npz")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="batch_norm"):
        Layer(4, "relu", batch_norm="yes")


@pytest.mark.slow
def test_784_256_128_10_with_batch_norm_reaches_98_percent_in_10_epochs(mnist, tmp_path):
    """The README's command, run as a user runs it."""
    flags = "--hidden 256 128 --batch-norm --dropout 0.2 --epochs 10 --lr 2e-3"
    flags += " --lr-decay 0.5 --lr-decay-every 3 --quiet --no-plot"
    result = run("train_mnist.py", *flags.split(), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["settings"]["batch_norm"] and metrics["epochs"] == 10
    assert metrics["test_accuracy"] >= 0.98, metrics


def test_weight_averaging_is_refused_with_batch_norm(blobs):
    with pytest.raises(ValueError, match="average"):
        fit(bn_model(), *blobs, optimizer=Adam(average=0.99))
