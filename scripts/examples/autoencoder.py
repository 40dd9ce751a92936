"""An autoencoder: 784-128-32-128-784 on MNIST, Sigmoid output, binary cross-entropy.

    python scripts/examples/autoencoder.py

The network learns to squeeze each image through 32 numbers and back; the targets are
the inputs themselves (pixels / 255). Reports the test reconstruction loss (binary
cross-entropy per image, summed over its 784 pixels) against the loss of the mean
training image, and the mean absolute pixel error, and draws originals over their
reconstructions.
"""

from __future__ import annotations

import numpy as np
from common import mnist, mnist_parser, report

from nodenet import EpochLines, Layer, Model, fit


def main(argv: list[str] | None = None) -> dict:
    p = mnist_parser(__doc__.splitlines()[0], "autoencoder")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    normaliser, train, test = mnist(args.data_dir, "scale")
    x, x_test = normaliser(train.x), normaliser(test.x)
    layers = [Layer(128, "relu"), Layer(32, "relu"), Layer(128, "relu"), Layer(784, "sigmoid")]
    model = Model(784, "binary_cross_entropy", layers).construct(args.seed, "lecun")
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
    loss = model.gradient(x_test, x_test)[0] / len(x_test)
    mean = np.clip(x.mean(axis=0), 1e-6, 1 - 1e-6)  # the best guess without a code
    mean_loss = -(x_test * np.log(mean) + (1 - x_test) * np.log1p(-mean)).sum(axis=1).mean()
    reconstructions = model.forward(x_test)
    from nodenet.plots import save_figure, subplots

    fig, axes = subplots(2, 10, figsize=(12, 2.8))
    for k in range(10):
        for row, images in enumerate((x_test, reconstructions)):
            axes[row, k].imshow(images[k].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            axes[row, k].axis("off")
    fig.suptitle(f"test images (top) and their reconstructions from 32 numbers (loss {loss:.1f})")
    save_figure(fig, f"{args.out}/autoencoder.png")
    return report(
        args.out,
        {
            "test_reconstruction_loss": float(loss),
            "mean_image_loss": float(mean_loss),
            "mean_abs_pixel_error": float(np.abs(reconstructions - x_test).mean()),
            "code_size": 32,
        },
    )


if __name__ == "__main__":
    main()
