"""NodenetClassifier / NodenetRegressor against scikit-learn's MLPClassifier /
MLPRegressor, with the same parameters (the defaults unless said):

- accuracy (R^2 for regression), 5-fold, on the data sets scikit-learn ships, raw and
  behind a StandardScaler;
- seconds per epoch of ``fit`` for the same number of epochs (``tol=0``,
  ``n_iter_no_change=np.inf``), with one BLAS thread and with the machine's default, on
  the largest of them (50 epochs) and on ``make_classification(200_000, 54)`` (covtype's
  shape, which is not reachable offline; 10 epochs, where a default fit of either runs
  all 200 of ``max_iter``); nodenet with ``workers=2`` too, whose fit time includes
  opening and closing the pool.

    python bench/sklearn_bench.py            # about 30 minutes on 2 cores
    python bench/sklearn_bench.py --quick    # fewer folds and epochs

Writes bench/sklearn_results.md. Runs alternate (theirs, ours) and the figures are
medians over the repeats.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from nodenet.sklearn import NodenetClassifier, NodenetRegressor
from nodenet.workers.profiling import Steal

HERE = Path(__file__).resolve().parent
SETS = {
    "digits": (datasets.load_digits, "classification"),
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "iris": (datasets.load_iris, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
}


#: a row whose 5-seed results spread over more than this is a lottery (raw load_wine):
#: it is measured again over LOTTERY_SEEDS random states
LOTTERY_SPREAD, LOTTERY_SEEDS = 0.10, 30


def add_scores(scores: dict, scaled: bool, x, y, cv, random_states) -> None:
    """Append each estimator kind's (the keys of ``scores``) cross-validated score for
    every random state, the kinds alternating."""
    for seed in random_states:
        for kind, found in scores.items():
            estimator = kind(random_state=seed)
            model = make_pipeline(StandardScaler(), estimator) if scaled else estimator
            found.append(cross_val_score(model, x, y, cv=cv).mean())


def accuracy_rows(folds: int, seeds: int) -> list[str]:
    """Mean ``folds``-fold score over ``seeds`` random states, or over
    :data:`LOTTERY_SEEDS` where the score depends on the seed more than on the trainer
    (raw inputs of very different scales: load_wine spans 15-93% over seeds for both)."""
    rows = [
        "| data | input | seeds | MLP (scikit-learn): mean (min-max) | nodenet | difference |",
        "|---|---|---|---|---|---|",
    ]
    for name, (load, task) in SETS.items():
        x, y = load(return_X_y=True)
        regression = task == "regression"
        if regression:
            y = y / y.std()  # MLPRegressor's defaults need targets of unit scale
        split = KFold if regression else StratifiedKFold
        cv = split(folds, shuffle=True, random_state=0)
        kinds = (
            (MLPRegressor, NodenetRegressor) if regression else (MLPClassifier, NodenetClassifier)
        )
        for scaled in (False, True):
            scores = {kind: [] for kind in kinds}

            add_scores(scores, scaled, x, y, cv, range(seeds))
            if max(np.ptp(scores[kind]) for kind in kinds) > LOTTERY_SPREAD:
                add_scores(scores, scaled, x, y, cv, range(seeds, LOTTERY_SEEDS))
            theirs, ours = (np.array(scores[kind]) for kind in kinds)
            rows.append(
                f"| {name} | {'scaled' if scaled else 'raw'} | {len(theirs)} | "
                f"{theirs.mean():.4f} ({theirs.min():.2f}-{theirs.max():.2f}) | "
                f"{ours.mean():.4f} ({ours.min():.2f}-{ours.max():.2f}) | "
                f"{100 * (ours.mean() - theirs.mean()):+.2f} points |"
            )
            print(rows[-1], flush=True)
    return rows


def epoch_seconds(estimator, x, y, epochs: int, threads: int | None) -> float:
    estimator = clone(estimator).set_params(max_iter=epochs, tol=0.0, n_iter_no_change=np.inf)
    with threadpool_limits(threads):
        started = time.perf_counter()
        estimator.fit(x, y)
        seconds = time.perf_counter() - started
    return seconds / estimator.n_iter_


def timing_rows(epochs: int, repeats: int) -> list[str]:
    x_big, y_big = datasets.make_classification(
        n_samples=200_000, n_features=54, n_informative=20, n_classes=7, random_state=0
    )
    x_big = StandardScaler().fit_transform(x_big)
    x_digits, y_digits = datasets.load_digits(return_X_y=True)
    x_digits = StandardScaler().fit_transform(x_digits)
    cases = [  # a digits fit takes 0.15 s, so a neighbour's burst moves it: 3x the repeats
        ("digits (1,797 x 64)", x_digits, y_digits, 50, 3 * repeats),
        ("make_classification (200,000 x 54)", x_big, y_big, epochs, repeats),
    ]
    rows = [
        "| data | threads | MLP s/epoch | nodenet s/epoch | x faster | nodenet workers=2 s/epoch "
        "| x faster | x nodenet | steal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, x, y, n_epochs, n_repeats in cases:
        for threads in (1, None):
            times = {"theirs": [], "ours": [], "pool": [], "steal": []}
            for _ in range(n_repeats):  # alternating, medians
                times["theirs"].append(
                    epoch_seconds(MLPClassifier(random_state=0), x, y, n_epochs, threads)
                )
                times["ours"].append(
                    epoch_seconds(NodenetClassifier(random_state=0), x, y, n_epochs, threads)
                )
                if x is x_big:
                    pool = NodenetClassifier(random_state=0, workers=2)
                    with Steal() as steal:
                        times["pool"].append(epoch_seconds(pool, x, y, n_epochs, threads))
                    times["steal"].append(steal.share)
            theirs, ours = statistics.median(times["theirs"]), statistics.median(times["ours"])
            pool = statistics.median(times["pool"]) if times["pool"] else None
            pool_cells = (
                f"{pool:.3f} | {theirs / pool:.2f}x | {ours / pool:.2f}x "
                f"| {statistics.median(times['steal']):.0%}"
                if pool
                else " |  |  | "
            )
            rows.append(
                f"| {label} | {threads or 'default'} | {theirs:.3f} | {ours:.3f} | "
                f"{theirs / ours:.2f}x | {pool_cells} |"
            )
            print(rows[-1], flush=True)
    return rows


ACCURACY, TIMING = "| data | input |", "| data | threads |"  # how each table's header starts


def earlier_table(path: Path, header: str) -> list[str]:
    """The lines of the table in ``path`` whose header row starts with ``header`` (kept
    when ``--only`` runs the other table), or none."""
    lines = path.read_text().splitlines() if path.exists() else []
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), len(lines))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 folds, fewer epochs and repeats")
    p.add_argument("--seeds", type=int, default=5, help="random states the accuracy averages")
    p.add_argument("--only", choices=["accuracy", "timing"], help="one of the two tables")
    args = p.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    folds, epochs, repeats, seeds = (3, 2, 1, 2) if args.quick else (5, 10, 3, args.seeds)
    started = time.perf_counter()
    out = HERE / "sklearn_results.md"
    accuracy = (
        earlier_table(out, ACCURACY) if args.only == "timing" else accuracy_rows(folds, seeds)
    )
    timing = earlier_table(out, TIMING) if args.only == "accuracy" else timing_rows(epochs, repeats)
    import sklearn

    head = (
        f"`python bench/sklearn_bench.py` on {datetime.date.today()}: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}; {folds}-fold, "
        f"default parameters of both; {time.perf_counter() - started:.0f} s."
        + (
            f" The {'accuracy' if args.only == 'timing' else 'timing'} table is an earlier run's."
            if args.only
            else ""
        )
    )
    text = "\n".join([head, "", *accuracy, "", *timing, ""])
    out.write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
