"""The worker loop: steps read from a shared-memory ring, no message per step.

A worker attaches to the shared arrays, rebuilds the model over the *shared* flat
weights and biases, says :class:`~workers.messages.Ready`, then runs every step the
parent publishes, in order (see ``workers/ring.py`` for the layout)::

    for s = 0, 1, 2, ...:
        wait until the parent has published step s           (idle)
        my pieces of the step's rows: forward + cached backprop, written into my
        gradient slot (evaluate: forward only); my loss and correct count -> results
        grads_done[me] = s + 1
        a training step:
            wait until every worker's grads_done > s          (barrier 1)
            sum the slots over my range of the parameters, apply the optimizer to it
            steps_done[me] = s + 1
            wait until every worker's steps_done > s          (barrier 2: the weights
                                                                 are whole again)
        else: steps_done[me] = s + 1

Piece ``j`` of a step (``chunk`` rows, or the step split evenly) belongs to worker
``j % workers``, so who computes what never depends on timing. An exception is sent
as :class:`~workers.messages.Failed` (with the step and the traceback) and the worker
exits with code 1. A worker leaves when the parent sets ``closing`` or dies.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback

import numpy as np

from .channel import writer
from .counters import COUNTERS
from .messages import Failed, Ready
from .processes import ignore_parent_signals
from .ring import EVALUATE, GRADIENT, TRAIN, Ring, fence, pieces
from .sync import PoolSync

SPIN_S = 0.002  # how long a waiting worker polls before it starts to sleep
MAX_SLEEP_S = 0.002  # the longest sleep between two looks while waiting
POLL_S = 1.0  # how often a waiting worker checks that its parent is alive


class ParentGoneError(Exception):
    """The parent process is no longer alive, or is closing the pool."""


class Worker:
    """What worker ``worker_id`` does with the steps of the ring. ``arrays``: the shared
    arrays by name; ``model`` is built over the shared weights and biases."""

    def __init__(
        self, worker_id: int, arrays: dict, model, optimizer_name: str, parent_pid, seed: int
    ):
        from nodenet.backprop import pieces_evaluate, pieces_gradient

        self.pieces_gradient, self.pieces_evaluate = pieces_gradient, pieces_evaluate
        self.seed = seed
        self.worker_id, self.arrays, self.model = worker_id, arrays, model
        self.ring = Ring(arrays)
        self.workers = self.ring.workers
        self.parent_pid = parent_pid
        self.grad_w, self.grad_b = arrays["grad_w"][worker_id], arrays["grad_b"][worker_id]
        self.stepper = RangeStep(arrays, model.layout, optimizer_name)
        self.update_range = model.layout.ranges(self.workers)[worker_id]
        self.counters = np.zeros(len(COUNTERS))
        self.step = 0  # the step in hand
        self.index = {name: i for i, name in enumerate(COUNTERS)}
        #: batch norm: the worker's rows of a step form one pass, whose sums it shares
        self.sync = None
        if model.layout.normalised:
            self.sync = PoolSync(arrays["bn_sums"], self.ring, worker_id, self.wait, self.count)

    def run(self) -> None:
        """Run every step published, for ever (until :class:`ParentGoneError`)."""
        ring, me, count = self.ring, self.worker_id, self.count
        step = 0
        while True:
            self.step = step
            count("idle_s", self.wait(lambda s=step: ring.published > s))
            slot = ring.slot(step)
            kind, n, t, chunk = (int(v) for v in ring.info[slot])
            if kind not in (TRAIN, GRADIENT, EVALUATE):
                raise ValueError(f"unknown step kind {kind} at step {step}")
            clock, synced = time.perf_counter(), self.counters[self.index["sync_s"]]
            mine = pieces(n, chunk, self.workers)[me :: self.workers]
            loss, correct = self.compute(kind, ring.rows[slot], mine, t)
            ring.results[slot, me] = loss, correct
            synced = self.counters[self.index["sync_s"]] - synced
            count("busy_s", time.perf_counter() - clock - synced)
            count("tasks", len(mine))
            count("samples", sum(hi - lo for lo, hi in mine))
            fence()
            ring.grads_done[me] = step + 1
            if kind == TRAIN:
                count("barrier_s", self.wait(lambda s=step: ring.grads_done.min() > s))
                clock = time.perf_counter()
                self.stepper.update(*self.update_range, ring.hyper[slot], t, ring.norm[slot])
                count("update_s", time.perf_counter() - clock)
                count("updates", 1)
                ring.counters[me] = self.counters
                fence()
                ring.steps_done[me] = step + 1
                count("barrier_s", self.wait(lambda s=step: ring.steps_done.min() > s))
            else:
                ring.counters[me] = self.counters
                fence()
                ring.steps_done[me] = step + 1
            step += 1

    def compute(self, kind: int, rows: np.ndarray, mine: list, step: int) -> tuple[float, float]:
        """Loss sum and correct count of this worker's pieces; a gradient step writes its
        gradient into the worker's slot (zeros when it has no rows). ``step``: the
        optimizer step of a training step (0 for a plain gradient), which keys the
        dropout masks; worker 0 moves the batch-norm running statistics in it.

        With batch norm the worker's pieces of a gradient step form one pass (possibly
        of no rows), so that it meets the other workers once per batch-norm layer."""
        x, t, w = self.arrays["x"], self.arrays["t"], self.arrays.get("w")
        parts = [rows[lo:hi] for lo, hi in mine]
        if kind == EVALUATE:
            return self.pieces_evaluate(self.model, x, t, parts)
        if self.sync is not None:
            parts = [np.concatenate(parts) if parts else rows[:0]]
        update = step > 0 and self.worker_id == 0
        return self.pieces_gradient(
            self.model, x, t, parts, self.grad_w, self.grad_b, w, self.seed, step, self.sync, update
        )

    def count(self, name: str, value: float) -> None:
        self.counters[self.index[name]] += value

    def wait(self, ready) -> float:
        """Return the seconds spent until ``ready()``: polling (yielding the CPU) for
        ``SPIN_S``, then sleeping ever longer up to ``MAX_SLEEP_S`` between looks.
        Raises :class:`ParentGoneError` when the parent closes the pool or dies."""
        if ready():
            return 0.0
        start = last_check = time.perf_counter()
        sleep = 1e-5
        while not ready():
            if self.ring.closing:
                raise ParentGoneError
            now = time.perf_counter()
            if now - start < SPIN_S:
                os.sched_yield()
                continue
            time.sleep(sleep)
            sleep = min(sleep * 2, MAX_SLEEP_S)
            if now - last_check > POLL_S:
                last_check = now
                if os.getppid() != self.parent_pid:
                    raise ParentGoneError
        fence()
        return time.perf_counter() - start


class RangeStep:
    """A worker's share of a split optimizer step: for the parameters ``[start, stop)``
    of the concatenation ``[weights, biases]``, the mean of every worker's gradient slot
    and the optimizer's rule on that slice of the shared parameters and of the shared
    optimizer state (arrays ``opt_w_<key>`` / ``opt_b_<key>``)."""

    def __init__(self, arrays: dict, layout, optimizer_name: str):
        from nodenet.optimizers import get_optimizer, optimizer_settings

        self.arrays, self.layout = arrays, layout
        self.name, self.keys = optimizer_name, optimizer_settings(optimizer_name)
        self.make = get_optimizer
        self.optimizer, self.hyper = None, None
        #: per piece of the range: (parameters, state views, gradient slots, is weights,
        #: offset into the slots), for ``made`` = (start, stop, the state's keys)
        self.pieces: list[tuple] = []
        self.made: tuple | None = None

    def update(self, start: int, stop: int, hyper: np.ndarray, t: int, n: float) -> None:
        """Step ``t`` on the summed gradient divided by ``n`` (samples, or their weight);
        ``hyper``: the optimizer's settings in the order of ``optimizer_settings`` (the
        optimizer is rebuilt only when they change, its views of the range only when the
        range or the state's keys do)."""
        values = tuple(hyper[: len(self.keys)].tolist())
        if values != self.hyper:
            self.optimizer = self.make(self.name, **dict(zip(self.keys, values, strict=True)))
            self.hyper = values
        if self.made != (start, stop, self.optimizer.state_keys):
            self.pieces = self.views(start, stop)
            self.made = start, stop, self.optimizer.state_keys
        self.optimizer.t = t
        apply_sum = self.optimizer.apply_sum
        for p, state, slots, decay, lo in self.pieces:
            apply_sum(state, p, slots, n, decay, lo)

    def views(self, start: int, stop: int) -> list[tuple]:
        """The pieces of ``[start, stop)`` (see ``pieces``): views of the shared arrays,
        which stay in place for the life of the pool."""
        arrays, pieces = self.arrays, []
        for part, lo, hi in self.layout.split(start, stop):
            key = part[0]  # "w" or "b"
            state = {k: arrays[f"opt_{key}_{k}"][lo:hi] for k in self.optimizer.state_keys}
            pieces.append(
                (arrays[part][lo:hi], state, arrays[f"grad_{key}"], part == "weights", lo)
            )
        return pieces


