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
        grad_w, grad_b = arrays["grad_w"][worker_id], arrays["grad_b"][worker_id]
        np.random.seed(np.random.SeedSequence([seed, worker_id]).generate_state(1)[0])
        counters = dict.fromkeys(
            ("tasks", "samples", "busy_s", "idle_s", "input_wait_s", "output_put_s"), 0.0
        )
        outputs.put(("ready", worker_id, os.getpid()))
        while True:
            clock = time.perf_counter()
            instruction = _get(instructions, parent_pid)
            counters["idle_s"] += time.perf_counter() - clock
            if instruction[0] == "stop":
                return
            if instruction[0] != "start":
                raise ValueError(f"unknown instruction {instruction!r}")
            step = instruction[1]
            grad_w.fill(0)
            grad_b.fill(0)
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
                else:
                    raise ValueError(f"unknown task kind {kind!r}")
                busy = time.perf_counter() - clock
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
