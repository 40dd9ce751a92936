"""The README's quickstart runs as it is written."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

MARKER = "<!-- quickstart: tests/test_readme.py runs this block as it is written -->"


def quickstart() -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARKER) + len(MARKER) :]
    return re.match(r"\s*```python\n(.*?)```", after, re.S).group(1)


def test_the_quickstart_is_short():
    assert len(quickstart().splitlines()) <= 30


@pytest.mark.timeout(240)
def test_the_quickstart_runs_as_written(mnist, tmp_path):
    """Run from an empty folder with the data where ``$NODENET_DATA`` says (so nothing
    is downloaded), as a user's own script would."""
    result = subprocess.run(
        [sys.executable, "-c", quickstart()],
        capture_output=True,
        text=True,
        timeout=220,
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy (\S+)", result.stdout).group(1))
    assert accuracy > 0.95, result.stdout
    assert re.search(r"epoch 2/2 ", result.stdout)
    assert (tmp_path / "runs/quickstart/model.npz").is_file()
    assert (tmp_path / "runs/quickstart/training.png").is_file()
