"""``NodenetClassifier`` and ``NodenetRegressor``: drop-ins for scikit-learn's
``MLPClassifier`` and ``MLPRegressor``.

Every parameter of scikit-learn's estimators means what it means there (the written
mapping is :data:`nodenet.sklearn.mapping.SKLEARN_NAMES`), and so does every fitted
attribute; training is nodenet's :func:`~nodenet.training.fit` (or L-BFGS on the flat
parameter vector), so ``workers=2`` trains in the worker pool.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from .. import io
from ..callbacks import EpochLines
from ..data import Normaliser
from ..data.sparse import is_sparse
from ..graph import Model
from ..layer import Layer
from ..optimizers import OPTIMIZERS, get_optimizer
from ..settings import SETTINGS
from ..training import fit
from .lbfgs import coefficient_mask, fit_lbfgs
from .mapping import ACTIVATION_NAMES
from .rules import SklearnRule

SPARSE = ["csr", "csc"]  # as MLPClassifier: rows are made dense a batch at a time
SOLVERS = ("lbfgs", "sgd", "adam", *sorted(set(OPTIMIZERS) - {"sgd", "adam"}))


class _NodenetEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, the
    solvers, the fitted attributes, pickling through nodenet's own file format."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    _output: str  # the output activation of a regressor, or of a multiclass classifier

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        init="glorot",
        dtype="float64",
        normalise=None,
        std_floor=0.0,
        average=0.0,
        dropout=SETTINGS["dropout"].default,
        batch_norm=SETTINGS["batch_norm"].default,
        workers=SETTINGS["workers"].default,
        backend=SETTINGS["backend"].default,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.init = init
        self.dtype = dtype
        self.normalise = normalise
        self.std_floor = std_floor
        self.average = average
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.workers = workers
        self.backend = backend

    # ----------------------------------------------------------- parameters
    def _check_parameters(self) -> list[int]:
        """Validate what scikit-learn's ``_parameter_constraints`` would, naming the
        parameter; returns the hidden layer sizes."""
        sizes = self.hidden_layer_sizes
        if sizes is None or isinstance(sizes, str):
            raise ValueError(f"hidden_layer_sizes must be an int or ints, got {sizes!r}")
        sizes = [sizes] if np.isscalar(sizes) else list(sizes)
        if not all(isinstance(n, numbers.Integral) and n > 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must hold positive ints, got {sizes!r}")
        if self.activation not in ACTIVATION_NAMES and self.activation != "leaky_relu":
            raise ValueError(
                f"activation must be one of {[*ACTIVATION_NAMES, 'leaky_relu']}, "
                f"got {self.activation!r}"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {list(SOLVERS)}, got {self.solver!r}")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise ValueError(
                "learning_rate must be 'constant', 'invscaling' or 'adaptive', "
                f"got {self.learning_rate!r}"
            )
        batch = self.batch_size
        if batch != "auto" and not (isinstance(batch, numbers.Integral) and batch >= 1):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {batch!r}")
        patience = self.n_iter_no_change
        if not (isinstance(patience, numbers.Real) and patience >= 1):
            raise ValueError(f"n_iter_no_change must be >= 1 (or np.inf), got {patience!r}")
        for name in ("max_iter", "max_fun"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Integral) and value >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must lie in (0, 1), got {self.validation_fraction!r}"
            )
        if self.solver == "lbfgs" and self.dropout:
            raise ValueError("solver='lbfgs' needs a deterministic loss: use dropout=0")
        return sizes

    def _optimizer(self, batch_weight: float):
        """The solver as a nodenet optimizer; ``alpha`` as weight decay for a batch of
        total weight ``batch_weight`` (scikit-learn divides its penalty by it)."""
        name = self.solver
        settings = {"lr": self.learning_rate_init, "average": self.average}
        if name == "sgd" and self.momentum:  # scikit-learn's sgd carries momentum
            name = "nesterov" if self.nesterovs_momentum else "momentum"
            settings["momentum"] = self.momentum
        elif name in ("adam", "adamw"):
            settings.update(beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)
        decay = self.alpha / batch_weight if batch_weight > 0 else 0.0
        if name != "adamw":
            settings["weight_decay"] = decay
        return get_optimizer(name, **settings)

    def _seed(self) -> int:
        """``random_state`` as nodenet's ``seed``: an int is the seed itself."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    # ------------------------------------------------------------- training
    def _build(self, x: np.ndarray, seed: int, sample_weight) -> None:
        sizes = self._check_parameters()
        act = ACTIVATION_NAMES.get(self.activation, self.activation)
        hidden = [Layer(n, act, self.dropout, self.batch_norm) for n in sizes]
        output, loss = self._output_layer()
        model = Model(x.shape[1], loss, [*hidden, Layer(self.n_outputs_, output)])
        model.construct(seed, self.init, self.dtype)
        if self.normalise is not None:  # statistics of the whole training input
            model.normaliser = Normaliser.fit(self.normalise, x, std_floor=self.std_floor)
        self.model_ = model
        self.n_layers_ = len(sizes) + 2
        self.out_activation_ = {"sigmoid": "logistic"}.get(output, output)
        mean_weight = 1.0 if sample_weight is None else float(np.mean(sample_weight))
        batch_weight = self._batch_size(x.shape[0]) * mean_weight
        self._optimizer_ = None if self.solver == "lbfgs" else self._optimizer(batch_weight)
        self.n_iter_, self.t_, self.loss_curve_ = 0, 0, []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _loss_scale(self) -> float:
        """What scikit-learn reports of the mean loss: a regressor's per output."""
        return 1.0

    def _batch_size(self, n: int) -> int:
        return min(200 if self.batch_size == "auto" else self.batch_size, n)

    def _split(self, x, t, sample_weight, seed: int):
        """``(x, t, w, validation)``: the training rows and, with early stopping, the
        held-out ones as scikit-learn draws them (stratified for a classifier with one
        output); too small a validation set is refused."""
        if not self.early_stopping:
            return x, t, sample_weight, None
        labels = t.argmax(axis=1) if t.shape[1] > 1 else t[:, 0]
        stratify = labels if self._stratified() else None
        parts = [x, t] if sample_weight is None else [x, t, sample_weight]
        try:
            split = train_test_split(
                *parts, random_state=seed, test_size=self.validation_fraction, stratify=stratify
            )
        except ValueError as exc:  # a class too small to stratify, or no rows held out
            raise ValueError(f"early_stopping cannot hold out validation rows: {exc}") from exc
        x_train, x_val, t_train, t_val = split[:4]
        if x_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the "
                "size of your dataset."
            )
        w_train = None if sample_weight is None else split[4]
        return x_train, t_train, w_train, (x_val, t_val)

    def _fit(self, X, y, sample_weight, incremental: bool, classes=None):
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if incremental and self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers")
        first = not hasattr(self, "model_") or not (incremental or self.warm_start)
        X, y = validate_data(
            self, X, y, reset=first, dtype=np.float64, multi_output=True, accept_sparse=SPARSE
        )
        if self.normalise is not None and is_sparse(X):
            raise ValueError(
                "normalise does not go with sparse X (centring makes it dense); scale it "
                "with StandardScaler(with_mean=False) instead"
            )
        t = self._targets(y, first, incremental, classes)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        seed = self._seed()
        if first:
            self._build(X, seed, sample_weight)
        if self.solver == "lbfgs":
            return self._fit_lbfgs(X, t, sample_weight, seed)
        x_train, t_train, w_train, validation = self._split(X, t, sample_weight, seed)
        epochs = 1 if incremental else self.max_iter
        self._stopped = False
        self._train(x_train, t_train, w_train, validation, epochs, seed)
        if not incremental and not self._stopped and self.n_iter_ >= self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _train(self, x, t, sample_weight, validation, epochs: int, seed: int) -> None:
        """``epochs`` more epochs of the stochastic solver on ``x`` and targets ``t``."""
        model, batch = self.model_, self._batch_size(x.shape[0])
        score = None
        if validation is not None:
            x_val, t_val = validation

            def score() -> float:
                return self._validation_score(model.predict_proba(x_val), t_val)

        mask = coefficient_mask(model)
        total = x.shape[0] if sample_weight is None else float(np.sum(sample_weight))
        batches = math.ceil(x.shape[0] / batch)

        def penalty() -> float:  # scikit-learn's loss_ adds 0.5 alpha ||W||^2 per batch
            coefs = model.weights[mask].astype(np.float64)
            return 0.5 * self.alpha * float(coefs @ coefs) * batches / max(total, 1e-12)

        rule = SklearnRule(self, score, x.shape[0], penalty, self._loss_scale())
        callbacks = [rule, *([EpochLines()] if self.verbose else [])]
        fit(
            model,
            x,
            t,
            epochs=self.n_iter_ + epochs,
            initial_epoch=self.n_iter_,
            batch_size=batch,
            optimizer=self._optimizer_,
            validation=0.0,
            shuffle=bool(self.shuffle),
            backend=self.backend,
            workers=self.workers,
            seed=seed,
            callbacks=callbacks,
            sample_weight=sample_weight,
        )

    def _fit_lbfgs(self, X, t, sample_weight, seed: int):
        self.n_iter_, self.loss_ = fit_lbfgs(
            self.model_,
            X,
            t,
            sample_weight,
            alpha=self.alpha,
            max_iter=self.max_iter,
            max_fun=self.max_fun,
            tol=self.tol,
            workers=self.workers,
            seed=seed,
        )
        self.t_ = X.shape[0]
        self.loss_curve_ = self.validation_scores_ = self.best_validation_score_ = None
        self.best_loss_ = None
        return self

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64, accept_sparse=SPARSE)
        return self.model_.predict_proba(X).astype(np.float64)

    # ------------------------------------------------------- fitted views
    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices ``(n_in, n_out)`` per layer, as scikit-learn shapes them:
        transposed views of nodenet's ``(N_l, N_{l-1})`` blocks of the flat weights."""
        check_is_fitted(self, "model_")
        return [layer.W.T for layer in self.model_.layers[1:]]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors ``(n_out,)`` per layer: views of the flat biases."""
        check_is_fitted(self, "model_")
        return [layer.b for layer in self.model_.layers[1:]]

    def to_onnx(self, path):
        """Write the fitted network, with its normaliser, as an ONNX graph (needs
        ``nodenet[onnx]``): input ``x`` (n, n_features), output ``y``, the output units
        (a binary classifier's one logistic unit is the probability of ``classes_[1]``)."""
        from ..onnx import save_onnx

        check_is_fitted(self, "model_")
        return save_onnx(self.model_, path)

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
