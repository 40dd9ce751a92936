"""Data readers: IDX and CSV layouts, validation with DataError, normalisation, download.

The download tests serve files from a loopback HTTP server; nothing reaches the network.
"""

import gzip
import hashlib
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodenet.data import (
    MNIST_FILES,
    DataError,
    Normaliser,
    download_mnist,
    load_mnist,
    read_csv,
    read_idx,
    read_idx_images,
    read_idx_labels,
    write_csv,
)
from tests.conftest import serve_folder

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, size=(6, 784)).astype(np.float32)
Y = np.array([3, 0, 9, 1, 7, 3])


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


# ---------------------------------------------------------------------- IDX
def test_real_mnist_loads_with_the_right_shapes(mnist):
    train, test = mnist
    assert train.x.shape == (60000, 784) and test.x.shape == (10000, 784)
    assert train.x.dtype == np.float32 and train.x.max() == 255 and train.x.min() == 0
    assert np.bincount(train.y).tolist()[:3] == [5923, 6742, 5958]
    assert test.y[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_gzip_or_raw(tmp_path, compress):
    images = RNG.integers(0, 256, size=(4, 28, 28)).astype(np.uint8)
    data = idx_bytes(images)
    path = tmp_path / ("i.gz" if compress else "i")
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), images)
    np.testing.assert_array_equal(read_idx_images(path), images.reshape(4, 784))


