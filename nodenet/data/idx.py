"""IDX files (``*-idx?-ubyte``, gzip or raw), the format MNIST ships in."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

IMAGE_PIXELS = 28 * 28
N_CLASSES = 10

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: Path) -> bytes:
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
    data = read_bytes(path)
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
    check_labels(labels, path)
    return labels


def check_labels(labels: np.ndarray, path: Path | str, where=lambda row: f"row {row}") -> None:
    """``DataError`` at the first label outside 0..9; ``where(row)`` names its place."""
    bad = (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: {where(row)}: label {labels[row]} outside 0..{N_CLASSES - 1}")
