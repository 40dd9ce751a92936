# The README's commands. Each target creates .venv and installs nodenet into it first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
ARGS   ?=

.PHONY: train test lint bench bench-ray profile clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,sklearn,onnx]'
	touch $@

$(VENV)/.bench: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $@

train: $(VENV)/.installed  ## train on MNIST (extra flags: make train ARGS="--epochs 10")
	$(PY) scripts/train_mnist.py $(ARGS)

test: $(VENV)/.installed  ## lint, then every test (slow end-to-end ones included)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: $(VENV)/.bench  ## nodenet against PyTorch CPU and a plain NumPy loop
	$(PY) bench/run.py $(ARGS)

bench-ray: $(VENV)/.installed  ## the Ray backend against the pool (as root: a loopback-only netns)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,ray]'
	ip netns add nodenet-bench
	ip netns exec nodenet-bench ip link set lo up
	ip netns exec nodenet-bench $(PY) bench/ray_bench.py $(ARGS); status=$$?; \
	ip netns del nodenet-bench; exit $$status

profile: $(VENV)/.installed  ## worker throughput table and plot
	$(PY) scripts/profile_workers.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
