"""``nodenet profile``: the worker pool's samples/s, utilisation and a per-step time
breakdown (``scripts/profile_workers.py`` is this command too; the ``nodenet`` command
finds it through the ``nodenet.commands`` entry points).

    nodenet profile                                           # 1..cores workers
    nodenet profile --batches 128 1024 --chunks auto 32 --hidden 512 512
    nodenet profile --arch lenet5 --batches 128

Prints a table (with ``x_one_core``: samples/s against one worker at the same batch;
for the most workers, ``x_ceiling``: against as many independent single-thread
processes training at once, and ``x_synced``: against the same processes meeting once a
step, the most a pool whose steps equal in-process ones can reach; ``faults_per_step``:
each worker's page faults a step; ``steal``: the share of the CPUs' time a hypervisor
took for other guests while the row was measured),
names the bottleneck it finds, says what Polyak averaging costs, and writes profile.csv
and profile.png into --out.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd

from nodenet import Layer, Model
from nodenet.architectures import read_architecture
from nodenet.cli.flags import add_flags
from nodenet.data import DataError, Normaliser, load_mnist
from nodenet.files import FileWriteError, check_writable
from nodenet.settings import Setting
from nodenet.training import DEFAULT_AVERAGE

from .profiling import (
    Steal,
    averaging_cost_us,
    ceiling_runs,
    diagnose,
    measure,
    step_overhead_us,
)

#: the flags of ``nodenet profile``, as rows of a settings table (checked the same way)
PROFILE_SETTINGS = {
    row.name: row
    for row in (
        Setting("workers", "ints", list(range(1, (os.cpu_count() or 1) + 1)), "worker counts to measure", "profile", low=1, metavar="N"),
        Setting("chunks", "ints", ["auto", 32], "samples per task; auto splits each batch evenly", "profile", low=1, also=("auto",), metavar="CHUNK"),
        Setting("batches", "ints", [128, 512, 1024], "batch sizes to measure", "profile", low=1, metavar="B"),
        Setting("hidden", "ints", [128, 64], "sizes of the hidden layers", "profile", low=1, metavar="N"),
        Setting("arch", "str", None, "an image network instead of --hidden: a name (lenet5) or a JSON file, as for nodenet train --arch", "profile", also=(None,), metavar="NAME|FILE"),
        Setting("seconds", "float", 1.5, "measuring time per setting", "profile", low=0, open_low=True),
        Setting("data_dir", "str", None, "folder holding mnist/ (default: $NODENET_DATA, else data/)", "profile", also=(None,)),
        Setting("out", "str", "runs/profile", "output folder for profile.csv and profile.png", "profile"),
    )
}  # fmt: skip


def main(argv: list[str] | None = None, prog: str = "nodenet profile") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description="The worker pool's samples/s, utilisation and a per-step time breakdown:\n"
        "prints a table, names the bottleneck it finds, and writes profile.csv and\n"
        "profile.png into --out.",
        epilog="examples:\n  nodenet profile\n"
        "  nodenet profile --batches 128 1024 --chunks auto 32 --hidden 512 512",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(p, PROFILE_SETTINGS)
    args = p.parse_args(argv)
    chunks = [None if c == "auto" else c for c in args.chunks]
    out = Path(args.out)
    try:
        check_writable(out)
    except FileWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        train, _ = load_mnist(args.data_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shape, hidden = 784, [Layer(n, "relu") for n in args.hidden]
    if args.arch is not None:
        try:
            shape, hidden = read_architecture(args.arch)
        except ValueError as exc:
            p.error(str(exc))
        if math.prod(shape) != 784:
            p.error(f"--arch {args.arch} takes {shape} images, not MNIST's (1, 28, 28)")
    model = Model(shape, "cross_entropy", [*hidden, Layer(10, "softmax")]).construct(seed=0)
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
    # against one core: the 1-worker row of the same chunk and batch, when measured
    one_core = table[table["workers"] == 1].set_index(["chunk", "batch"])["samples_per_s"]
    table["x_one_core"] = [
        row.samples_per_s / one_core.get((row.chunk, row.batch), math.nan)
        for row in table.itertuples()
    ]
    most = max(args.workers)
    for batch in args.batches:  # what the cores give here, in the same run
        rows_of = (table["batch"] == batch) & (table["workers"] == most)
        for column, meet, what in (
            ("x_ceiling", False, "ceiling"),
            ("x_synced", True, "synced ceiling"),
        ):
            with Steal() as steal:
                runs = ceiling_runs(model, batch, args.seconds, args.data_dir, most, meet)
            ceiling = sum(run["samples_per_s"] for run in runs)
            print(
                f"{what} at batch {batch}: {ceiling:,.0f} samples/s ({most} single-thread "
                f"processes at {max(batch // most, 1)} rows a step, "
                f"{'meeting once a step' if meet else 'independent'}; "
                f"steal {steal.share:.0%})",
                flush=True,
            )
            table.loc[rows_of, column] = table.loc[rows_of, "samples_per_s"] / ceiling
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "profile.csv", index=False)
    with pd.option_context("display.width", 160, "display.float_format", "{:,.3f}".format):
        print(f"\n{model}\n{table.to_string(index=False)}\n")
    for finding in diagnose(table, overhead):
        print(finding)
    print(averaging_line(model, table))
    plot(table, out / "profile.png")
    print(f"\n-> {out / 'profile.csv'}, {out / 'profile.png'}")
    return 0


def averaging_line(model: Model, table: pd.DataFrame) -> str:
    """What Polyak averaging at the command line's default decay adds to a step, as a
    share of the fastest measured step at the smallest batch (the case where it weighs
    most)."""
    average = DEFAULT_AVERAGE
    plain, averaged = averaging_cost_us(model, average)
    rows = table[table["batch"] == table["batch"].min()]
    step_ms = float(rows["ms_per_step"].min())
    share = (averaged - plain) / (step_ms * 1e3)
    return (
        f"Polyak averaging (--average {average}, the default): one Adam step over the "
        f"{model.parameter_count:,} parameters takes {plain:.0f} us, {averaged:.0f} us "
        f"averaged: {averaged - plain:+.0f} us, {share:.2%} of the {step_ms:.2f} ms step "
        f"at batch {int(rows['batch'].iloc[0])} (split across the workers in the pool)."
    )


def plot(table: pd.DataFrame, path: Path):
    """Throughput against batch size, and where the workers' time goes; writes ``path``
    and returns the figure."""
    from nodenet.plots import save_figure, subplots

    fig, (left, right) = subplots(1, 2, figsize=(13, 4.5))
    for (workers, chunk), rows in table.groupby(["workers", "chunk"], sort=False):
        left.plot(rows["batch"], rows["samples_per_s"], "o-", label=f"{workers} w, chunk {chunk}")
    left.set(xscale="log", xlabel="batch size", ylabel="samples / s", title="Throughput")
    batches = sorted(table["batch"].unique())
    left.set_xticks(batches, [str(b) for b in batches])  # every measured batch, 128 too
    left.minorticks_off()
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
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars
    fig.tight_layout()
    save_figure(fig, path)
    return fig
