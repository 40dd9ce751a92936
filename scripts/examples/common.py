"""What every example shares: its command line, MNIST loading, and result output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nodenet.data import Normaliser, Split, load_mnist
from nodenet.files import atomic_write


def parser(description: str, out: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--out", default=f"runs/examples/{out}", help="folder for the figure and results"
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def mnist_parser(description: str, out: str) -> argparse.ArgumentParser:
    p = parser(description, out)
    p.add_argument(
        "--data-dir", default=None, help="folder holding mnist/ (default: $NODENET_DATA)"
    )
    return p


def mnist(data_dir: str | None, kind: str = "scale") -> tuple[Normaliser, Split, Split]:
    """``(normaliser, train, test)`` with the normaliser fitted on the training images;
    the splits keep their raw pixels (the saved model normalises itself)."""
    train, test = load_mnist(data_dir)
    return Normaliser.fit(kind, train.x), train, test


def report(out: str | Path, results: dict) -> dict:
    """Print ``results`` one per line and write them to ``out/results.json``."""
    out = Path(out)
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key}: {shown}")
    text = json.dumps(results, indent=2, default=lambda v: np.asarray(v).tolist()).encode()
    atomic_write(out / "results.json", lambda f: f.write(text))
    return results