def test_idx_errors_name_the_problem(tmp_path):
    labels = np.array([1, 2, 3], dtype=np.uint8)
    good = idx_bytes(labels)
    cases = {
        "magic": (b"\x01\x02" + good[2:], "bad IDX magic"),
        "size": (good + b"\x00", "size mismatch"),
        "short": (good[:-1], "size mismatch"),
        "header": (good[:2], "too short"),
        "gzip": (gzip.compress(good)[:-6], "corrupt or truncated gzip"),
        "label": (idx_bytes(np.array([1, 12], dtype=np.uint8)), r"row 1: label 12 outside 0\.\.9"),
        # found by hypothesis: type byte 0x08 -> 0x09 made pixels signed, read as -128..127
        "type": (good[:2] + b"\x09" + good[3:], r"expected unsigned-byte IDX data \(type 0x08\)"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=message):
            read_idx_labels(path)
    path = tmp_path / "wrong-size-images"
    path.write_bytes(idx_bytes(np.zeros((2, 27, 28), dtype=np.uint8)))
    with pytest.raises(DataError, match="28x28"):
        read_idx_images(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_idx_corruptions_end_in_data_error_or_identical_data(tmp_path_factory, data):
    """Truncation, header damage, appended bytes, any byte of a gzip file: the reader
    either raises DataError or returns exactly the original (e.g. a gzip mtime byte)."""
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    raw = idx_bytes(images.astype(np.uint8))
    compress = data.draw(st.booleans())
    content = bytearray(gzip.compress(raw, mtime=0) if compress else raw)
    kind = data.draw(st.sampled_from(["truncate", "flip", "append"]))
    if kind == "truncate":
        content = content[: data.draw(st.integers(0, len(content) - 1))]
    elif kind == "append":
        content += data.draw(st.binary(min_size=1, max_size=20))
    else:
        limit = len(content) - 1 if compress else 15  # raw payload bytes are all valid pixels
        i = data.draw(st.integers(0, limit))
        content[i] ^= data.draw(st.integers(1, 255))
    path = tmp_path_factory.mktemp("idx") / "file"
    path.write_bytes(bytes(content))
    try:
        result = read_idx_images(path)
    except DataError:
        return
    np.testing.assert_array_equal(result, images.reshape(3, 784))


# ---------------------------------------------------------------------- CSV
@pytest.mark.parametrize("layout", ["label", "onehot", "pixels"])
@pytest.mark.parametrize("header", [True, False])
def test_csv_layouts_round_trip(tmp_path, layout, header):
    path = write_csv(tmp_path / "d.csv", X, None if layout == "pixels" else Y, layout, header)
    data = read_csv(path)
    assert data.layout == layout
    np.testing.assert_array_equal(data.x, X)
    if layout == "pixels":
        assert data.y is None
    else:
        np.testing.assert_array_equal(data.y, Y)


def test_csv_with_pixel0_header(tmp_path):
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    rows = [f"{y}," + ",".join(str(int(v)) for v in x) for x, y in zip(X, Y, strict=True)]
    path = tmp_path / "kaggle.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    data = read_csv(path)
    assert data.layout == "label"
    np.testing.assert_array_equal(data.y, Y)


def _rows(layout):
    path_rows = []
    for x, y in zip(X, Y, strict=True):
        labels = [str(y)] if layout == "label" else [str(int(k == y)) for k in range(10)]
        path_rows.append(",".join(labels + [str(int(v)) for v in x]))
    return path_rows


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.__setitem__(2, r[2] + ",5"), "malformed CSV|columns"),
        (
            lambda r: r.__setitem__(3, r[3].replace(",", ",abc,", 1).rsplit(",", 1)[0]),
            r"line 5, column 2: non-numeric value 'abc'",
        ),
        (
            lambda r: r.__setitem__(1, "7" + r[1][1:].replace(",0,", ",,", 1)),
            r"line 3, column \d+: empty cell or NaN",
        ),
        (
            lambda r: r.__setitem__(1, r[1].rsplit(",", 1)[0] + ",256"),
            r"line 3, column 785: pixel 256 outside 0\.\.255",
        ),
        (lambda r: r.__setitem__(4, "10" + r[4][1:]), r"line 6, column 1: label 10 outside 0\.\.9"),
        (lambda r: r.__setitem__(0, "nan" + r[0][1:]), "line 2, column 1: empty cell or NaN"),
        (lambda r: r.__setitem__(0, "2.5" + r[0][1:]), "not a whole number"),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path, edit, message):
    rows = _rows("label")
    edit(rows)
    path = tmp_path / "bad.csv"
    path.write_text(
        "\n".join(
            ["label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)), *rows]
        )
        + "\n"
    )
    with pytest.raises(DataError, match=message) as info:
        read_csv(path)
    assert "bad.csv" in str(info.value)


def test_onehot_csv_rejects_rows_that_are_not_one_hot(tmp_path):
    rows = _rows("onehot")
    rows[2] = "1,1" + rows[2][3:]
    path = tmp_path / "oh.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="line 3, columns 1-10: not a one-hot label"):
        read_csv(path)


def test_csv_with_the_wrong_number_of_columns_says_what_was_expected(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(
        DataError, match=r"3 columns; expected one of 785 \(label\), 794 \(onehot\), 784 \(pixels\)"
    ):
        read_csv(path)
    with pytest.raises(DataError, match="no such file"):
        read_csv(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_csv(tmp_path / "empty.csv")


CORRUPTIONS = [
    "text",
    "empty",
    "nan",
    "pixel_range",
    "label_range",
    "drop_cell",
    "add_cell",
    "cut_line",
    "negative",
    "inf",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_csv_corruptions_always_raise_data_error(tmp_path_factory, data):
    layout = data.draw(st.sampled_from(["label", "onehot"]))
    header = data.draw(st.booleans())
    rows = [r.split(",") for r in _rows(layout)]
    n_labels = 1 if layout == "label" else 10
    kind = data.draw(st.sampled_from(CORRUPTIONS))
    i = data.draw(st.integers(0, len(rows) - 1))
    j = data.draw(st.integers(0, len(rows[i]) - 1))
    pixel = data.draw(st.integers(n_labels, len(rows[i]) - 1))
    if kind == "text":
        rows[i][j] = data.draw(st.text(alphabet="abcxyz#$ ", min_size=1, max_size=5)).strip() or "x"
    elif kind == "empty":
        rows[i][j] = ""
    elif kind == "nan":
        rows[i][j] = "NaN"
    elif kind == "inf":
        rows[i][j] = "inf"
    elif kind == "pixel_range":
        rows[i][pixel] = str(data.draw(st.integers(256, 10**6)))
    elif kind == "negative":
        rows[i][pixel] = str(data.draw(st.integers(-(10**6), -1)))
    elif kind == "label_range":
        rows[i][0] = str(data.draw(st.integers(10, 1000))) if layout == "label" else "2"
    elif kind == "drop_cell":
        del rows[i][j]
    elif kind == "add_cell":
        rows[i].insert(j, "1")
    elif kind == "cut_line":
        rows[i] = rows[i][: data.draw(st.integers(1, len(rows[i]) - 1))]
    lines = [",".join(r) for r in rows]
    if header:
        names = ["label"] if layout == "label" else [str(k) for k in range(10)]
        lines.insert(0, ",".join(names + [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)]))
    path = tmp_path_factory.mktemp("csv") / "c.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError):
        read_csv(path)


# ------------------------------------------------------------ normalisation
def test_normaliser_uses_training_statistics_and_keeps_zero_variance_at_one():
    x = np.array([[0, 10, 5], [0, 30, 5]], dtype=np.float32)
    z = Normaliser.fit("zscore", x)
    np.testing.assert_allclose(z.mean, [0, 20, 5])
    np.testing.assert_allclose(z.std, [1, 10, 1])
    np.testing.assert_allclose(z(np.array([[2, 40, 5]], dtype=np.float32)), [[2, 2, 0]])
    s = Normaliser.fit("scale", x)
    np.testing.assert_allclose(s(np.array([[255, 0, 51]])), [[1, 0, 0.2]])
    with pytest.raises(ValueError, match="expects 3 columns"):
        z(np.zeros((1, 4)))


def test_normaliser_std_floor_raises_only_the_small_columns():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, s, 1000) for s in (0.1, 1.0, 5.0)]).astype(np.float32)
    x[:, 0] += 3.0
    plain = Normaliser.fit("zscore", x)
    pooled = Normaliser.fit("zscore", x, std_floor="pooled")
    overall = x.astype(np.float64).std()  # the std of all entries together
    assert 1.0 < overall < 5.0
    np.testing.assert_allclose(pooled.std, [overall, overall, plain.std[2]], rtol=1e-5)
    np.testing.assert_allclose(pooled.mean, plain.mean)
    fixed = Normaliser.fit("zscore", x, std_floor=2.0)
    np.testing.assert_allclose(fixed.std, [2.0, 2.0, plain.std[2]], rtol=1e-6)
    for bad in (-1.0, "wide", float("nan")):
        with pytest.raises(ValueError, match="std_floor"):
            Normaliser.fit("zscore", x, std_floor=bad)


