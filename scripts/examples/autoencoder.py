"""An autoencoder: 784-128-32-128-784 on MNIST, Sigmoid output, binary cross-entropy.

    python scripts/examples/autoencoder.py

The network learns to squeeze each image through 32 numbers and back; the targets are
the inputs themselves (pixels / 255). Reports the test reconstruction loss (binary
cross-entropy per image, summed over its 784 pixels) against the loss of the mean
training image, and the mean absolute pixel error, and draws originals over their
reconstructions. ``conv_autoencoder.py`` does the same through convolutions.
"""

from __future__ import annotations

import numpy as np
from common import mnist, mnist_parser, report

from nodenet import EpochLines, Layer, Model, fit

CODE_SIZE = 32


def dense_model(seed: int) -> Model:
    """784-128-32-128-784, the code in the middle layer."""
    layers = [
        Layer(128, "relu"),
        Layer(CODE_SIZE, "relu"),
        Layer(128, "relu"),
        Layer(784, "sigmoid"),
    ]
    return Model(784, "binary_cross_entropy", layers).construct(seed, "lecun")


def train_and_score(model: Model, args, x: np.ndarray, x_test: np.ndarray) -> dict:
    """Train ``model`` to give back its inputs; its test reconstruction loss (per image)
    and mean absolute pixel error."""
    fit(
        model,
        x,
        x,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer="adam",
        lr=1e-3,
        validation=0.0,
        seed=args.seed,
        callbacks=[EpochLines()],
    )
    reconstructions = model.predict_proba(x_test)
    return {
        "test_reconstruction_loss": float(model.gradient(x_test, x_test)[0] / len(x_test)),
        "mean_abs_pixel_error": float(np.abs(reconstructions - x_test).mean()),
        "reconstructions": reconstructions,
    }


def run(argv: list[str] | None, name: str, make_model, extra: dict | None = None) -> dict:
    """The example's command line for the autoencoder ``make_model(seed)`` builds:
    train, score against the mean image, draw, write ``name``.png and the report."""
    p = mnist_parser(__doc__.splitlines()[0] if name == "autoencoder" else name, name)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    normaliser, train, test = mnist(args.data_dir, "scale")
    x, x_test = normaliser(train.x), normaliser(test.x)
    scores = train_and_score(make_model(args.seed), args, x, x_test)
    reconstructions = scores.pop("reconstructions")
    mean = np.clip(x.mean(axis=0), 1e-6, 1 - 1e-6)  # the best guess without a code
    mean_loss = -(x_test * np.log(mean) + (1 - x_test) * np.log1p(-mean)).sum(axis=1).mean()
    results = {**scores, "mean_image_loss": float(mean_loss), "code_size": CODE_SIZE}
    for label, other in (extra or {}).items():  # another autoencoder, same data and run
        other_scores = train_and_score(other(args.seed), args, x, x_test)
        results[f"{label}_test_reconstruction_loss"] = other_scores["test_reconstruction_loss"]
    from nodenet.plots import save_figure, subplots

    fig, axes = subplots(2, 10, figsize=(12, 2.8))
    for k in range(10):
        for row, images in enumerate((x_test, reconstructions)):
            axes[row, k].imshow(images[k].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            axes[row, k].axis("off")
    loss = results["test_reconstruction_loss"]
    fig.suptitle(
        f"test images (top) and their reconstructions from {CODE_SIZE} numbers (loss {loss:.1f})"
    )
    save_figure(fig, f"{args.out}/{name}.png")
    return report(args.out, results)


def main(argv: list[str] | None = None) -> dict:
    return run(argv, "autoencoder", dense_model)


if __name__ == "__main__":
    main()
