"""A convolutional autoencoder on MNIST: 32 numbers, as the dense one, through images.

    python scripts/examples/conv_autoencoder.py

Down: Conv2D 32 and 16 filters of 3x3 at stride 2 (28 -> 14 -> 7), then Conv2D 2 filters
of 4x4 (7 -> 4) without activation: the code is 2 x 4 x 4 = 32 numbers. Up:
Conv2DTranspose 16 filters of 4x4 (4 -> 7), 32 filters of 3x3 at stride 2 (7 -> 14), and
one Sigmoid filter of 3x3 at stride 2 (14 -> 28). Same loss, optimizer and epochs as
``autoencoder.py``, which it also trains on the same run to report both test
reconstruction losses (``dense_test_reconstruction_loss``).
"""

from __future__ import annotations

from autoencoder import dense_model, run

from nodenet import Conv2D, Conv2DTranspose, Flatten, Model


def conv_model(seed: int) -> Model:
    """The encoder and decoder of the module docstring."""
    layers = [
        Conv2D(32, 3, stride=2, padding="same", activation="relu"),
        Conv2D(16, 3, stride=2, padding="same", activation="relu"),
        Conv2D(2, 4, activation="identity"),  # the code: (2, 4, 4), unbounded
        Conv2DTranspose(16, 4, activation="relu"),
        Conv2DTranspose(32, 3, stride=2, padding="same", activation="relu"),
        Conv2DTranspose(1, 3, stride=2, padding="same", activation="sigmoid"),
        Flatten(),
    ]
    return Model((1, 28, 28), "binary_cross_entropy", layers).construct(seed, "lecun")


def main(argv: list[str] | None = None) -> dict:
    return run(argv, "conv_autoencoder", conv_model, extra={"dense": dense_model})


if __name__ == "__main__":
    main()
