"""Shared fixtures: real MNIST from $NODENET_DATA (never the network) and small models."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from nodenet import CrossEntropy, Layer, Model, ReLU, Softmax
from nodenet.data import DataError, Normaliser, load_mnist

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


@pytest.fixture(scope="module")
def blobs():
    """120 samples of 6 features in 3 separable classes: ``(x, y)``."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=120)
    return rng.normal(size=(120, 6)) + 2.0 * np.eye(3, 6)[y], y


@contextlib.contextmanager
def serve_folder(folder: Path):
    """A loopback HTTP server of ``folder``'s files; yields its URL (ending in ``/``)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` with ``args`` in a fresh interpreter from the clone."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def mnist():
    """``(train, test)`` MNIST splits. Skips when ``NODENET_DATA`` is unset, unless
    ``NODENET_REQUIRE_DATA=1`` (set by .ci/run), where a missing file fails the test."""
    if not os.environ.get("NODENET_DATA"):
        if os.environ.get("NODENET_REQUIRE_DATA") == "1":
            pytest.fail("NODENET_DATA is not set but NODENET_REQUIRE_DATA=1")
        pytest.skip("set NODENET_DATA to a folder with mnist/ to run the MNIST tests")
    try:
        return load_mnist()
    except DataError as exc:
        if os.environ.get("NODENET_REQUIRE_DATA") == "1":
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """2,000 training images scaled to [0, 1], with labels: a quick real task."""
    train, _ = mnist
    x = Normaliser.fit("scale", train.x)(train.x[:2000])
    return x, train.y[:2000]


def mlp(
    sizes,
    hidden="relu",
    output="softmax",
    loss="cross_entropy",
    seed=0,
    dtype=np.float32,
    init="he",
):
    """A constructed model with layer sizes ``sizes`` (input first), He init by default
    (the tests of gradients and backends were written against its scale)."""
    layers = [Layer(n, hidden) for n in sizes[1:-1]] + [Layer(sizes[-1], output)]
    return Model(sizes[0], loss, layers).construct(seed=seed, init=init, dtype=dtype)


@pytest.fixture
def mnist_model():
    return Model(
        784, CrossEntropy(), [Layer(128, ReLU()), Layer(64, ReLU()), Layer(10, Softmax())]
    ).construct(seed=0)
