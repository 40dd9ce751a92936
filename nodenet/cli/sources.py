"""What ``nodenet train`` trains on: MNIST, Fashion-MNIST (IDX files, downloaded when
missing) or any numeric CSV with a header (``--csv FILE --target COLUMN``), for
classification or regression (``--task``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from nodenet.data import DataError, Split, load_mnist
from nodenet.data.table import class_index, read_table


@dataclass
class TrainingData:
    """``train`` and ``test`` (``None``: no test set) splits of raw inputs (n, d) and
    labels (n,) (classification) or targets (n, k) (regression); ``task``; ``outputs``
    (output nodes); ``description``: what a saved model needs to read new data
    (features, target, classes), saved in its metadata."""

    train: Split
    test: Split | None
    task: str
    outputs: int
    description: dict

    @property
    def name(self) -> str:
        return self.description["data"]


def load(args: argparse.Namespace) -> TrainingData:
    """The data ``args`` name (``--dataset`` or ``--csv``); ``DataError`` on a problem."""
    if args.csv is None:
        if args.task != "classification":
            raise DataError(f"--task {args.task} needs --csv (MNIST data sets classify)")
        train, test = load_mnist(
            args.data_dir,
            download=not args.no_download,
            dataset=args.dataset,
            progress=not args.quiet,
        )
        description = {"data": args.dataset, "task": "classification"}
        return TrainingData(train, test, "classification", 10, description)
    if args.target is None:
        raise DataError("--csv needs --target COLUMN: the column to predict")
    table = read_table(args.csv, args.target)
    description = {
        "data": str(args.csv),
        "task": args.task,
        "features": table.features,
        "target": args.target,
    }
    if args.task == "classification":
        if table.y.dtype.kind in "fc" and not np.isfinite(table.y).all():
            row = int(np.flatnonzero(~np.isfinite(table.y))[0])
            raise DataError(
                f"{args.csv}: line {row + 2}: target {table.y[row]} is not a class (a label "
                "must be finite)"
            )
        classes = np.unique(table.y)
        if len(classes) < 2:
            raise DataError(f"{args.csv}: column {args.target!r} holds a single class")
        description["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
        labels = class_index(table.y, classes, args.csv)
        train, outputs = Split(table.x, labels), len(classes)
    else:
        train, outputs = Split(table.x, _numeric_target(table.y, args)), 1
    test = None
    if args.test_csv is not None:
        test = read_test(args.test_csv, description)
    return TrainingData(train, test, args.task, outputs, description)


def read_test(path, description: dict) -> Split:
    """A CSV read with the features, target and classes of ``description`` (labels as
    class indices)."""
    table = read_table(path, description["target"], description["features"])
    if table.y is None:
        raise DataError(f"{path}: no column {description['target']!r} to test against")
    if description["task"] == "classification":
        classes = np.asarray(description["classes"])
        y = table.y.astype(str) if classes.dtype.kind == "U" else table.y
        return Split(table.x, class_index(y, classes, path))
    return Split(table.x, _numeric_target(table.y, argparse.Namespace(csv=path)))


def _numeric_target(y: np.ndarray, args) -> np.ndarray:
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{args.csv}: the target of a regression must be numeric ({exc}); "
            "for class labels use --task classification"
        ) from None
    return values.reshape(-1, 1)


def require_same_data(before: dict | None, now: dict, args: argparse.Namespace) -> None:
    """A resumed run's data must have the columns, in the order, and the classes it
    began with: ``DataError`` naming what changed (``before`` is ``None`` for a
    checkpoint written before nodenet stored it)."""
    if not before:
        return
    for key in ("features", "target", "classes"):
        if key in before and before[key] != now.get(key):
            source = args.csv or args.dataset
            raise DataError(
                f"{source}: its {key} changed since the run began (then {before[key]}, "
                f"now {now.get(key)}); resume with the data it began with, or start a new "
                "run with another --out"
            )
