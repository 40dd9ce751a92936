"""The Ray backend against the local worker pool on one machine (``make bench-ray``).

Run inside a loopback-only network namespace (``make bench-ray`` makes one, as root):
Ray otherwise advertises the machine's network address. Two workers or actors; the
second of two epochs of MNIST per setting (no start-up in it), alternating over the
rounds; medians. Writes
``bench/ray_results.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from nodenet import Layer, Model, fit
from nodenet.data import Normaliser, load_mnist

SETTINGS = {
    "batch 128, 784-128-64-10": (128, [128, 64]),
    "batch 1024, 784-512-512-10": (1024, [512, 512]),
}


def epoch_seconds(x, y, batch: int, hidden: list[int], backend: str) -> float:
    layers = [Layer(n, "relu") for n in hidden] + [Layer(10, "softmax")]
    model = Model(784, "cross_entropy", layers).construct(0, "lecun")
    history = fit(
        model, x, y, epochs=2, batch_size=batch, validation=0.0, backend=backend, workers=2
    )
    return history.epochs[1]["seconds"]  # the second: no start-up in it


def step_overhead_ms(backend: str, steps: int = 200) -> float:
    """Milliseconds per step of a 4-3-2 network on 8 rows: the backend's own cost."""
    model = Model(4, "cross_entropy", [Layer(3, "relu"), Layer(2, "softmax")]).construct()
    x = np.random.default_rng(0).normal(size=(steps * 8, 4))
    history = fit(
        model,
        x,
        np.arange(len(x)) % 2,
        epochs=2,
        batch_size=8,
        validation=0.0,
        backend=backend,
        workers=2,
    )
    return history.epochs[1]["seconds"] / steps * 1e3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "ray_results.md"))
    args = p.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    train, _ = load_mnist()
    x = Normaliser.fit("zscore", train.x)(train.x)
    times = {(name, b): [] for name in SETTINGS for b in ("pool", "ray")}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for name, (batch, hidden) in SETTINGS.items():
            for backend in ("pool", "ray"):
                times[name, backend].append(epoch_seconds(x, train.y, batch, hidden, backend))
    overhead = {
        b: statistics.median(step_overhead_ms(b) for _ in range(args.rounds))
        for b in ("pool", "ray")
    }
    ray.shutdown()
    lines = [
        f"`make bench-ray`: 2 workers / 2 actors on one 2-core machine, {args.rounds} rounds, "
        f"medians; {time.perf_counter() - started:.0f} s.",
        "",
        "| setting | pool samples/s | ray samples/s | ray / pool |",
        "|---|---|---|---|",
    ]
    for name in SETTINGS:
        pool, ray_s = (statistics.median(times[name, b]) for b in ("pool", "ray"))
        lines.append(
            f"| {name} | {60000 / pool:,.0f} | {60000 / ray_s:,.0f} | {pool / ray_s:.2f}x |"
        )
    lines += [
        "",
        f"Per-step cost (4-3-2 network, 8 rows): pool {overhead['pool']:.2f} ms, "
        f"ray {overhead['ray']:.2f} ms.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
