"""Callbacks: hook shapes, stop_training, History, EarlyStopping and its checkpointed
state, StepDecay, seeds and settings that fit records or refuses."""

import os
import signal

import numpy as np
import pytest

from nodenet import SGD, Adam, Callback, EarlyStopping, History, StepDecay, fit
from nodenet.checkpoint import Checkpoint, load_checkpoint
from tests.conftest import mlp


@pytest.fixture(scope="module")
def blobs():
    """Three noisy Gaussian blobs in 20 dimensions: 600 labelled samples."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=600)
    x = rng.normal(size=(600, 20)) + 2.0 * np.eye(3, 20)[y]
    return x, y


class Recorder(Callback):
    """Every hook call as ``(hook, index, logs copy)``."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda *args: calls.append(
                (name, *(dict(a) if isinstance(a, dict) else a for a in args))
            )
        return object.__getattribute__(self, name)


def test_hooks_have_the_keras_shape_and_order(blobs):
    x, y = blobs
    recorder = Recorder()
    model = mlp([20, 8, 3])
    fit(model, x, y, epochs=2, batch_size=200, validation=0.25, callbacks=[recorder])
    names = [call[0] for call in recorder.calls]
    assert names[0] == "on_train_begin" and names[-1] == "on_train_end"
    epoch_1 = names[1 : names.index("on_epoch_end") + 1]
    # 450 training rows in batches of 200: three batches
    assert epoch_1 == ["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 3 + [
        "on_epoch_end"
    ]
    ends = [call for call in recorder.calls if call[0] == "on_train_batch_end"]
    assert [call[1] for call in ends] == [0, 1, 2, 0, 1, 2]  # 0-based batch index
    assert ends[-1][2]["epoch"] == 2 and ends[-1][2]["batch"] == 3
    epochs = [call for call in recorder.calls if call[0] == "on_epoch_end"]
    assert [call[1] for call in epochs] == [0, 1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(epochs[0][2])
    assert recorder.model is model
    assert recorder.params["epochs"] == 2 and recorder.params["samples"] == 450


def test_a_callback_stops_training_with_stop_training(blobs):
    x, y = blobs

    class StopAfterFourBatches(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if len(self.model.history.batches) == 4:
                self.model.stop_training = True

    history = fit(
        mlp([20, 8, 3]), x, y, epochs=5, batch_size=100, callbacks=[StopAfterFourBatches()]
    )
    assert len(history.batches) == 4
    assert len(history.epochs) == 1  # the stopped epoch still ends with its record
    assert history.epochs[0]["val_loss"] == history.epochs[0]["val_loss"]  # validated


def test_history_is_a_dict_of_lists_and_a_frame(blobs):
    x, y = blobs
    history = fit(mlp([20, 8, 3]), x, y, epochs=3, batch_size=100)
    assert isinstance(history, History)
    assert history.history["epoch"] == [1, 2, 3]
    assert len(history.history["val_accuracy"]) == 3
    assert history.history["loss"] == list(history.frame()["loss"])
    assert len(history.frame("batch")) == 3 * 5


def test_early_stopping_modes_and_validation():
    assert EarlyStopping("val_loss").mode == "min"
    assert EarlyStopping("val_accuracy").mode == "max"
    assert EarlyStopping("val_accuracy", mode="min").mode == "min"
    for bad, message in (
        ({"mode": "up"}, "mode"),
        ({"patience": -1}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
    ):
        with pytest.raises(ValueError, match=message):
            EarlyStopping(**bad)


def _stopper_run(stopper, records):
    """Feed ``records`` as epoch logs to ``stopper`` on a tiny model; the epochs seen
    until it sets ``stop_training``."""
    model = mlp([4, 3])
    stopper.set_model(model)
    for epoch, logs in enumerate(records):
        stopper.on_epoch_end(epoch, logs)
        if model.stop_training:
            return epoch + 1
    return len(records)


def test_early_stopping_counts_patience_with_min_delta_both_ways():
    losses = [{"val_loss": v} for v in (1.0, 0.9, 0.95, 0.97, 0.5)]
    assert _stopper_run(EarlyStopping(patience=2), losses) == 4
    # 0.9 is not better than 1.0 by more than 0.2: no improvement after epoch 1
    assert _stopper_run(EarlyStopping(patience=2, min_delta=0.2), losses) == 3
    accuracies = [{"val_accuracy": v} for v in (0.5, 0.6, 0.55, 0.7, 0.6, 0.6)]
    assert _stopper_run(EarlyStopping("val_accuracy", patience=2), accuracies) == 6
    assert _stopper_run(EarlyStopping("val_accuracy", patience=1), accuracies) == 3
    with pytest.raises(ValueError, match="records lack"):
        _stopper_run(EarlyStopping("val_f1"), accuracies)


def test_early_stopping_says_when_and_why_it_stopped(capsys):
    losses = [{"val_loss": v} for v in (1.0, 0.9, 0.95, 0.97, 0.5)]
    assert _stopper_run(EarlyStopping(patience=2), losses) == 4
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "early stopping after epoch 4: val_loss has not improved by more than 0 for 2 "
        "epochs (best 0.9 at epoch 2)"
    ]
    _stopper_run(EarlyStopping(patience=2, verbose=False), losses)
    assert capsys.readouterr().out == ""


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    model = mlp([4, 3])
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    stopper.set_model(model)
    for epoch, loss in enumerate((1.0, 0.4, 0.6, 0.7)):
        model.weights[...] = epoch  # each epoch leaves its own weights
        stopper.on_epoch_end(epoch, {"val_loss": loss})
    assert model.stop_training and stopper.best_epoch == 1 and stopper.stopped_epoch == 3
    stopper.on_train_end()
    np.testing.assert_array_equal(model.weights, 1.0)


def test_early_stopping_keeps_the_validated_average():
    """With parameter averaging, validation measured the average: that is what is kept."""
    model = mlp([4, 3])
    model.optimizer = Adam(average=0.5)
    x = np.ones((2, 4))
    model.optimizer.step(model.weights, model.biases, np.ones_like(model.weights), np.ones(3))
    stopper = EarlyStopping(restore_best_weights=True)
    stopper.set_model(model)
    stopper.on_epoch_end(0, {"val_loss": 0.1})
    model.weights += 5
    stopper.on_train_end()
    np.testing.assert_array_equal(model.weights, model.optimizer.averaged()[0])
    assert model.forward(x).shape == (2, 3)


def _resume_settings():
    return {"epochs": 12, "batch_size": 50, "seed": 2, "validation": 0.3}


def test_early_stopping_state_survives_a_checkpoint(blobs, tmp_path):
    """Interrupted and resumed, the run stops at the same epoch with the same weights
    as the uninterrupted one: the stopper's best and wait travel in the checkpoint."""
    x, y = blobs

    def stopper():
        return EarlyStopping(patience=2, min_delta=0.02, restore_best_weights=True)

    straight = mlp([20, 8, 3], seed=4)
    full = fit(straight, x, y, optimizer=Adam(lr=0.05), callbacks=[stopper()], **_resume_settings())
    stop_at = len(full.epochs)
    assert 3 <= stop_at < 12  # it stopped early, after some epochs

    class CtrlC(Callback):  # early in the epoch at whose end the run stops
        def on_train_batch_end(self, batch, logs=None):
            if logs["epoch"] == stop_at and batch == 0:
                os.kill(os.getpid(), signal.SIGINT)

    model = mlp([20, 8, 3], seed=4)
    first = stopper()
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            x,
            y,
            optimizer=Adam(lr=0.05),
            callbacks=[CtrlC(), Checkpoint(tmp_path), first],
            **_resume_settings(),
        )
    state = load_checkpoint(tmp_path)
    assert "EarlyStopping" in state.callbacks and state.callbacks["EarlyStopping"]["wait"] >= 1
    again = stopper()
    state.restore([again])
    assert (again.best, again.wait) == (first.best, first.wait)
    history = fit(
        state.model,
        x,
        y,
        optimizer=state.optimizer,
        callbacks=[again],
        initial_epoch=state.epoch,
        initial_batch=state.batch,
        history=state.history,
        **_resume_settings(),
    )
    assert len(history.epochs) == stop_at
    np.testing.assert_array_equal(state.model.weights, straight.weights)


def test_step_decay_multiplies_the_rate():
    with pytest.raises(ValueError, match="factor"):
        StepDecay(factor=0)
    with pytest.raises(ValueError, match="every"):
        StepDecay(every=0)
    decay = StepDecay(factor=0.5, every=2)
    model = mlp([4, 3])
    model.optimizer = SGD(lr=1.0)
    decay.set_model(model)
    for epoch in range(5):
        decay.on_epoch_end(epoch, {})
    assert model.optimizer.lr == 0.25


def test_lr_with_an_optimizer_object_is_refused_and_leaves_it_alone(blobs):
    x, y = blobs
    optimizer = Adam(lr=1e-3)
    with pytest.raises(ValueError, match="lr is given twice"):
        fit(mlp([20, 3]), x, y, epochs=1, optimizer=optimizer, lr=0.5)
    assert optimizer.lr == 1e-3


def test_seed_none_draws_fresh_entropy_and_records_it(blobs):
    x, y = blobs
    runs = []
    for _ in range(2):
        model = mlp([20, 8, 3], seed=0)
        history = fit(model, x, y, epochs=1, batch_size=50, seed=None)
        runs.append((history.params["seed"], model.weights.copy()))
    (seed_a, weights_a), (seed_b, weights_b) = runs
    assert seed_a != seed_b and not np.array_equal(weights_a, weights_b)
    # the recorded seed repeats the run exactly
    again = mlp([20, 8, 3], seed=0)
    fit(again, x, y, epochs=1, batch_size=50, seed=seed_a)
    np.testing.assert_array_equal(again.weights, weights_a)


def test_epoch_lines_name_the_run_then_every_nth_epoch_without_empty_figures(blobs):
    import io as text_io

    from nodenet import EpochLines

    x, y = blobs
    stream = text_io.StringIO()
    model = mlp([x.shape[1], 4, 3])
    model.fit(x, y, epochs=5, validation=0.0, callbacks=[EpochLines(stream, every=2)])
    lines = stream.getvalue().splitlines()
    assert lines[0] == repr(model)
    assert lines[1].startswith(f"{model.parameter_count} parameters, Adam(lr=0.001")
    assert lines[1].endswith("in this process")
    assert [line.split()[1] for line in lines[2:]] == ["2/5", "4/5", "5/5"]
    assert "val_loss" not in stream.getvalue()  # no validation: nothing to show
