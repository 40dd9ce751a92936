"""``make bench``: nodenet against PyTorch CPU and a plain NumPy loop, in one run.

    python bench/run.py                 # 2 rounds x 5 epochs of every trainer (~5 min)
    python bench/run.py --rounds 1 --epochs 2 --no-torch

Every trainer runs in a fresh subprocess (its own BLAS/OpenMP thread settings, its own
memory peak), the trainers alternate round by round, and each figure is the median
over all its epochs. Configuration of the main table: 784-128-64-10, ReLU/Softmax,
Adam 1e-3, batch 128, float32, full 60,000-image epochs, z-scored pixels; the time is
that of the shuffle + mini-batch loop. The steal column is the share of the CPUs' time
the hypervisor took for other guests while the trainer ran (median over the rounds; on
the shared 2-vCPU hosts it rises when both vCPUs are busy, and it costs a pool, whose
workers meet every step, more than independent processes). Writes bench/results.csv,
bench/results.md and bench/results.png.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

from nodenet.callbacks import Callback
from nodenet.workers.profiling import Meeting, Steal, run_together

HERE = Path(__file__).resolve().parent

#: name -> how to run it; "threads" sets the BLAS / OpenMP / torch threads of the run
MAIN = {
    "nodenet in-process": {"kind": "nodenet", "workers": 0, "threads": 2},
    "nodenet in-process 1 thread": {"kind": "nodenet", "workers": 0, "threads": 1},
    "nodenet 1 worker": {"kind": "nodenet", "workers": 1, "threads": 1},
    "nodenet 2 workers": {"kind": "nodenet", "workers": 2, "threads": 1},
    "pytorch 2 threads": {"kind": "torch", "threads": 2},
    "pytorch 1 thread": {"kind": "torch", "threads": 1},
    "numpy 2 threads": {"kind": "numpy", "threads": 2},
    "numpy 1 thread": {"kind": "numpy", "threads": 1},
}
#: the pool's scaling: batch 1024 on 784-512-512-10
SCALING = {
    "nodenet in-process (1024)": {"kind": "nodenet", "workers": 0, "threads": 2},
    "nodenet 1 worker (1024)": {"kind": "nodenet", "workers": 1, "threads": 1},
    "nodenet 2 workers (1024)": {"kind": "nodenet", "workers": 2, "threads": 1},
}
SCALING_SIZES = [784, 512, 512, 10]
#: LeNet-5 (nodenet.architectures.LENET5) at batch 128: a compute-heavy net for the
#: pool, and against PyTorch's own convolutions
CONV = {
    "lenet5 nodenet in-process 1 thread": {"kind": "nodenet", "workers": 0, "threads": 1},
    "lenet5 pytorch 1 thread": {"kind": "torch", "threads": 1},
    "lenet5 nodenet in-process": {"kind": "nodenet", "workers": 0, "threads": 2},
    "lenet5 pytorch 2 threads": {"kind": "torch", "threads": 2},
    "lenet5 nodenet 1 worker": {"kind": "nodenet", "workers": 1, "threads": 1},
    "lenet5 nodenet 2 workers": {"kind": "nodenet", "workers": 2, "threads": 1},
}
#: the pool's ceiling on this machine: two independent single-thread processes, each
#: training the same net at half the pool's batch at the same time, no communication;
#: their samples/s added up is the most any two-worker design can reach here
CEILING = {
    "ceiling: 2 processes": {"kind": "nodenet", "workers": 0, "threads": 1, "half_of": 128},
    "ceiling: 2 processes (1024)": {"kind": "nodenet", "workers": 0, "threads": 1, "half_of": 1024},
    "lenet5 ceiling: 2 processes": {"kind": "nodenet", "workers": 0, "threads": 1, "half_of": 128},
    # the same two processes meeting once a step (a barrier, no data): the most a pool
    # whose steps equal in-process ones can reach here
    "synced ceiling: 2 processes": {
        "kind": "nodenet",
        "workers": 0,
        "threads": 1,
        "half_of": 128,
        "meet": True,
    },
    "synced ceiling: 2 processes (1024)": {
        "kind": "nodenet",
        "workers": 0,
        "threads": 1,
        "half_of": 1024,
        "meet": True,
    },
}


# ------------------------------------------------------------------ child side
class PeakMemory:
    """Samples the proportional set size (PSS) of this process and all its descendants
    every 20 ms: shared memory counts once, however many workers map it."""

    def __init__(self):
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree(pid: int) -> list[int]:
        pids, todo = [], [pid]
        while todo:
            p = todo.pop()
            pids.append(p)
            with contextlib.suppress(OSError):  # a process may exit while it is read
                for task in Path(f"/proc/{p}/task").glob("*/children"):
                    todo.extend(int(c) for c in task.read_text().split())
        return pids

    def sample(self) -> int:
        total = 0
        for pid in self._tree(os.getpid()):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            except OSError:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            # Two back-to-back readings, the smaller kept: while a worker is being
            # spawned (between fork and exec) it shares all of the parent's pages, and
            # reading parent and child at different instants can count them twice.
            self.peak_kib = max(self.peak_kib, min(self.sample(), self.sample()))
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def child(
    spec: dict,
    epochs: int,
    batch: int,
    sizes: list[int],
    seed: int,
    memory: bool = False,
    net: str = "mlp",
    meeting: tuple | None = None,
) -> dict:
    """Run one trainer in this process and return its measurements. With ``memory`` only
    the peak memory is measured: the PSS sampler reads /proc/<pid>/smaps_rollup, which
    walks each worker's page tables under its mmap lock and slowed 2 workers by 30%.
    ``meeting``: ``(where, index)`` of a synced ceiling's shared counters, met after every
    step (every process of it takes the same steps)."""

    from nodenet.data import Normaliser, load_mnist

    train, test = load_mnist()
    normaliser = Normaliser.fit("zscore", train.x)
    x, x_test = normaliser(train.x), normaliser(test.x)
    seconds: list[float] = []
    with PeakMemory() if memory else contextlib.nullcontext() as sampler:
        if spec["kind"] == "nodenet":
            from nodenet import fit
            from nodenet.predict import evaluate

            model = build_model(net, sizes, seed)
            meet = [] if meeting is None else [MeetEveryStep(*meeting)]
            history = fit(
                model,
                x,
                train.y,
                epochs=epochs,
                batch_size=batch,
                optimizer="adam",
                lr=1e-3,
                average=0,  # as the PyTorch and NumPy loops: no weight averaging
                validation=0.0,
                workers=spec["workers"],
                seed=seed,
                callbacks=meet,
            )
            seconds = [e["seconds"] for e in history.epochs]
            accuracy = evaluate(model, x_test, test.y)["accuracy"]
        elif spec["kind"] == "torch":
            import torch_mlp

            accuracy = torch_mlp.train(
                x,
                train.y,
                x_test,
                test.y,
                epochs,
                batch,
                seed,
                seconds.append,
                spec["threads"],
                net,
            )
        else:
            import numpy_mlp

            accuracy = numpy_mlp.train(
                x, train.y, x_test, test.y, epochs, batch, seed, seconds.append
            )
    return {
        "epoch_seconds": seconds,
        "accuracy": accuracy,
        "peak_mib": sampler.peak_kib / 1024 if memory else None,
        "samples": len(x),
    }


class MeetEveryStep(Callback):
    """Meets the other processes of a synced ceiling after every training step."""

    def __init__(self, where: str, index: int):
        self.meeting = Meeting.join(where, index)

    def on_train_batch_end(self, batch, logs=None):
        self.meeting.meet()

    def on_train_end(self, logs=None):
        self.meeting.leave()


def build_model(net: str, sizes: list[int], seed: int):
    """The nodenet model of a bench row: LeNet-5 (``net="lenet5"``) or the ReLU MLP of
    ``sizes`` with a softmax output, LeCun-initialised with ``seed``."""
    from nodenet import Layer, Model

    if net == "lenet5":
        from nodenet.architectures import read_architecture

        shape, hidden = read_architecture("lenet5")
        model = Model(shape, "cross_entropy", [*hidden, Layer(10, "softmax")])
    else:
        layers = [Layer(n, "relu") for n in sizes[1:-1]] + [Layer(sizes[-1], "softmax")]
        model = Model(sizes[0], "cross_entropy", layers)
    return model.construct(seed=seed, init="lecun")


def child_extras() -> dict:
    """The pool's per-step overhead and the node-by-node pass."""
    from node_by_node import seconds_per_sample

    from nodenet import Layer, Model
    from nodenet.data import Normaliser, load_mnist
    from nodenet.workers.profiling import step_overhead_us

    result = {f"overhead_us_{w}": step_overhead_us(w, steps=2000) for w in (1, 2)}
    train, _ = load_mnist()
    model = Model(
        784, "cross_entropy", [Layer(128, "relu"), Layer(64, "relu"), Layer(10, "softmax")]
    ).construct(seed=0)
    xs = Normaliser.fit("zscore", train.x)(train.x[:10])
    result["node_seconds_per_sample"] = seconds_per_sample(model, xs, train.y[:10])
    return result


