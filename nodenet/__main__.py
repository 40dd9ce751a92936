"""``python -m nodenet``: the ``nodenet`` command."""

import sys

from nodenet.cli import main

sys.exit(main())
