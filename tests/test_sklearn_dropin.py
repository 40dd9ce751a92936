"""NodenetClassifier and NodenetRegressor as drop-ins for MLPClassifier and
MLPRegressor: each parameter and fitted attribute means what it means there."""

import warnings
from itertools import pairwise

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="pip install 'nodenet[sklearn]' to run these tests")

from sklearn.datasets import load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

from nodenet.backend import InProcess
from nodenet.sklearn import ATTRIBUTES, NodenetClassifier, NodenetRegressor

QUIET = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(x), y


def _sklearn_gradient(reference, x, t):
    """scikit-learn's loss and gradients (coefs, intercepts) for ``x`` and binarised
    targets ``t`` at ``reference``'s weights (its own ``_backprop``)."""
    layers = [x.shape[1], *reference.hidden_layer_sizes, t.shape[1]]
    activations = [x] + [np.empty((len(x), n)) for n in layers[1:]]
    deltas = [np.empty_like(a) for a in activations[1:]]
    coef_grads = [np.empty((a, b)) for a, b in pairwise(layers)]
    intercept_grads = [np.empty(b) for b in layers[1:]]
    return reference._backprop(x, t, None, activations, deltas, coef_grads, intercept_grads)


@pytest.mark.parametrize(
    "make, y_of",
    [
        (lambda: NodenetClassifier(hidden_layer_sizes=(5,), alpha=0.7), lambda y: y),  # 3 classes
        (lambda: NodenetClassifier(hidden_layer_sizes=(5,), alpha=0.7, activation="logistic"), lambda y: y == 2),
        (lambda: NodenetRegressor(hidden_layer_sizes=(5,), alpha=0.7, activation="tanh"), lambda y: np.column_stack([y, -y])),
    ],
)  # fmt: skip
@QUIET
def test_alpha_and_the_loss_give_scikit_learns_gradient_on_the_same_weights(iris, make, y_of):
    """One full batch: nodenet's step direction (mean-loss gradient + weight decay) equals
    scikit-learn's ``_backprop`` gradient with ``alpha`` at the very same weights, for
    softmax + cross-entropy, a logistic unit + binary cross-entropy and the regressor's
    half squared error."""
    x, y = iris
    ours = make().set_params(max_iter=1, batch_size=len(x), random_state=0).fit(x, y_of(y))
    twin = MLPRegressor if isinstance(ours, NodenetRegressor) else MLPClassifier
    reference = twin(**{k: v for k, v in ours.get_params().items() if k in twin().get_params()})
    reference.set_params(max_iter=1).fit(x, y_of(y))  # the attributes _backprop needs
    reference.coefs_ = [c.copy() for c in ours.coefs_]
    reference.intercepts_ = [b.copy() for b in ours.intercepts_]
    t = ours._targets(np.asarray(y_of(y)), False, True, None)
    loss, coef_grads, intercept_grads = _sklearn_gradient(reference, x, t)

    model, n = ours.model_, len(x)
    loss_sum, dW, db = model.gradient(x, t)
    decay = ours._optimizer_.weight_decay
    assert decay == pytest.approx(ours.alpha / n)
    for l, (coef_grad, intercept_grad) in enumerate(
        zip(coef_grads, intercept_grads, strict=True), 1
    ):
        ours_w = model.layer_weights(dW, l) / n + decay * model.layers[l].W
        np.testing.assert_allclose(ours_w.T, coef_grad, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            model.layer_biases(db, l) / n, intercept_grad, rtol=1e-9, atol=1e-12
        )
    penalty = 0.5 * ours.alpha * sum(float((c**2).sum()) for c in ours.coefs_) / n
    reported = loss_sum / n * ours._loss_scale()  # a regressor's loss is per output
    assert reported + penalty == pytest.approx(loss, rel=1e-9)


def test_the_init_is_scikit_learns_glorot_uniform():
    x = np.random.default_rng(0).normal(size=(400, 30))
    y = np.arange(400) % 4
    for activation, factor in (("relu", 6.0), ("logistic", 2.0)):
        clf = NodenetClassifier(hidden_layer_sizes=(200,), activation=activation, max_iter=1)
        clf._targets(y, True, False, None)
        clf._build(x, 0, None)
        for coef, intercept in zip(clf.coefs_, clf.intercepts_, strict=True):
            bound = np.sqrt(factor / sum(coef.shape))
            assert np.abs(coef).max() <= bound and np.abs(coef).max() > 0.98 * bound
            assert coef.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)  # uniform
            assert np.abs(intercept).max() <= bound and np.any(intercept != 0)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
