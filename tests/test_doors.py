"""One model, many doors: the library, the command line, the estimators and ONNX give
the same numbers, share one settings table and one set of defaults."""

import inspect
from pathlib import Path

import numpy as np
import pytest

import nodenet
from nodenet import Layer, Model, Normaliser, fit, settings
from nodenet.checkpoint import Checkpoint, load_checkpoint
from nodenet.cli import train as train_command
from nodenet.cli.train_flags import build_parser
from nodenet.settings import SETTINGS, Setting


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """``nodenet train`` on load_digits as CSV files: ``(folder, x_train, y_train, x_test)``."""
    datasets = pytest.importorskip("sklearn.datasets")
    folder = tmp_path_factory.mktemp("digits")
    frame = datasets.load_digits(as_frame=True).frame.sample(frac=1.0, random_state=0)
    frame.iloc[:1400].to_csv(folder / "train.csv", index=False)
    frame.iloc[1400:].to_csv(folder / "test.csv", index=False)
    flags = ["--csv", str(folder / "train.csv"), "--test-csv", str(folder / "test.csv")]
    flags += ["--target", "target", "--validation", "0", "--hidden", "24", "--epochs", "3"]
    assert train_command.main([*flags, "--out", str(folder / "run"), "--quiet", "--no-plot"]) == 0
    features = frame.drop(columns="target")
    return (
        folder,
        features.iloc[:1400].to_numpy(),
        frame["target"].iloc[:1400].to_numpy(),
        features.iloc[1400:].to_numpy(),
    )


def test_a_trained_model_answers_the_same_through_every_door(digits_run, tmp_path):
    folder, x, y, x_test = digits_run
    model = nodenet.load(folder / "run")
    assert model.normaliser is not None and model.normaliser.kind == "zscore"
    proba = model.predict_proba(x_test)
    for door in (model(x_test), model.forward(x_test)):  # the normaliser applies here too
        np.testing.assert_allclose(door, proba, rtol=0, atol=1e-6)
    raw = model.propagate(model.check_inputs(x_test))  # the pass without the normaliser
    assert np.abs(raw - proba).max() > 1e-2  # so the doors above do normalise

    sk = pytest.importorskip("nodenet.sklearn")
    estimator = sk.NodenetClassifier(
        hidden_layer_sizes=(24,),
        max_iter=3,
        batch_size=128,
        alpha=0.0,
        random_state=0,
        init="lecun",
        learning_rate_init=1e-3,
        shuffle=True,
        dtype="float32",
        normalise="zscore",
        average=0.995,  # nodenet train's default
    ).fit(x, y)
    np.testing.assert_allclose(estimator.predict_proba(x_test), proba, rtol=0, atol=1e-6)

    pytest.importorskip("onnxruntime")
    import onnxruntime

    from nodenet.onnx import save_onnx

    session = onnxruntime.InferenceSession(str(save_onnx(model, tmp_path / "m.onnx")))
    name = session.get_inputs()[0].name
    onnx_proba = session.run(None, {name: x_test.astype(np.float32)})[0]
    np.testing.assert_allclose(onnx_proba, proba, rtol=0, atol=1e-6)


def test_input_gradients_are_to_the_raw_inputs(blobs):
    """``input_gradient`` and ``backward``'s ``dx`` go through the normaliser: they
    match finite differences taken on the raw inputs."""
    x, y = blobs
    x = x[:5] * 40 + 100  # far from normalised
    model = Model(6, "cross_entropy", [Layer(7, "tanh"), Layer(3, "softmax")])
    model.construct(seed=1, dtype=np.float64)
    model.normaliser = Normaliser.fit("zscore", x)
    dx = model.input_gradient(x, y[:5])
    numeric = np.zeros_like(x)
    for i, j in np.ndindex(*x.shape):
        step = np.zeros_like(x)
        step[i, j] = 1e-4
        up, _, _ = model.gradient(x + step, y[:5])
        down, _, _ = model.gradient(x - step, y[:5])
        numeric[i, j] = (up - down) / 2e-4
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-9)
    out = model.forward(x)
    _, _, dx_back = model.backward(model.loss.gradient(out, model.targets(y[:5])))
    np.testing.assert_allclose(dx_back, dx, rtol=1e-10)


# ------------------------------------------------------------ one settings table
@pytest.fixture
def throwaway(monkeypatch):
    """A setting added to the table and nowhere else."""
    row = Setting("throwaway", "int", 7, "a setting only this test knows", "optimisation", low=1)
    monkeypatch.setitem(SETTINGS, "throwaway", row)
    return row


def test_a_new_setting_appears_as_flag_fit_keyword_and_in_checkpoints(throwaway, blobs, tmp_path):
    parser = build_parser()
    assert parser.parse_args([]).throwaway == 7
    assert parser.parse_args(["--throwaway", "3"]).throwaway == 3
    assert "--throwaway" in parser.format_help()
    with pytest.raises(ValueError, match="throwaway must be an integer >= 1"):
        settings.resolve("fit", {"throwaway": 0})
    x, y = blobs
    model = Model(6, "cross_entropy", [Layer(4, "relu"), Layer(3, "softmax")]).construct()
    history = fit(model, x, y, epochs=1, throwaway=3, callbacks=[Checkpoint(tmp_path)])
    assert history.params["settings"]["throwaway"] == 3
    assert load_checkpoint(tmp_path).settings["throwaway"] == 3
    with pytest.raises(TypeError, match="unexpected keyword argument 'throwaways'"):
        fit(model, x, y, throwaways=3)


