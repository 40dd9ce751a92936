"""The worker pool: equal to the in-process result, and safe on every exit path.

Every test that could hang has a time bound (pytest-timeout and explicit deadlines).
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nodenet import SGD, Adam, AdamW, Callback, CrossEntropy, Layer, Model, Momentum, fit
from nodenet.backend import InProcess
from nodenet.checkpoint import Checkpoint, load_checkpoint
from nodenet.workers import WorkerError, WorkerPool, stop_fork_server
from nodenet.workers.processes import fork_server, minor_faults, proc_stat
from nodenet.workers.shared import leftover_blocks
from tests.conftest import mlp

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "State:\tZ" not in status


def _wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _assert_clean(pool: WorkerPool):
    """Every worker gone and every block the pool created unlinked."""
    assert pool.pids and pool.shared_blocks  # something to check
    assert not any(_alive(pid) for pid in pool.pids)
    assert not any(p.is_alive() for p in pool.processes)
    assert not set(pool.shared_blocks) & set(leftover_blocks())


@pytest.fixture(scope="module")
def data(mnist):
    train, _ = mnist
    x = train.x[:3000] / 255.0
    return x, train.y[:3000]


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pool_gradient_equals_in_process(data, dtype, tolerance, workers):
    x, y = data
    model = mlp([784, 32, 16, 10], dtype=dtype, seed=workers)
    xs, t = model.check_inputs(x), model.targets(y)
    batch = np.random.default_rng(0).choice(len(x), size=200, replace=False)
    loss0, dW0, db0 = model.gradient(xs[batch], y[batch])
    _, correct0 = InProcess(model, xs, t).evaluate(batch)
    with WorkerPool(model, xs, t, workers=workers) as pool:
        assert not model.weights.flags.owndata  # a view of the pool's shared block
        for chunk in (None, 1, 7, 64, 500):
            pool.chunk = chunk
            loss, correct, dW, db = pool.gradient(batch)
            assert loss == pytest.approx(loss0, rel=tolerance)
            assert correct == correct0
            for got, want in ((dW, dW0), (db, db0)):
                err = np.abs(got - want).max() / np.abs(want).max()
                assert err <= tolerance, (chunk, err)
        ev_loss, ev_correct = pool.evaluate(batch)
        assert ev_loss == pytest.approx(loss0, rel=tolerance) and ev_correct == correct0
        stats = pool.stats()
        assert list(stats["worker"]) == list(range(workers))
        assert stats["samples"].sum() == 6 * 200
        assert {
            "tasks",
            "busy_s",
            "idle_s",
            "barrier_s",
            "samples_per_s",
            "utilisation",
        } <= set(stats.columns)
    _assert_clean(pool)
    assert model.weights.flags.owndata and model.biases.flags.owndata  # private arrays back


def test_pool_sees_the_parents_optimizer_steps(data):
    x, y = data
    model = mlp([784, 16, 10], dtype=np.float64)
    xs, t = model.check_inputs(x), model.targets(y)
    batch = np.arange(100)
    with WorkerPool(model, xs, t, workers=2) as pool:
        before = pool.gradient(batch)[0]
        model.weights *= 0.5  # in place, as every optimizer does
        after = pool.gradient(batch)[0]
        assert after == pytest.approx(model.gradient(xs[batch], y[batch])[0], rel=1e-12)
        assert after != before


@pytest.mark.parametrize("ahead", [1, 3])
def test_submitted_steps_equal_steps_taken_one_at_a_time(data, ahead):
    """Seven steps submitted at once (more than ``ahead``: slots of the ring are reused
    before their results are collected), an evaluation queued behind them, then the
    results collected in order."""
    x, y = data
    reference, pooled = (mlp([784, 24, 10], dtype=np.float64, seed=3) for _ in range(2))
    xs, t = reference.check_inputs(x), reference.targets(y)
    opt_ref, opt_pool = Adam(lr=1e-3), Adam(lr=1e-3)
    engine = InProcess(reference, xs, t)
    batches = [np.arange(i * 90, (i + 1) * 90)[::-1] for i in range(7)]
    expected = [engine.train_step(batch, opt_ref) for batch in batches]
    with WorkerPool(pooled, xs, t, workers=2, optimizer=opt_pool, ahead=ahead) as pool:
        for batch in batches:
            pool.submit(batch, opt_pool)
        # queued behind the steps: it sees the weights after all of them
        loss, correct = pool.evaluate(np.arange(2000, 2500))
        assert loss == pytest.approx(engine.evaluate(np.arange(2000, 2500))[0], rel=1e-10)
        assert correct == engine.evaluate(np.arange(2000, 2500))[1]
        for loss_ref, correct_ref in expected:
            loss, correct = pool.collect()
            assert loss == pytest.approx(loss_ref, rel=1e-10) and correct == correct_ref
        with pytest.raises(RuntimeError, match="without a submitted step"):
            pool.collect()
    np.testing.assert_allclose(pooled.weights, reference.weights, rtol=1e-9, atol=1e-12)
    assert opt_pool.t == opt_ref.t == len(batches)


@pytest.mark.parametrize("workers", [2, 3])
def test_many_small_steps_in_flight_stay_in_order(data, workers):
    """Sixty quick steps through a ring of four slots, up to eight submitted and not
    collected: slots are reused while results wait to be collected, workers race from
    one step into the next, and the weights must still equal the in-process run."""
    x, y = data
    reference, pooled = (mlp([784, 4, 10], dtype=np.float64, seed=5) for _ in range(2))
    xs, t = reference.check_inputs(x), reference.targets(y)
    opt_ref, opt_pool = Adam(lr=1e-2), Adam(lr=1e-2)
    engine = InProcess(reference, xs, t)
    batches = [np.arange(i * 40, (i + 1) * 40) for i in range(60)]
    expected = [engine.train_step(batch, opt_ref) for batch in batches]
    with WorkerPool(pooled, xs, t, workers=workers, chunk=9, optimizer=opt_pool, ahead=4) as pool:
        got = []
        for batch in batches:
            if len(pool._submitted) == 2 * pool.ahead:  # more than the ring holds
                got.append(pool.collect())
            pool.submit(batch, opt_pool)
        got += [pool.collect() for _ in range(len(pool._submitted))]
    assert [c for _, c in got] == [c for _, c in expected]
    np.testing.assert_allclose([v for v, _ in got], [v for v, _ in expected], rtol=1e-10)
    np.testing.assert_allclose(pooled.weights, reference.weights, rtol=1e-9, atol=1e-12)


def _fit_both_ways(x, y, **settings) -> list:
    """``fit`` in-process and with 2 workers from the same seed: [(model, history)]."""
    runs = []
    for workers in (0, 2):
        model = mlp([784, 16, 10], seed=0)
        runs.append((model, fit(model, x, y, workers=workers, seed=3, **settings)))
    return runs


def test_a_batch_callback_sees_the_model_after_its_batch_with_workers(data):
    """A callback with ``on_batch_end`` makes fit step one at a time: no later step of the
    pool has touched the weights it reads."""
    x, y = data
    seen: dict[int, list] = {0: [], 2: []}

    def recorder(workers):
        class Record(Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen[workers].append(self.model.weights.copy())

        return Record()

    for workers in (0, 2):
        model = mlp([784, 16, 10], seed=0)
        fit(
            model,
            x[:1500],
            y[:1500],
            epochs=1,
            batch_size=100,
            workers=workers,
            seed=3,
            validation=0.0,
            callbacks=[recorder(workers)],
        )
    assert len(seen[2]) == len(seen[0]) == 15
    for pooled, reference in zip(seen[2], seen[0], strict=True):
        np.testing.assert_allclose(pooled, reference, rtol=0, atol=1e-6)


def test_validation_inside_an_epoch_sees_no_later_step(data):
    x, y = data
    (_, reference), (_, pooled) = _fit_both_ways(
        x[:2000], y[:2000], epochs=1, batch_size=100, validate_every=4
    )
    checks = [r for r in reference.batches if "val_loss" in r]
    assert [r["batch"] for r in checks] == [4, 8, 12, 16]
    for p, r in zip([r for r in pooled.batches if "val_loss" in r], checks, strict=True):
        assert (p["batch"], p["val_accuracy"]) == (r["batch"], r["val_accuracy"])
        assert p["val_loss"] == pytest.approx(r["val_loss"], rel=1e-5)


@pytest.mark.timeout(120)
def test_ctrl_c_with_steps_in_flight_resumes_exactly(data, tmp_path):
    """SIGINT arrives while the pool has steps queued: fit finishes them, records them and
    checkpoints after the last; resuming from there gives the uninterrupted run."""
    x, y = data
    settings = {"epochs": 2, "batch_size": 100, "validation": 0.0, "seed": 4}

    class CtrlCOnCollect(WorkerPool):  # the signal lands between two collected steps
        sent = False

        def collect(self):
            if self.step >= 7 and not self.sent:
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)
            return super().collect()

    straight = mlp([784, 16, 10], seed=1)
    fit(straight, x[:2000], y[:2000], workers=2, **settings)
    model = mlp([784, 16, 10], seed=1)
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            x[:2000],
            y[:2000],
            backend=CtrlCOnCollect.factory(2, ahead=3),
            callbacks=[Checkpoint(tmp_path)],
            **settings,
        )
    state = load_checkpoint(tmp_path)
    assert state.epoch == 0 and state.batch >= 5  # every submitted step was recorded
    assert len(state.history.batches) == state.batch
    fit(
        state.model,
        x[:2000],
        y[:2000],
        optimizer=state.optimizer,
        workers=2,
        initial_epoch=state.epoch,
        initial_batch=state.batch,
        history=state.history,
        **settings,
    )
    np.testing.assert_allclose(state.model.weights, straight.weights, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_fit_with_two_workers_equals_in_process(data):
    x, y = data
    weights = []
    for workers in (0, 2):
        model = mlp([784, 32, 10], seed=0)
        history = fit(model, x, y, epochs=2, batch_size=64, workers=workers, seed=5)
        weights.append(model.weights.copy())
    np.testing.assert_allclose(weights[1], weights[0], rtol=0, atol=1e-5)
    assert history.worker_stats["samples"].sum() > 0


@pytest.mark.timeout(60)
def test_a_worker_that_raises_gives_its_exception_type_with_traceback(data):
    x, y = data
    model = mlp([784, 8, 10])
    with WorkerPool(model, model.check_inputs(x), model.targets(y), workers=2) as pool:
        started = time.monotonic()
        with pytest.raises(ValueError) as info:
            pool._result(pool._publish(99, np.arange(10)))
        assert time.monotonic() - started < 5
    assert not isinstance(info.value, WorkerError)  # a bug, not a lost worker
    assert info.value.worker in (0, 1)
    assert info.value.step == 0
    assert "Traceback" in info.value.worker_traceback
    assert "raised ValueError: unknown step kind 99 at step 0 at step 0" in str(info.value)
    assert "Worker traceback:" in str(info.value)
    assert all(p.exitcode == 1 for p in pool.processes if p.pid == pool.pids[info.value.worker])
    _assert_clean(pool)


@pytest.mark.timeout(60)
def test_a_worker_killed_mid_step_is_noticed(mnist):
    train, _ = mnist
    model = mlp([784, 256, 10])
    x, t = model.check_inputs(train.x[:20000] / 255), model.targets(train.y[:20000])
    with WorkerPool(model, x, t, workers=2, chunk=20) as pool:
        victim = pool.pids[1]
        killer = threading.Timer(0.3, os.kill, (victim, signal.SIGKILL))
        started = time.monotonic()
        killer.start()
        with pytest.raises(WorkerError) as info:
            for _ in range(50):  # long enough that the kill lands inside a step
                pool.evaluate(np.arange(20000))
        assert time.monotonic() - started < 10
        killer.join()
    assert info.value.worker == 1 and info.value.exitcode == -signal.SIGKILL
    assert "worker 1" in str(info.value) and "exit code -9" in str(info.value)
    _assert_clean(pool)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("exit_with", [None, RuntimeError, KeyboardInterrupt])
def test_every_exit_path_joins_workers_and_unlinks_memory(data, exit_with):
    x, y = data
    model = mlp([784, 8, 10])
    original = model.weights.copy()
    pool = None
    try:
        with WorkerPool(model, model.check_inputs(x), model.targets(y), workers=2) as pool:
            assert all(_alive(pid) for pid in pool.pids)
            assert set(pool.shared_blocks) <= set(leftover_blocks())
            pool.gradient(np.arange(50))
            if exit_with is not None:
                raise exit_with("stop here")
    except (RuntimeError, KeyboardInterrupt):
        pass
    _assert_clean(pool)
    np.testing.assert_array_equal(model.weights, original)  # usable after the pool
    model.forward(x[:2])


_ORPHAN_SCRIPT = """
import faulthandler, os, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view into a hang
import numpy as np
sys.path.insert(0, {root!r})
from tests.conftest import mlp
from nodenet.workers import WorkerPool
if __name__ == "__main__":
    model = mlp([20, 4, 3])
    x = np.random.default_rng(0).normal(size=(50, 20)).astype(np.float32)
    pool = WorkerPool(model, x, model.targets(np.arange(50) % 3), workers=2)
    from nodenet.workers.processes import fork_server
    pids = [*pool.pids, fork_server().pid]
    print(" ".join(map(str, pids)), " ".join(pool.shared_blocks), flush=True)
    {ending}
