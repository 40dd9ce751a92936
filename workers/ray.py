"""``RayBackend``: the backend protocol on Ray actors, for more than one machine.

The driver (the process that calls ``fit``) keeps the weights and the optimizer state.
Each step it puts the flat weights and biases into Ray's object store once; every actor
computes the summed gradient of its share of the batch over its copy of the data (put
into the object store once, when the backend opens) and returns it; the driver adds
the gradients in actor order and steps. With batch norm the actors of a step meet at
every batch-norm layer, forward and backward, in a :class:`Meetings` actor (the sums of
the whole batch, in actor order, as the pool's workers meet in shared memory); every
actor moves its running statistics the same way and the driver keeps actor 0's. Because the state lives on the driver, a lost
actor costs nothing but time: it is replaced and the step redone, and the run ends with
the weights of a run without the fault (up to ``max_failures`` times; then a
``WorkerError`` names the actor and the cause). Every ``ray.get`` has a time-out, so a
dead actor is noticed within ``timeout_s`` even where Ray itself would take longer.

Optional: ``pip install 'nodenet[ray]'``. Registered as the backend ``"ray"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING

import numpy as np

from nodenet.backend import weight_sum
from nodenet.checks import require_int, require_number
from nodenet.data.sparse import require_dense
from nodenet.graph import Model
from nodenet.optimizers import Optimizer

from .processes import WorkerError, keep_freed_memory
from .ring import pieces

if TYPE_CHECKING:
    import pandas as pd

MAX_FAILURES = 3  # as Ray Train's FailureConfig
TIMEOUT_S = 60.0


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError("the ray backend needs Ray: pip install 'nodenet[ray]'") from None
    return ray


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A ``HOST:PORT`` cluster address must answer within ``timeout_s``: Ray itself
    retries an address where nothing listens for minutes. ``ValueError`` naming it
    otherwise (``None`` and ``"auto"`` are Ray's to resolve)."""
    if address is None or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"no Ray cluster answers at {address} ({exc}); start one with `ray start "
            "--head` there, or leave the address out to start Ray on this machine"
        ) from None


class Meetings:
    """Where the actors of one step meet at each batch-norm layer (an async Ray actor:
    every call waits without holding the others up). A meeting is keyed by the step's
    attempt and its number within the step; it returns every actor's values stacked in
    actor order once all have come, and is forgotten when the last has read it."""

    def __init__(self, parts: int):
        self.parts = parts
        self.rooms: dict = {}

    async def gather(self, key: tuple[int, int], part: int, values: np.ndarray) -> np.ndarray:
        room = self.rooms.setdefault(key, {"values": {}, "full": asyncio.Event(), "read": 0})
        room["values"][part] = values
        if len(room["values"]) == self.parts:
            room["full"].set()
        await room["full"].wait()
        room["read"] += 1
        if room["read"] == self.parts:
            del self.rooms[key]
        return np.stack([room["values"][k] for k in range(self.parts)])

    async def forget(self, attempt: int) -> None:
        """Drop the meetings of attempts before ``attempt`` (a step redone after a loss)."""
        for key in [k for k in self.rooms if k[0] < attempt]:
            del self.rooms[key]


class RaySync:
    """An actor's side of the meetings of one step attempt
    (``nodenet.batchnorm.BatchSync``)."""

    def __init__(self, meetings, attempt: int, part: int, timeout_s: float):
        self.meetings, self.attempt, self.part, self.timeout_s = meetings, attempt, part, timeout_s
        self.count = 0

    def gather(self, values: np.ndarray) -> np.ndarray:
        key = (self.attempt, self.count)
        self.count += 1
        reply = self.meetings.gather.remote(key, self.part, values)
        return _ray().get(reply, timeout=self.timeout_s)


