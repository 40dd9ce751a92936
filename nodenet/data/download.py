"""Downloading MNIST: mirrors, SHA-256 checks of the decompressed bytes, atomic renames."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DataError
from .idx import read_bytes

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
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except DataError:
        return ""
