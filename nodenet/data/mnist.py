"""Loading MNIST and Fashion-MNIST from a folder: where the files are looked for, and
the two splits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import MNIST_FILES, SOURCES, download_idx, missing_files_message
from .errors import DataError
from .idx import read_idx_images, read_idx_labels


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where data sets live: ``explicit``, else ``$NODENET_DATA``, else the ``data/``
    folder of a clone nodenet runs from, else ``~/.nodenet/data`` (an installed nodenet
    run from any folder)."""
    if explicit:
        return Path(explicit)
    if os.environ.get("NODENET_DATA"):
        return Path(os.environ["NODENET_DATA"])
    clone = Path(__file__).resolve().parents[2]
    if (clone / "setup.cfg").is_file() and (clone / "data").is_dir():
        return clone / "data"
    return Path.home() / ".nodenet" / "data"


#: where Debian's dataset packages install data sets (``apt install dataset-fashion-mnist``)
SYSTEM_DATA = Path("/usr/share/datasets")


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MNIST_FILES.values())


def _dataset_folder(root: Path, name: str = "mnist") -> Path:
    """``root/<name>`` if that holds the files, else ``root`` itself if it does; else the
    system-wide copy under :data:`SYSTEM_DATA` if complete; else ``root/<name>``, where
    a download puts them."""
    for folder in (root / name, root, SYSTEM_DATA / name):
        if _complete(folder):
            return folder
    return root / name


@dataclass
class Split:
    """Inputs ``x`` (n, d) and labels ``y`` int64 (n,) (or targets (n, k)); for the IDX
    data sets, images float32 (n, 784) with pixel values 0..255."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def load_mnist(
    directory: str | os.PathLike | None = None,
    download: bool = False,
    dataset: str = "mnist",
    progress: bool = True,
) -> tuple[Split, Split]:
    """Return ``(train, test)`` splits of ``dataset`` (``"mnist"`` or
    ``"fashion-mnist"``, both in MNIST's IDX layout) from ``directory``'s ``<dataset>/``
    folder (see :func:`data_dir`).

    With ``download`` missing files are fetched first (a progress bar unless
    ``progress`` is false). A missing file raises ``DataError`` naming the four files
    and where they belong.
    """
    if dataset not in SOURCES:
        raise ValueError(f"unknown data set {dataset!r}; expected one of {sorted(SOURCES)}")
    folder = _dataset_folder(data_dir(directory), dataset)
    missing = [name for name in MNIST_FILES.values() if not (folder / name).is_file()]
    if missing and download:
        download_idx(folder, SOURCES[dataset], progress=progress)
        missing = []
    if missing:
        raise DataError(missing_files_message(folder, missing, name=dataset))
    splits = []
    for kind in ("train", "test"):
        x = read_idx_images(folder / MNIST_FILES[f"{kind}_images"])
        y = read_idx_labels(folder / MNIST_FILES[f"{kind}_labels"])
        if len(x) != len(y):
            raise DataError(f"{folder}: {kind} has {len(x)} images but {len(y)} labels")
        splits.append(Split(x, y))
    return splits[0], splits[1]
