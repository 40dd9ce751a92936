"""Downloading MNIST and Fashion-MNIST: mirrors, SHA-256 checks of the decompressed
bytes, atomic renames."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .idx import read_bytes

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX data set with MNIST's four file names comes from, and the SHA-256 of
    each file's decompressed bytes (so any gzip of the right data passes: mirrors and
    distributions recompress)."""

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]


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

#: Zalando's Fashion-MNIST (same IDX layout and file names), decompressed bytes; the
#: same values several public projects derive from the archives that match the
#: publisher's MD5 list, and that Debian's dataset-fashion-mnist package decompresses to
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

SOURCES = {
    "mnist": IdxSource("mnist", MNIST_MIRRORS, MNIST_SHA256),
    "fashion-mnist": IdxSource("fashion-mnist", FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256),
}


def missing_files_message(folder: Path, missing: list[str], reason: str = "", name="mnist") -> str:
    names = "\n  ".join(missing)
    title = "MNIST" if name == "mnist" else name
    return (
        f"{title} files not found in {folder}{': ' + reason if reason else ''}\n  {names}\n"
        "Download them (nodenet train downloads missing files unless given --no-download; "
        "it needs internet) or copy the four files there, or point --data-dir / "
        f"NODENET_DATA at a folder holding a {name}/ subfolder with them."
    )


def download_idx(
    folder: str | os.PathLike,
    source: IdxSource = SOURCES["mnist"],
    mirrors: tuple[str, ...] | None = None,
    progress: bool = True,
) -> Path:
    """Fetch the four files of ``source`` into ``folder`` unless already present and
    verified (``mirrors`` replaces the source's own).

    Each file is downloaded to a temporary name, its SHA-256 checked, and only then
    renamed into place: a partial or wrong download never stays. With no network,
    raises ``DataError`` naming the files and where to put them.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, digest in source.sha256.items():
        target = folder / name
        if target.is_file() and _sha256_of_content(target) == digest:
            continue
        errors = []
        for mirror in mirrors or source.mirrors:
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
            missing = [n for n in source.sha256 if not (folder / n).is_file()]
            reason = "download failed (" + "; ".join(errors) + ")"
            raise DataError(missing_files_message(folder, missing, reason, source.name))
    return folder


def download_mnist(folder: str | os.PathLike, mirrors=MNIST_MIRRORS, progress: bool = True) -> Path:
    """:func:`download_idx` of MNIST."""
    return download_idx(folder, SOURCES["mnist"], mirrors, progress)


def _sha256_of_content(path: Path) -> str:
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except DataError:
        return ""
