"""One training step on MNIST, as a whole process: what the pool's start and stop cost.

    farm-bench -n 15 --vs 'python bench/startup.py inprocess' -- python bench/startup.py pool
    farm-bench -n 15 --vs 'python bench/startup.py inprocess' -- python bench/startup.py pool --late
    farm-bench -n 15 --vs 'python bench/startup.py inprocess --fit' -- python bench/startup.py pool --fit

The two commands differ only in the backend: each loads and normalises the 60,000
training images, builds 784-128-64-10, opens the backend (the pool: 2 workers), takes
one Adam step of 128 rows and closes it. The difference of their wall times is what the
pool adds to a run's start and end (the in-process step pays numba's first call, which
the pool's fork server pays before it forks the workers). As ``nodenet train`` does, the
backend is prepared (the pool's fork server started) before the data loads; ``--late``
starts it when the pool opens, as a backend opened on data already in memory does.
``--fit`` takes the step through ``model.fit`` instead (the library's door: ``fit``
prepares the backend itself, before it normalises the rows and holds out the
validation split, then stops after the first batch).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from nodenet.backend import get_backend, prepare_backend
from nodenet.callbacks import Callback
from nodenet.data import Normaliser, load_mnist
from nodenet.graph import Layer, Model
from nodenet.optimizers import Adam


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("backend", choices=["inprocess", "pool"])
    p.add_argument("--data-dir", default=os.environ.get("NODENET_DATA", "data"))
    p.add_argument("--late", action="store_true", help="start the fork server at open")
    p.add_argument("--fit", action="store_true", help="one batch through model.fit")
    args = p.parse_args()
    workers = 2 if args.backend == "pool" else 0
    if args.fit:
        fit_one_batch(args.data_dir, workers)
        return
    if not args.late:
        prepare_backend(args.backend, workers)
    train, _ = load_mnist(os.path.join(args.data_dir, "mnist"))
    x = Normaliser.fit("zscore", train.x)(train.x).astype(np.float32)
    layers = [Layer(128, "relu"), Layer(64, "relu"), Layer(10, "softmax")]
    model = Model(784, "cross_entropy", layers).construct(seed=0)
    optimizer = Adam(average=0.995)
    with get_backend(args.backend)(
        model, x, model.targets(train.y), optimizer=optimizer, workers=workers, seed=0
    ) as engine:
        engine.train_step(np.arange(128), optimizer)


class OneBatch(Callback):
    """Stops training after its first batch."""

    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = True


def fit_one_batch(data_dir: str, workers: int) -> None:
    """Load MNIST and train the same net for one batch through ``model.fit``."""
    train, _ = load_mnist(os.path.join(data_dir, "mnist"))
    layers = [Layer(128, "relu"), Layer(64, "relu"), Layer(10, "softmax")]
    model = Model(784, "cross_entropy", layers).construct(seed=0)
    model.normaliser = Normaliser.fit("zscore", train.x)
    model.fit(train.x, train.y, epochs=1, workers=workers, callbacks=[OneBatch()])


if __name__ == "__main__":
    main()
