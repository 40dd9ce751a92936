"""Sparse inputs: a scipy sparse matrix whose rows are made dense a batch at a time.

``SparseRows(matrix, dtype)[rows]`` is the dense ``(len(rows), d)`` array of those rows
(through the model's normaliser when one is attached), so training touches one batch of
dense rows at a time and never the whole matrix. The in-process backend and prediction
take it like an array; the worker pool, which keeps its data dense in shared memory,
refuses it.
"""

from __future__ import annotations

import numpy as np


def is_sparse(x) -> bool:
    """``x`` is a scipy sparse matrix or array (scipy is not imported to ask)."""
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "tocsr")


class SparseRows:
    """Rows of a sparse ``(n, d)`` matrix, dense on demand; ``shape``, ``len``,
    ``x[rows]`` (an index array or a slice) and :meth:`normalised`."""

    ndim = 2

    def __init__(self, matrix, dtype, normaliser=None):
        self.matrix = matrix.tocsr()
        self.dtype = np.dtype(dtype)
        self.normaliser = normaliser
        self.shape = self.matrix.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        dense = self.matrix[rows].toarray().astype(self.dtype, copy=False)
        return dense if self.normaliser is None else self.normaliser(dense, self.dtype)

    def normalised(self, normaliser) -> SparseRows:
        """The same rows, passed through ``normaliser`` as they are made dense."""
        return SparseRows(self.matrix, self.dtype, normaliser)

    def dense(self) -> np.ndarray:
        """Every row, dense: for a pass the caller asked over the whole input."""
        return self[np.arange(len(self))]


def require_dense(x, where: str) -> None:
    """``ValueError`` when ``x`` is sparse: ``where`` keeps its data dense."""
    if isinstance(x, SparseRows) or is_sparse(x):
        raise ValueError(
            f"sparse inputs train in this process only: {where} keeps the data dense; use "
            "workers=0, or make the inputs dense (x.toarray())"
        )


def stack_rows(top, bottom):
    """The rows of ``top`` then ``bottom`` (arrays, or :class:`SparseRows` with the same
    normaliser)."""
    if not isinstance(top, SparseRows) and not isinstance(bottom, SparseRows):
        return np.concatenate([top, bottom])
    from scipy import sparse

    parts = [p.matrix if isinstance(p, SparseRows) else sparse.csr_matrix(p) for p in (top, bottom)]
    first = top if isinstance(top, SparseRows) else bottom
    return SparseRows(sparse.vstack(parts), first.dtype, first.normaliser)
