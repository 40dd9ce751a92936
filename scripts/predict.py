"""``python scripts/predict.py`` is ``nodenet predict`` (see :mod:`nodenet.cli.predict`)."""

from nodenet.cli.predict import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python scripts/predict.py"))
