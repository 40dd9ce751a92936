"""``NodenetClassifier``: ``MLPClassifier``'s parameters, attributes and outputs."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import _check_partial_fit_first_call, unique_labels
from sklearn.utils.validation import column_or_1d

from .estimators import _NodenetEstimator


class NodenetClassifier(ClassifierMixin, _NodenetEstimator):
    """A multi-layer perceptron classifier with ``MLPClassifier``'s interface.

    Parameters are ``MLPClassifier``'s, with its defaults and meanings (see
    :data:`nodenet.sklearn.SKLEARN_NAMES`), plus nodenet's ``init``, ``dtype``,
    ``normalise``, ``std_floor``, ``average``, ``dropout``, ``batch_norm``, ``workers``
    and ``backend``. As in scikit-learn: several classes give a Softmax output and
    cross-entropy; two classes one logistic unit and binary cross-entropy; a multilabel
    indicator ``y`` (n, K) K logistic units.

    Attributes are scikit-learn's: ``classes_``, ``coefs_`` and ``intercepts_`` (views
    of nodenet's flat arrays, shaped ``(n_in, n_out)``: the transpose of nodenet's own
    layer layout), ``loss_``, ``best_loss_``, ``loss_curve_``, ``validation_scores_``,
    ``best_validation_score_``, ``t_``, ``n_iter_``, ``n_layers_``, ``n_outputs_``,
    ``out_activation_``, ``n_features_in_``; and ``model_``, the nodenet model.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _output_layer(self) -> tuple[str, str]:
        if self._binarizer.y_type_ == "multiclass":
            return "softmax", "cross_entropy"
        return "sigmoid", "binary_cross_entropy"

    def _stratified(self) -> bool:
        return self.n_outputs_ == 1 or self._binarizer.y_type_ == "multiclass"

    def _targets(self, y, first: bool, incremental: bool, classes) -> np.ndarray:
        """Labels as the output units' targets (n, n_outputs), by a ``LabelBinarizer``
        as scikit-learn's MLP does."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if first:
            self._binarizer = LabelBinarizer().fit(y if classes is None else classes)
            self.classes_ = self._binarizer.classes_
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes; y holds "
                    f"1 class ({self.classes_[0]!r})"
                )
            self.n_outputs_ = 1 if self._binarizer.y_type_ == "binary" else len(self.classes_)
        else:
            given = unique_labels(y)
            if self.warm_start and not incremental and set(given) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {given}"
                )
            unknown = np.setdiff1d(given, self.classes_)
            if len(unknown):
                raise ValueError(f"y holds labels not in classes_ {self.classes_}: {unknown}")
        return self._binarizer.transform(y).astype(np.float64)

    def _validation_score(self, proba: np.ndarray, t: np.ndarray) -> float:
        return float(accuracy_score(self._decide(t), self._decide(proba)))

    def _decide(self, outputs: np.ndarray) -> np.ndarray:
        """Output units (n, n_outputs) as labels: argmax of several classes, a 0.5
        threshold for a logistic unit and for every label of a multilabel ``y``."""
        if self._binarizer.y_type_ == "multiclass":
            return self.classes_[outputs.argmax(axis=1)]
        decided = (outputs >= 0.5).astype(int)
        return self._binarizer.inverse_transform(decided)

    def fit(self, X, y, sample_weight=None) -> NodenetClassifier:
        """Train on ``X`` (n, n_features) and labels ``y`` (n,) or a multilabel
        indicator (n, K); ``warm_start`` continues the fitted network."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None) -> NodenetClassifier:
        """One epoch on ``X``, ``y``, continuing the network and optimizer state;
        ``classes`` (every label) is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            for name in ("model_", "n_features_in_"):
                self.__dict__.pop(name, None)
        return self._fit(X, y, sample_weight, incremental=True, classes=self.classes_)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``classes_``
        (multilabel: each label's probability)."""
        proba = self._outputs(X)
        if self.n_outputs_ == 1:
            return np.hstack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X) -> np.ndarray:
        """The natural log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The label of each row (n,), or the indicator matrix (n, K) of a multilabel
        ``y``."""
        return self._decide(self._outputs(X))
