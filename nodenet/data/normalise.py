"""Input normalisation: divide by 255, or z-score each column with training statistics."""

from __future__ import annotations

import math

import numpy as np


def check_std_floor(value: float | str) -> float | str:
    """A z-score std floor: ``"pooled"``, or a number >= 0 (also given as text, as on a
    command line); raises ``ValueError`` otherwise."""
    if value == "pooled":
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (number >= 0 and math.isfinite(number)):
        raise ValueError(f"std_floor: expected 'pooled' or a finite number >= 0, got {value!r}")
    return number


class Normaliser:
    """Input transform ``x -> (x - mean) / std`` with statistics from training data.

    ``kind="scale"`` divides by 255 (mean 0, std 255); ``kind="zscore"`` uses each
    column's mean and standard deviation, with zero-variance columns kept at std 1 and,
    optionally, every std raised to a floor (see :meth:`fit`). ``mean`` and ``std`` are
    float32 arrays of shape (d,), saved with the model.
    """

    KINDS = ("scale", "zscore", "none")

    def __init__(self, kind: str, mean: np.ndarray, std: np.ndarray):
        if kind not in self.KINDS:
            raise ValueError(f"unknown normalisation {kind!r}; expected one of {self.KINDS}")
        self.kind = kind
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def fit(cls, kind: str, x: np.ndarray, std_floor: float | str = 0.0) -> Normaliser:
        """Statistics of ``x`` (n, d) for ``kind``.

        ``std_floor`` (zscore only) is the smallest std a column is divided by: ``0``
        gives the textbook z-score; ``"pooled"`` uses the std of all of ``x``'s entries
        taken together, so that a column which is nearly constant in the training data
        (MNIST's border pixels) is not blown up into huge values when it does vary.
        """
        d = x.shape[1]
        if len(x) == 0:
            raise ValueError("no training rows to take normalisation statistics from")
        if kind == "zscore":
            mean = x.mean(axis=0, dtype=np.float64)
            # two-pass variance in float64, a block of rows at a time: no temporary the
            # size of the data set (x.std(dtype=float64) would make one, 2x x in bytes)
            square_sum = np.zeros(d)
            for start in range(0, len(x), 4096):
                block = x[start : start + 4096] - mean
                square_sum += np.einsum("ij,ij->j", block, block)
            variance = square_sum / max(len(x), 1)
            std_floor = check_std_floor(std_floor)
            if std_floor == "pooled":  # total variance = mean within + spread of the means
                std_floor = np.sqrt(variance.mean() + mean.var())
            std = np.maximum(np.sqrt(variance), std_floor)
            broken = ~(np.isfinite(mean) & np.isfinite(std))
            if broken.any():  # finite inputs whose squares overflow float64
                column = int(np.flatnonzero(broken)[0])
                raise ValueError(
                    f"column {column}: its values are too large for a z-score (their "
                    "variance overflows float64); scale the column down first"
                )
            return cls(kind, mean, np.where(std > 0, std, 1.0))
        if kind == "scale":
            return cls(kind, np.zeros(d), np.full(d, 255.0))
        return cls(kind, np.zeros(d), np.ones(d))

    def __call__(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Return the transformed ``x`` (n, d) as ``dtype``."""
        if x.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"normaliser expects {self.mean.shape[0]} columns, got {x.shape[-1]}")
        out = np.subtract(x, self.mean, dtype=dtype)  # one new array, then in place
        out /= self.std
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"kind": np.array(self.kind), "mean": self.mean, "std": self.std}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], width: int) -> Normaliser:
        """Rebuild from :meth:`to_arrays`; ``ValueError`` unless ``mean`` and ``std``
        have ``width`` finite entries and every ``std`` is positive."""
        normaliser = cls(str(arrays["kind"]), arrays["mean"], arrays["std"])
        if normaliser.mean.shape != (width,) or normaliser.std.shape != (width,):
            raise ValueError(f"normaliser statistics do not have {width} columns")
        for name, values in (("mean", normaliser.mean), ("std", normaliser.std)):
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                raise ValueError(f"normaliser {name} is NaN or infinite (column {bad[0]})")
        tiny = np.finfo(np.float32).tiny  # below it 1 / std overflows float32
        if (normaliser.std < tiny).any():
            column = int(np.flatnonzero(normaliser.std < tiny)[0])
            raise ValueError(
                f"normaliser std must be positive and at least {tiny:.3g} (column {column} "
                f"is {normaliser.std[column]:.3g})"
            )
        return normaliser

    def __repr__(self) -> str:
        return f"Normaliser({self.kind!r}, width={self.mean.shape[0]})"
