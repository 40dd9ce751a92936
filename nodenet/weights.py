"""Sample and class weights: how much each training row counts in the loss and the
gradients (scikit-learn's and Keras' ``sample_weight`` / ``class_weight``)."""

from __future__ import annotations

import numpy as np


def row_weights(
    t: np.ndarray, rows: np.ndarray, sample_weight=None, class_weight=None
) -> np.ndarray | None:
    """The weight of every row of the targets ``t`` (n, K), or ``None`` when every row
    counts once. ``sample_weight`` (one per row of ``rows``, the training rows) and
    ``class_weight`` (``{label: weight}`` or ``"balanced"``: ``n / (classes x
    count(label))`` over the training rows, as scikit-learn defines it) multiply;
    rows outside ``rows`` (validation) get 1. Raises ``ValueError`` naming the setting."""
    if sample_weight is None and class_weight is None:
        return None
    weights = np.ones(len(t))
    if sample_weight is not None:
        given = np.asarray(sample_weight, dtype=np.float64)
        if given.shape != (len(rows),):
            raise ValueError(
                f"sample_weight must have one weight per training row ({len(rows)}), "
                f"got shape {given.shape}"
            )
        if not np.isfinite(given).all() or (given < 0).any():
            raise ValueError("sample_weight must be finite and >= 0")
        weights[rows] = given
    if class_weight is not None:
        labels = t[rows].argmax(axis=1)
        weights[rows] *= _class_weights(class_weight, labels, t.shape[1])[labels]
    if weights[rows].sum() <= 0:
        raise ValueError("the training rows' weights add up to 0")
    return weights


def _class_weights(class_weight, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One weight per class (n_classes,)."""
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        present = np.count_nonzero(counts)
        return np.divide(len(labels), present * counts, out=np.zeros(n_classes), where=counts > 0)
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
    per_class = np.ones(n_classes)
    for label, weight in class_weight.items():
        if not (isinstance(label, (int, np.integer)) and 0 <= label < n_classes):
            raise ValueError(f"class_weight: {label!r} is not a class (0..{n_classes - 1})")
        if not (np.isfinite(weight) and weight >= 0):
            raise ValueError(f"class_weight: the weight of class {label} must be >= 0")
        per_class[label] = weight
    return per_class
