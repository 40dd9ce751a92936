"""``NodenetRegressor``: ``MLPRegressor``'s parameters, attributes and outputs."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score

from .estimators import _NodenetEstimator


class NodenetRegressor(RegressorMixin, _NodenetEstimator):
    """An MLP regressor with ``MLPRegressor``'s interface: identity output and
    scikit-learn's half squared error (``sum_k (a_k - y_k)^2 / (2 K)`` per sample), so
    ``loss_``, ``tol`` and ``loss_curve_`` mean what they mean there; parameters and
    attributes as :class:`~nodenet.sklearn.NodenetClassifier`. ``y`` may be (n,) or
    (n, n_outputs); ``predict`` returns the same shape."""

    def __init__(self, *args, loss="squared_error", **params):
        super().__init__(*args, **params)
        self.loss = loss

    # scikit-learn reads an estimator's parameters from its __init__ signature
    __init__.__signature__ = inspect.signature(_NodenetEstimator.__init__).replace(
        parameters=[
            *inspect.signature(_NodenetEstimator.__init__).parameters.values(),
            inspect.Parameter("loss", inspect.Parameter.KEYWORD_ONLY, default="squared_error"),
        ]
    )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _output_layer(self) -> tuple[str, str]:
        if self.loss != "squared_error":
            raise ValueError(
                f"loss must be 'squared_error', got {self.loss!r} (poisson needs an "
                "exponential output, which nodenet does not have)"
            )
        return "identity", "half_squared_error"

    def _loss_scale(self) -> float:
        return 1.0 / self.n_outputs_

    def _stratified(self) -> bool:
        return False

    def _targets(self, y, first: bool, incremental: bool, classes) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        return y.reshape(len(y), -1)

    def _validation_score(self, outputs: np.ndarray, t: np.ndarray) -> float:
        return float(r2_score(t, outputs))

    def fit(self, X, y, sample_weight=None) -> NodenetRegressor:
        """Train on ``X`` (n, n_features) and targets ``y``; ``warm_start`` continues
        the fitted network."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None) -> NodenetRegressor:
        """One epoch on ``X``, ``y``, continuing the network and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X) -> np.ndarray:
        """Predicted targets, (n,) or (n, n_outputs) as ``y`` was."""
        out = self._outputs(X)
        return out.ravel() if self._y_1d else out
