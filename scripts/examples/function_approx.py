"""Function approximation: f(x) = x^2 + x - sqrt(x) on [0, 4].

    python scripts/examples/function_approx.py

A 1-32-32-1 Tanh network with an Identity output and SquaredError, fitted to noiseless
samples with Adam and a step-decayed learning rate; reports the root-mean-square and
the largest error on a fine grid. The largest error sits at x = 0, where sqrt(x) has
an infinite slope that no smooth network follows; away from it (x >= 0.05) the error
is reported too. The figure shows f, the fit, and the error.
"""

from __future__ import annotations

import numpy as np
from common import parser, report

from nodenet import EpochLines, Layer, Model, StepDecay, fit


def f(x: np.ndarray) -> np.ndarray:
    return x**2 + x - np.sqrt(x)


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "function_approx")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=400)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(0, 4, size=(args.samples, 1))
    model = Model(1, "squared_error", [Layer(32, "tanh"), Layer(32, "tanh"), Layer(1, "identity")])
    model.construct(args.seed, "xavier", dtype=np.float64)
    # inputs scaled to [-1, 1] and targets to about [-1, 1]: what Tanh units work best on
    scale = 10.0
    history = fit(
        model,
        x / 2 - 1,
        f(x) / scale,
        epochs=args.epochs,
        batch_size=64,
        optimizer="adam",
        lr=3e-3,
        validation=0.0,
        seed=args.seed,
        callbacks=[StepDecay(0.5, every=max(args.epochs // 4, 1)), EpochLines(every=100)],
    )
    grid = np.linspace(0, 4, 1001)[:, None]
    fitted = model.forward(grid / 2 - 1)[:, 0] * scale
    error = fitted - f(grid[:, 0])
    results = {
        "rms_error": float(np.sqrt(np.mean(error**2))),
        "max_abs_error": float(np.abs(error).max()),
        "max_abs_error_at_x": float(grid[np.abs(error).argmax(), 0]),
        "max_abs_error_from_0.05": float(np.abs(error[grid[:, 0] >= 0.05]).max()),
        "range_of_f": [float(f(grid).min()), float(f(grid).max())],
        "final_training_loss": float(history.epochs[-1]["loss"]) * scale**2,
    }
    figure(grid[:, 0], fitted, error, args.out)
    return report(args.out, results)


def figure(grid, fitted, error, out) -> None:
    from nodenet.plots import save_figure, subplots

    fig, (top, bottom) = subplots(
        2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(grid, f(grid), "k--", label="f(x) = x^2 + x - sqrt(x)")
    top.plot(grid, fitted, "r", alpha=0.8, label="1-32-32-1 tanh network")
    top.set(ylabel="y", title="Function approximation")
    top.legend()
    bottom.plot(grid, error)
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set(xlabel="x", ylabel="error")
    save_figure(fig, f"{out}/function_approx.png")


if __name__ == "__main__":
    main()
