"""The Ray backend on a real two-node cluster on this machine (loopback only).

Ray advertises the machine's network address even when told to use 127.0.0.1, so these
tests run only inside a network namespace that has nothing but ``lo`` (``.ci/run``
makes one as root and sets ``NODENET_RAY_NETNS=1``); elsewhere they are skipped.
"""

import os
import signal

import numpy as np
import pytest

from nodenet import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Callback,
    Layer,
    Model,
    Momentum,
    Nesterov,
    RMSProp,
    fit,
)
from tests.conftest import mlp

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(
        os.environ.get("NODENET_RAY_NETNS") != "1",
        reason="Ray tests run only in a loopback-only network namespace (bash .ci/run as root)",
    ),
]
ray = pytest.importorskip("ray", reason="pip install 'nodenet[ray]' to run the Ray tests")


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node, 2 CPUs each, on 127.0.0.1."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    nodes.add_node(num_cpus=2)
    yield nodes
    if ray.is_initialized():
        ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=600)
    return rng.normal(size=(600, 20)) + 2.0 * np.eye(3, 20)[y], y


SETTINGS = {"epochs": 2, "batch_size": 50, "seed": 3, "validation": 0.2}


def _reference(x, y, make):
    model = mlp([20, 8, 3], dtype=np.float64, seed=1)
    history = fit(model, x, y, optimizer=make(), **SETTINGS)
    return model, history


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(lr=0.1),
        lambda: Momentum(lr=0.05, weight_decay=1e-3),
        lambda: Nesterov(lr=0.05),
        lambda: RMSProp(lr=1e-3),
        lambda: Adagrad(lr=0.05),
        lambda: Adam(lr=1e-2, average=0.9),
        lambda: AdamW(lr=1e-2, weight_decay=0.1),
    ],
    ids=["sgd", "momentum-l2", "nesterov", "rmsprop", "adagrad", "adam-averaged", "adamw"],
)
def test_ray_equals_in_process_for_any_actor_count(cluster, blobs, make):
    x, y = blobs
    reference, expected = _reference(x, y, make)
    for actors in (1, 3):
        model = mlp([20, 8, 3], dtype=np.float64, seed=1)
        backends = []
        history = fit(
            model,
            x,
            y,
            optimizer=make(),
            backend=_recording_factory(backends, address=cluster.address),
            workers=actors,
            **SETTINGS,
        )
        np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-9, atol=1e-12)
        assert [e["val_accuracy"] for e in history.epochs] == [
            e["val_accuracy"] for e in expected.epochs
        ]
        assert history.worker_stats["samples"].sum() > 0
        assert len(backends[0].pids) == actors
        assert _wait_until_gone(backends[0].pids), "actor processes left running"


@pytest.mark.timeout(120)
def test_dropout_masks_on_ray_equal_in_process(cluster, blobs):
    """The actors draw each sample's dropout mask from its row and the step, as this
    process does, whichever actor gets the sample."""
    x, y = blobs

    def make_model():
        layers = [Layer(8, "relu", dropout=0.3), Layer(3, "softmax")]
        return Model(20, "cross_entropy", layers).construct(1, dtype=np.float64)

    reference = make_model()
    fit(reference, x, y, **SETTINGS)
    for actors in (1, 3):
        model = make_model()
        fit(model, x, y, backend="ray", workers=actors, ray_address=cluster.address, **SETTINGS)
        np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-9, atol=1e-12)


class KillAnActor(Callback):
    """SIGKILL the process of actor 0 after batch ``batch`` of epoch 1."""

    def __init__(self, backends, batch: int = 3):
        super().__init__()
        self.backends, self.batch = backends, batch

    def on_train_batch_end(self, batch, logs=None):
        if logs["epoch"] == 1 and batch == self.batch:
            actor = self.backends[-1].actors[0]
            os.kill(ray.get(actor.pid.remote(), timeout=30), signal.SIGKILL)


def _recording_factory(backends, **options):
    """The ray backend's factory, keeping each backend and its actors' pids."""
    from nodenet.workers.ray import RayBackend

    def build(model, x, y, **run):
        backend = RayBackend.open(model, x, y, **run, **options)
        backend.pids = ray.get([a.pid.remote() for a in backend.actors], timeout=30)
        backends.append(backend)
        return backend

    return build


def _wait_until_gone(pids, seconds: float = 15) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.timeout(120)
def test_a_lost_actor_is_replaced_and_the_step_redone(cluster, blobs):
    x, y = blobs
    reference, _ = _reference(x, y, lambda: Adam(lr=1e-2))
    backends = []
    model = mlp([20, 8, 3], dtype=np.float64, seed=1)
    history = fit(
        model,
        x,
        y,
        optimizer=Adam(lr=1e-2),
        workers=2,
        backend=_recording_factory(backends, address=cluster.address, timeout_s=20),
        callbacks=[KillAnActor(backends)],
        **SETTINGS,
    )
    assert history.worker_stats["failures"].iloc[0] == 1
    np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-9, atol=1e-12)


