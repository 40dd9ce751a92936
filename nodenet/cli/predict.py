"""``nodenet predict``: predict on a CSV test set with a trained model
(``scripts/predict.py`` is this command too).

    nodenet predict --model runs/mnist --csv mnist_test.csv
    nodenet predict --model runs/mnist/model.npz --csv test.csv --threshold 0.3

Reads either MNIST CSV layout (label + pixels, one-hot + pixels) or pixels only; for a
model trained with ``nodenet train --csv``, a CSV with the same named feature columns
(the target column is optional). Prints loss and accuracy (regression: RMSE and R^2)
when labels are present; writes predictions.csv, and with labels evaluation.json (and
for classes confusion.csv and confusion.png), into --out (default: the CSV's folder).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nodenet.data import CsvData, DataError, read_csv
from nodenet.data.table import class_index, read_table
from nodenet.files import atomic_write, write_json
from nodenet.io import ModelFileError, load, load_metadata
from nodenet.predict import (
    apply_threshold,
    confusion_matrix,
    evaluate,
    predict_proba,
    regression_scores,
)


def build_parser(prog: str = "nodenet predict") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Predict classes of a CSV test set with a saved nodenet model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model.npz, or the folder holding it")
    p.add_argument(
        "--csv",
        required=True,
        help="test set: label,pixels / one-hot,pixels / pixels, or the named columns of a "
        "model trained on a CSV",
    )
    p.add_argument("--layout", default="auto", choices=["auto", "label", "onehot", "pixels"])
    p.add_argument(
        "--threshold",
        default="argmax",
        help="'argmax', 'none' (probabilities only) or a float: mark every class "
        "whose probability reaches it",
    )
    p.add_argument("--out", default=None, help="output folder (default: the CSV's folder)")
    p.add_argument("--no-plot", action="store_true", help="do not draw confusion.png")
    return p


def _threshold(text: str) -> str | float | None:
    if text in ("argmax", "none"):
        return text
    try:
        cut = float(text)
    except ValueError:
        cut = math.nan
    if not 0 <= cut <= 1:
        raise ValueError(
            f"--threshold must be 'argmax', 'none' or a number in [0, 1], got {text!r}"
        )
    return cut


def predictions_frame(
    proba: np.ndarray, threshold, y: np.ndarray | None, classes: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per sample: row, predicted class(es), probability of each class, label;
    classes by name when the model has ``classes`` (a CSV model), else by index."""
    names = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    frame = pd.DataFrame({"row": np.arange(len(proba))})
    if threshold == "argmax":
        frame["predicted"] = names[apply_threshold(proba, "argmax")]
    elif threshold != "none":
        marks = apply_threshold(proba, threshold)
        frame["predicted"] = [" ".join(str(names[k]) for k in np.flatnonzero(m)) for m in marks]
    for k in range(proba.shape[1]):
        frame[f"p{k}"] = proba[:, k]
    if y is not None:
        frame["label"] = names[y]
    return frame


