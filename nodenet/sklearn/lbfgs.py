"""``solver="lbfgs"``: scipy's L-BFGS-B on the model's flat parameter vector.

The parameters already are one flat weight array and one flat bias array, so the
objective is the full-batch mean loss plus scikit-learn's L2 penalty
``0.5 * alpha * ||W||^2 / n`` and its gradient, both from a backend's ``gradient`` over
every row: this process, or the worker pool with ``workers=N``.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..backend import get_backend, weight_sum
from ..data.sparse import SparseRows
from ..graph import Model

#: rows per piece of a full-batch gradient over a sparse input (made dense this many
#: rows at a time)
CHUNK = 4096


def coefficient_mask(model: Model) -> np.ndarray:
    """Which entries of the flat weights are the layers' ``W`` (the L2 penalty's terms;
    batch-norm scales are not), (n_weights,) bool."""
    mask = np.zeros(model.layout.n_weights, dtype=bool)
    for block in model.layout.weights[1:]:
        mask[block.start : block.stop] = True
    return mask


def fit_lbfgs(
    model: Model,
    x: np.ndarray,
    t: np.ndarray,
    sample_weight: np.ndarray | None,
    *,
    alpha: float,
    max_iter: int,
    max_fun: int,
    tol: float,
    workers: int,
    seed: int,
) -> tuple[int, float]:
    """Minimise in place; returns ``(iterations, final loss)``. Warns
    ``ConvergenceWarning`` as scikit-learn does when L-BFGS stops short of ``tol``."""
    import scipy.optimize
    from sklearn.exceptions import ConvergenceWarning

    rows = np.arange(x.shape[0])
    mask = coefficient_mask(model)
    n_weights = model.layout.n_weights
    backend = get_backend("pool" if workers else "inprocess")
    x = model.normalise(x)
    with backend(
        model,
        x,
        t,
        optimizer=None,
        workers=workers,
        chunk=CHUNK if isinstance(x, SparseRows) else None,
        seed=seed,
        max_failures=0,
        sample_weight=sample_weight,
    ) as engine:
        total = weight_sum(sample_weight, rows)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            model.weights[...] = theta[:n_weights]
            model.biases[...] = theta[n_weights:]
            loss_sum, _, dW, db = engine.gradient(rows)
            coefs = model.weights[mask].astype(np.float64)
            loss = loss_sum / total + 0.5 * alpha * float(coefs @ coefs) / total
            grad_w = dW.astype(np.float64) / total
            grad_w[mask] += alpha * coefs / total
            return loss, np.concatenate([grad_w, db.astype(np.float64) / total])

        start = np.concatenate([model.weights, model.biases]).astype(np.float64)
        result = scipy.optimize.minimize(
            objective,
            start,
            method="L-BFGS-B",
            jac=True,
            options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
        )
        model.weights[...] = result.x[:n_weights]
        model.biases[...] = result.x[n_weights:]
    if result.status != 0:
        warnings.warn(
            f"lbfgs failed to converge after {result.nit} iterations (status "
            f"{result.status}: {result.message}); increase max_iter or max_fun, or scale "
            "the data",
            ConvergenceWarning,
            stacklevel=3,
        )
    return int(result.nit), float(result.fun)