"""


@pytest.mark.timeout(90)
def test_workers_exit_by_themselves_when_the_parent_dies():
    script = _ORPHAN_SCRIPT.format(root=str(ROOT), ending="os.kill(os.getpid(), signal.SIGKILL)")
    # its output is read up to the line it prints, not to the end: the fork server holds
    # the same pipe, and reading to the end would wait for it to leave
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True
    )
    header = proc.stdout.readline().split()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stdout.close()
    pids = [int(p) for p in header[:3]]  # the workers and the fork server
    blocks = header[3:]
    assert _wait_until(lambda: not any(_alive(pid) for pid in pids), 10), "orphans still run"
    # the parent's resource tracker unlinks what the parent could not
    assert _wait_until(lambda: not set(blocks) & set(leftover_blocks()), 10)


@pytest.mark.timeout(90)
def test_ctrl_c_in_the_parent_stops_cleanly():
    ending = """
    import time
    try:
        with pool:
            print("running", flush=True)
            while True:
                pool.gradient(np.arange(50))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    """
    script = _ORPHAN_SCRIPT.format(
        root=str(ROOT), ending=textwrap.indent(textwrap.dedent(ending), "    ").strip()
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    header = proc.stdout.readline().split()
    assert proc.stdout.readline().strip() == "running"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # show where it hangs, then fail
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the parent did not exit after Ctrl-C; its stacks:\n{err[-4000:]}")
    assert proc.returncode == 130, err
    assert "interrupted" in out
    pids, blocks = [int(p) for p in header[:3]], header[3:]  # workers, fork server
    assert not any(_alive(pid) for pid in pids)
    assert not set(blocks) & set(leftover_blocks())
    assert "leaked" not in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"workers": -2}, "workers"),
        ({"chunk": 0}, "chunk must be an integer >= 1"),
        ({"ahead": 0}, "ahead must be an integer >= 1"),
        ({"workers": 11}, r"workers \(11\) must not exceed the number of samples \(10\)"),
    ],
)
def test_invalid_settings_name_the_setting(kwargs, message):
    model = mlp([4, 3])
    x = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        WorkerPool(model, x, model.targets(np.zeros(10, dtype=int)), **kwargs)
    assert leftover_blocks(f"nodenet_{os.getpid()}_") == []


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize(
    "make",
    [
        lambda: Adam(lr=1e-3),
        lambda: AdamW(lr=1e-3, weight_decay=0.1),
        lambda: Momentum(lr=0.05, weight_decay=1e-3),
        lambda: SGD(lr=0.1),
        lambda: Adam(lr=1e-3, average=0.9),
    ],
    ids=["adam", "adamw", "momentum-l2", "sgd", "adam-averaged"],
)
@pytest.mark.parametrize("chunk", [None, 7])
def test_split_optimizer_step_equals_the_in_process_step(data, workers, make, chunk):
    x, y = data
    reference, pooled = (mlp([784, 24, 10], dtype=np.float64, seed=2) for _ in range(2))
    xs, t = reference.check_inputs(x), reference.targets(y)
    opt_ref, opt_pool = make(), make()
    engine = InProcess(reference, xs, t)
    batches = [np.arange(i * 100, (i + 1) * 100) for i in range(6)]
    with WorkerPool(pooled, xs, t, workers=workers, chunk=chunk, optimizer=opt_pool) as pool:
        assert pool.optimizer is opt_pool
        for batch in batches:
            loss_ref, correct_ref = engine.train_step(batch, opt_ref)
            loss, correct = pool.train_step(batch, opt_pool)
            assert loss == pytest.approx(loss_ref, rel=1e-10) and correct == correct_ref
        np.testing.assert_allclose(pooled.weights, reference.weights, rtol=1e-9, atol=1e-12)
        stats = pool.stats()
        assert stats["updates"].sum() == workers * len(batches)
        assert stats["samples"].sum() == 600  # updates are not counted as samples
    np.testing.assert_allclose(pooled.biases, reference.biases, rtol=1e-9, atol=1e-12)
    assert opt_pool.t == opt_ref.t == len(batches)
    _assert_clean(pool)
    # the state is back in private memory, and equal (SGD keeps none)
    for part in (0, 1):
        assert set(opt_pool.state[part]) == set(opt_ref.state[part]) == set(opt_ref.state_keys)
        for key, value in opt_pool.state[part].items():
            assert value.flags.owndata
            np.testing.assert_allclose(value, opt_ref.state[part][key], rtol=1e-9, atol=1e-15)


def test_split_step_is_the_default_with_an_optimizer(data):
    x, y = data
    model = mlp([784, 16, 10])
    xs, t = model.check_inputs(x), model.targets(y)
    with WorkerPool(model, xs, t, workers=2, optimizer=Adam()) as pool:
        assert pool.optimizer is not None
    with WorkerPool(model, xs, t, workers=2, optimizer=Adam(), split_step=False) as pool:
        assert pool.optimizer is None  # the parent steps on the summed slots
        pool.train_step(np.arange(50), Adam())
        assert pool.stats()["updates"].sum() == 0


@pytest.mark.timeout(60)
def test_a_worker_that_raises_inside_a_split_step_frees_the_others(data):
    """One worker's rows are out of range, so it raises while the others wait at the
    barrier for its gradient: the error names the step, and closing the pool frees the
    others at once (no 3 s join limit)."""
    x, y = data
    model = mlp([784, 8, 10])
    xs, t = model.check_inputs(x), model.targets(y)
    opt = Adam()
    with WorkerPool(model, xs, t, workers=3, chunk=5, optimizer=opt) as pool:
        pool.train_step(np.arange(30), opt)
        started = time.monotonic()
        rows = np.arange(15)
        rows[7] = len(xs) + 5  # in worker 1's piece (rows 5..9)
        with pytest.raises(IndexError, match=r"worker 1 raised IndexError: .* at step 1") as info:
            pool.train_step(rows, opt)
        assert time.monotonic() - started < 5
        assert info.value.worker == 1
    assert time.monotonic() - started < 3  # closing did not wait for the 3 s join limit
    _assert_clean(pool)


class LossThatRaises(CrossEntropy):
    """A user's loss with a bug: it travels to the workers (by reference to this class)
    and raises there."""

    def value(self, a, t, weights=None):
        raise ValueError("this loss refuses to be computed")


@pytest.mark.timeout(120)
def test_a_value_error_in_a_workers_loss_is_raised_as_value_error_once(blobs, caplog):
    x, y = blobs
    model = Model(x.shape[1], LossThatRaises(), [Layer(8, "relu"), Layer(3, "softmax")])
    model.construct(seed=0)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="nodenet"), pytest.raises(ValueError) as info:
        fit(model, x, y, epochs=2, batch_size=32, workers=2, max_failures=3)
    assert "this loss refuses to be computed" in str(info.value)
    assert "in value" in info.value.worker_traceback  # where it was raised, in the worker
    assert not isinstance(info.value, WorkerError)
    assert not [r for r in caplog.records if "restarted" in r.getMessage()]  # no retry
    assert time.monotonic() - started < 30


def test_a_worker_exception_whose_class_the_parent_lacks_is_a_runtime_error():
    from nodenet.workers.messages import Failed, reraise

    failed = Failed(1, 4, "Gone", "text", "Traceback ...", "no_such_module_here")
    with pytest.raises(RuntimeError, match="worker 1 raised Gone: text at step 4") as info:
        reraise(failed)
    assert info.value.worker_traceback == "Traceback ..."


UNGUARDED = """
import numpy as np
from nodenet import Layer, Model, fit

