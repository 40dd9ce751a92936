"""The worker loop.

A worker attaches to the shared arrays, rebuilds the model over the *shared* flat
weights and biases (so the parent's optimizer steps are seen without copying), then:

    loop:  instruction = instructions.get()  # ("start", step, settings, computed)
                                             #  | ("stop",)
           zero my gradient slot; tell the barrier I started this step
           loop:  task = inputs.get()             # (kind, step, start, stop) | ("wait",)
                  gradient / evaluate: forward (+ cached backprop) on rows
                      order[step % ahead, start:stop]; tell the barrier one more is done
                  update: wait at the barrier for every gradient of the step, then
                      apply the optimizer to parameters [start, stop)
                  keep ("result", worker, step, n, loss_sum, n_correct, busy_s)
           tell the barrier I took my wait; wait there until every worker has, then
           outputs.put(each result kept, ("waiting", worker, step, counters))

``computed`` is the barrier's target for the updates: the number of compute tasks the
pool will have finished, in all, once the step's gradients are done. The parent may
queue several steps ahead; the barrier keeps each worker inside its step until every
worker has closed it (see :class:`StepBarrier`). The results go out together at the end
of the step: a message wakes the parent, and a parent woken while a worker still
computes takes that worker's CPU (2 cores: parent + 2 workers).

Messages are small tuples; arrays never travel through a queue. Any exception is sent
to the parent as ``("error", worker, traceback_text)``. A worker whose parent has died
exits by itself (it checks whenever a queue has been silent for a second). Between the
messages of a step a worker polls its queues for ``SPIN_S`` before it blocks: the
parent's part of a step is short, and a polling worker starts ~30 us sooner.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
import traceback

from .barrier import POLL_S, SPIN_S, ParentGoneError, StepBarrier
from .counters import COUNTERS
from .processes import ignore_parent_signals


def _get(q, parent_pid: int):
    """``q.get()`` (polling for ``SPIN_S`` first) that gives up when the parent dies."""
    spin = SPIN_S
    while True:
        try:
            return q.get(timeout=POLL_S, spin=spin)
        except queue.Empty:
            if os.getppid() != parent_pid:
                raise ParentGoneError from None
            spin = 0.0


class Worker:
    """What one worker process does with its instructions and tasks.

    ``arrays``: the shared arrays by name; ``model`` is built over the shared weights and
    biases; the gradient slot is row ``worker_id`` of ``grad_w`` (workers, n_weights) and
    ``grad_b`` (workers, n_biases).
    """

    def __init__(self, worker_id: int, arrays: dict, model, barrier: StepBarrier, outputs):
        from nodenet.backprop import batch_evaluate, batch_gradient

        self.batch_gradient, self.batch_evaluate = batch_gradient, batch_evaluate
        self.worker_id, self.arrays, self.model = worker_id, arrays, model
        self.barrier, self.outputs = barrier, outputs
        self.grad_w, self.grad_b = arrays["grad_w"][worker_id], arrays["grad_b"][worker_id]
        self.stepper = RangeStep(arrays, model.layout)
        self.counters = dict.fromkeys(COUNTERS, 0.0)
        self.results: list[tuple] = []
        self.step = 0
        self.computed = 0

    def start(self, step: int, settings: dict | None, computed: int) -> None:
        """Zero the gradient slot for ``step``; ``settings``: the optimizer of its update
        tasks, if it has any; ``computed``: the compute tasks done in all, since the pool
        started, once this step's are."""
        self.step, self.computed = step, computed
        self.grad_w.fill(0)
        self.grad_b.fill(0)
        if settings is not None:
            self.stepper.configure(settings)
        self.barrier.started(step)

    def run(self, kind: str, task_step: int, start: int, stop: int) -> None:
        """One task; its result is kept until :meth:`finish`."""
        a, c = self.arrays, self.counters
        clock = time.perf_counter()
        loss = correct = 0.0
        if kind == "update":
            self.barrier.wait(self.step, self.computed)
            c["barrier_s"] += time.perf_counter() - clock
            clock = time.perf_counter()
            self.stepper.update(start, stop)
        elif kind in ("gradient", "evaluate"):
            order = a["order"]
            rows = order[task_step % len(order), start:stop]
            x, t = a["x"][rows], a["t"][rows]
            if kind == "gradient":
                loss, correct = self.batch_gradient(
                    self.model, x, t, self.grad_w, self.grad_b, accumulate=True
                )
            else:
                loss, correct = self.batch_evaluate(self.model, x, t)
        else:
            raise ValueError(f"unknown task kind {kind!r}")
        busy = time.perf_counter() - clock
        if kind == "update":
            c["updates"] += 1
            c["update_s"] += busy
        else:
            self.barrier.computed()
            c["tasks"] += 1
            c["samples"] += stop - start
            c["busy_s"] += busy
        self.results.append(
            ("result", self.worker_id, task_step, stop - start, loss, correct, busy)
        )

    def finish(self) -> None:
        """At the step's ``wait``: once every worker has taken its ``wait`` (so every task
        of the step is done), send the kept results and ``waiting`` with the counters."""
        clock = time.perf_counter()
        self.barrier.finished(self.step)
        self.barrier.wait(self.step, finished=True)
        self.counters["barrier_s"] += time.perf_counter() - clock
        self.results.append(("waiting", self.worker_id, self.step, dict(self.counters)))
        clock = time.perf_counter()
        self.outputs.put_many(self.results)  # one lock for all: the other worker sends too
        self.results.clear()
        self.counters["output_put_s"] += time.perf_counter() - clock  # shows in the next step


