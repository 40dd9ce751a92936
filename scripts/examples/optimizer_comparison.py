"""SGD, Momentum, Nesterov, RMSProp, Adagrad, Adam and AdamW on the same MNIST MLP.

    python scripts/examples/optimizer_comparison.py

784-128-64-10 from the same initial weights and batch order, one epoch each, every
optimizer at a learning rate suited to it. Writes optimizers.csv (final training
loss, test loss and accuracy) and optimizers.png (the batch loss curves).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import mnist, mnist_parser, report

from nodenet import EpochLines, Layer, Model, fit
from nodenet.files import atomic_write
from nodenet.optimizers import get_optimizer
from nodenet.predict import evaluate

LEARNING_RATES = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "rmsprop": 1e-3,
    "adagrad": 0.02,
    "adam": 1e-3,
    "adamw": 1e-3,
}


def main(argv: list[str] | None = None) -> dict:
    p = mnist_parser(__doc__.splitlines()[0], "optimizer_comparison")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images")
    args = p.parse_args(argv)
    normaliser, train, test = mnist(args.data_dir, "zscore")
    x, y = train.x[: args.limit], train.y[: args.limit]
    rows, curves = [], {}
    for name, lr in LEARNING_RATES.items():
        layers = [Layer(128, "relu"), Layer(64, "relu"), Layer(10, "softmax")]
        model = Model(784, "cross_entropy", layers).construct(args.seed)
        model.normaliser = normaliser
        history = fit(
            model,
            x,
            y,
            epochs=args.epochs,
            batch_size=128,
            optimizer=get_optimizer(name, lr=lr),
            validation=0.0,
            seed=args.seed,
            callbacks=[EpochLines()],
        )
        batch_loss = history.frame("batch")["loss"].to_numpy()
        curves[name] = batch_loss
        result = evaluate(model, test.x, test.y)
        rows.append(
            {
                "optimizer": name,
                "lr": lr,
                "first_batch_loss": float(batch_loss[0]),
                "final_train_loss": float(history.epochs[-1]["loss"]),
                "test_loss": result["loss"],
                "test_accuracy": result["accuracy"],
            }
        )
    table = pd.DataFrame(rows)
    text = table.to_csv(index=False).encode()
    atomic_write(f"{args.out}/optimizers.csv", lambda f: f.write(text))
    print(table.to_string(index=False))
    from nodenet.plots import plot_curves

    window = 20  # a running mean makes the curves readable
    smooth = {k: np.convolve(v, np.ones(window) / window, mode="valid") for k, v in curves.items()}
    plot_curves(
        smooth,
        f"{args.out}/optimizers.png",
        title=f"Batch loss, running mean of {window} batches",
        ylabel="cross-entropy",
    )
    return report(args.out, {r["optimizer"]: r["test_accuracy"] for r in rows})


if __name__ == "__main__":
    main()