@QUIET
def test_every_fitted_attribute_has_scikit_learns_shape_and_meaning(iris, kind):
    x, y = iris
    if kind == "binary":
        y = y == 1
    elif kind == "multilabel":
        x, y = make_multilabel_classification(
            n_samples=150, n_features=4, n_classes=3, random_state=0
        )
    elif kind == "regression":
        y = np.column_stack([x[:, 0] + x[:, 1], x[:, 2]])
    params = {"hidden_layer_sizes": (6, 4), "max_iter": 7, "random_state": 0}
    if kind == "regression":
        ours, theirs = NodenetRegressor(**params), MLPRegressor(**params)
    else:
        ours, theirs = NodenetClassifier(**params), MLPClassifier(**params)
    ours.fit(x, y)
    theirs.fit(x, y)
    for name in ATTRIBUTES:
        if name == "model_" or not hasattr(theirs, name):  # classes_ of a regressor, ...
            assert name == "model_" or not hasattr(ours, name)
            continue
        mine, reference = getattr(ours, name), getattr(theirs, name)
        if name in ("coefs_", "intercepts_"):
            assert [a.shape for a in mine] == [a.shape for a in reference], name
        elif name == "classes_":
            np.testing.assert_array_equal(mine, reference)
        elif name == "loss_curve_":
            assert len(mine) == len(reference) == ours.n_iter_
        elif isinstance(reference, str | int | type(None)):
            assert mine == reference, name
    assert ours.t_ == ours.n_iter_ * len(x)
    assert ours.best_loss_ == min(ours.loss_curve_) and ours.loss_ == ours.loss_curve_[-1]
    layers = ours.model_.layers[1:]
    assert all(np.shares_memory(c, layer.W) for c, layer in zip(ours.coefs_, layers, strict=True))
    assert ours.predict(x).shape == theirs.predict(x).shape
    if kind != "regression":
        assert ours.predict_proba(x).shape == theirs.predict_proba(x).shape
        np.testing.assert_allclose(ours.predict_log_proba(x), np.log(ours.predict_proba(x)))


@QUIET
def test_early_stopping_is_scikit_learns(iris):
    x, y = iris
    clf = NodenetClassifier(hidden_layer_sizes=(8,), early_stopping=True, random_state=0)
    clf.set_params(validation_fraction=0.2, max_iter=40, n_iter_no_change=3)
    clf.fit(x, y)
    assert len(clf.validation_scores_) == clf.n_iter_ and clf.best_loss_ is None
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        clf.partial_fit(x, y)
    with pytest.raises(ValueError, match="The validation set is too small"):
        NodenetRegressor(early_stopping=True, validation_fraction=0.01).fit(x[:90], y[:90])
    with pytest.raises(ValueError, match="early_stopping cannot hold out validation rows"):
        NodenetClassifier(early_stopping=True, validation_fraction=0.01).fit(x[:90], y[:90] % 2)


def test_the_held_out_rows_are_stratified(iris):
    x, y = iris
    clf = NodenetClassifier(early_stopping=True, validation_fraction=0.2, random_state=3)
    clf._targets(y, True, False, None)
    t = clf._binarizer.transform(y).astype(float)
    _, _, _, (_, t_val) = clf._split(x, t, None, 3)
    assert np.bincount(t_val.argmax(axis=1)).tolist() == [10, 10, 10]  # 50 of each in iris


@QUIET
def test_sgd_schedules_and_the_stopping_rule(iris):
    x, y = iris
    invscaling = NodenetClassifier(
        solver="sgd", learning_rate="invscaling", max_iter=4, random_state=0
    )
    invscaling.fit(x, y)
    assert invscaling._optimizer_.lr == pytest.approx(0.001 / (invscaling.t_ + 1) ** 0.5)
    assert invscaling._optimizer_.name == "nesterov"  # scikit-learn's default momentum
    adaptive = NodenetClassifier(solver="sgd", learning_rate="adaptive", learning_rate_init=0.1)
    adaptive.set_params(max_iter=60, n_iter_no_change=2, tol=10.0, random_state=0, momentum=0.0)
    adaptive.fit(x, y)  # tol=10 never counts as progress: the rate falls until 1e-6
    assert adaptive._optimizer_.name == "sgd"
    assert adaptive._optimizer_.lr <= 1e-6 and adaptive.n_iter_ < 60
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        NodenetClassifier(max_iter=3, n_iter_no_change=np.inf).fit(x, y)
    never = NodenetClassifier(max_iter=30, tol=10.0, n_iter_no_change=np.inf, random_state=0)
    assert never.fit(x, y).n_iter_ == 30  # np.inf: never stops early


def test_lbfgs_solves_on_the_flat_vector_and_the_pool_gives_the_same(iris):
    x, y = iris
    params = {"solver": "lbfgs", "hidden_layer_sizes": (6,), "max_iter": 300, "random_state": 0}
    ours = NodenetClassifier(**params).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = MLPClassifier(**params).fit(x, y)
    assert ours.score(x, y) >= theirs.score(x, y) - 0.01
    assert ours.loss_ < 0.1 and ours.loss_curve_ is None
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        short = NodenetClassifier(**{**params, "max_iter": 10}).fit(x, y)
    with pytest.warns(ConvergenceWarning):  # the pool computes the same gradients
        pooled = NodenetClassifier(**{**params, "max_iter": 10, "workers": 2}).fit(x, y)
    np.testing.assert_allclose(pooled.model_.weights, short.model_.weights, rtol=1e-7)