class GradientActor:
    """One Ray actor: a model over private flat arrays and the training data; with
    batch norm, the :class:`Meetings` actor it meets the others in."""

    def __init__(
        self,
        config: dict,
        dtype: str,
        seed: int,
        x: np.ndarray,
        t: np.ndarray,
        w=None,
        meetings=None,
        timeout_s: float = TIMEOUT_S,
    ):
        keep_freed_memory()
        self.model = Model.from_config(config).construct(seed=None, dtype=dtype)
        self.seed, self.x, self.t, self.w = seed, x, t, w
        self.meetings, self.timeout_s = meetings, timeout_s
        self.dW = np.zeros_like(self.model.weights)
        self.db = np.zeros_like(self.model.biases)

    def pid(self) -> int:
        return os.getpid()

    def _load(self, parameters) -> None:
        self.model.weights[...], self.model.biases[...], self.model.running[...] = parameters

    def gradient(self, parameters, rows: np.ndarray, step: int = 0, part: int = 0, attempt=0):
        """``(loss_sum, n_correct, dW, db, running, seconds)`` of ``rows`` at
        ``parameters`` (weights, biases, running statistics); ``step``, the optimizer
        step, keys the dropout masks and (> 0) moves the running statistics; ``part``
        and ``attempt`` name this actor's place in the step's batch-norm meetings."""
        from nodenet.backprop import batch_gradient, gather
        from nodenet.dropout import TrainingPass

        clock = time.perf_counter()
        self._load(parameters)
        weights = None if self.w is None else gather(self.w, rows)
        sync = None
        if self.meetings is not None:
            sync = RaySync(self.meetings, attempt, part, self.timeout_s)
        loss, correct = batch_gradient(
            self.model,
            gather(self.x, rows),
            gather(self.t, rows),
            self.dW,
            self.db,
            weights=weights,
            training=TrainingPass(rows, self.seed, step, sync, step > 0),
        )
        seconds = time.perf_counter() - clock
        return loss, correct, self.dW, self.db, self.model.running, seconds

    def evaluate(self, parameters, rows: np.ndarray, part: int = 0, attempt: int = 0):
        from nodenet.backprop import batch_evaluate, gather

        clock = time.perf_counter()
        self._load(parameters)
        loss, correct = batch_evaluate(self.model, gather(self.x, rows), gather(self.t, rows))
        return loss, correct, time.perf_counter() - clock


