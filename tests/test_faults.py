"""Faults and hostile input: divergence, signals, resume, full disks, stale shared memory,
bad flags and tampered files. Every test that uses signals or time has a bound."""

import json
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nodenet import SGD, Adam, Callback, DivergenceError, fit, io
from nodenet.checkpoint import Checkpoint, load_checkpoint
from nodenet.workers import WorkerPool
from nodenet.workers.shared import PREFIX, leftover_blocks
from tests.conftest import mlp

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(ROOT / "scripts" / "train_mnist.py")]
SMALL = ["--hidden", "16", "--no-plot", "--quiet", "--seed", "3"]


def train(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TRAIN, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs
    )


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=600)
    return rng.normal(size=(600, 20)) + 2.0 * np.eye(3, 20)[y], y


@pytest.fixture(scope="module")
def good_run(mnist, tmp_path_factory):
    """A finished one-epoch run: model, checkpoint and metrics on disk."""
    out = tmp_path_factory.mktemp("good")
    result = train("--epochs", "1", "--workers", "0", "--out", str(out), *SMALL)
    assert result.returncode == 0, result.stderr
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    """The run's files (not the lock file, which holds the pid of the last run)."""
    return {
        p.name: p.read_bytes()
        for p in folder.iterdir()
        if p.is_file() and p.name != ".nodenet.lock"
    }


# ------------------------------------------------------------------ 1. divergence
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_fit_stops_at_the_first_non_finite_loss(blobs):
    x, y = blobs
    seen = []

    class Count(Callback):
        reads_logs_only = True

        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    with pytest.raises(DivergenceError, match=r"diverged at epoch 1, batch \d+: the loss is nan"):
        fit(
            mlp([20, 8, 3]),
            x,
            y,
            epochs=3,
            batch_size=50,
            optimizer=SGD(lr=1e9),
            callbacks=[Count()],
        )
    assert np.isfinite(seen[:-1]).all() and not np.isfinite(seen[-1])  # stopped at the first


def test_a_diverging_run_keeps_the_good_files_and_says_what_to_try(good_run, tmp_path):
    before = _snapshot(good_run)
    out = tmp_path / "bad"
    for name, data in before.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_bytes(data)
    result = train(
        "--optimizer",
        "sgd",
        "--lr",
        "1e9",
        "--epochs",
        "2",
        "--workers",
        "0",
        "--out",
        str(out),
        *SMALL,
    )
    assert result.returncode == 1
    assert "diverged at epoch 1" in result.stderr and "lower learning rate" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # the clear error alone
    assert _snapshot(out) == before  # nothing written over the good files
    assert np.isfinite(io.load(out).weights).all()
    json.loads((out / "metrics.json").read_text())


