"""Data sets: IDX and CSV readers, MNIST download with checksums, normalisation, splits.

Everything is validated on load; a bad file raises :class:`DataError` naming the file
and, where it applies, the row and column.
"""

from __future__ import annotations

import gzip
import hashlib
import math
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


def _read_mnist_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file that must hold unsigned bytes (type 0x08), as MNIST's files do: any
    other type code (a damaged header byte, say) would read as plausible wrong numbers."""
    array = read_idx(path)
    if array.dtype != np.uint8:
        raise DataError(f"{path}: expected unsigned-byte IDX data (type 0x08), got {array.dtype}")
    return array


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """IDX images as float32 ``(n, 784)`` pixel values 0..255."""
    images = _read_mnist_idx(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{path}: expected images of 28x28, got shape {images.shape}")
    return images.reshape(len(images), IMAGE_PIXELS).astype(np.float32)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """IDX labels as int64 ``(n,)``, each checked to lie in 0..9."""
    labels = _read_mnist_idx(path)
    if labels.ndim != 1:
        raise DataError(f"{path}: expected a vector of labels, got shape {labels.shape}")
    labels = labels.astype(np.int64)
    _check_labels(labels, path)
    return labels


def _check_labels(labels: np.ndarray, path: Path | str, where=lambda row: f"row {row}") -> None:
    """``DataError`` at the first label outside 0..9; ``where(row)`` names its place."""
    bad = (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: {where(row)}: label {labels[row]} outside 0..{N_CLASSES - 1}")


# -------------------------------------------------------------------------- CSV
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
    if not path.is_file():
        raise DataError(f"{path}: no such file")
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
    values = _numeric(frame, path, first_line)
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


def _numeric(frame, path: Path, first_line: int) -> np.ndarray:
    """The frame as float64, or ``DataError`` at the first non-numeric or empty cell."""
    import pandas as pd

    for j, column in enumerate(frame.columns):
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series):
            coerced = pd.to_numeric(series, errors="coerce")
            bad = coerced.isna() & series.notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{path}: line {i + first_line}, column {j + 1}: "
                    f"non-numeric value {series.iloc[i]!r}"
                )
            frame[column] = coerced
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "empty cell or NaN" if np.isnan(values[row, col]) else "infinite value"
        raise DataError(f"{path}: line {row + first_line}, column {col + 1}: {what}")
    return values


def _labels_from_column(column: np.ndarray, path: Path, first_line: int) -> np.ndarray:
    labels = column.astype(np.int64)
    fractional = labels != column
    if fractional.any():
        row = int(np.flatnonzero(fractional)[0])
        raise DataError(
            f"{path}: line {row + first_line}, column 1: label {column[row]:g} is not a whole number"
        )
    _check_labels(labels, path, lambda row: f"line {row + first_line}, column 1")
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

    from .files import atomic_write

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
def check_std_floor(value: float | str) -> float | str:
    """A z-score std floor: ``"pooled"``, or a number >= 0 (also given as text, as on a
    command line); raises ``ValueError`` otherwise."""
    if value == "pooled":
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number >= 0:
        raise ValueError(f"std_floor: expected 'pooled' or a number >= 0, got {value!r}")
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