@QUIET
def test_warm_start_and_shuffle(iris):
    x, y = iris
    warm = NodenetClassifier(hidden_layer_sizes=(5,), max_iter=3, warm_start=True, random_state=0)
    warm.fit(x, y)
    first = warm.model_
    warm.fit(x, y)
    assert warm.model_ is first and warm.n_iter_ == 6  # continued, not started over
    cold = NodenetClassifier(hidden_layer_sizes=(5,), max_iter=6, random_state=0).fit(x, y)
    np.testing.assert_allclose(warm.coefs_[0], cold.coefs_[0], rtol=1e-12)

    in_order = NodenetClassifier(hidden_layer_sizes=(5,), max_iter=1, batch_size=30, shuffle=False)
    in_order.set_params(random_state=0, solver="sgd", momentum=0.0, alpha=0.0).fit(x, y)
    by_hand = NodenetClassifier(hidden_layer_sizes=(5,), max_iter=1, random_state=0)
    by_hand.set_params(solver="sgd", momentum=0.0, alpha=0.0)
    t = by_hand._targets(y, True, False, None)
    by_hand._build(x, 0, None)
    optimizer = by_hand._optimizer_
    with InProcess(by_hand.model_, x, t) as engine:
        for start in range(0, len(x), 30):  # the rows in their order, 30 at a time
            engine.train_step(np.arange(start, start + 30), optimizer)
    np.testing.assert_allclose(in_order.model_.weights, by_hand.model_.weights, rtol=1e-12)


@QUIET
def test_multilabel_y_gets_logistic_outputs(iris):
    x, y = make_multilabel_classification(n_samples=300, n_features=8, n_classes=4, random_state=1)
    x = StandardScaler().fit_transform(x)
    ours = NodenetClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(x, y)
    theirs = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(x, y)
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    assert ours.predict(x).shape == y.shape and set(np.unique(ours.predict(x))) <= {0, 1}
    assert ours.score(x, y) >= theirs.score(x, y) - 0.05  # subset accuracy


@QUIET
def test_sparse_x_trains_a_batch_of_dense_rows_at_a_time(iris, monkeypatch):
    from scipy import sparse

    from nodenet.data.sparse import SparseRows

    x, y = iris
    x = np.where(np.abs(x) < 0.5, 0.0, x)  # mostly zeros
    dense = NodenetClassifier(hidden_layer_sizes=(6,), max_iter=5, batch_size=40, random_state=0)
    dense.fit(x, y)
    widest = []
    make_dense = SparseRows.__getitem__

    def recording(self, rows):
        out = make_dense(self, rows)
        widest.append(len(out))
        return out

    monkeypatch.setattr(SparseRows, "__getitem__", recording)
    held = NodenetClassifier(**dense.get_params()).fit(sparse.csr_matrix(x), y)
    assert max(widest) <= 40 < len(x)  # a batch at a time, never the whole matrix
    np.testing.assert_array_equal(held.model_.weights, dense.model_.weights)
    np.testing.assert_array_equal(held.predict_proba(sparse.csc_matrix(x)), dense.predict_proba(x))
    with pytest.raises(ValueError, match="sparse inputs train in this process only"):
        NodenetClassifier(max_iter=1, workers=2).fit(sparse.csr_matrix(x), y)


@QUIET
def test_a_fitted_estimator_exports_to_onnx(iris, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    x, y = iris
    clf = NodenetClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(x, y)
    session = onnxruntime.InferenceSession(str(clf.to_onnx(tmp_path / "clf.onnx")))
    out = session.run(None, {session.get_inputs()[0].name: x.astype(session_dtype(session))})[0]
    np.testing.assert_allclose(out, clf.predict_proba(x), rtol=1e-6, atol=1e-9)


def session_dtype(session):
    return np.float64 if "double" in session.get_inputs()[0].type else np.float32


def test_the_readme_holds_the_parameter_and_attribute_tables():
    from nodenet.sklearn.mapping import markdown
    from tests.conftest import ROOT

    assert markdown() in (ROOT / "README.md").read_text()


@pytest.mark.slow
@QUIET
@pytest.mark.timeout(120)
def test_cross_validation_with_jobs_and_the_pool_equals_this_process(iris):
    """``n_jobs=2`` runs fits in loky's processes, each with its own pool of workers:
    they are forked by a fork server of their own program, so loky's context is never
    needed there."""
    from sklearn.model_selection import cross_val_score

    x, y = iris
    settings = {"max_iter": 5, "random_state": 0, "hidden_layer_sizes": (8,)}
    pooled = cross_val_score(NodenetClassifier(workers=2, **settings), x, y, cv=3, n_jobs=2)
    here = cross_val_score(NodenetClassifier(**settings), x, y, cv=3)
    np.testing.assert_allclose(pooled, here)


def test_a_diverging_estimator_says_so_without_command_line_flags(iris):
    from nodenet import DivergenceError

    x, y = iris
    linear = NodenetRegressor(learning_rate_init=10.0, solver="sgd", momentum=0.0)
    linear.set_params(activation="identity", max_iter=50, n_iter_no_change=1000)
    with pytest.raises(DivergenceError, match="try a lower learning rate than 10") as info:
        linear.fit(x, y)
    assert "--lr" not in str(info.value)
