"""Saving and loading models: .npz + JSON, no pickle, atomic, clear errors."""

import json
import os

import numpy as np
import pytest

from nodenet import Layer, Model, io
from nodenet.data import Normaliser
from nodenet.files import atomic_write
from nodenet.io import ModelFileError
from nodenet.predict import predict_proba
from tests.conftest import mlp


@pytest.fixture
def model():
    m = mlp([20, 12, 6, 4], hidden="tanh", seed=5)
    x = np.random.default_rng(0).uniform(0, 255, size=(50, 20))
    m.normaliser = Normaliser.fit("zscore", x)
    return m


def test_round_trip_gives_identical_predictions(tmp_path, model):
    x = np.random.default_rng(1).uniform(0, 255, size=(30, 20))
    path = io.save(model, tmp_path / "model")
    assert path.name == "model.npz" and (tmp_path / "model.json").is_file()
    loaded = io.load(path)
    assert repr(loaded) == repr(model)
    assert loaded.dtype == model.dtype
    np.testing.assert_array_equal(loaded.weights, model.weights)
    np.testing.assert_array_equal(predict_proba(loaded, x), predict_proba(model, x))
    assert loaded.normaliser.kind == "zscore"
    assert io.load(tmp_path).sizes == model.sizes  # a folder holding model.npz works too


def test_file_needs_no_pickle_and_json_is_readable(tmp_path, model):
    path = io.save(model, tmp_path / "m.npz", metadata={"epochs": 3})
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    description = json.loads((tmp_path / "m.json").read_text())
    assert description["layers"][0] == {"size": 12, "activation": {"name": "tanh"}}
    assert description["metadata"] == {"epochs": 3}


def test_truncated_file_raises_a_clear_error(tmp_path, model):
    path = io.save(model, tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"m\.npz"):
        io.load(path)


def test_corrupt_and_missing_files_raise_clear_errors(tmp_path, model):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ModelFileError, match=r"not a readable \.npz"):
        io.load(bad)
    with pytest.raises(ModelFileError, match="no such file"):
        io.load(tmp_path / "nothing.npz")


def test_mismatched_architecture_raises(tmp_path, model):
    path = io.save(model, tmp_path / "m.npz")
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["weights"] = arrays["weights"][:-5]
    np.savez(path, **arrays)
    with pytest.raises(
        ModelFileError,
        match=r"entry 'weights' is float32 \(331,\), but the architecture needs float32 \(336,\)",
    ):
        io.load(path)
    arrays["weights"] = np.full(model.weights.shape, np.nan, dtype=np.float32)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="NaN"):
        io.load(path)
    arrays["architecture"] = np.array('{"format": "something-else"}')
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="unknown format"):
        io.load(path)


def test_write_is_atomic(tmp_path, model, monkeypatch):
    path = io.save(model, tmp_path / "m.npz")
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    model.weights += 1
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match=r"cannot write .*m\.npz: disk full"):
        io.save(model, path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.npz"]  # no temporary left behind


def _tampered(tmp_path, model, **changes):
    """A saved model file with entries replaced by ``changes``."""
    path = io.save(model, tmp_path / "m.npz")
    arrays = io.load_arrays(path)
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


def _architecture(model, **fields):
    description = json.loads(str(io.model_arrays(model)["architecture"]))
    return np.array(json.dumps({**description, **fields}))


def test_a_file_declaring_a_huge_network_is_refused_before_allocating(tmp_path, model):
    """200,000 hidden units declared, small arrays stored: refused from the headers."""
    import time
    import tracemalloc

    layers = [
        {"size": 200_000, "activation": {"name": "tanh"}},
        {"size": 4, "activation": "softmax"},
    ]
    path = _tampered(tmp_path, model, architecture=_architecture(model, layers=layers))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"entry 'weights' is float32 \(\d+,\), but the"):
        io.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20 and time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "architecture, message",
    [
        ("[1, 2, 3]", "must be a JSON object, got list"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"format": "nodenet-model-1", "dtype": "float16"}', "field 'dtype'"),
        (None, "invalid architecture"),
    ],
    ids=["list", "deeply-nested", "dtype", "layers-not-a-list"],
)
def test_broken_architectures_get_one_line_errors(tmp_path, model, architecture, message):
    text = _architecture(model, layers="many") if architecture is None else np.array(architecture)
    with pytest.raises(ModelFileError, match=message):
        io.load(_tampered(tmp_path, model, architecture=text))


