"""The parent's side of the queue protocol of the worker pool (the worker's side is
``workers/worker.py``).

- one **instruction** channel per worker: ``("start", step, settings, computed)``,
  ``("stop",)``;
- one shared **input** channel: tasks ``(kind, step, start, stop)`` over row
  ``step % ahead`` of the shared index array ``order`` (kind ``gradient``, ``evaluate``,
  or ``update`` for a range of parameters), then one ``("wait",)`` per worker to close
  the step;
- one shared **output** channel: ``("result", worker, step, n, loss_sum, n_correct,
  busy_s)`` per task, ``("waiting", worker, step, counters)`` when a worker has closed
  the step, ``("ready", worker, pid)`` at start-up, or ``("error", worker, traceback)``.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

import numpy as np

from .channel import Channel
from .processes import WorkerError

POLL_S = 0.05  # how often a waiting parent checks that its workers are alive


class StepProtocol:
    """Sends steps to ``workers`` workers and tallies their results.

    ``order`` (ahead, n) is the shared index array; ``check_alive()`` raises
    :class:`WorkerError` when a worker has died, and is called whenever the output
    channel is silent for ``POLL_S``. ``step`` counts the steps sent; ``counters`` holds
    each worker's last reported counters.
    """

    def __init__(self, ctx, workers: int, order: np.ndarray, check_alive: Callable[[], None]):
        self.workers, self.order, self.check_alive = workers, order, check_alive
        self.instructions = [Channel(ctx) for _ in range(workers)]
        self.inputs, self.outputs = Channel(ctx), Channel(ctx)
        self.step = 0
        self.computed = 0  # compute tasks sent so far (what the barrier counts)
        self.tally: dict[int, list] = {}  # step -> [loss_sum, n_correct, workers waiting]
        self.counters: dict[int, dict] = {}

    def channels(self, worker_id: int) -> tuple[Channel, Channel, Channel]:
        """``(instructions, inputs, outputs)`` of worker ``worker_id``."""
        return self.instructions[worker_id], self.inputs, self.outputs

    def dispatch(
        self, tasks: list[tuple[str, int, int]], indices: np.ndarray, settings: dict | None = None
    ) -> int:
        """Send one step of the protocol and return its number, without waiting: write
        ``indices`` into the step's row of ``order``; ``start`` to every worker (with the
        optimizer ``settings`` when the step ends with ``update`` tasks), the tasks, one
        ``wait`` per worker."""
        self.check_alive()
        self.step += 1
        step = self.step
        self.finish(step - len(self.order))  # the step that last used this row of order
        self.order[step % len(self.order), : len(indices)] = indices
        self.computed += sum(kind != "update" for kind, _, _ in tasks)
        self.tally[step] = [0.0, 0.0, 0]
        for instruction in self.instructions:
            instruction.put(("start", step, settings, self.computed))
        for kind, start, stop in tasks:
            self.inputs.put((kind, step, start, stop))
        for _ in range(self.workers):
            self.inputs.put(("wait",))
        return step

    def finish(self, step: int) -> None:
        """Collect messages until every worker is waiting after ``step`` (or it is long
        done), tallying each step's results as they come."""
        tally = self.tally.get(step)
        while tally is not None and tally[2] < self.workers:
            message = self.receive()
            if message[0] == "result":
                entry = self.tally[message[2]]
                entry[0] += message[4]
                entry[1] += message[5]
            elif message[0] == "waiting":
                self.counters[message[1]] = message[3]
                self.tally[message[2]][2] += 1

    def result(self, step: int) -> tuple[float, float]:
        """``(loss_sum, n_correct)`` of ``step`` once it is finished."""
        self.finish(step)
        loss, correct, _ = self.tally.pop(step)
        return loss, correct

    def receive(self) -> tuple:
        """Next output message; raises :class:`WorkerError` on an error message or a
        dead worker instead of waiting forever."""
        while True:
            try:
                message = self.outputs.get(timeout=POLL_S)
            except queue.Empty:
                self.check_alive()
                continue
            if message[0] == "error":
                worker_id, text = message[1], message[2]
                last = text.strip().splitlines()[-1] if text.strip() else "unknown error"
                raise WorkerError(
                    f"worker {worker_id} raised {last}\n{text}", worker_id, worker_traceback=text
                )
            return message

    def stop(self) -> None:
        """Ask every worker to stop, wherever it is waiting."""
        for instruction in self.instructions:
            instruction.put(("stop",))
        for _ in range(self.workers):
            self.inputs.put(("stop",))

    def close(self) -> None:
        for channel in (*self.instructions, self.inputs, self.outputs):
            channel.close()
