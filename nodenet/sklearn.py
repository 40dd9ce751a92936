"""scikit-learn estimators: ``NodenetClassifier`` and ``NodenetRegressor``.

They train a nodenet :class:`~nodenet.graph.Model` with :func:`~nodenet.training.fit`,
so they work where scikit-learn expects a model (``Pipeline``, ``GridSearchCV``,
``cross_val_score``), also with the worker pool (``workers=2``). The settings that mean
what they mean in ``sklearn.neural_network.MLPClassifier`` carry its names::

    from nodenet.sklearn import NodenetClassifier
    clf = NodenetClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0)
    clf.fit(x, y).score(x_test, y_test)

Their parameters map onto nodenet's settings table (:data:`nodenet.settings.SETTINGS`)
through one written table, :data:`SKLEARN_NAMES`; the defaults are scikit-learn's where
it has the parameter, and nodenet's own (the table's) for what nodenet adds.

Training stops, as scikit-learn's MLP does, when the epoch's training loss (with
``early_stopping``: the validation score, and the best weights are kept) has not improved
by ``tol`` for ``n_iter_no_change`` epochs. The fitted network is ``model_``.

Optional: ``pip install 'nodenet[sklearn]'``.
"""

from __future__ import annotations

import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError as exc:  # name the extra, not only the missing module
    raise ImportError("nodenet.sklearn needs scikit-learn: pip install 'nodenet[sklearn]'") from exc
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import io
from .callbacks import EarlyStopping
from .data import Normaliser, train_validation_split
from .graph import Model
from .layer import Layer
from .optimizers import OPTIMIZERS, get_optimizer
from .settings import SETTINGS
from .training import fit

#: The one written mapping between the estimators and the settings table:
#: parameter -> (nodenet setting or None, where its default comes from, how it maps).
#: ``"scikit-learn"``: MLPClassifier's default; ``"table"``: the settings table's;
#: ``"as scikit-learn"``: a nodenet parameter set to behave as scikit-learn does.
#: Tests hold the estimators' defaults to it.
SKLEARN_NAMES: dict[str, tuple[str | None, str, str]] = {
    "hidden_layer_sizes": ("hidden", "scikit-learn", "the same sizes"),
    "activation": ("activation", "scikit-learn", "the same names"),
    "solver": ("optimizer", "scikit-learn", "any nodenet optimizer name"),
    "alpha": ("weight_decay", "scikit-learn", "weight_decay = alpha / (batch size x mean sample weight): scikit-learn adds alpha * W to the batch's summed gradient and divides by the batch's total weight (exact for full batches)"),
    "batch_size": ("batch_size", "scikit-learn", "'auto' is min(200, n_samples)"),
    "learning_rate_init": ("lr", "scikit-learn", "the same"),
    "max_iter": ("epochs", "scikit-learn", "epochs"),
    "shuffle": (None, "scikit-learn", "nodenet shuffles every epoch; False is refused"),
    "random_state": ("seed", "scikit-learn", "an int is the seed itself; None or a RandomState draws one"),
    "tol": (None, "scikit-learn", "the stopping rule's min_delta"),
    "early_stopping": ("validation", "scikit-learn", "True holds out validation_fraction, False none"),
    "validation_fraction": ("validation", "scikit-learn", "the share held out with early_stopping"),
    "n_iter_no_change": (None, "scikit-learn", "the stopping rule's patience"),
    "verbose": (None, "scikit-learn", "a progress bar"),
    "init": ("init", "as scikit-learn", "'xavier': Glorot-uniform, scikit-learn's init"),
    "dtype": ("dtype", "as scikit-learn", "float64, as scikit-learn computes on float64 inputs"),
    "normalise": ("normalise", "as scikit-learn", "None: the inputs as given"),
    "std_floor": ("std_floor", "as scikit-learn", "0: the textbook z-score (as nodenet train on a CSV)"),
    "average": ("average", "as scikit-learn", "0: the last iterate, as scikit-learn ends with"),
    "dropout": ("dropout", "table", "the same"),
    "batch_norm": ("batch_norm", "table", "the same"),
    "workers": ("workers", "table", "the same"),
    "backend": ("backend", "table", "the same"),
}  # fmt: skip