def test_arrays_of_the_wrong_type_or_unknown_entries_are_refused(tmp_path, model):
    as_text = np.array(["1.0"] * model.weights.size)
    with pytest.raises(ModelFileError, match=r"entry 'weights' is <U3"):
        io.load(_tampered(tmp_path, model, weights=as_text))
    with pytest.raises(ModelFileError, match="unexpected entry 'payload'"):
        io.load(_tampered(tmp_path, model, payload=np.zeros(10)))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mean", np.nan, "normaliser mean is NaN or infinite"),
        ("std", np.inf, "normaliser std is NaN or infinite"),
        ("std", 0.0, "std must be positive"),
        ("std", 1e-45, "std must be positive and at least 1.18e-38"),
    ],
)
def test_normaliser_statistics_must_be_finite_with_positive_std(
    tmp_path, model, field, value, message
):
    stats = model.normaliser.to_arrays()[field].copy()
    stats[3] = value
    with pytest.raises(ModelFileError, match=message):
        io.load(_tampered(tmp_path, model, **{f"normaliser_{field}": stats}))


def test_non_finite_parameters_are_never_saved(tmp_path, model):
    path = io.save(model, tmp_path / "m.npz")
    before = path.read_bytes()
    model.biases[0] = np.nan
    with pytest.raises(ValueError, match="biases hold NaN"):
        io.save(model, path)
    assert path.read_bytes() == before


def test_a_compressed_entry_is_refused_before_it_is_inflated(tmp_path, model):
    """A zip bomb is a deflated entry: nodenet writes stored entries only."""
    path = io.save(model, tmp_path / "m.npz")
    arrays = io.load_arrays(path)
    np.savez_compressed(path, **arrays)
    with pytest.raises(ModelFileError, match=r"weights\.npy is compressed"):
        io.load(path)


def test_finite_but_impossible_values_are_refused(tmp_path):
    bn = Model(4, "cross_entropy", [Layer(3, "relu", batch_norm=True), Layer(2, "softmax")])
    bn.construct(seed=0)
    running = bn.running.copy()
    running[bn.layout.running[1].start + 3] = -1.0  # a variance of the first BN layer
    with pytest.raises(ModelFileError, match="running variance is negative"):
        io.load(_tampered(tmp_path, bn, running=running))
    leaky = Model(4, "cross_entropy", [Layer(3, "leaky_relu"), Layer(2, "softmax")]).construct()
    layers = leaky.config()["layers"]
    layers[0]["activation"] = {"name": "leaky_relu", "alpha": 1e300}
    with pytest.raises(ModelFileError, match=r"alpha must lie in \[0, 1\]"):
        io.load(_tampered(tmp_path, leaky, architecture=_architecture(leaky, layers=layers)))


@pytest.mark.parametrize("target", ["/dev/null", "fifo", "folder"])
def test_a_file_that_is_not_regular_is_never_replaced(tmp_path, model, target):
    import os
    import stat

    if target == "fifo":
        target = tmp_path / "fifo"
        os.mkfifo(target)
    elif target == "folder":
        target = tmp_path / "folder.npz"
        target.mkdir()
    with pytest.raises(OSError, match="exists and is not a regular file"):
        atomic_write(target, lambda f: f.write(b"replaced?"))
    assert not stat.S_ISREG(os.stat(target).st_mode)  # still what it was
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_every_json_file_is_strict(tmp_path, model):
    """NaN and infinities become null: Python's json would write NaN and Infinity,
    which no strict reader accepts."""
    path = io.save(model, tmp_path / "m.npz", metadata={"classes": [1.0, float("inf")]})
    strict = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert strict["metadata"]["classes"] == [1.0, None]
    assert io.load_metadata(path)["classes"] == [1.0, None]


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_device_or_fifo_as_a_model_file_is_named(tmp_path, target):
    if target == "fifo":
        target = tmp_path / "m.npz"
        os.mkfifo(target)
    with pytest.raises(ModelFileError, match="not a regular file"):
        io.load(target)
