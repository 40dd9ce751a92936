"""Linear and polynomial regression: an Identity output unit with SquaredError.

    python scripts/examples/regression.py

Linear: y = 2.5 x - 1 + noise. Polynomial: y = 0.5 x^3 - x^2 + 2 + noise, fitted as a
linear unit over the features (x, x^2, x^3). The unit's weights and bias are the
recovered coefficients; the figure shows the fitted curves against the truth.
"""

from __future__ import annotations

import numpy as np
from common import parser, report

from nodenet import EpochLines, Identity, Layer, Model, SquaredError, fit

TRUE_LINEAR = {"slope": 2.5, "intercept": -1.0}
TRUE_CUBIC = {"x3": 0.5, "x2": -1.0, "x1": 0.0, "intercept": 2.0}


def fit_linear_unit(features: np.ndarray, y: np.ndarray, seed: int, epochs: int) -> Model:
    """A single Identity unit over ``features`` (n, k), least squares by Adam."""
    model = Model(features.shape[1], SquaredError(), [Layer(1, Identity())])
    model.construct(seed, "xavier", dtype=np.float64)
    fit(
        model,
        features,
        y[:, None],
        epochs=epochs,
        batch_size=32,
        optimizer="adam",
        lr=0.05,
        validation=0.0,
        seed=seed,
        callbacks=[EpochLines(every=20)],
    )
    return model


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "regression")
    p.add_argument("--samples", type=int, default=400)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=60)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-2, 2, size=args.samples)
    noise = rng.normal(0, args.noise, size=(2, args.samples))
    y_lin = TRUE_LINEAR["slope"] * x + TRUE_LINEAR["intercept"] + noise[0]
    powers = np.stack([x, x**2, x**3], axis=1)
    y_cub = (
        powers @ [TRUE_CUBIC["x1"], TRUE_CUBIC["x2"], TRUE_CUBIC["x3"]]
        + TRUE_CUBIC["intercept"]
        + noise[1]
    )

    linear = fit_linear_unit(x[:, None], y_lin, args.seed, args.epochs)
    cubic = fit_linear_unit(powers, y_cub, args.seed, args.epochs)
    w_lin, w_cub = linear.layers[1].W[0], cubic.layers[1].W[0]
    results = {
        "linear": {"slope": float(w_lin[0]), "intercept": float(linear.layers[1].b[0])},
        "cubic": {
            "x1": float(w_cub[0]),
            "x2": float(w_cub[1]),
            "x3": float(w_cub[2]),
            "intercept": float(cubic.layers[1].b[0]),
        },
        "truth": {"linear": TRUE_LINEAR, "cubic": TRUE_CUBIC},
    }
    figure(x, y_lin, y_cub, linear, cubic, args.out)
    return report(args.out, results)


def figure(x, y_lin, y_cub, linear, cubic, out) -> None:
    from nodenet.plots import save_figure, subplots

    grid = np.linspace(-2, 2, 200)
    fig, axes = subplots(1, 2, figsize=(11, 4))
    panels = (
        (
            axes[0],
            y_lin,
            linear,
            grid[:, None],
            TRUE_LINEAR["slope"] * grid + TRUE_LINEAR["intercept"],
            "linear: y = 2.5x - 1",
        ),
        (
            axes[1],
            y_cub,
            cubic,
            np.stack([grid, grid**2, grid**3], axis=1),
            0.5 * grid**3 - grid**2 + 2,
            "cubic: y = 0.5x^3 - x^2 + 2",
        ),
    )
    for ax, y, model, features, truth, title in panels:
        ax.scatter(x, y, s=6, alpha=0.4, label="noisy samples")
        ax.plot(grid, truth, "k--", label="truth")
        ax.plot(grid, model.forward(features)[:, 0], "r", label="fitted")
        ax.set(title=title, xlabel="x", ylabel="y")
        ax.legend()
    save_figure(fig, f"{out}/regression.png")


if __name__ == "__main__":
    main()