@pytest.mark.timeout(120)
def test_when_the_failures_run_out_the_user_gets_a_worker_error(cluster, blobs):
    import time

    from nodenet.workers import WorkerError

    x, y = blobs
    backends = []
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"ray worker 0 lost \(.*ActorDiedError.*max_failures=0"):
        fit(
            mlp([20, 8, 3]),
            x,
            y,
            workers=2,
            max_failures=0,
            backend=_recording_factory(backends, address=cluster.address, timeout_s=20),
            callbacks=[KillAnActor(backends)],
            **SETTINGS,
        )
    assert time.monotonic() - started < 60
    assert len(backends) == 1  # a final failure: fit does not start over
    assert backends[0].actors == []  # closed: every actor killed
    assert _wait_until_gone(backends[0].pids[1:])


class CtrlC(Callback):
    def on_train_batch_end(self, batch, logs=None):
        if logs["epoch"] == 1 and batch == 2:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.timeout(120)
def test_ctrl_c_kills_the_actors(cluster, blobs):
    x, y = blobs
    backends = []
    with pytest.raises(KeyboardInterrupt):
        fit(
            mlp([20, 8, 3]),
            x,
            y,
            workers=2,
            backend=_recording_factory(backends, address=cluster.address),
            callbacks=[CtrlC()],
            **SETTINGS,
        )
    assert backends[0].actors == [] and _wait_until_gone(backends[0].pids)
    assert not ray.is_initialized()  # the backend started the connection and ended it


@pytest.mark.timeout(120)
def test_an_exception_in_an_actor_keeps_its_type_and_is_not_retried(cluster, blobs):
    from tests.test_pool import LossThatRaises

    x, y = blobs
    backends = []
    model = Model(20, LossThatRaises(), [Layer(8, "relu"), Layer(3, "softmax")]).construct()
    with pytest.raises(ValueError, match="this loss refuses to be computed"):
        fit(
            model,
            x,
            y,
            workers=2,
            backend=_recording_factory(backends, address=cluster.address, timeout_s=20),
            **SETTINGS,
        )
    assert len(backends) == 1  # fit did not start the backend over
    assert backends[0].failures == 0  # nor did the backend replace an actor


@pytest.mark.timeout(180)
def test_a_conv_net_with_batch_norm_and_dropout_on_ray_equals_in_process(cluster):
    """Conv, pooling, up-sampling and transposed convolution on the actors, batch norm
    met across them at every layer (an actor with no rows of the last batch meets the
    others too), dropout masks keyed by row, running statistics kept."""
    from tests.test_conv import conv_net, image_blobs

    x, y = image_blobs(241)
    reference = conv_net()
    expected = fit(reference, x, y, **SETTINGS)
    for actors in (1, 3):
        model = conv_net()
        history = fit(
            model, x, y, backend="ray", workers=actors, ray_address=cluster.address, **SETTINGS
        )
        np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.running, reference.running, rtol=1e-9, atol=1e-12)
        assert history.epochs[-1]["val_loss"] == pytest.approx(
            expected.epochs[-1]["val_loss"], rel=1e-9
        )


@pytest.mark.timeout(180)
def test_a_lost_actor_with_batch_norm_is_replaced_and_the_others_freed(cluster):
    """Actor 0 dies between two training steps; actor 1 then waits at the next step's
    first batch-norm meeting for it. Both are replaced, one failure is counted, and the
    run ends as if nothing had happened."""
    from tests.test_conv import conv_net, image_blobs

    x, y = image_blobs()
    reference = conv_net()
    fit(reference, x, y, **SETTINGS)
    backends = []
    model = conv_net()
    history = fit(
        model,
        x,
        y,
        workers=2,
        backend=_recording_factory(backends, address=cluster.address, timeout_s=10),
        callbacks=[KillAnActor(backends, batch=1)],
        **SETTINGS,
    )
    assert history.worker_stats["failures"].iloc[0] == 1
    np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.running, reference.running, rtol=1e-9, atol=1e-12)


def test_an_actors_training_passes_reuse_the_memory_they_free(cluster):
    """Each actor keeps the memory a LeNet-5 pass frees for its next pass
    (``keep_freed_memory``), as the pool's workers do: 613-1,250 page faults a step in
    each actor without it, 40-50 with it (the rest is Ray's own traffic)."""
    from nodenet.workers.processes import minor_faults
    from nodenet.workers.ray import RayBackend
    from tests.test_conv import lenet

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(512, 784)).astype(np.float32), rng.integers(0, 10, 512)
    model, optimizer = lenet(), Adam(lr=1e-3)
    rows = np.arange(128)
    with RayBackend.open(
        model, x, y, optimizer=optimizer, workers=2, address=cluster.address
    ) as backend:
        pids = ray.get([actor.pid.remote() for actor in backend.actors], timeout=30)
        for _ in range(3):  # every actor reaches the memory its steps need
            backend.train_step(rows, optimizer)
        before = [minor_faults(pid) for pid in pids]
        steps = 10
        for _ in range(steps):
            backend.train_step(rows, optimizer)
        faults = [(minor_faults(pid) - b) / steps for pid, b in zip(pids, before, strict=True)]
    assert max(faults) < 200, f"page faults per step in each actor: {faults}"
