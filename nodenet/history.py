"""``History``: every batch and epoch record of a training run, as Keras keeps them."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from .callbacks import Callback
from .files import atomic_write

if TYPE_CHECKING:
    import pandas as pd


class History(Callback):
    """Every batch and epoch record of a run. ``history`` is ``{key: [value per epoch]}``
    as in Keras; ``frame("epoch" | "batch")`` is a DataFrame; ``to_csv`` writes both."""

    reads_logs_only = True
    priority = -1  # records before any other callback looks

    def __init__(self, batches: list[dict] | None = None, epochs: list[dict] | None = None):
        super().__init__()
        self.batches: list[dict] = list(batches or [])
        self.epochs: list[dict] = list(epochs or [])
        #: the backend's per-worker counters at the end of the run
        self.worker_stats: pd.DataFrame | None = None
        #: running sums of an epoch interrupted part-way (``EpochBatches.totals``), kept in
        #: checkpoints so that the resumed epoch's record covers all of its batches
        self.partial_epoch: dict | None = None

    def pop_partial_epoch(self) -> dict | None:
        """The sums of the interrupted epoch, once (then forgotten)."""
        partial, self.partial_epoch = self.partial_epoch, None
        return partial

    @property
    def history(self) -> dict[str, list]:
        keys = dict.fromkeys(k for record in self.epochs for k in record)
        return {k: [record.get(k, math.nan) for record in self.epochs] for k in keys}

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))

    def frame(self, level: str = "epoch") -> pd.DataFrame:
        """The ``"epoch"`` or ``"batch"`` records as a DataFrame."""
        import pandas as pd  # imported when used: worker processes need no pandas

        if level not in ("epoch", "batch"):
            raise ValueError(f"level must be 'epoch' or 'batch', got {level!r}")
        return pd.DataFrame(self.epochs if level == "epoch" else self.batches)

    def to_csv(self, path) -> None:
        """Both levels in one CSV with a ``level`` column (``batch`` or ``epoch``)."""
        import pandas as pd

        frame = pd.concat(
            [self.frame("batch").assign(level="batch"), self.frame("epoch").assign(level="epoch")],
            ignore_index=True,
        )
        atomic_write(path, lambda f: f.write(frame.to_csv(index=False).encode()))

    def plot(self, path: str | os.PathLike | None = None, title: str = ""):
        """The training figure (``matplotlib.figure.Figure``; Jupyter shows it), written
        to ``path`` too when given."""
        from .plots import history_figure, save_figure

        figure = history_figure(self, title)
        if path is not None:
            save_figure(figure, path)
        return figure

    @classmethod
    def from_csv(cls, path) -> History:
        import pandas as pd

        frame = pd.read_csv(path)
        split = {
            level: frame[frame["level"] == level].drop(columns="level").dropna(axis=1, how="all")
            for level in ("batch", "epoch")
        }
        return cls(split["batch"].to_dict("records"), split["epoch"].to_dict("records"))