rng = np.random.default_rng(0)
y = rng.integers(0, 3, 300)
x = rng.normal(size=(300, 6)) + 2.0 * np.eye(3, 6)[y]
weights = []
for workers in (2, 0):
    model = Model(6, "cross_entropy", [Layer(8, "relu"), Layer(3, "softmax")])
    model.construct(seed=0, dtype="float64")
    fit(model, x, y, epochs=2, batch_size=32, workers=workers)
    weights.append(model.weights)
print("difference", float(np.abs(weights[0] - weights[1]).max()))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["script", "-c", "stdin"])
def test_workers_never_import_the_users_main(how, tmp_path):
    """A script without an ``if __name__ == "__main__":`` guard, a ``python -c`` string
    and a program piped to ``python -`` train with ``workers=2``, equal to in-process."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    command = {
        "script": ([sys.executable, str(script)], None),
        "-c": ([sys.executable, "-c", UNGUARDED], None),
        "stdin": ([sys.executable, "-"], UNGUARDED),
    }[how]
    result = subprocess.run(
        command[0], input=command[1], capture_output=True, text=True, timeout=100, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split("difference")[1]) < 1e-12
    assert "bootstrapping" not in result.stderr


def test_a_loss_defined_in_main_is_refused_in_one_line(blobs):
    x, y = blobs
    loss = type("MainLoss", (CrossEntropy,), {"__module__": "__main__"})()
    model = Model(6, loss, [Layer(4, "relu"), Layer(3, "softmax")]).construct()
    with pytest.raises(ValueError, match="MainLoss is defined in the script being run"):
        fit(model, x, y, epochs=1, workers=2)


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s running children."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(entry.name)
            if fields is not None and int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.timeout(60)
def test_a_failed_set_up_starts_no_worker_and_leaves_nothing(data, monkeypatch):
    """The workers are forked once the shared arrays exist: when making them fails, the
    error is the user's, no worker was started, no block is left, and the next pool
    starts."""
    import nodenet.workers.pool as pool_module

    def no_memory(*args, **kwargs):
        raise MemoryError("no room for the shared arrays")

    x, y = data
    model = mlp([784, 16, 10])
    before = set(leftover_blocks())
    with monkeypatch.context() as patch:
        patch.setattr(pool_module, "share_training_arrays", no_memory)
        with pytest.raises(MemoryError, match="no room"):
            WorkerPool(model, x, y, workers=2)
    assert _children(fork_server().pid) == []
    assert set(leftover_blocks()) <= before
    with WorkerPool(model, x, y, workers=2) as pool:
        assert sorted(_children(fork_server().pid)) == sorted(pool.pids)
    _assert_clean(pool)


@pytest.mark.timeout(60)
def test_one_fork_server_forks_the_workers_of_every_pool(data):
    """The fork server imports NumPy, numba and nodenet once; the workers of each pool
    are its children, with one BLAS thread each."""
    x, y = data
    model = mlp([784, 16, 10])
    servers = []
    for _ in range(2):
        with WorkerPool(model, x, y, workers=2) as pool:
            servers.append(fork_server().pid)
            assert sorted(_children(servers[-1])) == sorted(pool.pids)
            for pid in pool.pids:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                assert b"OPENBLAS_NUM_THREADS=1" in environ
        _assert_clean(pool)
    assert servers[0] == servers[1] and _alive(servers[0])
    stop_fork_server()  # a notebook gives its memory back
    assert _wait_until(lambda: not _alive(servers[0]), 5)
    with WorkerPool(model, x, y, workers=2) as pool:
        assert fork_server().pid != servers[0]
        pool.gradient(np.arange(100))
    _assert_clean(pool)


#: the start of the scripts that fork a process which has opened pools: ``train()``
#: opens one, takes a gradient and returns the pid of the fork server that served it
_TRAIN_IN_A_POOL = """
import os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from tests.conftest import mlp
from nodenet.workers import WorkerPool
from nodenet.workers import processes

