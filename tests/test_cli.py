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


def test_plain_nodenet_and_the_version_say_what_to_type():
    plain = nodenet()
    assert plain.returncode == 0 and "'nodenet COMMAND --help'" in plain.stdout
    version = nodenet("--version")
    assert version.returncode == 0 and version.stdout.strip() == "nodenet 0.1.0"
    module = subprocess.run(
        [sys.executable, "-m", "nodenet", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.stdout == version.stdout


@pytest.mark.parametrize("name", ["train", "profile"])
def test_help_shows_each_default_once_and_no_markup(name):
    text = nodenet(name, "--help").stdout
    for line in text.splitlines():
        assert line.count("default") <= 1, line
    assert "``" not in text and "(default: None)" not in text


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--workers", "0"], "argument --workers: must be an integer >= 1, got 0"),
        (["--workers", "-1"], "argument --workers: must be an integer >= 1, got -1"),
        (["--hidden", "0"], "argument --hidden: must be an integer >= 1, got 0"),
        (["--batches", "0"], "argument --batches: must be an integer >= 1, got 0"),
        (["--chunks", "0"], "argument --chunks: must be an integer >= 1, or 'auto', got 0"),
        (["--seconds", "-5"], "argument --seconds: must be a finite number in (0, inf)"),
        (["--seconds", "nan"], "argument --seconds: must be a finite number in (0, inf)"),
    ],
)
def test_profile_refuses_nonsense_in_one_line(flags, message):
    result = nodenet("profile", *flags)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_profile_plot_marks_every_batch_and_keeps_its_legend_off_the_bars(tmp_path):
    import pandas as pd

    from nodenet.workers.cli import plot

    rows = [
        {"workers": w, "chunk": "auto", "batch": b, "samples_per_s": 1e4 * w}
        | {"utilisation": 0.8, "idle_share": 0.15, "barrier_share": 0.05}
        for w in (1, 2)
        for b in (128, 512, 1024)
    ]
    figure = plot(pd.DataFrame(rows), tmp_path / "profile.png")
    throughput, shares = figure.axes[:2]
    assert [t.get_text() for t in throughput.get_xticklabels()] == ["128", "512", "1024"]
    legend = shares.get_legend().get_window_extent()
    bars = shares.get_window_extent()
    assert legend.x0 >= bars.x1  # beside the bars, not over them


def test_the_profile_names_page_faults_when_workers_map_fresh_memory_every_step():
    import pandas as pd

    from nodenet.workers.profiling import FAULTS_PER_STEP, diagnose

    row = {"workers": 2, "chunk": "auto", "batch": 128, "samples_per_s": 1e4, "ms_per_step": 10}
    row |= {"utilisation": 0.9, "idle_share": 0.05, "barrier_share": 0.05, "steal": 0.0}
    for faults, named in ((2.0, False), (FAULTS_PER_STEP, False), (FAULTS_PER_STEP + 1, True)):
        (finding,) = diagnose(pd.DataFrame([row | {"faults_per_step": faults}]), {})
        assert ("fresh pages a step" in finding) == named, finding
    (finding,) = diagnose(pd.DataFrame([row | {"faults_per_step": 300.0}]), {})
    assert "faults in 300 fresh pages a step (1.2 MB)" in finding
    assert "10,000 samples/s. Bottleneck:" in finding  # no 1-worker row: no "nanx"


def test_the_profile_names_the_hypervisors_steal_when_it_took_the_cpus():
    import pandas as pd

    from nodenet.workers.profiling import STEAL_SHARE, diagnose

    row = {"workers": 2, "chunk": "auto", "batch": 128, "samples_per_s": 1e4, "ms_per_step": 1}
    row |= {"utilisation": 0.6, "idle_share": 0.05, "barrier_share": 0.35, "faults_per_step": 1}
    for steal, named in ((0.02, False), (STEAL_SHARE, False), (0.3, True), (float("nan"), False)):
        (finding,) = diagnose(pd.DataFrame([row | {"steal": steal}]), {})
        assert ("(steal) while it ran" in finding) == named, finding
    (finding,) = diagnose(pd.DataFrame([row | {"steal": 0.3}]), {})
    assert "The hypervisor took 30% of the CPUs' time" in finding


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--inputs", "0"], "argument --inputs: must be an integer >= 1, got 0"),
        (["--outputs", "1"], "--outputs 1 with a softmax output is always 1"),
        (["--activation", "gelu"], "argument --activation: invalid choice: 'gelu'"),
        (["--loss", "hinge"], "argument --loss: invalid choice: 'hinge'"),
        (["--eps", "0"], "argument --eps: must be a finite number in (0, 1), got 0.0"),
        (["--eps", "nan"], "argument --eps: must be a finite number in (0, 1), got nan"),
        (["--dropout", "1"], "argument --dropout: must be a finite number in [0, 1)"),
        (["--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
        (["--samples", "0"], "argument --samples: must be an integer >= 1, got 0"),
    ],
)
def test_gradcheck_refuses_what_would_check_nothing_or_crash(flags, message, capsys):
    from nodenet.gradcheck import main

    with pytest.raises(SystemExit) as exit_info:
        main(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