# ----------------------------------------------------------------- download
@pytest.fixture
def mirror(tmp_path, mnist):
    """A loopback HTTP server serving a copy of the MNIST files."""
    served = tmp_path / "served"
    served.mkdir()
    from nodenet.data import data_dir

    source = data_dir() / "mnist"
    for name in MNIST_FILES.values():
        shutil.copy(source / name, served / name)
    with serve_folder(served) as url:
        yield served, url


def test_download_verifies_checksums_and_leaves_no_partial_file(tmp_path, mirror):
    served, url = mirror
    target = tmp_path / "data" / "mnist"
    download_mnist(target, mirrors=(url,), progress=False)
    for name in MNIST_FILES.values():
        assert (
            hashlib.sha256((target / name).read_bytes()).digest()
            == hashlib.sha256((served / name).read_bytes()).digest()
        )
    train, test = load_mnist(tmp_path / "data")
    assert len(train) == 60000 and len(test) == 10000
    # a mirror serving a wrong file: rejected, and nothing half-written stays
    (target / "t10k-labels-idx1-ubyte.gz").unlink()
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download_mnist(target, mirrors=(url,), progress=False)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        n for n in MNIST_FILES.values() if n != "t10k-labels-idx1-ubyte.gz"
    )


def test_offline_names_the_files_and_where_to_put_them(tmp_path):
    closed = "http://127.0.0.1:9/"  # discard port: nothing listens
    with pytest.raises(DataError) as info:
        download_mnist(tmp_path / "mnist", mirrors=(closed,), progress=False)
    message = str(info.value)
    assert all(name in message for name in MNIST_FILES.values())
    assert "NODENET_DATA" in message and "--data-dir" in message
    assert list((tmp_path / "mnist").iterdir()) == []
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz"):
        load_mnist(tmp_path)


def test_a_damaged_first_row_is_not_mistaken_for_a_header(tmp_path):
    """Found by hypothesis: an empty first cell once made row 1 a 'header' and dropped it."""
    rows = _rows("label")
    rows[0] = rows[0][1:]  # first cell empty
    path = tmp_path / "noheader.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="line 1, column 1: empty cell or NaN"):
        read_csv(path)