def train():
    model = mlp([20, 4, 3])
    x = np.random.default_rng(0).normal(size=(50, 20)).astype(np.float32)
    with WorkerPool(model, x, model.targets(np.arange(50) % 3), workers=2) as pool:
        pool.gradient(np.arange(50))
    return processes.fork_server().pid
"""

_FORKED_PARENT_SCRIPT = (
    _TRAIN_IN_A_POOL
    + """
first = train()
read, write = os.pipe()
child = os.fork()
if child == 0:  # a copy of this process opens a pool of its own
    os.write(write, str(train()).encode())
    os._exit(0)
os.close(write)
_, status = os.waitpid(child, 0)
idle = os.fork()
if idle == 0:  # a copy that opens no pool, and outlives this process
    import time
    time.sleep(30)
    os._exit(0)
print(first, os.read(read, 100).decode(), os.waitstatus_to_exitcode(status), train(), idle)
"""
)


@pytest.mark.timeout(90)
def test_a_forked_copy_of_the_parent_gets_a_fork_server_of_its_own():
    """``os.fork`` (multiprocessing's "fork") copies the parent's socket to its server:
    the copy drops it at once and starts a server of its own if it opens a pool, which
    leaves when the copy does; the parent's server goes on serving the parent, and
    leaves when the parent does, even while an idle copy lives on."""
    script = _FORKED_PARENT_SCRIPT.format(root=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # not to the end: the idle copy holds the pipe
    printed = time.monotonic()
    assert proc.wait(timeout=60) == 0
    # its server saw it leave: not held by the idle copy until killed (STOP_GRACE_S, 3 s)
    assert time.monotonic() - printed < 2.0
    proc.stdout.close()
    first, childs, code, again, idle = map(int, line.split())
    try:
        assert code == 0 and childs != first and again == first
        assert _wait_until(lambda: not _alive(childs), 5)
        assert _wait_until(lambda: not _alive(first), 5)  # with the idle copy still there
        assert _alive(idle)
    finally:
        os.kill(idle, signal.SIGKILL)


@pytest.mark.timeout(60)
def test_a_killed_fork_server_loses_its_workers_and_the_next_pool_starts_another(data):
    x, y = data
    model = mlp([784, 16, 10])
    with WorkerPool(model, x, y, workers=2) as pool:
        pool.gradient(np.arange(100))
        server = fork_server().pid
        os.kill(server, signal.SIGKILL)
        assert _wait_until(lambda: not _alive(server), 10)
        # the next look at a worker finds its server gone: it is killed, and said so
        assert pool.processes[0].exitcode == -signal.SIGKILL
        with pytest.raises(WorkerError, match=r"worker 0 .* exit code -9"):
            pool.gradient(np.arange(100))
    _assert_clean(pool)
    with WorkerPool(model, x, y, workers=2) as pool:
        assert fork_server().pid != server
        pool.gradient(np.arange(100))
    _assert_clean(pool)


@pytest.mark.timeout(60)
def test_a_fork_server_that_cannot_start_is_named_in_the_error(data, monkeypatch):
    """A server that exits before its first fork (it cannot import nodenet, say) gives a
    ``WorkerError`` naming it and its exit code, leaves nothing behind, and the next
    pool starts a server that works."""
    import nodenet.workers.forkserver as forkserver

    x, y = data
    model = mlp([784, 16, 10])
    stop_fork_server()
    before = set(leftover_blocks())
    with monkeypatch.context() as patch:
        patch.setattr(forkserver, "SERVE", "import sys; sys.exit(3)")
        with pytest.raises(
            WorkerError,
            match=r"worker 0 could not start: the fork server "
            r"\(pid \d+\) exited with code 3",
        ):
            WorkerPool(model, x, y, workers=2)
    assert set(leftover_blocks()) <= before
    with WorkerPool(model, x, y, workers=2) as pool:
        pool.gradient(np.arange(100))
    _assert_clean(pool)


@pytest.mark.timeout(60)
def test_a_worker_that_cannot_be_forked_stops_the_others_at_once(data, monkeypatch):
    """When a later worker cannot be forked (here: the server forks no worker in time),
    the workers already forked are killed at once, not given the grace of workers asked
    to stop (they never were), and the error names the worker."""
    from nodenet.workers.forkserver import ForkServer, ForkServerGoneError

    x, y = data
    model = mlp([784, 16, 10])
    fork, forked = ForkServer.fork, []

    def fork_once(self, *args):
        if forked:
            raise ForkServerGoneError("it forked no worker within 120 s")
        forked.append(fork(self, *args))
        return forked[-1]

    with monkeypatch.context() as patch:
        patch.setattr(ForkServer, "fork", fork_once)
        started = time.monotonic()
        with pytest.raises(WorkerError, match="worker 1 could not start: it forked no worker"):
            WorkerPool(model, x, y, workers=2)
        assert time.monotonic() - started < 2.0
    assert not _alive(forked[0])
    assert _children(fork_server().pid) == []


_FORK_WITH_LOCKS_HELD = (
    _TRAIN_IN_A_POOL
    + """
train()
server = processes.fork_server()
# as if another thread were inside fork_server() and ForkServer.fork() at the fork
with processes._SERVER_LOCK, server._lock:
    child = os.fork()
    if child == 0:
        train()
        os._exit(0)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    pid, status = os.waitpid(child, os.WNOHANG)
    if pid:
        print("child", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(child, 9)
    os.waitpid(child, 0)
    print("child hung")
"""
)


@pytest.mark.timeout(90)
def test_a_fork_while_another_thread_holds_the_servers_locks_does_not_hang_the_copy():
    script = _FORK_WITH_LOCKS_HELD.format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=80)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["child", "0"], out.stdout + out.stderr[-2000:]


@pytest.mark.timeout(60)
def test_a_workers_training_passes_reuse_the_memory_they_free(data):
    """Each LeNet-5 pass frees ~8 MB of layer values and columns; a worker keeps that
    memory for its next pass (``keep_freed_memory``) instead of unmapping it and faulting
    fresh pages in again: ~425 page faults a step per worker before, 10-20% of its time."""
    from tests.test_conv import lenet

    x, y = data
    model, optimizer = lenet(), Adam(lr=1e-3)
    rows = np.arange(128)
    with WorkerPool(model, x, y, workers=2, optimizer=optimizer) as pool:
        for _ in range(3):  # every worker reaches the memory its steps need
            pool.train_step(rows, optimizer)
        before = [minor_faults(pid) for pid in pool.pids]
        steps = 10
        for _ in range(steps):
            pool.train_step(rows, optimizer)
        faults = [(minor_faults(pid) - b) / steps for pid, b in zip(pool.pids, before, strict=True)]
    _assert_clean(pool)
    assert max(faults) < 25, f"page faults per step in each worker: {faults}"
