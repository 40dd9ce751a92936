"""``nodenet profile``: the worker pool's samples/s, utilisation and a per-step time
breakdown (``scripts/profile_workers.py`` is this command too; the ``nodenet`` command
finds it through the ``nodenet.commands`` entry points).

    nodenet profile                                           # 1..cores workers
    nodenet profile --batches 128 1024 --chunks auto 32 --hidden 512 512

Prints a table, names the bottleneck it finds, and writes profile.csv and profile.png
into --out.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from nodenet import Layer, Model
from nodenet.data import DataError, Normaliser, load_mnist

from .profiling import diagnose, measure, step_overhead_us


def main(argv: list[str] | None = None, prog: str = "nodenet profile") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workers", type=int, nargs="+", default=list(range(1, (os.cpu_count() or 1) + 1))
    )
    p.add_argument(
        "--chunks",
        nargs="+",
        default=["auto", "32"],
        help="samples per task; 'auto' splits each batch evenly",
    )
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512, 1024])
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    p.add_argument("--seconds", type=float, default=1.5, help="measuring time per setting")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="runs/profile")
    args = p.parse_args(argv)
    try:
        chunks = [None if c == "auto" else int(c) for c in args.chunks]
    except ValueError:
        p.error("--chunks takes 'auto' or whole numbers")
    try:
        train, _ = load_mnist(args.data_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    layers = [Layer(n, "relu") for n in args.hidden] + [Layer(10, "softmax")]
    model = Model(784, "cross_entropy", layers).construct(seed=0)
    x = Normaliser.fit("zscore", train.x)(train.x)
    t = model.targets(train.y)

    rows, overhead = [], {}
    for workers in args.workers:
        overhead[workers] = step_overhead_us(workers)
        print(
            f"{workers} worker(s): protocol overhead {overhead[workers]:.0f} us per step",
            flush=True,
        )
        for m in measure(model, x, t, workers, chunks, args.batches, args.seconds):
            rows.append({**m.row(), "overhead_us": overhead[workers]})
            print(
                f"  chunk {rows[-1]['chunk']}, batch {m.batch}: "
                f"{rows[-1]['samples_per_s']:,.0f} samples/s",
                flush=True,
            )
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "profile.csv", index=False)
    with pd.option_context("display.width", 160, "display.float_format", "{:,.3f}".format):
        print(f"\n{model}\n{table.to_string(index=False)}\n")
    for finding in diagnose(table, overhead):
        print(finding)
    plot(table, out / "profile.png")
    print(f"\n-> {out / 'profile.csv'}, {out / 'profile.png'}")
    return 0


def plot(table: pd.DataFrame, path: Path) -> None:
    from nodenet.plots import save_figure, subplots

    fig, (left, right) = subplots(1, 2, figsize=(13, 4.5))
    for (workers, chunk), rows in table.groupby(["workers", "chunk"], sort=False):
        left.plot(rows["batch"], rows["samples_per_s"], "o-", label=f"{workers} w, chunk {chunk}")
    left.set(xscale="log", xlabel="batch size", ylabel="samples / s", title="Throughput")
    left.legend(fontsize=8)
    labels = [f"{r.workers}w c{r.chunk} b{r.batch}" for r in table.itertuples()]
    bottom = None
    for column, colour in (
        ("utilisation", "tab:green"),
        ("idle_share", "tab:gray"),
        ("barrier_share", "tab:purple"),
    ):
        right.bar(
            labels,
            table[column],
            bottom=bottom,
            color=colour,
            label=column.replace("_share", "").replace("_", " "),
        )
        bottom = table[column] if bottom is None else bottom + table[column]
    right.set(ylabel="share of worker time", title="Where the workers' time goes")
    right.tick_params(axis="x", rotation=70, labelsize=7)
    right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
