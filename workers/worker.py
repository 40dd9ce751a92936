"""The worker loop.

A worker attaches to the shared arrays, rebuilds the model over the *shared* flat
weights and biases (so the parent's optimiser steps are seen without copying), then:

    loop:  instruction = instructions.get()       # ("start", step) | ("stop",)
           zero my gradient slot
           loop:  task = inputs.get()             # (kind, step, start, stop) | ("wait",)
                  run forward (+ cached backprop) on rows order[start:stop]
                  outputs.put(("result", worker, step, n, loss_sum, n_correct, busy_s))
           outputs.put(("waiting", worker, step, counters))

Messages are small tuples; arrays never travel through a queue. Any exception is sent
to the parent as ``("error", worker, traceback_text)``. A worker whose parent has died
exits by itself (it checks whenever a queue has been silent for a second).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import time
import traceback

POLL_S = 1.0
#: what a worker counts and reports with each ``waiting`` message: gradient/evaluation
#: tasks, samples and seconds; split-step updates and seconds; seconds idle (waiting for
#: an instruction) and blocked on the input and output queues
COUNTERS = (
    "tasks",
    "samples",
    "busy_s",
    "updates",
    "update_s",
    "idle_s",
    "input_wait_s",
    "output_put_s",
)


class ParentGoneError(Exception):
    """The parent process is no longer alive."""


def _get(q, parent_pid: int):
    """``q.get()`` that gives up when the parent dies."""
    while True:
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            if os.getppid() != parent_pid:
                raise ParentGoneError from None


class RangeStep:
    """A worker's share of a split optimiser step: for the parameters ``[start, stop)``
    of the concatenation ``[weights, biases]``, sum every worker's gradient slot, take
    the mean, and apply the optimiser to that slice of the shared parameters and of the
    shared optimiser state (arrays ``opt_w_<key>`` / ``opt_b_<key>``)."""

    def __init__(self, arrays: dict):
        self.arrays = arrays
        self.optimiser = None
        self.n = 1
        self._key = None

    def configure(self, settings: dict) -> None:
        from nodenet.optimizers import get_optimizer

        settings = dict(settings)
        t, self.n = settings.pop("t"), settings.pop("n")
        key = tuple(sorted(settings.items()))
        if key != self._key:
            self.optimiser, self._key = get_optimizer(settings.pop("name"), **settings), key
        self.optimiser.t = t

    def update(self, start: int, stop: int) -> None:
        arrays, offset = self.arrays, 0
        for part, decay in (("w", True), ("b", False)):
            flat = arrays["weights" if part == "w" else "biases"]
            lo, hi = max(start - offset, 0), min(stop - offset, flat.size)
            offset += flat.size
            if lo >= hi:
                continue
            slots = arrays["grad_w" if part == "w" else "grad_b"]
            g = slots[:, lo:hi].sum(axis=0)
            g /= self.n
            state = {k: arrays[f"opt_{part}_{k}"][lo:hi] for k in self.optimiser.state_keys}
            self.optimiser.apply(state, flat[lo:hi], g, decay)


def main(worker_id, specs, config, dtype, seed, instructions, inputs, outputs, parent_pid):
    """Entry point of worker ``worker_id`` (runs in the child process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    blocks = []
    try:
        import numpy as np

        from nodenet.backprop import batch_evaluate, batch_gradient
        from nodenet.graph import Model

        from .shared import attach

        arrays, blocks = attach(specs)
        model = Model.from_config(config).construct(seed=None, dtype=dtype)
        model.rebind(arrays["weights"], arrays["biases"])
        x, t, order = arrays["x"], arrays["t"], arrays["order"]
        for shared in (x, t):  # map every page now, not as page faults inside epoch 1
            flat = shared.reshape(-1)
            flat[:: max(4096 // flat.itemsize, 1)].sum()
        grad_w, grad_b = arrays["grad_w"][worker_id], arrays["grad_b"][worker_id]
        stepper = RangeStep(arrays)
        np.random.seed(np.random.SeedSequence([seed, worker_id]).generate_state(1)[0])
        counters = dict.fromkeys(COUNTERS, 0.0)
        outputs.put(("ready", worker_id, os.getpid()))
        while True:
            clock = time.perf_counter()
            instruction = _get(instructions, parent_pid)
            counters["idle_s"] += time.perf_counter() - clock
            if instruction[0] == "stop":
                return
            if instruction[0] != "start":
                raise ValueError(f"unknown instruction {instruction!r}")
            step, settings = instruction[1], instruction[2]
            if settings is None:  # a gradient or evaluation step: start from zero
                grad_w.fill(0)
                grad_b.fill(0)
            else:  # an update step: the slots hold the gradients to apply
                stepper.configure(settings)
            while True:
                clock = time.perf_counter()
                task = _get(inputs, parent_pid)
                counters["input_wait_s"] += time.perf_counter() - clock
                if task[0] == "wait":
                    outputs.put(("waiting", worker_id, step, dict(counters)))
                    break
                if task[0] == "stop":
                    return
                kind, task_step, start, stop = task
                clock = time.perf_counter()
                rows = order[start:stop]
                if kind == "gradient":
                    loss, correct = batch_gradient(
                        model, x[rows], t[rows], grad_w, grad_b, accumulate=True
                    )
                elif kind == "evaluate":
                    loss, correct = batch_evaluate(model, x[rows], t[rows])
                elif kind == "update":
                    stepper.update(start, stop)
                    loss = correct = 0.0
                else:
                    raise ValueError(f"unknown task kind {kind!r}")
                busy = time.perf_counter() - clock
                if kind == "update":
                    counters["updates"] += 1
                    counters["update_s"] += busy
                else:
                    counters["tasks"] += 1
                    counters["samples"] += stop - start
                    counters["busy_s"] += busy
                clock = time.perf_counter()
                outputs.put(("result", worker_id, task_step, stop - start, loss, correct, busy))
                counters["output_put_s"] += time.perf_counter() - clock
    except ParentGoneError:
        return
    except BaseException:
        outputs.put(("error", worker_id, traceback.format_exc()))
    finally:
        for block in blocks:
            with contextlib.suppress(BufferError):
                block.close()