class _NodenetEstimator(BaseEstimator):
    """What the classifier and the regressor share: the network, the training loop,
    pickling through nodenet's own file format (never the live arrays)."""

    _loss: str
    _output: str

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.001,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        init="xavier",
        dtype="float64",
        normalise=None,
        std_floor=0.0,
        average=0.0,
        dropout=SETTINGS["dropout"].default,
        batch_norm=SETTINGS["batch_norm"].default,
        workers=SETTINGS["workers"].default,
        backend=SETTINGS["backend"].default,
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.init = init
        self.dtype = dtype
        self.normalise = normalise
        self.std_floor = std_floor
        self.average = average
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.workers = workers
        self.backend = backend
        self.verbose = verbose

    # ---------------------------------------------------------------- training
    def _build(self, x: np.ndarray, n_outputs: int, seed: int, sample_weight=None) -> None:
        if self.solver not in OPTIMIZERS:
            raise ValueError(
                f"solver must be one of {sorted(OPTIMIZERS)}, got {self.solver!r} "
                "(nodenet trains with mini-batch optimizers only: no lbfgs)"
            )
        if not self.shuffle:
            raise ValueError("shuffle=False is not supported: nodenet shuffles every epoch")
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if np.isscalar(sizes) else list(sizes)
        hidden = [Layer(n, self.activation, self.dropout, self.batch_norm) for n in sizes]
        layers = [*hidden, Layer(n_outputs, self._output)]
        model = Model(x.shape[1], self._loss, layers).construct(seed, self.init, self.dtype)
        if self.normalise is not None:  # statistics of the rows that train
            rows, _ = train_validation_split(len(x), self._validation(), seed)
            model.normaliser = Normaliser.fit(self.normalise, x[rows], std_floor=self.std_floor)
        self.model_ = model
        # scikit-learn adds alpha * W to the batch's summed gradient and divides by its
        # total weight; a batch of the mean weight gives this weight decay
        mean_weight = 1.0 if sample_weight is None else float(np.mean(sample_weight))
        batch_weight = self._batch_size(len(x)) * mean_weight
        settings = {
            "lr": self.learning_rate_init,
            "weight_decay": self.alpha / batch_weight if batch_weight > 0 else 0.0,
            "average": self.average,
        }
        self._optimizer = get_optimizer(self.solver, **settings)
        self.n_iter_, self.loss_curve_ = 0, []

    def _batch_size(self, n: int) -> int:
        return min(200 if self.batch_size == "auto" else self.batch_size, n)

    def _validation(self) -> float:
        return self.validation_fraction if self.early_stopping else 0.0

    def _train(self, x, t, sample_weight, epochs: int, seed: int) -> None:
        """``epochs`` more epochs on validated ``x`` (n, N_0) and targets ``t``."""
        monitor = "val_accuracy" if self._loss == "cross_entropy" else "val_loss"
        stopper = EarlyStopping(
            monitor=monitor if self.early_stopping else "loss",
            patience=self.n_iter_no_change,
            min_delta=self.tol,
            restore_best_weights=self.early_stopping,
            verbose=bool(self.verbose),
        )
        history = fit(
            self.model_,
            x,
            t,
            epochs=self.n_iter_ + epochs,
            initial_epoch=self.n_iter_,
            batch_size=self._batch_size(len(x)),
            optimizer=self._optimizer,
            validation=self._validation(),
            backend=self.backend,
            workers=self.workers,
            seed=seed,
            callbacks=[stopper] if epochs > 1 else [],
            progress=bool(self.verbose),
            sample_weight=sample_weight,
        )
        losses = [epoch["loss"] for epoch in history.epochs]
        self.loss_curve_ += losses
        self.n_iter_ += len(losses)
        self.loss_ = self.loss_curve_[-1]

    def _seed(self) -> int:
        """``random_state`` as nodenet's ``seed``: an int is the seed itself."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit(self, X, y, sample_weight, incremental: bool, classes=None):
        first = not incremental or not hasattr(self, "model_")
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64, multi_output=True)
        t = self._targets(y, first, classes)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        seed = self._seed()
        if first:
            self._build(X, self._n_outputs, seed, sample_weight)
        self._train(X, t, sample_weight, 1 if incremental else self.max_iter, seed)
        return self

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.model_.predict_proba(X)

    # ------------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if "model_" in state:  # the network as its file's arrays: views do not pickle
            state["model_"] = io.model_arrays(self.model_)
        return state

    def __setstate__(self, state: dict) -> None:
        if "model_" in state:
            state["model_"] = io.model_from_arrays(state["model_"], "<pickled estimator>")
        self.__dict__.update(state)


class NodenetClassifier(ClassifierMixin, _NodenetEstimator):
    """A softmax MLP classifier with scikit-learn's estimator interface.

    Parameters are those of ``MLPClassifier`` where they mean the same
    (``hidden_layer_sizes``, ``activation``, ``solver`` - any nodenet optimizer name -,
    ``alpha`` - L2 on the weights -, ``batch_size``, ``learning_rate_init``,
    ``max_iter`` - epochs -, ``random_state``, ``tol``, ``early_stopping``,
    ``validation_fraction``, ``n_iter_no_change``), plus nodenet's ``dropout``,
    ``batch_norm``, ``workers`` and ``backend``.

    Attributes: ``classes_``, ``n_features_in_``, ``model_`` (the trained
    :class:`~nodenet.graph.Model`), ``n_iter_``, ``loss_``, ``loss_curve_``.
    """

    _loss, _output = "cross_entropy", "softmax"

    def _targets(self, y, first: bool, classes) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            from sklearn.utils.validation import column_or_1d

            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y) if classes is None else np.asarray(classes)
            self._n_outputs = len(self.classes_)
            if self._n_outputs < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes; y holds "
                    f"1 class ({self.classes_[0]!r})"
                )
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[index], y):
            unknown = np.setdiff1d(y, self.classes_)
            raise ValueError(f"y holds labels not in classes_ {self.classes_}: {unknown}")
        return index

    def fit(self, X, y, sample_weight=None) -> NodenetClassifier:
        """Train a new network on ``X`` (n, n_features) and labels ``y`` (n,)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None) -> NodenetClassifier:
        """One epoch on ``X``, ``y``, continuing the network and optimizer state;
        ``classes`` (every label) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            for name in ("model_", "n_features_in_"):
                self.__dict__.pop(name, None)
        return self._fit(X, y, sample_weight, incremental=True, classes=self.classes_)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``classes_``."""
        return self._outputs(X)

    def predict(self, X) -> np.ndarray:
        """The most probable label of each row (n,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class NodenetRegressor(RegressorMixin, _NodenetEstimator):
    """An MLP regressor (identity output, squared error) with scikit-learn's estimator
    interface; parameters as :class:`NodenetClassifier`. ``y`` may be (n,) or
    (n, n_outputs); ``predict`` returns the same shape."""

    _loss, _output = "half_squared_error", "identity"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, first: bool, classes) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_1d = y.ndim == 1
            self._n_outputs = 1 if y.ndim == 1 else y.shape[1]
        return y.reshape(len(y), -1)

    def fit(self, X, y, sample_weight=None) -> NodenetRegressor:
        """Train a new network on ``X`` (n, n_features) and targets ``y``."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None) -> NodenetRegressor:
        """One epoch on ``X``, ``y``, continuing the network and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X) -> np.ndarray:
        """Predicted targets, (n,) or (n, n_outputs) as ``y`` was."""
        out = self._outputs(X)
        return out.ravel() if self._y_1d else out
