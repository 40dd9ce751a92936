"""Write the MNIST IDX files as CSV, in both layouts nodenet reads.

python scripts/mnist_to_csv.py --out data/csv
-> mnist_train.csv, mnist_test.csv                 (label, 1x1 .. 28x28)
   mnist_train_onehot.csv, mnist_test_onehot.csv   (0 .. 9 one-hot, 1x1 .. 28x28)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nodenet.data import DataError, load_mnist, write_csv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python scripts/mnist_to_csv.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data-dir", default=None, help="folder holding mnist/ (default: $NODENET_DATA)"
    )
    p.add_argument("--out", default="data/csv", help="output folder")
    p.add_argument("--layout", choices=["label", "onehot", "both"], default="both")
    p.add_argument("--limit", type=int, default=None, help="write only the first N rows of each")
    p.add_argument("--no-header", action="store_true", help="leave out the header row")
    args = p.parse_args(argv)
    try:
        train, test = load_mnist(args.data_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    layouts = ["label", "onehot"] if args.layout == "both" else [args.layout]
    for name, split in (("train", train), ("test", test)):
        x, y = split.x[: args.limit], split.y[: args.limit]
        for layout in layouts:
            suffix = "" if layout == "label" else "_onehot"
            path = write_csv(
                Path(args.out) / f"mnist_{name}{suffix}.csv",
                x,
                y,
                layout,
                header=not args.no_header,
            )
            print(f"{len(y)} rows -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
