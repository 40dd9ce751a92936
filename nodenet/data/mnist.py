"""Loading MNIST from a folder: where the files are looked for, and the two splits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import MNIST_FILES, download_mnist, missing_mnist_message
from .errors import DataError
from .idx import read_idx_images, read_idx_labels


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where data sets live: ``explicit``, else ``$NODENET_DATA``, else ``data/`` of the
    project."""
    if explicit:
        return Path(explicit)
    if os.environ.get("NODENET_DATA"):
        return Path(os.environ["NODENET_DATA"])
    return Path(__file__).resolve().parents[2] / "data"


def _mnist_folder(root: Path) -> Path:
    """``root/mnist`` if that holds the files, else ``root`` itself."""
    return root / "mnist" if (root / "mnist").is_dir() or not root.exists() else root


@dataclass
class Split:
    """Images ``x`` float32 (n, 784) with pixel values 0..255 and labels ``y`` int64 (n,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def load_mnist(
    directory: str | os.PathLike | None = None, download: bool = False
) -> tuple[Split, Split]:
    """Return ``(train, test)`` MNIST splits from ``directory`` (see :func:`data_dir`).

    With ``download`` the files are fetched first if missing. A missing file raises
    ``DataError`` naming the four files and where they belong.
    """
    folder = _mnist_folder(data_dir(directory))
    if download:
        download_mnist(folder)
    missing = [name for name in MNIST_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DataError(missing_mnist_message(folder, missing))
    splits = []
    for kind in ("train", "test"):
        x = read_idx_images(folder / MNIST_FILES[f"{kind}_images"])
        y = read_idx_labels(folder / MNIST_FILES[f"{kind}_labels"])
        if len(x) != len(y):
            raise DataError(f"{folder}: {kind} has {len(x)} images but {len(y)} labels")
        splits.append(Split(x, y))
    return splits[0], splits[1]
