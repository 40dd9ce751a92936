"""Data beyond MNIST: Fashion-MNIST's checksums and mirrors (downloaded from a loopback
server, never the network), missing files fetched by default and not with
--no-download, and ``nodenet train --csv`` / ``nodenet predict`` on real data sets that
scikit-learn ships, written out as CSV, for classification and regression."""

import argparse
import dataclasses
import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodenet.data import MNIST_FILES, SOURCES, DataError, download_idx, load_mnist
from nodenet.data.idx import read_idx_images
from tests.conftest import serve_folder

NODENET = str(Path(sys.executable).parent / "nodenet")


def nodenet(*args) -> subprocess.CompletedProcess:
    return subprocess.run([NODENET, *map(str, args)], capture_output=True, text=True, timeout=300)


def idx_files(folder: Path, n: int = 40, seed: int = 0) -> dict[str, str]:
    """Small but valid IDX files under MNIST's names; the SHA-256 of their content."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    image_bytes = b"\x00\x00\x08\x03" + np.array([n, 28, 28], ">i4").tobytes() + images.tobytes()
    label_bytes = b"\x00\x00\x08\x01" + np.array([n], ">i4").tobytes() + labels.tobytes()
    digests = {}
    for key, name in MNIST_FILES.items():
        content = image_bytes if key.endswith("images") else label_bytes
        (folder / name).write_bytes(gzip.compress(content))
        digests[name] = hashlib.sha256(content).hexdigest()
    return digests


def test_fashion_mnist_has_its_own_checksums_and_mirrors():
    fashion, mnist = SOURCES["fashion-mnist"], SOURCES["mnist"]
    assert set(fashion.sha256) == set(MNIST_FILES.values())
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in fashion.sha256.values())
    assert not set(fashion.sha256.values()) & set(mnist.sha256.values())
    assert len(fashion.mirrors) >= 2 and not set(fashion.mirrors) & set(mnist.mirrors)


@pytest.fixture
def no_system_data(tmp_path, monkeypatch):
    """Hide the data sets a distribution may have installed (/usr/share/datasets)."""
    from nodenet.data import mnist

    monkeypatch.setattr(mnist, "SYSTEM_DATA", tmp_path / "no-system-data")


def test_fashion_mnist_downloads_like_mnist(tmp_path, monkeypatch, no_system_data):
    served = tmp_path / "served"
    served.mkdir()
    digests = idx_files(served)
    with serve_folder(served) as url:
        source = dataclasses.replace(SOURCES["fashion-mnist"], mirrors=(url,), sha256=digests)
        monkeypatch.setitem(SOURCES, "fashion-mnist", source)
        train, test = load_mnist(tmp_path / "data", download=True, dataset="fashion-mnist")
        assert len(train) == len(test) == 40
        expected = read_idx_images(served / MNIST_FILES["train_images"])
        np.testing.assert_array_equal(train.x, expected)
        assert (tmp_path / "data" / "fashion-mnist").is_dir()
        # a file that is not the published one is refused, and nothing of it stays
        target = tmp_path / "data" / "fashion-mnist"
        (target / MNIST_FILES["test_labels"]).unlink()
        (served / MNIST_FILES["test_labels"]).write_bytes(gzip.compress(b"\x00" * 20))
        with pytest.raises(DataError, match="SHA-256 mismatch"):
            download_idx(target, source, progress=False)
        assert not (target / MNIST_FILES["test_labels"]).exists()
        assert not list(target.glob(".*.part"))


def test_training_fetches_missing_files_unless_told_not_to(
    tmp_path, monkeypatch, capsys, no_system_data
):
    from nodenet.cli import sources

    served = tmp_path / "served"
    served.mkdir()
    digests = idx_files(served, seed=1)
    empty = tmp_path / "fresh"
    flags = {"csv": None, "task": "classification", "data_dir": empty, "dataset": "mnist"}
    with serve_folder(served) as url:
        source = dataclasses.replace(SOURCES["mnist"], mirrors=(url,), sha256=digests)
        monkeypatch.setitem(SOURCES, "mnist", source)
        with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz"):
            sources.load(argparse.Namespace(**flags, no_download=True, quiet=False))
        assert not empty.exists() or not any(empty.rglob("*.gz"))
        data = sources.load(argparse.Namespace(**flags, no_download=False, quiet=False))
    assert len(data.train) == 40
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar


def test_no_download_names_the_files_in_one_clear_error(tmp_path):
    result = nodenet("train", "--no-download", "--data-dir", tmp_path, "--out", tmp_path / "o")
    assert result.returncode == 2
    assert "MNIST files not found" in result.stderr and "--data-dir" in result.stderr
    assert not list(tmp_path.rglob("*.gz"))


FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


@pytest.mark.slow
def test_fashion_mnist_accuracy_against_the_published_mlp(tmp_path):
    """The real files (``apt install dataset-fashion-mnist``; .ci/run installs it), found
    without --data-dir, checked against the SHA-256 list, and a 784-256-128-10 run above
    the 256-128-100 MLP listed in Zalando's benchmark table (0.8833)."""
    import os

    if not FASHION.is_dir():
        if os.environ.get("NODENET_REQUIRE_DATA") == "1":
            pytest.fail(f"{FASHION} is missing: apt install dataset-fashion-mnist")
        pytest.skip("apt install dataset-fashion-mnist to run this test")
    source = SOURCES["fashion-mnist"]
    download_idx(FASHION, source, mirrors=("http://127.0.0.1:9/",), progress=False)  # verifies
    flags = "--dataset fashion-mnist --no-download --hidden 256 128 --batch-norm --dropout 0.2"
    flags += " --epochs 10 --lr 2e-3 --lr-decay 0.5 --lr-decay-every 3 --quiet --no-plot"
    result = nodenet("train", *flags.split(" "), "--data-dir", tmp_path, "--out", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8833, metrics


# ------------------------------------------------------------------- CSV
sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv")
    digits = sklearn_datasets.load_digits(as_frame=True).frame.sample(frac=1.0, random_state=0)
    digits.iloc[:1400].to_csv(folder / "digits.csv", index=False)
    digits.iloc[1400:].to_csv(folder / "digits_test.csv", index=False)
    iris = sklearn_datasets.load_iris(as_frame=True)
    frame = iris.frame.assign(species=iris.target_names[iris.target]).drop(columns="target")
    frame.to_csv(folder / "iris.csv", index=False)
    diabetes = sklearn_datasets.load_diabetes(as_frame=True, scaled=False).frame
    diabetes.to_csv(folder / "diabetes.csv", index=False)
    return folder


def test_train_and_predict_a_classification_csv(csv_files, tmp_path):
    out = tmp_path / "digits"
    flags = ["--target", "target", "--hidden", "64", "--epochs", "20", "--quiet"]
    data = ("--csv", csv_files / "digits.csv", "--test-csv", csv_files / "digits_test.csv")
    result = nodenet("train", *data, *flags, "--out", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.93, metrics
    assert (out / "training.png").is_file() and (out / "history.csv").is_file()
    assert metrics["settings"]["csv"].endswith("digits.csv")
    predicted = nodenet(
        "predict", "--model", out, "--csv", csv_files / "digits_test.csv", "--out", tmp_path
    )
    assert predicted.returncode == 0, predicted.stderr
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert (tmp_path / "confusion.png").is_file()


def test_class_names_and_the_saved_normalisation(csv_files, tmp_path):
    out = tmp_path / "iris"
    flags = ["--target", "species", "--epochs", "60", "--batch-size", "16", "--quiet", "--no-plot"]
    result = nodenet("train", "--csv", csv_files / "iris.csv", *flags, "--out", out)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["validation_accuracy"] > 0.8
    # feature columns in another order, target absent: still read by name
    frame = pd.read_csv(csv_files / "iris.csv")
    shuffled = frame[list(reversed(frame.columns[:-1]))]
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    predicted = nodenet("predict", "--model", out, "--csv", tmp_path / "new.csv")
    assert predicted.returncode == 0, predicted.stderr
    names = pd.read_csv(tmp_path / "predictions.csv")["predicted"]
    assert set(names) <= {"setosa", "versicolor", "virginica"}
    assert (names == frame["species"]).mean() > 0.8
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["dataset"] is None  # a CSV run, not MNIST
    # a probability threshold marks classes by name too
    marked = nodenet("predict", "--model", out, "--csv", tmp_path / "new.csv", "--threshold", "0.3")
    assert marked.returncode == 0, marked.stderr
    words = " ".join(pd.read_csv(tmp_path / "predictions.csv")["predicted"].dropna()).split()
    assert words and set(words) <= {"setosa", "versicolor", "virginica"}


def test_train_and_predict_a_regression_csv(csv_files, tmp_path):
    out = tmp_path / "diabetes"
    flags = "--target target --task regression --epochs 50 --batch-size 32 --lr 0.01"
    flags += " --quiet --no-plot"
    result = nodenet("train", "--csv", csv_files / "diabetes.csv", *flags.split(), "--out", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation_r2"] > 0.4, metrics
    assert metrics["validation_rmse"] < 65  # the target's std is 77
    predicted = nodenet("predict", "--model", out, "--csv", csv_files / "diabetes.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads((csv_files / "evaluation.json").read_text())["r2"] > 0.4


def _bad_cell(frame):
    frame = frame.astype(object)
    frame.iloc[3, 2] = "abc"  # line 5 of the file (after the header), column 3
    return frame


def _empty_target(frame):
    frame = frame.astype({"target": object})
    frame.iloc[7, frame.columns.get_loc("target")] = None
    return frame


@pytest.mark.parametrize(
    ("edit", "flags", "message"),
    [
        (_bad_cell, (), r"line 5, column 3: non-numeric value 'abc'"),
        (lambda f: f.assign(colour=["red", "blue"] * (len(f) // 2)), (), r"'colour'.*one-hot"),
        (_empty_target, (), r"line 9, column 65: empty target"),
        (lambda f: f, ("--target", "label"), r"no column 'label'; the columns are"),
        (lambda f: f.assign(target="x"), ("--task", "regression"), r"regression must be numeric"),
    ],
    ids=["bad-cell", "text-column", "empty-target", "no-target", "text-regression"],
)
def test_bad_csv_files_are_named(csv_files, tmp_path, edit, flags, message):
    frame = edit(pd.read_csv(csv_files / "digits.csv").iloc[:40])
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    args = ["train", "--csv", path, "--target", "target", "--out", tmp_path / "o", *flags]
    result = nodenet(*args, "--quiet")
    assert result.returncode == 2, result.stdout
    assert str(path) in result.stderr
    assert re.search(message, result.stderr), result.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,y,y\n1,2,0,0\n3,4,1,1\n", "line 1 names column(s) 'y' twice"),
        ("a,y\n1,0\n2,inf\n3,1\n", "line 3: target inf is not a class"),
    ],
)
def test_a_csv_that_would_leak_or_invent_a_class_is_refused(tmp_path, text, message):
    (tmp_path / "d.csv").write_text(text)
    result = nodenet(
        "train",
        "--csv",
        tmp_path / "d.csv",
        "--target",
        "y",
        "--quiet",
        "--no-plot",
        "--out",
        tmp_path / "o",
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_labels_of_another_kind_than_the_models_classes_are_named(csv_files, tmp_path):
    """Text labels against a model of numeric classes (and the reverse) are compared as
    text: an unknown label is named with its line, never a TypeError."""
    out = tmp_path / "digits"
    flags = ["--target", "target", "--epochs", "1", "--quiet", "--no-plot", "--hidden", "8"]
    assert nodenet("train", "--csv", csv_files / "digits.csv", *flags, "--out", out).returncode == 0
    frame = pd.read_csv(csv_files / "digits_test.csv").head(20)
    frame["target"] = ["cat"] * len(frame)
    frame.to_csv(tmp_path / "words.csv", index=False)
    result = nodenet("predict", "--model", out, "--csv", tmp_path / "words.csv")
    assert (
        result.returncode == 2 and "label 'cat' is not one of the model's classes" in result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def iris_run(csv_files, tmp_path_factory):
    """A model trained by ``nodenet train`` on iris.csv (one epoch): its folder."""
    out = tmp_path_factory.mktemp("iris_run")
    flags = ["--target", "species", "--epochs", "1", "--quiet", "--no-plot"]
    assert nodenet("train", "--csv", csv_files / "iris.csv", *flags, "--out", out).returncode == 0
    return out


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("target", None, "'target' must be the name of the target column"),
        ("classes", None, "'classes' must be a list of class names"),
        ("features", "abc", "'features' must be a list of column names"),
        ("features", 7, "'features' must be a list of column names"),
        ("features", "twice", "'features' names a column twice"),
        ("classes", [{"a": 1}], "'classes' must be a list of class names"),
    ],
)
def test_tampered_model_metadata_is_named_by_predict(
    iris_run, csv_files, tmp_path, field, value, message
):
    import json as json_module
    import shutil

    from nodenet import io as model_io

    out = tmp_path / "iris"
    shutil.copytree(iris_run, out)
    model = model_io.load(out)
    metadata = model_io.load_metadata(out)
    if value == "twice":
        value = [metadata["features"][0]] * len(metadata["features"])
    if value is None:
        del metadata[field]
    else:
        metadata[field] = value
    model_io.save(model, out / "model.npz", metadata=json_module.loads(json_module.dumps(metadata)))
    result = nodenet("predict", "--model", out, "--csv", csv_files / "iris.csv", "--out", tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text, flags, message",
    [
        ("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(10)), ["--validation", "0.96"], "no training rows to take normalisation statistics from"),
        ("a,y\n1e308,0\n-1e308,1\n1e308,1\n-1e308,0\n", ["--validation", "0"], "column 0: its values are too large for a z-score"),
        ("a,b,c,d,e,f,g,h,i,j,y\n" + "1,2,3,4,5,6,7,8,9,0,1\n0,2,3,4,5,6,7,8,9,0,0\n", ["--hidden", "1000000000"], "parameters need"),
    ],
)  # fmt: skip
def test_impossible_runs_are_named_before_training(tmp_path, text, flags, message):
    (tmp_path / "d.csv").write_text(text)
    result = nodenet(
        "train", "--csv", tmp_path / "d.csv", "--target", "y", "--quiet", "--no-plot",
        "--out", tmp_path / "o", *flags,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "RuntimeWarning" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("change", ["reordered", "renamed", "wider"])
def test_resuming_after_the_csv_changed_is_refused(csv_files, tmp_path, change):
    data = tmp_path / "iris.csv"
    frame = pd.read_csv(csv_files / "iris.csv")
    frame.to_csv(data, index=False)
    out = tmp_path / "run"
    flags = ["--target", "species", "--quiet", "--no-plot", "--out", out]
    assert nodenet("train", "--csv", data, "--epochs", "1", *flags).returncode == 0
    if change == "reordered":
        frame = frame[[*reversed(frame.columns[:-1]), "species"]]
    elif change == "renamed":
        frame = frame.rename(columns={frame.columns[0]: "other"})
    else:
        frame.insert(0, "extra", 1.0)
    frame.to_csv(data, index=False)
    result = nodenet("train", "--resume", out, "--epochs", "2")
    assert result.returncode == 2, result.stderr
    assert "its features changed since the run began" in result.stderr


def test_a_threshold_for_a_regression_model_and_odd_header_names_are_named(csv_files, tmp_path):
    out = tmp_path / "diabetes"
    flags = ["--target", "target", "--task", "regression", "--epochs", "1", "--quiet", "--no-plot"]
    assert (
        nodenet("train", "--csv", csv_files / "diabetes.csv", *flags, "--out", out).returncode == 0
    )
    result = nodenet(
        "predict",
        "--model",
        out,
        "--csv",
        csv_files / "diabetes.csv",
        "--threshold",
        "0.3",
        "--out",
        tmp_path,
    )
    assert result.returncode == 2 and "--threshold is for classes" in result.stderr
    (tmp_path / "nul.csv").write_text("a\x00b,c\n1,2\n")
    named = nodenet(
        "train", "--csv", tmp_path / "nul.csv", "--target", "y", "--out", tmp_path / "o"
    )
    assert named.returncode == 2 and "'a\\x00b'" in named.stderr and "\x00" not in named.stderr


@pytest.mark.slow
def test_odd_inputs_to_the_commands_get_one_line(csv_files, tmp_path, mnist):
    (tmp_path / "big.csv").write_text("a,y\n" + "".join(f"{i},{i * 1e200}\n" for i in range(6)))
    flags = ["--target", "y", "--task", "regression", "--quiet", "--no-plot"]
    big = nodenet("train", "--csv", tmp_path / "big.csv", *flags, "--out", tmp_path / "b")
    assert big.returncode == 1 and "overflow when squared in float32" in big.stderr, big.stderr
    out = tmp_path / "two"
    assert (
        nodenet(
            "train", "--epochs", "1", "--hidden", "4", "--quiet", "--no-plot", "--out", out
        ).returncode
        == 0
    )
    from nodenet import Layer, Model
    from nodenet import io as model_io

    two = Model(784, "cross_entropy", [Layer(4, "relu"), Layer(2, "softmax")]).construct()
    model_io.save(two, out / "model.npz")  # a model of 2 classes for 10-class data
    pd.DataFrame({"label": [7, 1], **{f"pixel{i}": [0, 0] for i in range(784)}}).to_csv(
        tmp_path / "m.csv", index=False
    )
    odd = nodenet("predict", "--model", out, "--csv", tmp_path / "m.csv", "--out", tmp_path / "p")
    assert odd.returncode == 2 and "outside the class range" in odd.stderr, odd.stderr
    assert not (tmp_path / "p" / "predictions.csv").exists()  # nothing half done
    folder = nodenet("predict", "--model", out, "--csv", tmp_path)
    assert folder.returncode == 2 and "not a regular file" in folder.stderr
    empty = nodenet("convert", "--model", out, "--onnx", "")
    assert empty.returncode != 0 and "not a file name" in empty.stderr
    for result in (big, odd, folder, empty):
        assert "Traceback" not in result.stderr