class RangeStep:
    """A worker's share of a split optimizer step: for the parameters ``[start, stop)``
    of the concatenation ``[weights, biases]``, sum every worker's gradient slot, take
    the mean, and apply the optimizer to that slice of the shared parameters and of the
    shared optimizer state (arrays ``opt_w_<key>`` / ``opt_b_<key>``)."""

    def __init__(self, arrays: dict, layout):
        self.arrays, self.layout = arrays, layout
        self.optimizer = None
        self.n = 1
        self._key = None

    def configure(self, settings: dict) -> None:
        from nodenet.optimizers import get_optimizer

        settings = dict(settings)
        t, self.n = settings.pop("t"), settings.pop("n")
        key = tuple(sorted(settings.items()))
        if key != self._key:
            self.optimizer, self._key = get_optimizer(settings.pop("name"), **settings), key
        self.optimizer.t = t

    def update(self, start: int, stop: int) -> None:
        arrays = self.arrays
        for part, lo, hi in self.layout.split(start, stop):
            key = part[0]  # "w" or "b"
            g = arrays[f"grad_{key}"][:, lo:hi].sum(axis=0)
            g /= self.n
            state = {k: arrays[f"opt_{key}_{k}"][lo:hi] for k in self.optimizer.state_keys}
            self.optimizer.apply(state, arrays[part][lo:hi], g, decay=part == "weights")


def main(worker_id, specs, config, dtype, instructions, inputs, outputs, sync_lock, parent_pid):
    """Entry point of worker ``worker_id`` (runs in the child process)."""
    ignore_parent_signals()  # Ctrl-C, SIGTERM, SIGHUP are the parent's to handle
    blocks = []
    try:
        from nodenet.graph import Model

        from .shared import attach

        arrays, blocks = attach(specs)
        model = Model.from_config(config).construct(seed=None, dtype=dtype)
        model.rebind(arrays["weights"], arrays["biases"])
        for shared in (arrays["x"], arrays["t"]):  # map every page now, not inside epoch 1
            flat = shared.reshape(-1)
            flat[:: max(4096 // flat.itemsize, 1)].sum()
        barrier = StepBarrier(arrays["sync"], arrays["closing"], sync_lock, worker_id, parent_pid)
        worker = Worker(worker_id, arrays, model, barrier, outputs)
        outputs.put(("ready", worker_id, os.getpid()))
        counters = worker.counters
        while True:
            clock = time.perf_counter()
            instruction = _get(instructions, parent_pid)
            counters["idle_s"] += time.perf_counter() - clock
            if instruction[0] == "stop":
                return
            if instruction[0] != "start":
                raise ValueError(f"unknown instruction {instruction!r}")
            worker.start(*instruction[1:])
            while True:
                clock = time.perf_counter()
                task = _get(inputs, parent_pid)
                counters["input_wait_s"] += time.perf_counter() - clock
                if task[0] == "wait":
                    worker.finish()
                    break
                if task[0] == "stop":
                    return
                worker.run(*task)
    except ParentGoneError:
        return
    except BaseException:
        outputs.put(("error", worker_id, traceback.format_exc()))
    finally:
        for block in blocks:
            with contextlib.suppress(BufferError):
                block.close()
