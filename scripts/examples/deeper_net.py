"""A deeper net: 784-512-200-50-10 (515,080 parameters) on MNIST with the worker pool.

    python scripts/examples/deeper_net.py --workers 2

ReLU hidden layers, Softmax output, Adam; at this size the pool's workers also split
the optimizer step. Reports the test accuracy and draws the training figure.
"""

from __future__ import annotations

import os

from common import mnist, mnist_parser, report

from nodenet import EpochLines, Layer, Model, fit
from nodenet.predict import evaluate


def main(argv: list[str] | None = None) -> dict:
    p = mnist_parser(__doc__.splitlines()[0], "deeper_net")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    normaliser, train, test = mnist(args.data_dir, "scale")  # 97.7% vs 97.5% for z-score
    layers = [Layer(512, "relu"), Layer(200, "relu"), Layer(50, "relu"), Layer(10, "softmax")]
    model = Model(784, "cross_entropy", layers).construct(args.seed, "lecun")
    model.normaliser = normaliser
    history = fit(
        model,
        train.x,
        train.y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer="adam",
        lr=1e-3,
        validation=0.1,
        workers=args.workers,
        seed=args.seed,
        callbacks=[EpochLines()],
    )
    result = evaluate(model, test.x, test.y)
    epochs = history.frame("epoch")
    from nodenet.plots import plot_history

    plot_history(history, f"{args.out}/deeper_net.png", title=repr(model))
    return report(
        args.out,
        {
            "parameters": model.parameter_count,
            "test_accuracy": result["accuracy"],
            "test_loss": result["loss"],
            "workers": args.workers,
            "samples_per_s": float(epochs["samples_per_s"].median()),
        },
    )


if __name__ == "__main__":
    main()
