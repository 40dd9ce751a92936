"""``python scripts/profile_workers.py`` is ``nodenet profile`` (see
:mod:`nodenet.workers.cli`)."""

from nodenet.workers.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python scripts/profile_workers.py"))
