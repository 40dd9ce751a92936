"""``python scripts/train_mnist.py`` is ``nodenet train`` (see :mod:`nodenet.cli.train`)."""

from nodenet.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python scripts/train_mnist.py"))
