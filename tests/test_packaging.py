"""The installed package: a wheel built from the clone holds one top-level name,
``nodenet``, with the repository's ``workers/`` folder as ``nodenet.workers``, and the pool
trains from it outside the clone."""

import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the sources (no ``build/`` left by an earlier build)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("nodenet", "workers"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("*.pyc"))
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*build, str(source), "-w", str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("nodenet-*.whl")
    return path


def test_the_wheel_holds_every_module_under_one_top_level_name(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nodenet").rglob("*.py")}
    expected |= {
        "nodenet/workers/" + p.relative_to(ROOT / "workers").as_posix()
        for p in (ROOT / "workers").rglob("*.py")
    }
    assert expected <= names, sorted(expected - names)
    assert not any(name.startswith("workers/") for name in names)
    top_level = next(n for n in names if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["nodenet"]


@pytest.mark.slow
def test_the_installed_wheel_trains_with_the_pool_outside_the_clone(wheel, tmp_path):
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    result = subprocess.run(
        [*install, str(site), str(wheel)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    code = textwrap.dedent(
        f"""
        import importlib.util
        import numpy as np
        import nodenet, nodenet.workers
        from nodenet import Layer, Model, fit
        site = {str(site)!r}
        assert nodenet.__file__.startswith(site), nodenet.__file__
        assert nodenet.workers.__file__.startswith(site), nodenet.workers.__file__
        assert importlib.util.find_spec("workers") is None  # no second top-level name
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)
        runs = []
        for workers in (0, 2):
            model = Model(5, "cross_entropy", [Layer(4, "relu"), Layer(3, "softmax")])
            model.construct(1, dtype=np.float64)
            history = fit(model, x, y, epochs=2, batch_size=20, workers=workers)
            runs.append(model.weights.copy())
        np.testing.assert_allclose(runs[1], runs[0], rtol=1e-9, atol=1e-12)
        print("ok", history.worker_stats["worker"].tolist())
        """
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "ok" and "[0, 1]" in result.stdout
    # the console command the wheel installs
    command = [str(site / "bin" / "nodenet"), "gradcheck", "--hidden", "4"]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "ok (tolerance" in result.stdout