def main(argv: list[str] | None = None, prog: str = "nodenet predict") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        threshold = _threshold(args.threshold)
        model = load(args.model)
        metadata = load_metadata(args.model)
        if "features" in metadata or "target" in metadata:
            check_table_metadata(metadata, model, args.model)
            return _predict_table(args, model, metadata, threshold)
        data = read_csv(args.csv, args.layout)
        if data.x.shape[1] != model.input_size:
            raise DataError(
                f"{args.csv}: {data.x.shape[1]} pixel columns, but the model "
                f"expects {model.input_size}"
            )
    except (ModelFileError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # FileWriteError names the file and the free space
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = _out(args)
    try:
        return write_outputs(args, model, data, threshold, out)
    except ValueError as exc:  # labels the model cannot have
        print(f"error: {args.csv}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # FileWriteError names the file and the free space
        print(f"error: {exc}", file=sys.stderr)
        return 1


def check_table_metadata(metadata: dict, model, path) -> None:
    """A CSV model's metadata (features, target, task, classes) must fit the model;
    :class:`~nodenet.io.ModelFileError` naming the field otherwise (a tampered file)."""

    def bad(field: str, why: str) -> ModelFileError:
        return ModelFileError(f"{path}: metadata field {field!r} {why}")

    features = metadata.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise bad("features", "must be a list of column names")
    if len(set(features)) != len(features):
        raise bad("features", "names a column twice")
    if len(features) != model.input_size:
        raise bad("features", f"names {len(features)} columns, the model takes {model.input_size}")
    if not isinstance(metadata.get("target"), str):
        raise bad("target", "must be the name of the target column")
    task = metadata.get("task", "classification")
    if task not in ("classification", "regression"):
        raise bad("task", f"must be classification or regression, got {task!r}")
    if task == "classification":
        classes = metadata.get("classes")
        plain = (str, int, float)
        if not isinstance(classes, list) or not all(
            isinstance(c, plain) and not isinstance(c, bool) for c in classes
        ):
            raise bad("classes", "must be a list of class names (text or numbers)")
        if len(classes) != model.output_size or len(set(classes)) != len(classes):
            raise bad("classes", f"must name the model's {model.output_size} classes once each")


def _out(args) -> Path:
    return Path(args.out) if args.out else Path(args.csv).resolve().parent


def _predict_table(args, model, metadata: dict, threshold) -> int:
    """Predict a CSV with the named feature columns of a model trained on a CSV:
    predictions.csv (class names, or the predicted values), and with the target column
    evaluation.json (and for classes the confusion matrix)."""
    task, out = metadata.get("task", "classification"), _out(args)
    if task == "regression" and threshold != "argmax":
        raise DataError("--threshold is for classes; a regression model predicts numbers")
    target = read_table(args.csv, metadata["target"], metadata["features"])
    if task == "regression":
        values = predict_proba(model, target.x)
        frame = pd.DataFrame({"row": np.arange(len(values)), "predicted": values[:, 0]})
        if target.y is not None:
            frame["target"] = target.y
        _write_frame(frame, out)
        if target.y is not None:
            scores = regression_scores(model, target.x, target.y.astype(np.float64))
            write_json(out / "evaluation.json", scores)
            print(f"rmse {scores['rmse']:.4f}  r2 {scores['r2']:.4f}  ({len(frame)} rows)")
        return 0
    classes = np.asarray(metadata["classes"])
    y = None
    if target.y is not None:
        labels = target.y.astype(str) if classes.dtype.kind == "U" else target.y
        y = class_index(labels, classes, args.csv)
    data = CsvData(target.x, y, "table")
    return write_outputs(args, model, data, threshold, out, classes)


def _write_frame(frame: pd.DataFrame, out: Path) -> None:
    text = frame.to_csv(index=False, float_format="%.6g").encode()
    atomic_write(out / "predictions.csv", lambda f: f.write(text))
    print(f"{len(frame)} predictions -> {out / 'predictions.csv'}")


def write_outputs(args, model, data, threshold, out: Path, classes=None) -> int:
    """Predict, write predictions.csv (and with labels confusion.csv, confusion.png and
    evaluation.json) into ``out``, print a summary; returns the exit code."""
    proba = predict_proba(model, data.x)
    # labels are checked (evaluate) before any file is written: nothing half done
    result = None if data.y is None else evaluate(model, data.x, data.y)
    frame = predictions_frame(proba, threshold, data.y, classes)
    _write_frame(frame, out)
    if result is None:
        return 0
    matrix = confusion_matrix(data.y, proba.argmax(axis=1), model.output_size)
    names = range(model.output_size) if classes is None else classes
    labels = [str(k) for k in names]
    table = pd.DataFrame(matrix, index=pd.Index(labels, name="true"), columns=labels)
    text = table.to_csv().encode()
    atomic_write(out / "confusion.csv", lambda f: f.write(text))
    summary = {"loss": result["loss"], "accuracy": result["accuracy"], "samples": result["samples"]}
    write_json(out / "evaluation.json", summary)
    if not args.no_plot:
        from nodenet.plots import plot_confusion

        plot_confusion(
            matrix,
            out / "confusion.png",
            title=f"accuracy {result['accuracy']:.4f} on {len(frame)} samples",
        )
    print(
        f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}  "
        f"({result['samples']} labelled samples)"
    )
    return 0
