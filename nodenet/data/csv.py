"""MNIST as CSV: ``label, 1x1, ..., 28x28`` (or ``label, pixel0, ...``), the one-hot
layout (10 label columns, then 784 pixels) and pixels only; read with every cell
checked, written atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write, unreadable
from .errors import DataError
from .idx import IMAGE_PIXELS, N_CLASSES, check_labels

CSV_LAYOUTS = {
    "label": 1 + IMAGE_PIXELS,  # label, 784 pixels
    "onehot": N_CLASSES + IMAGE_PIXELS,  # 10 one-hot label columns, 784 pixels
    "pixels": IMAGE_PIXELS,  # no labels (a test set to predict)
}


@dataclass
class CsvData:
    """Pixels ``x`` float32 (n, 784), labels ``y`` int64 (n,) or None, the layout read."""

    x: np.ndarray
    y: np.ndarray | None
    layout: str


def _first_line(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            line = f.readline()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    return [cell.strip() for cell in line.rstrip("\r\n").split(",")] if line.strip() else []


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _detect_layout(path: Path, cells: list[str], width: int, has_header: bool) -> str:
    if has_header and cells and cells[0].lower() == "label" and width == CSV_LAYOUTS["label"]:
        return "label"
    for layout, columns in CSV_LAYOUTS.items():
        if width == columns:
            return layout
    expected = ", ".join(f"{n} ({name})" for name, n in CSV_LAYOUTS.items())
    raise DataError(f"{path}: line 1: {width} columns; expected one of {expected}")


def read_csv(path: str | os.PathLike, layout: str = "auto") -> CsvData:
    """Read an MNIST CSV: ``label,1x1,...,28x28`` / ``label,pixel0,...`` (header or not),
    the one-hot layout (10 label columns then 784 pixels), or pixels only.

    ``layout`` is ``"auto"`` (from the header and the column count), ``"label"``,
    ``"onehot"`` or ``"pixels"``. Every cell is checked: a ragged row, a non-numeric or
    empty cell, a pixel outside 0..255, a label outside 0..9 or a one-hot row that is not
    one-hot raises :class:`DataError` naming the file, line and column (1-based).
    """
    import pandas as pd

    path = Path(path)
    problem = unreadable(path)
    if problem:
        raise DataError(f"{path}: {problem}")
    cells = _first_line(path)
    if not cells:
        raise DataError(f"{path}: empty file")
    # a header names its columns: most cells are words (the one-hot header starts with
    # the digits 0..9 but then names 784 pixels); a data row with a bad cell is not one
    has_header = sum(bool(c) and not _is_number(c) for c in cells) > len(cells) / 2
    if layout == "auto":
        layout = _detect_layout(path, cells, len(cells), has_header)
    elif layout not in CSV_LAYOUTS:
        raise ValueError(
            f"unknown CSV layout {layout!r}; expected 'auto' or one of {list(CSV_LAYOUTS)}"
        )
    elif len(cells) != CSV_LAYOUTS[layout]:
        raise DataError(
            f"{path}: line 1: {len(cells)} columns; the {layout!r} layout needs {CSV_LAYOUTS[layout]}"
        )
    width = CSV_LAYOUTS[layout]
    try:
        frame = pd.read_csv(
            path, header=0 if has_header else None, skip_blank_lines=True, low_memory=False
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).strip()})") from exc
    first_line = 2 if has_header else 1
    if frame.shape[1] != width:
        raise DataError(f"{path}: {frame.shape[1]} columns; the {layout!r} layout needs {width}")
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows")
    values = numeric_values(frame, path, first_line)
    n_labels = {"label": 1, "onehot": N_CLASSES, "pixels": 0}[layout]
    pixels = values[:, n_labels:]
    bad = (pixels < 0) | (pixels > 255)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: line {row + first_line}, column {col + n_labels + 1}: "
            f"pixel {pixels[row, col]:g} outside 0..255"
        )
    y = None
    if layout == "label":
        y = _labels_from_column(values[:, 0], path, first_line)
    elif layout == "onehot":
        y = _labels_from_onehot(values[:, :N_CLASSES], path, first_line)
    return CsvData(pixels.astype(np.float32), y, layout)


def numeric_values(frame, path: Path, first_line: int, numbers=None) -> np.ndarray:
    """The frame as float64, or ``DataError`` at the first non-numeric or empty cell,
    naming the line and the column (``numbers``: each frame column's 1-based number in
    the file; default 1, 2, ...)."""
    import pandas as pd

    numbers = list(range(1, frame.shape[1] + 1)) if numbers is None else list(numbers)
    for j, column in enumerate(frame.columns):
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series):
            coerced = pd.to_numeric(series, errors="coerce")
            bad = coerced.isna() & series.notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{path}: line {i + first_line}, column {numbers[j]}: "
                    f"non-numeric value {series.iloc[i]!r}"
                )
            frame[column] = coerced
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "empty cell or NaN" if np.isnan(values[row, col]) else "infinite value"
        raise DataError(f"{path}: line {row + first_line}, column {numbers[col]}: {what}")
    return values


def _labels_from_column(column: np.ndarray, path: Path, first_line: int) -> np.ndarray:
    labels = column.astype(np.int64)
    fractional = labels != column
    if fractional.any():
        row = int(np.flatnonzero(fractional)[0])
        raise DataError(
            f"{path}: line {row + first_line}, column 1: label {column[row]:g} is not a whole number"
        )
    check_labels(labels, path, lambda row: f"line {row + first_line}, column 1")
    return labels


def _labels_from_onehot(block: np.ndarray, path: Path, first_line: int) -> np.ndarray:
    valid = np.isin(block, (0, 1)).all(axis=1) & (block.sum(axis=1) == 1)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise DataError(
            f"{path}: line {row + first_line}, columns 1-{N_CLASSES}: not a one-hot label "
            f"({', '.join(f'{v:g}' for v in block[row])})"
        )
    return block.argmax(axis=1).astype(np.int64)


def write_csv(
    path: str | os.PathLike,
    x: np.ndarray,
    y: np.ndarray | None,
    layout: str = "label",
    header: bool = True,
) -> Path:
    """Write images (n, 784) and labels as CSV in ``layout`` ("label", "onehot" or
    "pixels"), atomically. The header names pixels ``1x1 .. 28x28``."""
    import pandas as pd

    if layout not in CSV_LAYOUTS:
        raise ValueError(f"unknown CSV layout {layout!r}; expected one of {list(CSV_LAYOUTS)}")
    pixel_names = [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)]
    columns: dict[str, np.ndarray] = {}
    if layout != "pixels":
        if y is None:
            raise ValueError(f"the {layout!r} layout needs labels")
        if layout == "label":
            columns["label"] = np.asarray(y)
        else:
            onehot = np.eye(N_CLASSES, dtype=np.int64)[np.asarray(y)]
            columns.update({str(k): onehot[:, k] for k in range(N_CLASSES)})
    pixels = np.asarray(x)
    as_int = pixels.astype(np.int64)
    pixels = as_int if np.array_equal(as_int, pixels) else pixels
    frame = pd.concat([pd.DataFrame(columns), pd.DataFrame(pixels, columns=pixel_names)], axis=1)
    text = frame.to_csv(index=False, header=header)
    return atomic_write(path, lambda f: f.write(text.encode()))
