"""Data sets: IDX and CSV readers, MNIST download with checksums, normalisation, splits.

Everything is validated on load; a bad file raises :class:`DataError` naming the file
and, where it applies, the row and column.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: SHA-256 of each file *after* decompression (the IDX bytes)
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

IMAGE_PIXELS = 28 * 28
N_CLASSES = 10


class DataError(ValueError):
    """A data file is missing, malformed or holds values outside their range."""


# --------------------------------------------------------------------------- IDX
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip; ``DataError`` on a bad archive."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip ({exc})") from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip or raw) into an array of its stored shape and type.

    Raises ``DataError`` on a bad magic number, an unknown type code or a size that does
    not match the header.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"{path}: bad IDX magic number {data[:4].hex()}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: header {shape} needs {expected} bytes, file has {len(data)}"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """IDX images as float32 ``(n, 784)`` pixel values 0..255."""
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{path}: expected images of 28x28, got shape {images.shape}")
    return images.reshape(len(images), IMAGE_PIXELS).astype(np.float32)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """IDX labels as int64 ``(n,)``, each checked to lie in 0..9."""
    labels = read_idx(path)
    if labels.ndim != 1:
        raise DataError(f"{path}: expected a vector of labels, got shape {labels.shape}")
    labels = labels.astype(np.int64)
    _check_labels(labels, path)
    return labels


def _check_labels(labels: np.ndarray, path: Path | str, row_offset: int = 0) -> None:
    bad = (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row {row + row_offset}: label {labels[row]} outside 0..{N_CLASSES - 1}"
        )


# ------------------------------------------------------------------------ MNIST
def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where data sets live: ``explicit``, else ``$NODENET_DATA``, else ``data/`` of the
    project."""
    if explicit:
        return Path(explicit)
    if os.environ.get("NODENET_DATA"):
        return Path(os.environ["NODENET_DATA"])
    return Path(__file__).resolve().parent.parent / "data"


def _mnist_folder(root: Path) -> Path:
    """``root/mnist`` if that holds the files, else ``root`` itself."""
    return root / "mnist" if (root / "mnist").is_dir() or not root.exists() else root


def missing_mnist_message(folder: Path, missing: list[str], reason: str = "") -> str:
    names = "\n  ".join(missing)
    return (
        f"MNIST files not found in {folder}{': ' + reason if reason else ''}\n  {names}\n"
        "Download them (python scripts/train_mnist.py --download, with internet) or copy the "
        "four files there, or point --data-dir / NODENET_DATA at a folder holding a mnist/ "
        "subfolder with them."
    )


def download_mnist(folder: str | os.PathLike, mirrors=MNIST_MIRRORS, progress: bool = True) -> Path:
    """Fetch the four MNIST files into ``folder`` unless already present and verified.

    Each file is downloaded to a temporary name, its decompressed SHA-256 checked, and
    only then renamed into place: a partial or wrong download never stays. With no
    network, raises ``DataError`` naming the files and where to put them.
    """
    from tqdm import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, digest in MNIST_SHA256.items():
        target = folder / name
        if target.is_file() and _sha256_of_content(target) == digest:
            continue
        errors = []
        for mirror in mirrors:
            tmp = folder / f".{name}.part"
            try:
                with (
                    urllib.request.urlopen(mirror + name, timeout=30) as response,
                    open(tmp, "wb") as out,
                ):
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        desc=name,
                        disable=not progress,
                        leave=False,
                    ) as bar:
                        while chunk := response.read(1 << 16):
                            out.write(chunk)
                            bar.update(len(chunk))
                if _sha256_of_content(tmp) != digest:
                    raise DataError(f"{mirror + name}: SHA-256 mismatch")
                os.replace(tmp, target)
                break
            except (urllib.error.URLError, OSError, DataError) as exc:
                errors.append(f"{mirror}: {exc}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            missing = [n for n in MNIST_SHA256 if not (folder / n).is_file()]
            raise DataError(
                missing_mnist_message(
                    folder, missing, "download failed (" + "; ".join(errors) + ")"
                )
            )
    return folder


def _sha256_of_content(path: Path) -> str:
    try:
        return hashlib.sha256(_read_bytes(path)).hexdigest()
    except DataError:
        return ""


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


# ----------------------------------------------------------------- normalisation
class Normaliser:
    """Input transform ``x -> (x - mean) / std`` with statistics from training data.

    ``kind="scale"`` divides by 255 (mean 0, std 255); ``kind="zscore"`` uses each
    column's mean and standard deviation, with zero-variance columns kept at std 1.
    """

    KINDS = ("scale", "zscore", "none")

    def __init__(self, kind: str, mean: np.ndarray, std: np.ndarray):
        if kind not in self.KINDS:
            raise ValueError(f"unknown normalisation {kind!r}; expected one of {self.KINDS}")
        self.kind = kind
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def fit(cls, kind: str, x: np.ndarray) -> Normaliser:
        """Statistics of ``x`` (n, d) for ``kind``."""
        d = x.shape[1]
        if kind == "zscore":
            std = x.std(axis=0, dtype=np.float64)
            return cls(kind, x.mean(axis=0, dtype=np.float64), np.where(std > 0, std, 1.0))
        if kind == "scale":
            return cls(kind, np.zeros(d), np.full(d, 255.0))
        return cls(kind, np.zeros(d), np.ones(d))

    def __call__(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Return the transformed ``x`` (n, d) as ``dtype``."""
        if x.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"normaliser expects {self.mean.shape[0]} columns, got {x.shape[-1]}")
        return ((x - self.mean) / self.std).astype(dtype, copy=False)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"kind": np.array(self.kind), "mean": self.mean, "std": self.std}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], width: int) -> Normaliser:
        normaliser = cls(str(arrays["kind"]), arrays["mean"], arrays["std"])
        if normaliser.mean.shape != (width,) or normaliser.std.shape != (width,):
            raise ValueError(f"normaliser statistics do not have {width} columns")
        return normaliser

    def __repr__(self) -> str:
        return f"Normaliser({self.kind!r}, width={self.mean.shape[0]})"


def train_validation_split(
    n: int, fraction: float, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and return ``(train_idx, valid_idx)`` with
    ``round(n * fraction)`` validation samples."""
    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction must lie in [0, 1), got {fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    n_valid = round(n * fraction)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])
