"""Downloading MNIST and Fashion-MNIST: mirrors, SHA-256 checks, atomic renames."""

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
    """Where an IDX data set with MNIST's four file names comes from, and how each file
    is checked: ``sha256`` of the decompressed bytes (``hashed="content"``, so any
    gzip of the right data passes) or of the file as published (``"file"``)."""

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]
    hashed: str = "content"

    def digest(self, path: Path) -> str:
        """The SHA-256 of ``path`` as this source checks it ("" if unreadable)."""
        if self.hashed == "file":
            try:
                return hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                return ""
        return _sha256_of_content(path)


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

#: Zalando's Fashion-MNIST (same IDX layout and file names): SHA-256 of the published
#: .gz files, as TensorFlow Datasets' checksum list records them
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}

FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

SOURCES = {
    "mnist": IdxSource("mnist", MNIST_MIRRORS, MNIST_SHA256),
    "fashion-mnist": IdxSource(
        "fashion-mnist", FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256, hashed="file"
    ),
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
        if target.is_file() and source.digest(target) == digest:
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
                if source.digest(tmp) != digest:
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
