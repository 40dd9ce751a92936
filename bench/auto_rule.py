"""The measurements behind ``workers="auto"`` on this machine.

    python bench/auto_rule.py                  # 3 alternating rounds (~7 min)
    python bench/auto_rule.py --rounds 1 --nets 784-128-64-10

For each net and batch size of the grid: the training pass ``choose_workers`` times
(``nodenet.backend.step_seconds``, in a process with the default BLAS threads, as in a
user's ``fit``), then the epoch time in this process (2 BLAS threads) and with 2 pool
workers, trainers alternating round by round, each in a fresh process (``bench/run.py
--child``). Medians over the rounds. Prints a Markdown table: the pass, the pool's
speed-up per epoch, and what the rule (:data:`nodenet.backend.POOL_STEP_S`) chooses;
written to ``bench/auto_results.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import machine, median, run_child  # noqa: E402

#: name -> (``bench/run.py``'s net, its MLP layer sizes, batch sizes, epochs per measurement)
GRID = {
    "784-128-64-10": ("mlp", [784, 128, 64, 10], [128, 1024], 2),
    "784-512-512-10": ("mlp", [784, 512, 512, 10], [64, 128, 256, 1024], 1),
    "lenet5": ("lenet5", [], [32, 128], 1),
}
TRAINERS = {"in-process": ("nodenet in-process", 2), "2 workers": ("nodenet 2 workers", 1)}


def pass_ms(net: str, sizes: list[int], batch: int) -> float:
    """Milliseconds of the pass ``choose_workers`` times, in a fresh process."""
    code = (
        "import json; from run import build_model; "
        "from nodenet.backend import step_seconds; "
        f"print(json.dumps(step_seconds(build_model({net!r}, {sizes!r}, 0), {batch}) * 1e3))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_args(row: str, net: str, sizes, batch: int, epochs: int, seed: int) -> list[str]:
    """``bench/run.py`` arguments of one trainer row on one net and batch size."""
    shape = ["--net", net] + (["--sizes", *map(str, sizes)] if sizes else [])
    return [
        "--child",
        row,
        "--epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--batch",
        str(batch),
        *shape,
    ]


def main(argv: list[str] | None = None) -> int:
    from nodenet.backend import POOL_STEP_S

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nets", nargs="+", default=list(GRID), choices=list(GRID))
    p.add_argument("--out", default=str(HERE / "auto_results.md"), help="the table's file")
    args = p.parse_args(argv)
    cases = [(net, batch) for net in args.nets for batch in GRID[net][2]]
    passes = {case: [] for case in cases}
    epochs = {(case, trainer): [] for case in cases for trainer in TRAINERS}
    for r in range(args.rounds):
        for net, batch in cases:
            kind, sizes, _, n_epochs = GRID[net]
            passes[net, batch].append(pass_ms(kind, sizes, batch))
            for trainer, (row, threads) in TRAINERS.items():
                print(f"round {r + 1}/{args.rounds}: {net} batch {batch} {trainer}", flush=True)
                result = run_child(child_args(row, kind, sizes, batch, n_epochs, r), threads)
                epochs[(net, batch), trainer].extend(result["epoch_seconds"])
    lines = [
        f"`python bench/auto_rule.py` on {datetime.date.today()}: {machine()}; "
        f"{args.rounds} alternating rounds, medians. The pass is what `choose_workers` "
        f"times (it keeps the first pass alone once that takes 10x the "
        f"{POOL_STEP_S * 1e3:g} ms threshold, as LeNet-5's does).",
        "",
        "| net | batch | pass (ms) | in-process s/epoch | 2 workers s/epoch "
        "| pool speed-up | auto chooses |",
        "|---|---|---|---|---|---|---|",
    ]
    for net, batch in cases:
        ms = median(passes[net, batch])
        alone, pool = (median(epochs[(net, batch), t]) for t in TRAINERS)
        choice = "2 workers" if ms >= POOL_STEP_S * 1e3 else "in-process"
        lines.append(
            f"| {net} | {batch} | {ms:.2f} | {alone:.3f} | {pool:.3f} | {alone / pool:.2f}x "
            f"| {choice} |"
        )
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
