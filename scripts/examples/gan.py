"""A GAN built from two MLPs, trained against each other on MNIST with no autograd.

    python scripts/examples/gan.py

Generator 64 -> 256 -> 512 -> 784 (LeakyReLU, Sigmoid output), discriminator
784 -> 512 -> 256 -> 1 (LeakyReLU, Sigmoid), both Adam (lr 2e-4, beta1 0.5). Each
batch: the discriminator steps on binary cross-entropy of real images (target 1) and
generated ones (target 0); then the generator steps on the standard non-saturating loss
``-log D(G(z))``: ``D.input_gradient`` gives its gradient at the generated images, and
``G.backward`` carries it back through the generator. Draws a grid of generated digits
after every few epochs and reports the discriminator's accuracy on real vs generated
images and how different the generated images are from each other.
"""

from __future__ import annotations

import numpy as np
from common import mnist, mnist_parser, report

from nodenet import Adam, Layer, Model

NOISE = 64
REAL = 0.9  # one-sided label smoothing: the discriminator aims at 0.9 for real images
SIGMA = 0.1


def networks(seed: int) -> tuple[Model, Model]:
    leaky = {"name": "leaky_relu", "alpha": 0.2}
    generator = Model(
        NOISE,
        "binary_cross_entropy",
        [Layer(256, leaky), Layer(512, leaky), Layer(1024, leaky), Layer(784, "tanh")],
    ).construct(seed, "lecun")
    discriminator = Model(
        784, "binary_cross_entropy", [Layer(512, leaky), Layer(256, leaky), Layer(1, "sigmoid")]
    ).construct(seed + 1, "lecun")
    return generator, discriminator


def train_step(generator, discriminator, opt_g, opt_d, real, rng) -> None:
    """One discriminator step and one generator step on a batch of ``real`` images."""
    n = len(real)
    ones, zeros = np.full((n, 1), REAL), np.zeros((n, 1))
    fake = generator.forward(rng.normal(size=(n, NOISE)))
    # instance noise on what the discriminator sees keeps it from winning outright
    _, dW_real, db_real = discriminator.gradient(real + rng.normal(0, SIGMA, real.shape), ones)
    _, dW_fake, db_fake = discriminator.gradient(fake + rng.normal(0, SIGMA, fake.shape), zeros)
    opt_d.step(
        discriminator.weights,
        discriminator.biases,
        (dW_real + dW_fake) / (2 * n),
        (db_real + db_fake) / (2 * n),
    )
    d_fake = discriminator.input_gradient(fake, np.ones((n, 1)))  # d(-log D(G(z)))/d(G(z))
    dW, db, _ = generator.backward(d_fake)  # the generator still holds this batch's pass
    opt_g.step(generator.weights, generator.biases, dW / n, db / n)


def discriminator_accuracy(generator, discriminator, real, rng) -> float:
    """The share of ``real`` images called real and as many generated ones called fake."""
    fake = generator.forward(rng.normal(size=(len(real), NOISE)))
    right = (discriminator.forward(real) >= 0.5).sum() + (discriminator.forward(fake) < 0.5).sum()
    return float(right) / (2 * len(real))


def main(argv: list[str] | None = None) -> dict:
    p = mnist_parser(__doc__.splitlines()[0], "gan")
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=60000, help="training images used")
    p.add_argument("--show-every", type=int, default=2, help="epochs between grid rows")
    args = p.parse_args(argv)
    normaliser, train, test = mnist(args.data_dir, "scale")
    x = normaliser(train.x[: args.images]) * 2 - 1  # pixels in [-1, 1], as tanh gives
    rng = np.random.default_rng(args.seed)
    generator, discriminator = networks(args.seed)
    opt_g, opt_d = Adam(lr=2e-4, beta1=0.5), Adam(lr=2e-4, beta1=0.5)
    fixed_noise = rng.normal(size=(10, NOISE))
    rows, accuracies = [], []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x))
        for start in range(0, len(x) - args.batch_size + 1, args.batch_size):
            train_step(
                generator,
                discriminator,
                opt_g,
                opt_d,
                x[order[start : start + args.batch_size]],
                rng,
            )
        accuracies.append(
            discriminator_accuracy(generator, discriminator, normaliser(test.x[:1000]), rng)
        )
        print(
            f"epoch {epoch}: discriminator accuracy on real vs generated {accuracies[-1]:.3f}",
            flush=True,
        )
        if epoch % args.show_every == 0 or epoch == args.epochs:
            rows.append((epoch, generator.forward(fixed_noise)))
    samples = generator.forward(rng.normal(size=(500, NOISE)))
    spread = float(samples.std(axis=0).mean())  # 0 if every sample is the same image
    from nodenet.plots import save_figure, subplots

    fig, axes = subplots(len(rows), 10, figsize=(10, 1.1 * len(rows) + 0.6), squeeze=False)
    for r, (epoch, images) in enumerate(rows):
        for k in range(10):
            axes[r, k].imshow(images[k].reshape(28, 28), cmap="gray_r", vmin=-1, vmax=1)
            axes[r, k].set_xticks([])
            axes[r, k].set_yticks([])
        axes[r, 0].set_ylabel(f"epoch {epoch}", fontsize=8)
    fig.suptitle("generated digits, the same noise in every row")
    save_figure(fig, f"{args.out}/gan.png")
    return report(
        args.out,
        {
            "epochs": args.epochs,
            "discriminator_accuracy": accuracies[-1],
            "sample_spread": spread,
            "real_spread": float(x[:500].std(axis=0).mean()),
        },
    )


if __name__ == "__main__":
    main()
