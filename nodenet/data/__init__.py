"""Data sets: IDX and CSV readers, MNIST download with checksums, normalisation, splits.

Everything is validated on load; a bad file raises :class:`DataError` naming the file
and, where it applies, the row and column.

==================  ==========================================================
``idx.py``          IDX files (MNIST's format), label checks
``csv.py``          MNIST CSV layouts: read (every cell checked) and write
``download.py``     MNIST and Fashion-MNIST: mirrors, SHA-256 checks, atomic downloads
``mnist.py``        where the files are looked for; the train and test splits
``table.py``        any numeric CSV with a header: features, a target column
``normalise.py``    ``Normaliser``: /255 or per-column z-score, with a std floor
``split.py``        training / validation rows
==================  ==========================================================
"""

from .csv import CSV_LAYOUTS, CsvData, read_csv, write_csv
from .download import (
    MNIST_FILES,
    MNIST_MIRRORS,
    MNIST_SHA256,
    SOURCES,
    IdxSource,
    download_idx,
    download_mnist,
)
from .errors import DataError
from .idx import IMAGE_PIXELS, N_CLASSES, read_idx, read_idx_images, read_idx_labels
from .mnist import Split, data_dir, load_mnist
from .normalise import Normaliser, check_std_floor
from .split import train_validation_split

__all__ = [
    "CSV_LAYOUTS",
    "IMAGE_PIXELS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "N_CLASSES",
    "SOURCES",
    "CsvData",
    "DataError",
    "IdxSource",
    "Normaliser",
    "Split",
    "check_std_floor",
    "data_dir",
    "download_idx",
    "download_mnist",
    "load_mnist",
    "read_csv",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "train_validation_split",
    "write_csv",
]