# ----------------------------------------------------------------- parent side
def run_child(args: list[str], threads: int, copies: int = 1, meet: bool = False) -> dict:
    """Run the trainer ``args`` names in ``copies`` processes at once; one copy's result,
    or for several the combined one: their samples/s added up, as the seconds one epoch
    of samples takes them together. ``meet``: the copies meet after every step."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    with Meeting.arranged(copies) if meet else contextlib.nullcontext() as meeting:
        commands = [
            [
                sys.executable,
                __file__,
                *args,
                *(["--meeting", meeting, "--index", str(i)] if meeting else []),
            ]
            for i in range(copies)
        ]
        with Steal() as steal:
            results = run_together(commands, env, timeout=3600)
    if copies == 1:
        return {**results[0], "steal": steal.share}
    rate = sum(r["samples"] / median(r["epoch_seconds"]) for r in results)
    return {
        "epoch_seconds": [results[0]["samples"] / rate],
        "samples": results[0]["samples"],
        "accuracy": sum(r["accuracy"] for r in results) / copies,
        "peak_mib": None,
        "steal": steal.share,
    }


def machine() -> str:
    import numpy as np

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    blas = "unknown BLAS"
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{info['name']} {info.get('version', '')}".strip()
    except Exception:
        pass
    try:
        import torch

        torch_version = f", torch {torch.__version__}"
    except ImportError:
        torch_version = ""
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
        f"numpy {np.__version__} ({blas}){torch_version}"
    )


def conv_summary(by_name) -> str:
    """The LeNet-5 rows in one sentence: against PyTorch, the pool's scaling, and the
    most two cores give this net here (the ceiling, against one worker)."""
    get = lambda name: by_name.get(name, float("nan"))  # noqa: E731
    return (
        f"LeNet-5 epoch time: nodenet in-process = "
        f"{get('lenet5 nodenet in-process 1 thread') / get('lenet5 pytorch 1 thread'):.2f}x "
        f"PyTorch's with 1 thread, "
        f"{get('lenet5 nodenet in-process') / get('lenet5 pytorch 2 threads'):.2f}x with 2; "
        f"2 workers = {get('lenet5 nodenet 1 worker') / get('lenet5 nodenet 2 workers'):.2f}x "
        f"the samples/s of 1 worker, where two independent processes at batch 64 reach "
        f"{get('lenet5 nodenet 1 worker') / get('lenet5 ceiling: 2 processes'):.2f}x "
        f"(2 workers = "
        f"{get('lenet5 ceiling: 2 processes') / get('lenet5 nodenet 2 workers'):.2f}x "
        "the ceiling)."
    )


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of every trainer")
    p.add_argument("--epochs", type=int, default=5, help="epochs per trainer and round")
    p.add_argument("--scaling-epochs", type=int, default=2, help="epochs of the batch-1024 runs")
    p.add_argument("--conv-epochs", type=int, default=1, help="epochs of the LeNet-5 runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="leave out the PyTorch rows")
    p.add_argument("--out", default=str(HERE), help="where results.* go")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--net", default="mlp", help=argparse.SUPPRESS)
    p.add_argument("--meeting", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument(
        "--sizes", type=int, nargs="+", default=[784, 128, 64, 10], help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.extras:
        print(json.dumps(child_extras()))
        return 0
    if args.child:
        spec = {**MAIN, **SCALING, **CEILING, **CONV}[args.child]
        meeting = None if args.meeting is None else (args.meeting, args.index)
        result = child(
            spec, args.epochs, args.batch, args.sizes, args.seed, args.memory, args.net, meeting
        )
        print(json.dumps(result))
        return 0

    import pandas as pd

    specs = {
        name: spec
        for name, spec in {**MAIN, **SCALING, **CEILING, **CONV}.items()
        if not (args.no_torch and spec["kind"] == "torch")
    }
    big = {*SCALING, "ceiling: 2 processes (1024)", "synced ceiling: 2 processes (1024)"}

    def child_args(name: str, epochs: int, seed: int) -> list[str]:
        batch = specs[name].get("half_of", 2048) // 2 if name in CEILING else None
        shape = ["--sizes", *map(str, SCALING_SIZES)] if name in big else []
        if name in SCALING:
            batch = 1024
        shape += ["--batch", str(batch)] if batch else []
        shape += ["--net", "lenet5"] if name.startswith("lenet5") else []
        return ["--child", name, "--epochs", str(epochs), "--seed", str(seed), *shape]

    runs: dict[str, list[dict]] = {name: [] for name in specs}
    started = time.perf_counter()
    for r in range(args.rounds):
        for name, spec in specs.items():
            print(f"round {r + 1}/{args.rounds}: {name}", flush=True)
            epochs = (
                args.scaling_epochs
                if name in big
                else args.conv_epochs
                if name.startswith("lenet5")
                else args.epochs
            )
            copies = 2 if name in CEILING else 1
            result = run_child(
                child_args(name, epochs, args.seed + r),
                spec["threads"],
                copies,
                spec.get("meet", False),
            )
            runs[name].append(result)
    peaks = {name: None for name in CEILING}
    for name, spec in specs.items():
        if name in CEILING:
            continue
        print(f"peak memory: {name}", flush=True)
        result = run_child([*child_args(name, 1, args.seed), "--memory"], spec["threads"])
        peaks[name] = result["peak_mib"]
    print("pool overhead and the node-by-node pass", flush=True)
    extras = run_child(["--extras"], 2)

    rows = []
    for name, results in runs.items():
        spec = specs[name]
        seconds = [s for result in results for s in result["epoch_seconds"]]
        epoch_s = median(seconds)
        rows.append(
            {
                "table": "batch 1024, 784-512-512-10"
                if name in big
                else "LeNet-5, batch 128"
                if name.startswith("lenet5")
                else "batch 128, 784-128-64-10",
                "trainer": name,
                "threads": f"2 processes x 1, batch {spec['half_of'] // 2} each"
                if name in CEILING
                else spec["threads"]
                if spec["kind"] != "nodenet" or not spec.get("workers")
                else f"{spec['workers']} workers x 1",
                "seconds_per_epoch": epoch_s,
                "samples_per_s": results[0]["samples"] / epoch_s,
                "peak_mib": peaks[name],
                "test_accuracy": sum(result["accuracy"] for result in results) / len(results),
                "epochs_measured": len(seconds),
                "steal": median([result["steal"] for result in results]),
            }
        )
    frame = pd.DataFrame(rows)
    main_rows = frame["table"].str.startswith("batch 128")
    by_name = frame.set_index("trainer")["seconds_per_epoch"]
    conv_rows = frame["table"].str.startswith("LeNet")
    for rows_of, ref, column in (
        (main_rows, "pytorch 2 threads", "x_pytorch_2_threads"),
        (main_rows, "numpy 2 threads", "x_numpy_2_threads"),
        (conv_rows, "lenet5 pytorch 2 threads", "x_pytorch_2_threads"),
    ):
        if ref in by_name:
            frame.loc[rows_of, column] = frame.loc[rows_of, "seconds_per_epoch"] / by_name[ref]
    for table, ceiling in (
        ("batch 128", "ceiling: 2 processes"),
        ("batch 1024", "ceiling: 2 processes (1024)"),
        ("LeNet", "lenet5 ceiling: 2 processes"),
    ):  # samples/s as a share of what two independent processes reach together
        rows_of = frame["table"].str.startswith(table) & frame["trainer"].str.contains("nodenet")
        frame.loc[rows_of, "x_ceiling"] = by_name[ceiling] / frame.loc[rows_of, "seconds_per_epoch"]
        if f"synced {ceiling}" in by_name:  # and of what they reach meeting once a step
            synced = by_name[f"synced {ceiling}"]
            frame.loc[rows_of, "x_synced"] = synced / frame.loc[rows_of, "seconds_per_epoch"]
    ours = frame["trainer"].str.startswith(
        ("nodenet", "ceiling", "synced ceiling", "lenet5 nodenet", "lenet5 ceiling")
    )
    for table, one_core in (
        ("batch 128", "nodenet 1 worker"),
        ("batch 1024", "nodenet 1 worker (1024)"),
        ("LeNet", "lenet5 nodenet 1 worker"),
    ):  # samples/s against one core: a single-thread worker at the same batch
        rows_of = frame["table"].str.startswith(table) & ours
        if one_core in by_name:
            frame.loc[rows_of, "x_one_core"] = (
                by_name[one_core] / frame.loc[rows_of, "seconds_per_epoch"]
            )
    node_s = extras["node_seconds_per_sample"]
    frame = pd.concat(
        [
            frame,
            pd.DataFrame(
                [
                    {
                        "table": "batch 128, 784-128-64-10",
                        "trainer": "node by node, sample by sample",
                        "threads": 1,
                        "seconds_per_epoch": node_s * 60000,
                        "samples_per_s": 1 / node_s,
                        "epochs_measured": 0,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    one, two = (by_name.get(f"nodenet {k} (1024)") for k in ("1 worker", "2 workers"))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results.csv", index=False)
    stamp = datetime.date.today().isoformat()
    lines = [
        f"`make bench` on {stamp}: {machine()}; {args.rounds} rounds x {args.epochs} epochs "
        f"(batch 1024: x {args.scaling_epochs}), medians; {time.perf_counter() - started:.0f} s.",
        "",
        "| trainer | threads | s / epoch | samples / s | x PyTorch 2 thr | x NumPy 2 thr "
        "| x one core | x ceiling | x synced | peak MiB | test acc | steal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(row, key, spec):
        value = row.get(key)
        return "" if value is None or value != value else format(value, spec)

    for row in frame.to_dict("records"):
        lines.append(
            f"| {row['trainer']} | {row['threads']} | {fmt(row, 'seconds_per_epoch', '.3f')} "
            f"| {fmt(row, 'samples_per_s', ',.0f')} | {fmt(row, 'x_pytorch_2_threads', '.2f')} "
            f"| {fmt(row, 'x_numpy_2_threads', '.2f')} | {fmt(row, 'x_one_core', '.2f')} "
            f"| {fmt(row, 'x_ceiling', '.2f')} | {fmt(row, 'x_synced', '.2f')} "
            f"| {fmt(row, 'peak_mib', '.0f')} "
            f"| {fmt(row, 'test_accuracy', '.4f')} | {fmt(row, 'steal', '.0%')} |"
        )
    pool_2 = by_name.get("nodenet 2 workers")
    ratio = lambda name: by_name[name] / pool_2 if pool_2 and name in by_name else float("nan")  # noqa: E731
    lines += [
        "",
        f"Pool at batch 128: 2 workers = {ratio('nodenet in-process 1 thread'):.2f}x the "
        f"samples/s of in-process with 1 BLAS thread, "
        f"{ratio('nodenet in-process'):.2f}x in-process with 2, "
        f"{ratio('pytorch 2 threads'):.2f}x PyTorch with 2; 1 worker = "
        f"{by_name.get('nodenet in-process 1 thread', 0) / by_name.get('nodenet 1 worker', 1):.2f}x "
        "in-process with 1 thread.",
        f"Pool scaling at batch 1024: 2 workers = {two and one / two:.2f}x the samples/s "
        f"of 1 worker, {two and by_name.get('nodenet in-process (1024)', 0) / two:.2f}x "
        "in-process with 2 threads. Per-step overhead of the pool (tiny model): "
        f"{extras['overhead_us_1']:.0f} us with 1 worker, {extras['overhead_us_2']:.0f} us "
        f"with 2. Node by node: {node_s:.2f} s per sample.",
        f"Against the ceiling (two independent single-thread processes at half the batch, "
        f"run at once): 2 workers = {by_name['ceiling: 2 processes'] / pool_2:.2f}x the "
        f"ceiling at batch 128 and {two and by_name['ceiling: 2 processes (1024)'] / two:.2f}x "
        f"at batch 1024; the ceiling is {ratio_ceiling(by_name):.2f}x one process alone "
        "(in-process, 1 thread) at batch 128. Against the synced ceiling (the same "
        "processes meeting once a step, the most a pool whose steps equal in-process ones "
        f"can reach): {by_name['synced ceiling: 2 processes'] / pool_2:.2f}x at batch 128 "
        f"and {two and by_name['synced ceiling: 2 processes (1024)'] / two:.2f}x at 1024; "
        "the synced ceiling is "
        f"{by_name['ceiling: 2 processes'] / by_name['synced ceiling: 2 processes']:.2f}x "
        f"the ceiling at batch 128 and {by_name['ceiling: 2 processes (1024)'] / by_name['synced ceiling: 2 processes (1024)']:.2f}x at 1024.",
        conv_summary(by_name),
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(frame, out / "results.png")
    return 0


def ratio_ceiling(by_name) -> float:
    """How much two independent processes give over one: the machine's real 2x."""
    return by_name["nodenet in-process 1 thread"] / by_name["ceiling: 2 processes"]


def plot(frame, path: Path) -> None:
    from nodenet.plots import save_figure, subplots

    shown = frame[frame["epochs_measured"] > 0]
    fig, ax = subplots(figsize=(9, 0.45 * len(shown) + 1.5))
    colours = ["tab:blue" if t.startswith("nodenet") else "tab:gray" for t in shown["trainer"]]
    labels = [
        f"{t} [{b.split(',')[0]}]" for t, b in zip(shown["trainer"], shown["table"], strict=True)
    ]
    ax.barh(labels, shown["samples_per_s"], color=colours)
    ax.invert_yaxis()
    ax.set(
        xlabel="training samples per second (higher is better)",
        title="nodenet vs PyTorch CPU and plain NumPy (same machine, same run)",
    )
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    raise SystemExit(main())
