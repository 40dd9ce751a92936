"""Optimizers that update the flat ``weights`` and ``biases`` arrays in place.

``opt.step(weights, biases, dW, db)`` takes the gradients of the *mean* loss of a
mini-batch (the caller divides the summed gradients by the batch size). Each optimizer
keeps its state arrays (one per parameter array) and updates element-wise:
``g`` is the gradient, ``p`` the parameter, ``t`` the step number (from 1).

``weight_decay`` adds ``weight_decay * p`` to the gradient of the weights (L2; biases
are never decayed), except in :class:`AdamW`, which decays the weights directly.

``average`` (0 < average < 1) also keeps an exponential moving average of the
parameters, ``a = average * a + (1 - average) * p`` after every step (Polyak averaging);
:meth:`Optimizer.averaged` returns it bias-corrected, ``a / (1 - average^t)`` as in Adam.
The average of the last few hundred steps generalises better than the last iterate.
"""

from __future__ import annotations

import numpy as np

from ..checks import require_number


class Optimizer:
    """Base class: validates the settings and runs :meth:`update` on each flat array."""

    name = "optimizer"

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0, average: float = 0.0):
        self.lr = require_number("lr", lr, 0, open_low=True)
        self.weight_decay = require_number("weight_decay", weight_decay, 0)
        self.average = require_number("average", average, 0, 1)
        self.t = 0
        self.state: list[dict[str, np.ndarray]] = [{}, {}]

    #: names of the per-parameter state arrays of the update rule
    rule_keys: tuple[str, ...] = ()

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Names of all per-parameter state arrays (what must be shared to split a step)."""
        return self.rule_keys + (("avg",) if self.average else ())

    def step(self, weights: np.ndarray, biases: np.ndarray, dW: np.ndarray, db: np.ndarray):
        """One update of both flat arrays, in place (``dW`` may be used as work space)."""
        self.t += 1
        self.apply(self.state[0], weights, dW, decay=True)
        self.apply(self.state[1], biases, db, decay=False)

    def step_mean(self, weights, biases, dW, db, n: int) -> None:
        """One step from gradients *summed* over ``n`` samples (``dW`` and ``db`` may be
        used as work space)."""
        self.t += 1
        self.apply_sum(self.state[0], weights, dW[None], n, decay=True)
        self.apply_sum(self.state[1], biases, db[None], n, decay=False)

    def apply_sum(
        self, state, p: np.ndarray, slots: np.ndarray, n: int, decay: bool, offset: int = 0
    ) -> None:
        """:meth:`apply` with the gradient ``slots[:, offset : offset + len(p)].sum(0) / n``:
        ``slots`` (W, >= offset + len(p)) holds gradients summed over ``n`` samples in all,
        a worker's slot per row (``slots[0]`` may be used as work space when W is 1)."""
        g = self.slot_sum(slots, offset, p)
        g /= n
        self.apply(state, p, g, decay)

    def slot_sum(self, slots: np.ndarray, offset: int, like: np.ndarray) -> np.ndarray:
        """``slots[:, offset : offset + len(like)]`` summed over the rows: the row itself
        when there is one, else written into a work array of its own (rows added in
        order; the update rules use :meth:`scratch`)."""
        g = slots[:, offset : offset + like.size]
        if len(g) == 1:
            return g[0]
        # row by row, as np.sum(axis=0) adds them (equal bit for bit), in 0.4-0.7x its
        # time: 3.7 against 8.8 us for 2 x 3,000 float64, 19.6 against 28.6 for 2 x 54,700
        # float32
        out = np.add(g[0], g[1], out=self.scratch(like, "_sum_scratch"))
        for row in g[2:]:
            out += row
        return out

    def slot_pair(
        self, slots: np.ndarray, offset: int, like: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``slots[:, offset : offset + len(like)]`` as ``(g, h)``, for a rule that adds
        ``h`` to ``g`` as it reads them: every row but the last summed in order (see
        :meth:`slot_sum`) and the last row, so that ``g + h`` is :meth:`slot_sum`'s sum
        bit for bit; with one row, that row and an empty array."""
        g = slots[:, offset : offset + like.size]
        if len(g) == 1:
            return g[0], g[0, :0]
        return (g[0] if len(g) == 2 else self.slot_sum(slots[:-1], offset, like)), g[-1]

    def apply(self, state: dict[str, np.ndarray], p: np.ndarray, g: np.ndarray, decay: bool):
        """Update ``p`` (a whole flat array or any slice of one, with ``state`` sliced
        alike) at step ``self.t``. Every rule is element-wise, so updating slices
        separately gives exactly the result of one update of the whole array.
        ``decay``: ``p`` holds weights (weight decay applies), not biases."""
        if decay and self.weight_decay:
            self.decay_weights(p, g)
        self.update(state, p, g)
        if self.average:
            avg = self.buffer(state, "avg", p)
            avg *= self.average
            avg += np.multiply(p, 1 - self.average, out=self.scratch(p))

    def decay_weights(self, p: np.ndarray, g: np.ndarray) -> None:
        """Weight decay before the update: L2, ``g += weight_decay * p`` (the caller's
        gradient buffer, reused)."""
        g += self.weight_decay * p

    def averaged(self) -> tuple[np.ndarray, np.ndarray]:
        """The bias-corrected moving averages of the flat weights and biases (new arrays,
        shaped like them). Raises ``ValueError`` when the optimizer does not average or
        has not stepped yet."""
        if not self.average or self.t == 0:
            raise ValueError("no parameter average: average is 0 or no step was taken")
        correction = 1 - self.average**self.t
        return self.state[0]["avg"] / correction, self.state[1]["avg"] / correction

    def update(self, state: dict[str, np.ndarray], p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    @staticmethod
    def buffer(state: dict[str, np.ndarray], key: str, like: np.ndarray) -> np.ndarray:
        """The state array ``key`` (zeros the first time), shaped and typed like ``like``."""
        if key not in state or state[key].shape != like.shape:
            state[key] = np.zeros_like(like)
        return state[key]

    def scratch(self, like: np.ndarray, name: str = "_scratch") -> np.ndarray:
        """A work array shaped like ``like``, reused across steps (never saved): the
        updates below run in place, with no temporaries and no float64 promotion."""
        buf = getattr(self, name, None)
        if buf is None or buf.size < like.size or buf.dtype != like.dtype:
            buf = np.empty(like.size, dtype=like.dtype)
            setattr(self, name, buf)
        return buf[: like.size].reshape(like.shape)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """All state as named arrays (for checkpoints); ``t`` included."""
        arrays = {f"{i}_{k}": v for i, s in enumerate(self.state) for k, v in s.items()}
        arrays["t"] = np.array(self.t)
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` returned; ``ValueError`` naming an entry that
        cannot be the state of a run (a negative step count, NaN or infinity)."""
        t = arrays["t"]
        if np.ndim(t) != 0 or not float(t).is_integer() or t < 0:
            raise ValueError(f"the optimizer's step count must be a whole number >= 0, got {t}")
        self.t = int(t)
        self.state = [{}, {}]
        for key, value in arrays.items():
            if key != "t" and not np.isfinite(value).all():
                raise ValueError(f"the optimizer's state {key} holds NaN or infinity")
            if key != "t":
                i, name = key.split("_", 1)
                self.state[int(i)][name] = np.array(value)

    def config(self) -> dict:
        return {
            "name": self.name,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "average": self.average,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"