def test_the_command_line_and_the_library_share_their_defaults():
    parsed = vars(build_parser().parse_args([]))
    for name, row in settings.at("cli").items():
        assert parsed[name] == row.default, name
    signature = inspect.signature(fit).parameters
    for name, row in settings.at("fit").items():
        assert signature[name].default == row.default, name
    construct = inspect.signature(Model.construct).parameters
    for name in ("seed", "init", "dtype"):
        assert construct[name].default == SETTINGS[name].default, name


def test_the_estimators_defaults_follow_the_written_mapping():
    sk = pytest.importorskip("nodenet.sklearn")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    for ours, theirs in (
        (sk.NodenetClassifier, MLPClassifier),
        (sk.NodenetRegressor, MLPRegressor),
    ):
        params = ours().get_params()
        assert set(params) <= set(sk.SKLEARN_NAMES)  # every parameter is in the mapping
        reference = theirs().get_params()
        assert set(reference) <= set(params)  # a drop-in: every scikit-learn parameter
        for name, (setting, source, _) in sk.SKLEARN_NAMES.items():
            assert setting is None or setting in SETTINGS, name
            if source == "scikit-learn" and name in reference:
                assert params[name] == reference[name], name
            elif source == "table":
                assert params[name] == SETTINGS[setting].default, name


def test_alpha_is_scikit_learns_penalty():
    """scikit-learn adds ``alpha * W / batch`` to the gradient of the batch's mean loss;
    the estimator's optimizer adds ``weight_decay * W`` to it."""
    sk = pytest.importorskip("nodenet.sklearn")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 4)), rng.integers(0, 2, 300)
    clf = sk.NodenetClassifier(hidden_layer_sizes=(3,), alpha=2.0, max_iter=1, batch_size=50)
    clf.fit(x, y)
    assert clf._optimizer_.weight_decay == pytest.approx(2.0 / 50)


def test_fit_keywords_are_checked_by_the_table(blobs):
    x, y = blobs
    model = Model(6, "cross_entropy", [Layer(4, "relu"), Layer(3, "softmax")]).construct()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        fit(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="momentum does not apply to adam"):
        fit(model, x, y, momentum=0.5)
    with pytest.raises(ValueError, match="workers must be an integer >= 0, or 'auto'"):
        fit(model, x, y, workers="many")


# ------------------------------------------------------------ inputs where they enter
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x, y[:-1], {}), "y has 119 rows but x has 120"),
        (lambda x, y: (x, y, {"sample_weight": np.ones(121)}), r"x has 120 rows, sample_weight has shape \(121,\)"),
        (lambda x, y: (x, y, {"sample_weight": np.ones(119)}), r"x has 120 rows, sample_weight has shape \(119,\)"),
        (lambda x, y: (x, y, {"validation": (x[:10], y[:9])}), "validation y has 9 rows but validation x has 10"),
        (lambda x, y: (x, y, {"validation": (x[:10, :5], y[:10])}), r"inputs must have shape \(n, 6\), got \(10, 5\)"),
        (lambda x, y: (x, y, {"validation": (x[:10],)}), "validation must be a fraction or"),
        (lambda x, y: (x, y, {"class_weight": {3: 1.0}}), "class_weight: 3 is not a class"),
    ],
)  # fmt: skip
def test_inputs_are_checked_where_they_enter(blobs, change, message):
    x, y, extra = change(*blobs)
    model = Model(6, "cross_entropy", [Layer(4, "relu"), Layer(3, "softmax")]).construct()
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, **extra)


# ------------------------------------------------------------ the Keras-shaped way
def test_model_fit_save_and_nodenet_load_are_the_documented_way(blobs, tmp_path):
    x, y = blobs
    model = Model(6, "cross_entropy", [Layer(4, "relu"), Layer(3, "softmax")]).construct()
    twin = Model(6, "cross_entropy", [Layer(4, "relu"), Layer(3, "softmax")]).construct()
    history = model.fit(x, y, epochs=2, batch_size=16)
    assert history is model.history and len(history.epochs) == 2
    fit(twin, x, y, epochs=2, batch_size=16)  # the function behind the method
    np.testing.assert_array_equal(model.weights, twin.weights)
    path = model.save(tmp_path / "m.npz")
    loaded = nodenet.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert nodenet.load_checkpoint is load_checkpoint
    assert callable(nodenet.load_mnist)
    assert inspect.signature(Model.fit).parameters.keys() >= inspect.signature(
        fit
    ).parameters.keys() - {"model"}


def test_the_readme_holds_the_settings_table():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert settings.markdown_table() in readme


@pytest.mark.parametrize(
    ("flags", "prepared"),
    [(["--workers", "2"], [(None, 2)]), (["--backend", "pool"], [("pool", 0)]), ([], [(None, 0)])],
)
def test_nodenet_train_prepares_the_backend_before_it_loads_the_data(
    flags, prepared, tmp_path, monkeypatch
):
    """The fork server of ``--workers 2`` imports while the data loads: ``nodenet
    train`` prepares the backend its flags name first (as ``fit`` would, later)."""
    events = []
    monkeypatch.setattr(
        train_command, "prepare_backend", lambda *args: events.append(("prepare", args))
    )

    def load(args):
        events.append("load")
        raise train_command.DataError("stop here")

    monkeypatch.setattr(train_command.sources, "load", load)
    code = train_command.main(["--out", str(tmp_path / "run"), "--epochs", "1", *flags])
    assert code == 2
    assert events == [*[("prepare", p) for p in prepared], "load"]