# ------------------------------------------------------------ 2. what was saved
def test_an_interrupt_before_any_step_saves_nothing_and_says_so(blobs, tmp_path):
    x, y = blobs

    class CtrlCAtStart(Callback):
        def on_train_begin(self, logs=None):
            os.kill(os.getpid(), signal.SIGINT)

    checkpoint = Checkpoint(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(mlp([20, 3]), x, y, epochs=1, callbacks=[CtrlCAtStart(), checkpoint])
    assert checkpoint.saved is None and not checkpoint.path.exists()


def test_a_second_interrupt_cannot_cut_the_save_short(blobs, tmp_path):
    x, y = blobs

    class SecondCtrlCWhileSaving(Checkpoint):
        def save(self, epoch, batch):
            os.kill(os.getpid(), signal.SIGINT)  # lands inside the shielded save
            return super().save(epoch, batch)

    class CtrlC(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    checkpoint = SecondCtrlCWhileSaving(tmp_path, every=100)
    with pytest.raises(KeyboardInterrupt):
        fit(mlp([20, 3]), x, y, epochs=2, batch_size=50, callbacks=[CtrlC(), checkpoint])
    assert checkpoint.saved == (0, 3)
    assert (load_checkpoint(tmp_path).epoch, load_checkpoint(tmp_path).batch) == (0, 3)


# ------------------------------------------------------------ 3. SIGTERM, SIGHUP
def _start(args) -> subprocess.Popen:
    return subprocess.Popen(
        [*TRAIN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "signum, to_group", [(signal.SIGTERM, False), (signal.SIGHUP, True)], ids=["term", "hup"]
)
def test_sigterm_and_sighup_checkpoint_and_stop_the_workers(mnist, tmp_path, signum, to_group):
    out = tmp_path / "run"
    proc = _start(
        ["--workers", "2", "--hidden", "256", "--epochs", "3", "--no-plot", "--out", str(out)]
    )
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # the first epoch line: the pool is running epoch 2
        if line.startswith("epoch 1/3") or time.monotonic() > deadline:
            break
    time.sleep(0.2)
    if to_group:
        os.killpg(proc.pid, signum)  # a closed terminal signals the whole group
    else:
        os.kill(proc.pid, signum)  # timeout and docker stop signal the process
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert f"{signal.Signals(signum).name}: checkpoint of epoch 2" in err
    assert "--resume" in err and "Traceback" not in err and "leaked" not in err
    state = load_checkpoint(out)
    assert state.epoch == 1 and 0 < state.batch < 375
    assert leftover_blocks(f"{PREFIX}{proc.pid}_") == []
    deadline = time.monotonic() + 10  # the resource tracker exits just after its parent
    while time.monotonic() < deadline:
        group = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True)
        if not group.stdout.strip():
            break
        time.sleep(0.1)
    assert group.stdout.strip() == ""  # no worker left behind


@pytest.mark.slow
# ------------------------------------------------------------------ 4. resume
def test_resume_continues_the_stored_run(good_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name, data in _snapshot(good_run).items():
        (run / name).write_bytes(data)
    before = (run / "model.npz").read_bytes()
    # a finished run resumed as the hint says: nothing to do, nothing overwritten
    done = train("--resume", str(run), "--workers", "0")
    assert done.returncode == 0 and "is complete (1 of 1 epochs)" in done.stdout
    assert (run / "model.npz").read_bytes() == before
    # an architecture flag that contradicts the run is refused
    other = train("--resume", str(run), "--hidden", "32", "--epochs", "2")
    assert other.returncode == 2 and "--hidden [32] contradicts the run" in other.stderr
    # a 3-epoch run interrupted after its first epoch resumes to 3 epochs, not the default 5
    arrays = io.load_arrays(run / "checkpoint.npz")
    progress = json.loads(str(arrays["progress"]))
    progress["settings"]["epochs"] = 3
    arrays["progress"] = np.array(json.dumps(progress))
    io.save_arrays(run / "checkpoint.npz", arrays)
    resumed = train("--resume", str(run), "--workers", "0", "--quiet", "--no-plot")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run).epoch == 3
    # more epochs can be asked for, and the change is reported
    more = train("--resume", str(run), "--epochs", "4", "--workers", "0", "--quiet", "--no-plot")
    assert more.returncode == 0 and "resuming with --epochs 4 (the run had 3)" in more.stdout


# ------------------------------------------------------- 5. epoch statistics
def test_a_resumed_epoch_records_all_of_its_batches(blobs, tmp_path):
    x, y = blobs
    settings = {"epochs": 2, "batch_size": 50, "seed": 1, "validation": 0.2}
    straight = fit(mlp([20, 8, 3], seed=2), x, y, optimizer=Adam(), **settings)

    class CtrlC(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if logs["epoch"] == 2 and batch == 4:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        fit(
            mlp([20, 8, 3], seed=2),
            x,
            y,
            optimizer=Adam(),
            callbacks=[CtrlC(), Checkpoint(tmp_path)],
            **settings,
        )
    state = load_checkpoint(tmp_path)
    assert (state.epoch, state.batch) == (1, 5)
    resumed = fit(
        state.model,
        x,
        y,
        optimizer=state.optimizer,
        initial_epoch=1,
        initial_batch=5,
        history=state.history,
        **settings,
    )
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed.epochs[1][key] == pytest.approx(straight.epochs[1][key], rel=1e-12), key
    assert resumed.epochs[1]["seconds"] > 0


# ----------------------------------------------------------------- 6. output
def test_an_output_that_cannot_be_written_fails_before_training(mnist, tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    started = time.monotonic()
    result = train("--out", str(tmp_path / "taken"), "--workers", "0", *SMALL)
    assert result.returncode == 2 and "cannot write" in result.stderr and "taken" in result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - started < 30


def test_a_full_disk_mid_run_names_the_file_and_keeps_the_last_checkpoint(good_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name, data in _snapshot(good_run).items():
        (run / name).write_bytes(data)
    size = (run / "checkpoint.npz").stat().st_size

    def small_files():  # writes past half a checkpoint fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    result = train(
        "--resume",
        str(run),
        "--epochs",
        "2",
        "--workers",
        "0",
        "--quiet",
        "--no-plot",
        preexec_fn=small_files,
    )
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write" in lines[0] and "checkpoint.npz" in lines[0]
    assert "free on its file system" in lines[0]
    assert load_checkpoint(run).epoch == 1  # the last good checkpoint is intact
    assert not list(run.glob(".*.tmp"))


# ------------------------------------------------------- 7. stale shared memory
def test_a_new_pool_removes_only_blocks_whose_owner_is_provably_gone(caplog):
    """A run's blocks are its own while it holds the flock on its lock file: a dead
    run's lock can be taken; a live run in another PID namespace (its pid invisible
    here) still holds its lock; blocks without a lock file are nobody's to remove."""
    import fcntl

    dead = subprocess.Popen(["true"])
    dead.wait()
    shm = Path("/dev/shm")
    stale = [
        shm / f"{PREFIX}{dead.pid}_deadbeef_weights",
        shm / f"{PREFIX}{dead.pid}_deadbeef_lock",
    ]
    elsewhere = [
        shm / f"{PREFIX}{dead.pid}_0ther0ns_weights",
        shm / f"{PREFIX}{dead.pid}_0ther0ns_lock",
    ]
    unowned = shm / f"{PREFIX}{dead.pid}_n0l0ck00_weights"
    for path in (*stale, *elsewhere, unowned):
        path.write_bytes(b"\0" * 4096)
    held = os.open(elsewhere[1], os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # as the other namespace's live owner does
    try:
        model = mlp([4, 3])
        x = np.zeros((10, 4), dtype=np.float32)
        with (
            caplog.at_level(logging.WARNING, "nodenet.workers"),
            WorkerPool(model, x, np.zeros(10, dtype=int), workers=1),
        ):
            pass
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in elsewhere) and unowned.exists()
        assert "removed 2 shared-memory blocks" in caplog.text
    finally:
        os.close(held)
        for path in (*stale, *elsewhere, unowned):
            path.unlink(missing_ok=True)


def test_more_workers_than_cores_get_a_warning(caplog):
    model = mlp([4, 3])
    workers = (os.cpu_count() or 1) + 1
    x = np.zeros((10, 4), dtype=np.float32)
    with (
        caplog.at_level(logging.WARNING, "nodenet.workers"),
        WorkerPool(model, x, np.zeros(10, dtype=int), workers=workers),
    ):
        pass
    assert f"{workers} workers on {os.cpu_count()} cores" in caplog.text


# ----------------------------------------------------------- 8-10. bad input
@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--valid-fraction", "1.5"],
            "argument --validation/--valid-fraction: must be a finite number in [0, 1)",
        ),
        (["--checkpoint-every", "0"], "argument --checkpoint-every: must be an integer >= 1"),
        (["--seed", "-1"], "argument --seed: must be an integer >= 0"),
        (["--std-floor", "inf"], "argument --std-floor: must be a finite number in [0, inf)"),
        (["--lr", "0"], "argument --lr: must be a finite number in (0, inf)"),
        (["--hidden", "0"], "argument --hidden: must be an integer >= 1"),
        (["--momentum", "nan"], "argument --momentum: must be a finite number in [0, 1)"),
        (["--rho", "5"], "argument --rho: must be a finite number in [0, 1)"),
        (["--batch-size", "1e9"], "argument --batch-size: must be an integer >= 1, got '1e9'"),
        (["--target", "y"], "--target goes with --csv"),
        (["--test-csv", "t.csv"], "--test-csv goes with --csv"),
        (["--ray-address", "auto"], "--ray-address goes with --backend ray"),
        (["--csv", "a.csv", "--task", "regression", "--class-weight", "balanced"], "--class-weight goes with classes"),
    ],
)  # fmt: skip
def test_bad_flags_get_one_line_naming_the_flag(flags, message):
    result = train(*flags, timeout=60)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_refuses_bad_thresholds_and_hostile_models(good_run, tmp_path):
    csv = tmp_path / "pixels.csv"
    csv.write_text(",".join(["0"] * 784) + "\n")
    predict = [sys.executable, str(ROOT / "scripts" / "predict.py")]
    result = subprocess.run(
        [*predict, "--model", str(good_run), "--csv", str(csv), "--threshold", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--threshold must be" in result.stderr
    arrays = io.load_arrays(good_run / "model.npz")
    arrays["architecture"] = np.array("[1, 2]")
    np.savez(tmp_path / "list.npz", **arrays)
    result = subprocess.run(
        [*predict, "--model", str(tmp_path / "list.npz"), "--csv", str(csv)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "must be a JSON object" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------- a lost worker (the pool)
def _pools(opened, **settings):
    """The pool's factory, keeping every pool it opens."""

    def build(model, x, y, **run):
        opened.append(WorkerPool.open(model, x, y, **run, **settings))
        return opened[-1]

    return build


class KillWorker(Callback):
    """Send ``signum`` to worker 1 of the first pool after batch 3 of epoch 2 (once)."""

    def __init__(self, opened, signum=signal.SIGKILL):
        super().__init__()
        self.opened, self.signum, self.done = opened, signum, False

    def on_train_batch_end(self, batch, logs=None):
        if logs["epoch"] == 2 and batch == 3 and not self.done:
            self.done = True
            os.kill(self.opened[0].pids[1], self.signum)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "stopped"])
def test_a_lost_pool_worker_costs_a_redone_epoch_not_the_run(blobs, caplog, signum):
    """A killed worker is noticed at once; a stopped one (``kill -STOP``) when its step
    has waited ``hang_s`` and far longer than the steps before it. Either way the epoch
    is redone in a new pool and the run ends as if nothing happened."""
    x, y = blobs
    settings = {"epochs": 3, "batch_size": 50, "seed": 1, "validation": 0.2, "workers": 2}
    straight = mlp([20, 8, 3], dtype=np.float64, seed=2)
    expected = fit(straight, x, y, optimizer=Adam(lr=1e-2, average=0.9), **settings)
    opened = []
    model = mlp([20, 8, 3], dtype=np.float64, seed=2)
    with caplog.at_level(logging.WARNING, "nodenet"):
        history = fit(
            model,
            x,
            y,
            optimizer=Adam(lr=1e-2, average=0.9),
            backend=_pools(opened, hang_s=1.0),
            callbacks=[KillWorker(opened, signum)],
            **settings,
        )
    assert len(opened) == 2  # the pool was started again
    if signum == signal.SIGSTOP:
        assert re.search(r"worker 1 \(pid \d+\) is T \(stopped\)", caplog.text)
    assert (
        "worker 1" in caplog.text
        and "epoch 2 redone from batch 0 (failure 1 of at most 3)" in caplog.text
    )
    np.testing.assert_allclose(model.weights, straight.weights, rtol=1e-12, atol=1e-14)
    assert len(history.batches) == len(expected.batches)  # the redone batches once
    assert [e["loss"] for e in history.epochs] == pytest.approx(
        [e["loss"] for e in expected.epochs]
    )
    for pool in opened:
        assert not any(p.is_alive() for p in pool.processes)


@pytest.mark.timeout(120)
def test_without_failures_left_a_lost_worker_ends_the_run(blobs):
    from nodenet.workers import WorkerError

    x, y = blobs
    opened = []
    with pytest.raises(WorkerError, match=r"worker 1 .* died with exit code -9"):
        fit(
            mlp([20, 8, 3]),
            x,
            y,
            epochs=3,
            batch_size=50,
            workers=2,
            max_failures=0,
            backend=_pools(opened),
            callbacks=[KillWorker(opened)],
        )
    assert len(opened) == 1


def test_far_more_workers_than_cores_are_refused_at_once(blobs):
    import time

    from nodenet.workers.processes import MAX_WORKERS_PER_CORE

    x, y = blobs
    too_many = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1) + 1
    started = time.monotonic()
    with pytest.raises(ValueError, match=rf"workers={too_many} on \d+ cores: at most"):
        fit(mlp([x.shape[1], 3]), x, y, epochs=1, workers=too_many)
    assert time.monotonic() - started < 5


@pytest.mark.timeout(60)
def test_a_ray_address_where_nothing_listens_fails_at_once():
    pytest.importorskip("ray")
    import time

    from nodenet.workers.ray import check_reachable

    started = time.monotonic()
    with pytest.raises(ValueError, match=r"no Ray cluster answers at 127\.0\.0\.1:1"):
        check_reachable("127.0.0.1:1")
    assert time.monotonic() - started < 6
    check_reachable("auto")  # Ray's own to resolve


@pytest.mark.slow
def test_a_run_stopped_after_its_last_step_is_finished_by_resume(good_run, tmp_path):
    """Ctrl-C or SIGTERM after the last step but before the files are written leaves the
    final checkpoint alone: --resume writes the model, history and metrics from it."""
    import shutil

    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(good_run / "checkpoint.npz", out / "checkpoint.npz")
    result = train("--resume", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "trained every epoch: writing its files" in result.stdout
    np.testing.assert_array_equal(io.load(out).weights, io.load(good_run).weights)
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["test_accuracy"]
        == json.loads((good_run / "metrics.json").read_text())["test_accuracy"]
    )
    again = train("--resume", str(out), timeout=120)
    assert again.returncode == 0 and "is complete (1 of 1 epochs)" in again.stdout


@pytest.mark.slow
def test_two_runs_into_one_folder_the_second_is_refused(mnist, tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    hold = f"import time\nfrom nodenet.files import folder_lock\nwith folder_lock({str(out)!r}):\n    time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold])  # a run in progress there
    lock = out / ".nodenet.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        lock.exists() and lock.read_text() == str(holder.pid)
    ):
        time.sleep(0.05)
    try:
        result = train("--epochs", "1", "--out", str(out), *SMALL, timeout=60)
        assert result.returncode == 2
        assert f"is in use by another nodenet run (pid {holder.pid})" in result.stderr
        assert not (out / "checkpoint.npz").exists()
    finally:
        holder.kill()
        holder.wait()
    assert train("--epochs", "1", "--out", str(out), *SMALL, timeout=120).returncode == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"opt_t": np.array(-1)}, "step count must be a whole number >= 0, got -1"),
        ({"opt_0_m": None}, "the optimizer's state 0_m holds NaN or infinity"),
        ({"settings": {"batch_size": "big"}}, "batch_size must be an integer >= 1, got 'big'"),
        ({"settings": {"lr_decay": 0}}, r"lr_decay must be a finite number in \(0, 1\]"),
    ],
)
def test_tampered_checkpoints_are_named_not_crashed_on(good_run, tmp_path, change, message):
    from nodenet.io import ModelFileError, load_arrays, save_arrays

    arrays = load_arrays(good_run / "checkpoint.npz")
    progress = json.loads(str(arrays["progress"]))
    for key, value in change.items():
        if key == "settings":
            progress["settings"].update(value)
        elif value is None:  # NaN in the optimizer state
            arrays[key] = np.full_like(arrays[key], np.nan)
        else:
            arrays[key] = value
    arrays["progress"] = np.array(json.dumps(progress))
    path = save_arrays(tmp_path / "checkpoint.npz", arrays)
    with pytest.raises(ModelFileError, match=message):
        load_checkpoint(path)
    result = train("--resume", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "cannot resume" in result.stderr
    assert "Traceback" not in result.stderr
