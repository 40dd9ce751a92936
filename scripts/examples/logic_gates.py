"""AND, OR and XOR with a network of two hidden units.

    python scripts/examples/logic_gates.py

2-2-1: Tanh hidden units, a Sigmoid output, BinaryCrossEntropy, full-batch Adam. AND
and OR are linearly separable; XOR needs both hidden units, and with only two it has
local minima where two corners stay at 0.5: a run that ends in one starts again from
the next seed (``--restarts``), and the results say how many starts it took. The figure
is the network's output over [0, 1]^2 for each gate, with the four corners marked.
"""

from __future__ import annotations

import numpy as np
from common import parser, report

from nodenet import EpochLines, Layer, Model, fit

CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0]}


def train_gate(truth: list[int], seed: int, epochs: int) -> Model:
    model = Model(2, "binary_cross_entropy", [Layer(2, "tanh"), Layer(1, "sigmoid")])
    model.construct(seed, "xavier", dtype=np.float64)
    fit(
        model,
        CORNERS,
        np.array(truth, dtype=np.float64),
        epochs=epochs,
        batch_size=4,
        optimizer="adam",
        lr=0.05,
        validation=0.0,
        seed=seed,
        callbacks=[EpochLines(every=500)],
    )
    return model


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "logic_gates")
    p.add_argument("--epochs", type=int, default=1500)
    p.add_argument("--restarts", type=int, default=10, help="new starts allowed per gate")
    args = p.parse_args(argv)
    models, results = {}, {}
    for name, truth in GATES.items():
        for start in range(args.restarts + 1):
            model = train_gate(truth, args.seed + start, args.epochs)
            outputs = model.forward(CORNERS)[:, 0]
            correct = bool(np.all((outputs >= 0.5) == np.array(truth, dtype=bool)))
            if correct:
                break
        models[name] = model
        results[name] = {
            "outputs": [round(float(o), 4) for o in outputs],
            "correct": correct,
            "starts": start + 1,
        }
    figure(models, args.out)
    return report(args.out, results)


def figure(models: dict[str, Model], out) -> None:
    from nodenet.plots import save_figure, subplots

    grid = np.linspace(0, 1, 101)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    fig, axes = subplots(1, len(models), figsize=(4.2 * len(models), 3.8))
    for ax, (name, model) in zip(axes, models.items(), strict=True):
        z = model.forward(points)[:, 0].reshape(xx.shape)
        filled = ax.contourf(xx, yy, z, levels=np.linspace(0, 1, 11), cmap="coolwarm")
        ax.contour(xx, yy, z, levels=[0.5], colors="black", linewidths=1.5)
        truth = np.array(GATES[name])
        ax.scatter(
            CORNERS[:, 0],
            CORNERS[:, 1],
            c=truth,
            cmap="coolwarm",
            edgecolors="black",
            s=140,
            vmin=0,
            vmax=1,
            clip_on=False,
            zorder=3,
        )  # whole circles at the edges
        ax.set(title=f"{name} (black line: output 0.5)", xlabel="x1", ylabel="x2")
    fig.colorbar(filled, ax=axes, fraction=0.02)
    save_figure(fig, f"{out}/logic_gates.png")


if __name__ == "__main__":
    main()
