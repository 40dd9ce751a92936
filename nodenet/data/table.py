"""Any numeric CSV with a header row: feature columns and (for training) a target column.

``read_table("data.csv", target="price")`` returns the features as float64 ``x``
(n, d), the target column as it was written (numbers for regression, labels of any
kind for classification) and the feature names. Cells are checked as the MNIST reader
checks them: a bad cell raises :class:`DataError` naming the file, line and column; a
feature column that is not numeric at all is named, with a hint, since nodenet has no
built-in encoding of categories.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import unreadable
from .csv import numeric_values
from .errors import DataError


@dataclass
class Table:
    """Features ``x`` float64 (n, d) named ``features``; the ``target`` column's values
    ``y`` (n,) as read, or ``None`` when the file has no such column."""

    x: np.ndarray
    y: np.ndarray | None
    features: list[str]
    target: str | None


def read_table(
    path: str | os.PathLike, target: str | None = None, features: list[str] | None = None
) -> Table:
    """Read ``path``; ``target`` names the target column (``None``: none), ``features``
    the feature columns to take, in this order (``None``: every other column). A
    ``target`` absent from a file read for prediction (``features`` given) gives
    ``y = None``."""
    import pandas as pd

    path = Path(path)
    problem = unreadable(path)
    if problem:
        raise DataError(f"{path}: {problem}")
    try:
        header = pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0].tolist()
        frame = pd.read_csv(path, header=0, skip_blank_lines=True, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).strip()})") from exc
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows")
    names = [str(c) for c in header]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # pandas would rename the second one (y.1) and train on it as a feature
        raise DataError(f"{path}: line 1 names column(s) {', '.join(map(repr, twice))} twice")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if target is not None and target not in columns and features is None:
        raise DataError(
            f"{path}: no column {target!r}; the columns are {', '.join(map(repr, columns))}"
        )
    if features is None:
        features = [c for c in columns if c != target]
    missing = [c for c in features if c not in columns]
    if missing:
        raise DataError(f"{path}: missing feature column(s) {', '.join(map(repr, missing))}")
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    numbers = [columns.index(c) + 1 for c in features]
    for name, number in zip(features, numbers, strict=True):
        _require_numeric_column(frame[name], path, name, number)
    x = numeric_values(frame[features].copy(), path, 2, numbers)
    y = None
    if target is not None and target in columns:
        y = frame[target].to_numpy()
        if pd.isna(frame[target]).any():
            row = int(np.flatnonzero(pd.isna(frame[target]).to_numpy())[0])
            raise DataError(
                f"{path}: line {row + 2}, column {columns.index(target) + 1}: empty target"
            )
    return Table(x, y, list(features), target)


def _require_numeric_column(series, path: Path, name: str, number: int) -> None:
    """``DataError`` naming a feature column most of whose cells are not numbers (a
    column of categories, not a bad cell in a numeric column)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series):
        return
    present = series.dropna()
    words = pd.to_numeric(present, errors="coerce").isna().sum()
    if words * 2 > len(present):
        examples = ", ".join(repr(v) for v in present.unique()[:3])
        raise DataError(
            f"{path}: column {number} ({name!r}) is not numeric (values such as {examples}); "
            "nodenet takes numeric features only: one-hot encode it first (for example "
            "pandas.get_dummies) or drop it"
        )


def class_index(y: np.ndarray, classes: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Labels ``y`` as indices into ``classes`` (sorted); ``DataError`` naming a label
    that is not among them. Labels and classes of different kinds (text against
    numbers) are compared as text."""
    y, classes = np.asarray(y), np.asarray(classes)
    if (y.dtype.kind in "USO") != (classes.dtype.kind in "USO"):
        y, classes = y.astype(str), classes.astype(str)
        order = np.argsort(classes)
        found = class_index(y, classes[order], path)
        return order[found]
    index = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    unknown = classes[index] != y
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"{path}: line {row + 2}: label {np.asarray(y[row]).item()!r} is not one of the model's classes "
            f"{', '.join(map(str, classes))}"
        )
    return index