def main(output_fd, worker_id, specs, config, optimizer_name, seed):
    """Entry point of worker ``worker_id`` (runs in the process the fork server forked);
    its messages go to the pipe ``output_fd``. It leaves when its parent, the fork
    server, is gone (the server leaves when the pool's process does)."""
    ignore_parent_signals()  # Ctrl-C, SIGTERM, SIGHUP are the parent's to handle
    np.seterr(over="ignore", invalid="ignore", divide="ignore")  # the parent names divergence
    outputs = writer(output_fd)
    blocks, worker = [], None
    try:
        from nodenet.graph import Model

        from .shared import attach

        arrays, blocks = attach(specs)
        model = Model.from_config(config)
        model.rebind(arrays["weights"], arrays["biases"], arrays["running"])
        for shared in (arrays["x"], arrays["t"]):  # map every page now, not inside epoch 1
            flat = shared.reshape(-1)
            flat[:: max(4096 // flat.itemsize, 1)].sum()
        worker = Worker(worker_id, arrays, model, optimizer_name, os.getppid(), seed)
        outputs.send(Ready(worker_id, os.getpid()))
        worker.run()
    except ParentGoneError:
        os._exit(0)  # nothing to flush: skip the interpreter's slow teardown
    except BaseException as exc:
        step = worker.step if worker is not None else -1
        kind = type(exc)
        outputs.send(
            Failed(
                worker_id,
                step,
                kind.__qualname__,
                str(exc),
                traceback.format_exc(),
                kind.__module__,
            )
        )
        os._exit(1)  # a failed worker exits non-zero, at once
    finally:
        for block in blocks:
            with contextlib.suppress(BufferError):
                block.close()
