"""The scikit-learn estimators: scikit-learn's own estimator checks, and the estimators
inside Pipeline, GridSearchCV and cross_val_score, with the worker pool too."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="pip install 'nodenet[sklearn]' to run these tests")

from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from nodenet.sklearn import NodenetClassifier, NodenetRegressor


# Every check runs. scikit-learn itself skips one, check_array_api_input, unless
# SCIPY_ARRAY_API=1 is set: nodenet computes with NumPy only.
@parametrize_with_checks([NodenetClassifier(), NodenetRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def test_a_pipeline_classifies_digits(digits):
    x_train, x_test, y_train, y_test = digits
    clf = NodenetClassifier(hidden_layer_sizes=(64,), max_iter=40, random_state=0)
    pipeline = make_pipeline(StandardScaler(), clf).fit(x_train, y_train)
    assert pipeline.score(x_test, y_test) > 0.95
    proba = pipeline.predict_proba(x_test)
    assert proba.shape == (len(x_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.n_iter_ <= 40 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.model_.sizes == [64, 64, 10]


@pytest.mark.slow
def test_grid_search_and_cross_validation_with_the_pool_equal_this_process(digits):
    x_train, _, y_train, _ = digits
    x, y = StandardScaler().fit_transform(x_train[:600]), y_train[:600]
    grid = {"hidden_layer_sizes": [(16,), (32,)]}
    scores = {}
    for workers in (0, 2):
        clf = NodenetClassifier(max_iter=10, batch_size=32, random_state=0, workers=workers)
        search = GridSearchCV(clf, grid, cv=2).fit(x, y)
        cross = cross_val_score(clf, x, y, cv=3)
        scores[workers] = (search.cv_results_["mean_test_score"], search.best_params_, cross)
    np.testing.assert_allclose(scores[2][0], scores[0][0])
    assert scores[2][1] == scores[0][1]
    np.testing.assert_allclose(scores[2][2], scores[0][2])
    assert scores[0][2].mean() > 0.85


def test_partial_fit_continues_training(digits):
    x_train, x_test, y_train, y_test = digits
    clf = NodenetClassifier(hidden_layer_sizes=(32,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(x_train[:100], y_train[:100])
    clf.partial_fit(x_train / 16, y_train, classes=np.arange(10))
    first = clf.score(x_test / 16, y_test)
    for _ in range(5):
        clf.partial_fit(x_train / 16, y_train)
    assert clf.n_iter_ == 6 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(x_test / 16, y_test) > first


def test_a_pickled_estimator_predicts_the_same(digits):
    x_train, x_test, y_train, _ = digits
    clf = NodenetClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    clf.fit(x_train / 16, y_train)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(x_test / 16), clf.predict_proba(x_test / 16))
    again.partial_fit(x_train / 16, y_train)  # and it can train on


def test_the_regressor_fits_diabetes():
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    scale = y_train.std()
    # alpha as scikit-learn means it: 3.2 / 32 rows is the weight decay 0.1 of before
    settings = {"alpha": 3.2, "learning_rate_init": 0.01, "batch_size": 32, "max_iter": 30}
    reg = NodenetRegressor(hidden_layer_sizes=(16,), random_state=0, **settings)
    model = make_pipeline(StandardScaler(), reg).fit(x_train, y_train / scale)
    score = model.score(x_test, y_test / scale)
    assert score > 0.3  # least squares: 0.359 on this split
    theirs = MLPRegressor(hidden_layer_sizes=(16,), random_state=0, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = make_pipeline(StandardScaler(), theirs).fit(x_train, y_train / scale)
    assert abs(score - reference.score(x_test, y_test / scale)) < 0.02  # 0.379 vs 0.382
    assert model.predict(x_test).shape == (len(x_test),)
    both = np.column_stack([y_train, -y_train]) / scale
    assert make_pipeline(StandardScaler(), reg).fit(x_train, both).predict(x_test).shape == (
        len(x_test),
        2,
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"solver": "newton"}, "solver must be one of"),
        ({"max_iter": 0}, "max_iter must be an int >= 1, got 0"),
        ({"batch_size": "big"}, "batch_size must be 'auto' or an int >= 1, got 'big'"),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be >= 1"),
        ({"hidden_layer_sizes": None}, "hidden_layer_sizes must be an int or ints, got None"),
        ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes must hold positive ints"),
        ({"activation": "gelu"}, "activation must be one of"),
        ({"learning_rate": "fast"}, "learning_rate must be 'constant', 'invscaling' or"),
        ({"validation_fraction": 1.0}, r"validation_fraction must lie in \(0, 1\)"),
        ({"solver": "lbfgs", "dropout": 0.2}, "solver='lbfgs' needs a deterministic loss"),
    ],
)
def test_bad_parameters_are_named(digits, settings, message):
    x_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=message):
        NodenetClassifier(**settings).fit(x_train[:50], y_train[:50])