class RayBackend:
    """The backend protocol over ``workers`` Ray actors (see the module docstring).

    ``address``: a running cluster (``"auto"`` or ``"HOST:PORT"``); ``None`` starts a
    local Ray and shuts it down on :meth:`close`. ``max_failures``: lost actors replaced
    (each time the step is redone) before giving up. ``timeout_s``: the longest wait for
    one step's results.
    """

    ahead = 1

    def __init__(
        self,
        model: Model,
        x: np.ndarray,
        y: np.ndarray,
        workers: int = 2,
        chunk: int | None = None,
        address: str | None = None,
        max_failures: int = MAX_FAILURES,
        timeout_s: float = TIMEOUT_S,
        sample_weight: np.ndarray | None = None,
        seed: int | None = None,
    ):
        ray = _ray()
        require_int("workers", workers, 1)
        self.max_failures = require_int("max_failures", max_failures, 0)
        self.timeout_s = require_number("timeout_s", timeout_s, 0, open_low=True)
        self.chunk = None if chunk is None else require_int("chunk", chunk, 1)
        self.model, self.workers, self.seed = model, workers, seed or 0
        x = model.check_inputs(x)
        require_dense(x, "the ray backend (the object store)")
        t = model.targets(y, len(x))
        self.failures = 0
        self.samples = np.zeros(workers)
        self.busy = np.zeros(workers)
        self._done: list[tuple[float, float]] = []
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            check_reachable(address)
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._ray = ray
        self._remote = ray.remote(num_cpus=1)(GradientActor)
        self.w = sample_weight
        self._data = ray.put(x), ray.put(t), ray.put(sample_weight)
        self.actors: list = []
        self.meetings, self.attempts = None, 0
        try:
            if model.layout.normalised:  # the actors meet at every batch-norm layer
                self.meetings = ray.remote(num_cpus=0)(Meetings).remote(workers)
            self.actors = [self._new_actor() for _ in range(workers)]
            ray.get([actor.pid.remote() for actor in self.actors], timeout=self.timeout_s)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(
        cls,
        model: Model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        optimizer: Optimizer | None = None,
        workers: int = 2,
        chunk: int | None = None,
        seed: int | None = None,
        **options,
    ) -> RayBackend:
        """The backend factory registered as ``"ray"``: ``fit(..., backend="ray",
        workers=N, address=None)``. The optimizer steps on the driver; ``seed`` keys the
        dropout masks."""
        return cls(model, x, y, workers or 2, chunk, seed=seed, **options)

    def _new_actor(self):
        model = self.model
        return self._remote.remote(
            model.process_config(),
            model.dtype.str,
            self.seed,
            *self._data,
            self.meetings,
            self.timeout_s,
        )

    # --------------------------------------------------------------- the face
    def gradient(
        self, indices: np.ndarray, step: int = 0
    ) -> tuple[float, float, np.ndarray, np.ndarray]:
        """See the backend protocol; ``step``: the optimizer step (dropout masks)."""
        results = self._run("gradient", indices, step)
        dW, db = np.zeros_like(self.model.weights), np.zeros_like(self.model.biases)
        loss = correct = 0.0
        for piece_loss, piece_correct, piece_dW, piece_db, _, _ in results:
            loss, correct = loss + piece_loss, correct + piece_correct
            dW += piece_dW
            db += piece_db
        self.model.running[...] = results[0][4]  # every actor moved it the same way
        return loss, correct, dW, db

    def train_step(self, indices: np.ndarray, optimizer: Optimizer) -> tuple[float, float]:
        loss, correct, dW, db = self.gradient(indices, optimizer.t + 1)
        n = weight_sum(self.w, indices)
        optimizer.step_mean(self.model.weights, self.model.biases, dW, db, n)
        return loss, correct

    def submit(self, indices: np.ndarray, optimizer: Optimizer) -> None:
        self._done.append(self.train_step(indices, optimizer))

    def collect(self) -> tuple[float, float]:
        if not self._done:
            raise RuntimeError("collect() without a submitted step")
        return self._done.pop(0)

    def evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        results = self._run("evaluate", indices)
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def stats(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {
                "worker": range(self.workers),
                "samples": self.samples,
                "busy_s": self.busy,
                "samples_per_s": self.samples / np.maximum(self.busy, 1e-12),
                "failures": self.failures,
            }
        )

    # ------------------------------------------------------------ one step
    def _run(self, method: str, indices: np.ndarray, *args) -> list:
        """Call ``method`` on every actor with its share of ``indices``; a lost actor is
        replaced and the whole step asked again (the driver's state has not moved)."""
        shares = [
            np.concatenate([indices[lo:hi] for lo, hi in mine]) if mine else indices[:0]
            for mine in (
                pieces(len(indices), self.chunk or 0, self.workers)[k :: self.workers]
                for k in range(self.workers)
            )
        ]
        ray = self._ray
        while True:
            self.attempts += 1
            model = self.model
            parameters = ray.put((model.weights, model.biases, model.running))
            futures = [
                getattr(actor, method).remote(parameters, share, *args, k, self.attempts)
                for k, (actor, share) in enumerate(zip(self.actors, shares, strict=True))
            ]
            try:
                results = ray.get(futures, timeout=self.timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                self._replace_lost(exc, futures)
                if self.meetings is not None:  # the attempt's half-held meetings go
                    ray.get(self.meetings.forget.remote(self.attempts + 1), timeout=self.timeout_s)
                continue
            for k, (share, result) in enumerate(zip(shares, results, strict=True)):
                self.samples[k] += len(share)
                self.busy[k] += result[-1]
            return results

    def _replace_lost(self, exc: BaseException, futures: list) -> None:
        """Find the actors that are gone (their futures fail), replace them, or raise
        :class:`WorkerError` once the failures exceed ``max_failures``."""
        ray = self._ray
        lost, stuck = [], []
        for k, future in enumerate(futures):
            try:
                ray.get(future, timeout=0.5)
            except ray.exceptions.RayActorError as error:
                lost.append((k, error))
            except ray.exceptions.GetTimeoutError as error:
                stuck.append((k, error))
        if lost and self.meetings is not None:
            # the others wait at a batch-norm meeting the lost one never reaches: they
            # are replaced too, but they did not fail
            for k, _ in stuck:
                ray.kill(self.actors[k], no_restart=True)
                self.actors[k] = self._new_actor()
        else:
            lost += stuck
        for k, error in lost or [(-1, exc)]:
            self.failures += 1
            cause = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            if self.failures > self.max_failures:
                failure = WorkerError(
                    f"ray worker {k} lost ({cause}); {self.failures - 1} failures were "
                    f"already recovered, max_failures={self.max_failures}",
                    k,
                )
                failure.final = True  # fit must not start over: the failures ran out
                raise failure from error
            if k >= 0:
                ray.kill(self.actors[k], no_restart=True)
                self.actors[k] = self._new_actor()

    def close(self) -> None:
        """Kill every actor; shut Ray down if this backend started it."""
        ray = getattr(self, "_ray", None)
        if ray is None:
            return
        for actor in [*self.actors, self.meetings]:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor, no_restart=True)
        self.actors, self.meetings = [], None
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._ray = None

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
