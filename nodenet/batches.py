"""``EpochBatches``: one epoch's mini-batches, sent to a backend and collected in order."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from stopwatch import Stopwatch

from .backend import Backend, weight_sum
from .optimizers import Optimizer


class EpochBatches:
    """The batches of epoch index ``epoch`` over ``order`` (row indices, already shuffled), from
    batch ``first_batch`` on. Iterating submits steps to ``engine`` (up to ``ahead`` in
    flight, never past the next multiple of ``pause_every`` batches, so validation there
    sees no later step) and yields ``(b, logs)`` per batch as its result is collected:
    ``logs`` has ``epoch`` and ``batch`` (1-based), ``samples``, ``loss`` and ``accuracy`` (means over
    the batch) and ``seconds`` (since the epoch started). ``carried``: the
    :meth:`totals` of the same epoch in a run that was interrupted, to go on from. Once ``halt()`` is true no
    step is sent; the iteration ends when none is left in flight.
    ``before_step(b)`` is called before batch ``b``'s step is sent.
    """

    def __init__(
        self,
        engine: Backend,
        optimizer: Optimizer,
        epoch: int,
        order: np.ndarray,
        batch_size: int,
        first_batch: int = 0,
        ahead: int = 1,
        pause_every: int | None = None,
        halt: Callable[[], bool] = lambda: False,
        before_step: Callable[[int], None] = lambda b: None,
        carried: dict | None = None,
        weights: np.ndarray | None = None,
    ):
        self.engine, self.optimizer, self.epoch, self.order = engine, optimizer, epoch, order
        self.batch_size, self.ahead, self.halt = batch_size, ahead, halt
        self.before_step = before_step
        self.n_batches = math.ceil(len(order) / batch_size)
        if not 0 <= first_batch < self.n_batches:
            raise ValueError(f"initial_batch must lie in [0, {self.n_batches}), got {first_batch}")
        self.pause_every = pause_every or self.n_batches
        self.submitted = self.done = first_batch
        carried = carried or {}
        self.weights = weights
        self.weight_total = carried.get("weight_total", float(carried.get("samples", 0)))
        self.loss_sum = carried.get("loss_sum", 0.0)
        self.n_correct = carried.get("n_correct", 0.0)
        self.samples = carried.get("samples", 0)
        self.seconds_before = carried.get("seconds", 0.0)
        self.watch = Stopwatch()

    def rows(self, b: int) -> np.ndarray:
        """Row indices of batch ``b``."""
        return self.order[b * self.batch_size : (b + 1) * self.batch_size]

    @property
    def finished(self) -> bool:
        return self.done == self.n_batches

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        while not self.finished:
            if self.submitted == self.done and self.halt():
                break
            pause = min((self.done // self.pause_every + 1) * self.pause_every, self.n_batches)
            while (
                self.submitted < pause
                and self.submitted - self.done < self.ahead
                and (self.submitted == self.done or not self.halt())
            ):
                self.before_step(self.submitted)
                self.engine.submit(self.rows(self.submitted), self.optimizer)
                self.submitted += 1
            b, rows = self.done, self.rows(self.done)
            n, weight = len(rows), weight_sum(self.weights, rows)
            loss, correct = self.engine.collect()
            self.done += 1
            self.loss_sum, self.n_correct, self.samples = (
                self.loss_sum + loss,
                self.n_correct + correct,
                self.samples + n,
            )
            self.weight_total += weight
            yield (
                b,
                {
                    "epoch": self.epoch + 1,
                    "batch": b + 1,
                    "samples": n,
                    "loss": loss / weight,
                    "accuracy": correct / n,
                    "seconds": self.seconds_before + self.watch.duration,
                },
            )
        self.watch.stop()

    def totals(self) -> dict:
        """The running sums of the epoch, for a resumed run to go on from (``carried``)."""
        return {
            "loss_sum": self.loss_sum,
            "n_correct": self.n_correct,
            "samples": self.samples,
            "weight_total": self.weight_total,
            "seconds": self.seconds_before + self.watch.duration,
        }

    def summary(self) -> dict:
        """The epoch's record: means over its batches (those of an interrupted run before
        a resume included, through ``carried``), seconds, samples/s."""
        seconds = self.seconds_before + self.watch.duration
        return {
            "epoch": self.epoch + 1,
            "loss": self.loss_sum / self.weight_total if self.weight_total else 0.0,
            "accuracy": self.n_correct / max(self.samples, 1),
            "seconds": seconds,
            "samples_per_s": self.samples / seconds if seconds else math.nan,
        }
