"""Dropout: masks keyed by (seed, step, layer, row, unit) alone, inverted scaling, no
dropout in prediction, gradients by finite differences with a fixed mask, and the same
run with 0, 1, 2 or 3 workers and any chunk size."""

import numpy as np
import pytest

from nodenet import fit, io
from nodenet.dropout import TrainingPass, keep_scale
from nodenet.gradcheck import check_gradients
from nodenet.graph import Layer, Model


def dropout_model(seed=0, rate=0.3, dtype=np.float64):
    layers = [Layer(12, "relu", dropout=rate), Layer(8, "tanh", dropout=rate / 2)]
    return Model(6, "cross_entropy", [*layers, Layer(3, "softmax")]).construct(seed, dtype=dtype)


def test_a_mask_depends_only_on_seed_step_layer_row_and_unit():
    rows = np.arange(1000, 1200)
    whole = keep_scale(TrainingPass(rows, seed=7, step=3), 2, 64, 0.25)
    assert np.unique(whole).tolist() == pytest.approx([0.0, 1 / 0.75])
    assert abs((whole == 0).mean() - 0.25) < 0.02
    # the rows in another order, or in a piece of their own, draw the same masks
    shuffled = np.random.default_rng(0).permutation(len(rows))
    again = keep_scale(TrainingPass(rows[shuffled], seed=7, step=3), 2, 64, 0.25)
    np.testing.assert_array_equal(again, whole[shuffled])
    piece = keep_scale(TrainingPass(rows[50:60], seed=7, step=3), 2, 64, 0.25)
    np.testing.assert_array_equal(piece, whole[50:60])
    # every other key changes it
    for key in ({"seed": 8, "step": 3}, {"seed": 7, "step": 4}):
        other = keep_scale(TrainingPass(rows, **key), 2, 64, 0.25)
        assert 0.5 < (other == whole).mean() < 0.75
    assert (keep_scale(TrainingPass(rows, seed=7, step=3), 1, 64, 0.25) != whole).any()


def test_dropout_only_in_training_passes(blobs):
    x, _ = blobs
    model = dropout_model()
    plain = Model.from_config(
        {**model.config(), "layers": [{**s, "dropout": 0} for s in model.config()["layers"]]}
    ).construct(0, dtype=np.float64)
    plain.weights[...], plain.biases[...] = model.weights, model.biases
    np.testing.assert_array_equal(model.predict_proba(x), plain.predict_proba(x))
    training = TrainingPass(np.arange(len(x)), seed=1, step=1)
    dropped = model.propagate(model.check_inputs(x), training).copy()
    assert not np.allclose(dropped, plain.predict_proba(x))
    hidden = model.layers[1]
    np.testing.assert_array_equal(hidden.a, hidden.fz * hidden.keep)  # inverted scaling


def test_gradients_with_a_fixed_mask_match_finite_differences(blobs):
    x, y = blobs
    model = dropout_model(seed=3)
    training = TrainingPass(np.arange(20, 40), seed=5, step=2)
    for check in check_gradients(model, x[20:40], y[20:40], max_per_layer=None, training=training):
        assert check.max_error < 1e-6, check
    # the mask is really there: the gradient differs from the one without dropout
    _, dW_drop, _ = model.gradient(x[20:40], y[20:40], training)
    _, dW_none, _ = model.gradient(x[20:40], y[20:40])
    assert not np.allclose(dW_drop, dW_none)


@pytest.mark.parametrize(("workers", "chunk"), [(1, None), (2, None), (2, 5), (3, 7)])
def test_every_worker_count_and_chunk_trains_like_this_process(blobs, workers, chunk):
    x, y = blobs
    settings = {"epochs": 2, "batch_size": 16, "seed": 4, "validation": 0.25}
    reference = dropout_model(seed=1)
    expected = fit(reference, x, y, **settings)
    model = dropout_model(seed=1)
    history = fit(model, x, y, workers=workers, chunk=chunk, **settings)
    np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.biases, reference.biases, rtol=1e-9, atol=1e-12)
    assert history.history["loss"] == pytest.approx(expected.history["loss"], rel=1e-9)
    in_pieces = dropout_model(seed=1)
    fit(in_pieces, x, y, chunk=3, **settings)
    np.testing.assert_allclose(in_pieces.weights, reference.weights, rtol=1e-9, atol=1e-12)


def test_a_run_with_dropout_differs_from_one_without(blobs):
    x, y = blobs
    settings = {"epochs": 1, "batch_size": 16, "seed": 4}
    with_dropout, without = dropout_model(seed=1), dropout_model(seed=1, rate=0.0)
    fit(with_dropout, x, y, **settings)
    fit(without, x, y, **settings)
    assert not np.allclose(with_dropout.weights, without.weights)


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), "0.5", True])
def test_bad_rates_are_refused(rate):
    with pytest.raises(ValueError, match="dropout"):
        Layer(4, "relu", dropout=rate)


def test_dropout_on_the_output_layer_is_refused():
    with pytest.raises(ValueError, match="output layer"):
        Model(4, "cross_entropy", [Layer(3, "softmax", dropout=0.5)])


def test_the_rate_is_saved_with_the_model(tmp_path, blobs):
    model = dropout_model()
    io.save(model, tmp_path / "model")
    loaded = io.load(tmp_path / "model.npz")
    assert [layer.dropout for layer in loaded.layers[1:]] == [0.3, 0.15, 0.0]
    np.testing.assert_array_equal(loaded.predict_proba(blobs[0]), model.predict_proba(blobs[0]))
