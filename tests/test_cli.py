"""The ``nodenet`` command: its subcommands, their help, and the scripts that wrap them."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run

NODENET = str(Path(sys.executable).parent / "nodenet")
SUBCOMMANDS = ("train", "predict", "profile", "gradcheck", "convert")


def nodenet(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([NODENET, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_lists_every_subcommand():
    result = nodenet("--help")
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.stdout, name


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name):
    result = nodenet(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: nodenet {name}")


def test_an_unknown_command_is_named():
    result = nodenet("fly")
    assert result.returncode == 2 and "invalid choice: 'fly'" in result.stderr


def test_the_command_works_from_any_folder(tmp_path):
    result = nodenet("gradcheck", "--hidden", "5", "--batch-norm", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok (tolerance" in result.stdout


@pytest.mark.parametrize(
    ("script", "command"),
    [("train_mnist.py", "train"), ("predict.py", "predict"), ("profile_workers.py", "profile")],
)
def test_the_scripts_are_the_commands(script, command):
    from_script = run(script, "--help")
    from_command = nodenet(command, "--help")
    assert from_script.returncode == 0, from_script.stderr
    assert from_script.stdout.startswith(f"usage: python scripts/{script}")
    # the same flags, only the program name differs
    assert from_script.stdout.split("\n\n", 1)[1] == from_command.stdout.split("\n\n", 1)[1]
