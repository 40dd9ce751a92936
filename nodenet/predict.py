"""Prediction and evaluation: probabilities, thresholds, accuracy, confusion matrix.

These functions take *raw* inputs and apply ``model.normaliser`` when the model has one
(through :meth:`~nodenet.graph.Model.normalise`, as every door does), so a saved model
predicts on data exactly as it was given to training.
"""

from __future__ import annotations

import numpy as np

from .backprop import batch_evaluate
from .graph import Model


def predict_proba(model: Model, x: np.ndarray) -> np.ndarray:
    """Output activations (n, N_L) for raw inputs ``x`` (n, N_0), in chunks."""
    x = model.normalise(x)
    rows = model.pass_rows()
    return (
        np.concatenate([model.propagate(x[i : i + rows]).copy() for i in range(0, len(x), rows)])
        if len(x)
        else np.empty((0, model.output_size), dtype=model.dtype)
    )


def apply_threshold(proba: np.ndarray, threshold: str | float | None = "argmax") -> np.ndarray:
    """Turn probabilities (n, K) into decisions.

    ``"argmax"``: class indices (n,) (for a single output node, ``p >= 0.5``);
    a float: a 0/1 matrix (n, K) marking every class whose probability reaches it;
    ``None`` or ``"none"``: the probabilities unchanged.
    """
    if threshold is None or threshold == "none":
        return proba
    if threshold == "argmax":
        if proba.shape[1] == 1:
            return (proba[:, 0] >= 0.5).astype(np.int64)
        return proba.argmax(axis=1)
    try:
        cut = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(
            f"threshold must be 'argmax', 'none' or a number, got {threshold!r}"
        ) from None
    if not 0 <= cut <= 1:
        raise ValueError(f"a float threshold must lie in [0, 1], got {cut}")
    return (proba >= cut).astype(np.int64)


def predict(model: Model, x: np.ndarray, threshold: str | float | None = "argmax") -> np.ndarray:
    """Decisions for raw inputs ``x``; see :func:`apply_threshold`."""
    return apply_threshold(predict_proba(model, x), threshold)


def evaluate(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean loss and accuracy of raw inputs ``x`` against labels ``y``."""
    x = model.normalise(x)
    t = model.targets(y, len(x))
    loss, correct = batch_evaluate(model, x, t)
    n = max(len(x), 1)
    return {"loss": loss / n, "accuracy": correct / n, "samples": len(x)}


def regression_scores(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean loss, root mean squared error and R^2 (over every output, as scikit-learn's
    ``r2_score`` averages them) of raw inputs ``x`` against targets ``y`` (n, k)."""
    result = evaluate(model, x, y)
    a = predict_proba(model, x).astype(np.float64)
    t = np.asarray(y, dtype=np.float64).reshape(a.shape)
    residual = ((a - t) ** 2).sum(axis=0)
    total = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), 0.0)
    rmse = float(np.sqrt(residual.sum() / t.size))
    return {"loss": result["loss"], "rmse": rmse, "r2": float(r2.mean()), "samples": len(x)}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j``; (K, K)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix
