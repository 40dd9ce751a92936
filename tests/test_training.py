"""fit(): in-process training on real MNIST, validation, history, callbacks, settings."""

import os
import signal

import numpy as np
import pytest

from nodenet import (
    Adam,
    Callback,
    CrossEntropy,
    History,
    Layer,
    Model,
    ReLU,
    Softmax,
    fit,
)
from nodenet.checkpoint import Checkpoint, load_checkpoint
from nodenet.data import Normaliser
from nodenet.predict import confusion_matrix, evaluate, predict, predict_proba
from tests.conftest import mlp


def test_784_64_10_reaches_90_percent_in_two_epochs(mnist):
    train, test = mnist
    norm = Normaliser.fit("zscore", train.x[:10000])
    model = Model(784, CrossEntropy(), [Layer(64, ReLU()), Layer(10, Softmax())]).construct(seed=0)
    model.normaliser = norm
    history = fit(
        model,
        train.x[:10000],
        train.y[:10000],
        epochs=2,
        batch_size=64,
        optimizer="adam",
        lr=1e-3,
        validation=0.0,
        seed=0,
    )
    assert len(history.epochs) == 2
    result = evaluate(model, test.x, test.y)
    assert result["accuracy"] >= 0.90, result
    assert result["samples"] == 10000


def test_history_records_batches_epochs_and_validation(tmp_path, mnist_small):
    x, y = mnist_small
    model = mlp([784, 16, 10])
    history = fit(model, x, y, epochs=2, batch_size=100, validation=0.25, validate_every=5)
    batches, epochs = history.frame("batch"), history.frame("epoch")
    assert len(batches) == 2 * 15 and len(epochs) == 2
    assert set(epochs.columns) >= {
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
        "samples_per_s",
    }
    assert batches["val_loss"].notna().sum() == 2 * 3  # every 5th of 15 batches
    assert epochs["val_accuracy"].between(0.2, 1).all()  # well above chance (0.1)
    assert epochs["val_accuracy"].iloc[1] > epochs["val_accuracy"].iloc[0]
    assert epochs["loss"].iloc[1] < epochs["loss"].iloc[0]
    history.to_csv(tmp_path / "history.csv")
    again = History.from_csv(tmp_path / "history.csv")
    assert len(again.batches) == 30 and again.epochs[1]["epoch"] == 2
    assert again.epochs[1]["loss"] == pytest.approx(history.epochs[1]["loss"])


def test_explicit_validation_set_and_reproducible_runs(mnist_small):
    x, y = mnist_small
    runs = []
    for _ in range(2):
        model = mlp([784, 16, 10], seed=1)
        fit(model, x[:1500], y[:1500], epochs=1, validation=(x[1500:], y[1500:]), seed=7)
        runs.append(model.weights.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_parameter_averaging_validates_and_ends_with_the_average(mnist_small):
    x, y = mnist_small
    seen = []

    class Iterate(Callback):  # what the model holds between batches: the last iterate
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.model.weights.copy())

    model = mlp([784, 16, 10], seed=1)
    opt = Adam(lr=1e-3, average=0.99)
    history = fit(
        model,
        x[:1500],
        y[:1500],
        epochs=2,
        optimizer=opt,
        validation=(x[1500:], y[1500:]),
        callbacks=[Iterate()],
    )
    average_w, average_b = opt.averaged()
    np.testing.assert_array_equal(model.weights, average_w)
    np.testing.assert_array_equal(model.biases, average_b)
    assert not np.allclose(seen[-1], average_w)  # the average differs from the iterate
    # validation measured the averaged weights: the final record is the final model's
    final = evaluate(model, x[1500:], y[1500:])
    assert history.epochs[-1]["val_loss"] == pytest.approx(final["loss"], rel=1e-5)
    assert history.epochs[-1]["val_accuracy"] == pytest.approx(final["accuracy"])


def test_predict_thresholds_and_confusion_matrix():
    model = mlp([4, 3], seed=0)
    x = np.random.default_rng(0).normal(size=(6, 4))
    labels = predict(model, x)
    assert labels.shape == (6,) and labels.max() < 3
    marks = predict(model, x, threshold=0.0)
    assert marks.shape == (6, 3) and marks.all()
    assert predict(model, x, threshold="none").shape == (6, 3)
    cm = confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 0, 1], [0, 0, 2]])
    with pytest.raises(ValueError, match="threshold"):
        predict(model, x, threshold="high")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"workers": -1}, "workers"),
        ({"validation": 1.0}, r"validation must be a finite number in \[0, 1\)"),
        ({"validate_every": 0}, "validate_every"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    model = mlp([4, 3])
    x, y = np.zeros((10, 4)), np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match=message):
        fit(model, x, y, **kwargs)


def test_ctrl_c_on_the_last_batch_of_an_epoch_resumes_at_the_next_epoch(tmp_path):
    """The interrupt lands after an epoch's last step: the checkpoint must point at the
    start of the next epoch (with the finished epoch recorded), not past the end."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(640, 20)), rng.integers(0, 3, size=640)  # 5 batches of 128

    class CtrlCOnLastBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if logs["epoch"] == 1 and logs["batch"] == 5:
                os.kill(os.getpid(), signal.SIGINT)

    settings = {"epochs": 2, "batch_size": 128, "validation": 0.0, "seed": 4}
    straight = mlp([20, 8, 3], seed=1)
    fit(straight, x, y, **settings)
    model = mlp([20, 8, 3], seed=1)
    with pytest.raises(KeyboardInterrupt):
        fit(model, x, y, callbacks=[CtrlCOnLastBatch(), Checkpoint(tmp_path)], **settings)
    state = load_checkpoint(tmp_path)
    assert (state.epoch, state.batch) == (1, 0)
    assert len(state.history.epochs) == 1
    fit(
        state.model,
        x,
        y,
        optimizer=state.optimizer,
        initial_epoch=state.epoch,
        initial_batch=state.batch,
        history=state.history,
        **settings,
    )
    np.testing.assert_array_equal(state.model.weights, straight.weights)


def test_model_methods_equal_the_module_functions_and_history_plots(mnist_small, tmp_path):
    x, y = mnist_small
    model = mlp([784, 16, 10], seed=2)
    history = fit(model, x[:1500], y[:1500], epochs=2, validation=(x[1500:], y[1500:]))
    np.testing.assert_array_equal(model.predict_proba(x[:50]), predict_proba(model, x[:50]))
    np.testing.assert_array_equal(model.predict(x[:50]), predict(model, x[:50]))
    np.testing.assert_array_equal(model.predict(x[:50], 0.5), predict(model, x[:50], 0.5))
    assert model.evaluate(x[1500:], y[1500:]) == evaluate(model, x[1500:], y[1500:])
    figure = history.plot(tmp_path / "training.png", title="t")
    assert len(figure.axes) >= 4  # four panels (and their twin axes)
    assert (tmp_path / "training.png").read_bytes()[:4] == b"\x89PNG"
    epoch_axis, batch_panel, valid_panel = figure.axes[0], figure.axes[1], figure.axes[2]
    assert all(float(t).is_integer() for t in epoch_axis.get_xticks())  # whole epochs
    assert all(float(t).is_integer() for t in valid_panel.get_xticks())
    for panel in (batch_panel, valid_panel):  # loss and accuracy on two axes, one legend
        assert [t.get_text() for t in panel.get_legend().get_texts()] == ["loss", "accuracy"]
