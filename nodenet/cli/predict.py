"""``nodenet predict``: predict on a CSV test set with a trained model
(``scripts/predict.py`` is this command too).

    nodenet predict --model runs/mnist --csv mnist_test.csv
    nodenet predict --model runs/mnist/model.npz --csv test.csv --threshold 0.3

Reads either CSV layout (label + pixels, one-hot + pixels) or pixels only; prints loss
and accuracy when labels are present; writes predictions.csv, and with labels
confusion.csv and confusion.png, into --out (default: the CSV's folder).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nodenet.data import DataError, read_csv
from nodenet.files import atomic_write, write_json
from nodenet.io import ModelFileError, load
from nodenet.predict import apply_threshold, confusion_matrix, evaluate, predict_proba


def build_parser(prog: str = "nodenet predict") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Predict classes of a CSV test set with a saved nodenet model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model.npz, or the folder holding it")
    p.add_argument("--csv", required=True, help="test set: label,pixels / one-hot,pixels / pixels")
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


def predictions_frame(proba: np.ndarray, threshold, y: np.ndarray | None) -> pd.DataFrame:
    """One row per sample: row, predicted class(es), probability of each class, label."""
    frame = pd.DataFrame({"row": np.arange(len(proba))})
    if threshold == "argmax":
        frame["predicted"] = apply_threshold(proba, "argmax")
    elif threshold != "none":
        marks = apply_threshold(proba, threshold)
        frame["predicted"] = [" ".join(map(str, np.flatnonzero(m))) for m in marks]
    for k in range(proba.shape[1]):
        frame[f"p{k}"] = proba[:, k]
    if y is not None:
        frame["label"] = y
    return frame


def main(argv: list[str] | None = None, prog: str = "nodenet predict") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        threshold = _threshold(args.threshold)
        model = load(args.model)
        data = read_csv(args.csv, args.layout)
        if data.x.shape[1] != model.input_size:
            raise DataError(
                f"{args.csv}: {data.x.shape[1]} pixel columns, but the model "
                f"expects {model.input_size}"
            )
    except (ModelFileError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.csv).resolve().parent
    try:
        return write_outputs(args, model, data, threshold, out)
    except OSError as exc:  # FileWriteError names the file and the free space
        print(f"error: {exc}", file=sys.stderr)
        return 1


def write_outputs(args, model, data, threshold, out: Path) -> int:
    """Predict, write predictions.csv (and with labels confusion.csv, confusion.png and
    evaluation.json) into ``out``, print a summary; returns the exit code."""
    proba = predict_proba(model, data.x)
    frame = predictions_frame(proba, threshold, data.y)
    text = frame.to_csv(index=False, float_format="%.6g").encode()
    atomic_write(out / "predictions.csv", lambda f: f.write(text))
    print(f"{len(frame)} predictions -> {out / 'predictions.csv'}")
    if data.y is None:
        return 0
    result = evaluate(model, data.x, data.y)
    matrix = confusion_matrix(data.y, proba.argmax(axis=1), model.output_size)
    labels = [str(k) for k in range(model.output_size)]
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
