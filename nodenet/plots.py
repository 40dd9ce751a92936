"""Matplotlib figures of a training history and of predictions.

Figures are ``matplotlib.figure.Figure`` objects made without ``pyplot``: they need no
display and leave the user's chosen matplotlib backend alone (nothing is set at import).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .files import atomic_write
from .history import History


def subplots(nrows: int = 1, ncols: int = 1, figsize=(8, 5), **kwargs):
    """``(figure, axes)`` as ``pyplot.subplots`` gives them, on a figure that no
    ``pyplot`` window manager holds (so nothing needs closing)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write the figure atomically in the format its suffix names."""
    path = Path(path)
    return atomic_write(
        path,
        lambda f: fig.savefig(
            f, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight"
        ),
    )


def plot_history(history: History, path: str | os.PathLike, title: str = "") -> Path:
    """Write :func:`history_figure` to ``path``."""
    return save_figure(history_figure(history, title), path)


def history_figure(history: History, title: str = "") -> Figure:
    """The four-panel training figure: epoch loss (training and validation); batch
    loss and accuracy; validation loss and accuracy; batch vs validation accuracy."""
    epochs, batches = history.frame("epoch"), history.frame("batch")
    fig, axes = subplots(2, 2, figsize=(12, 8))
    ax = axes[0, 0]
    ax.plot(epochs["epoch"], epochs["loss"], "o-", label="training")
    if epochs["val_loss"].notna().any():
        ax.plot(epochs["epoch"], epochs["val_loss"], "s-", label="validation")
    ax.set(title="Loss per epoch", xlabel="epoch", ylabel="mean loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()

    step = np.arange(1, len(batches) + 1)
    ax = axes[0, 1]
    ax.plot(step, batches["loss"], color="tab:red", lw=0.7, label="loss")
    ax.set(title="Batch loss and accuracy", xlabel="batch", ylabel="loss")
    twin = ax.twinx()
    twin.plot(step, batches["accuracy"], color="tab:blue", lw=0.7, label="accuracy")
    twin.set_ylabel("accuracy")
    _twin_legend(ax, twin)

    val = _validation_points(batches, epochs)
    ax = axes[1, 0]
    ax.plot(val["x"], val["val_loss"], "o-", color="tab:red", label="loss")
    ax.set(title="Validation loss and accuracy", xlabel=val["label"], ylabel="loss")
    twin = ax.twinx()
    twin.plot(val["x"], val["val_accuracy"], "s-", color="tab:blue", label="accuracy")
    twin.set_ylabel("accuracy")
    if val["label"] == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _twin_legend(ax, twin)

    ax = axes[1, 1]
    ax.plot(step, batches["accuracy"], lw=0.7, alpha=0.7, label="batch accuracy")
    ax.plot(val["batch_x"], val["val_accuracy"], "o-", label="validation accuracy")
    ax.set(title="Batch vs validation accuracy", xlabel="batch", ylabel="accuracy")
    ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _twin_legend(ax, twin) -> None:
    """One legend for a panel whose two lines stand on two y axes (loss left, accuracy
    right), so the reader can tell which line is which."""
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="best")


def _validation_points(batches, epochs) -> dict:
    """Validation measurements against batch number: per batch when the run validated
    during epochs, else once per epoch (placed at the epoch's last batch)."""
    if "val_loss" in batches and batches["val_loss"].notna().any():
        rows = batches[batches["val_loss"].notna()]
        x = np.flatnonzero(batches["val_loss"].notna().to_numpy()) + 1
        return {
            "x": x,
            "batch_x": x,
            "label": "batch",
            "val_loss": rows["val_loss"],
            "val_accuracy": rows["val_accuracy"],
        }
    ends = batches.groupby("epoch").size().cumsum().reindex(epochs["epoch"]).to_numpy()
    return {
        "x": epochs["epoch"],
        "batch_x": ends,
        "label": "epoch",
        "val_loss": epochs["val_loss"],
        "val_accuracy": epochs["val_accuracy"],
    }


def plot_confusion(
    matrix: np.ndarray, path: str | os.PathLike, title: str = "Confusion matrix"
) -> Path:
    """Heat map of a (K, K) confusion matrix with the counts written in the cells."""
    k = matrix.shape[0]
    fig, ax = subplots(figsize=(1 + 0.6 * k, 0.8 + 0.6 * k))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > threshold else "black",
            )
    ax.set(
        title=title, xlabel="predicted class", ylabel="true class", xticks=range(k), yticks=range(k)
    )
    return save_figure(fig, path)


def plot_curves(
    curves: dict[str, np.ndarray],
    path: str | os.PathLike,
    title: str,
    xlabel: str = "batch",
    ylabel: str = "loss",
) -> Path:
    """Several named curves on one axis (e.g. the loss of each optimizer)."""
    fig, ax = subplots(figsize=(8, 5))
    for name, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, lw=0.9, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return save_figure(fig, path)
