# The README's commands. Each target creates .venv and installs what it needs into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
ARGS   ?=

.PHONY: help train test test-all lint docs bench bench-auto bench-ray profile clean

help:  ## this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

# training needs nodenet alone; the tests add their tools and the extras they cover
$(VENV)/.train: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.installed: $(VENV)/.train
	$(PIP) -e '.[test,sklearn,onnx]'
	touch $@

$(VENV)/.bench: $(VENV)/.installed
	$(PIP) -e '.[test,bench]'
	touch $@

train: $(VENV)/.train  ## train on MNIST (extra flags: make train ARGS="--epochs 10")
	$(PY) scripts/train_mnist.py $(ARGS)

lint: $(VENV)/.installed  ## ruff: lint and format check
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

test: lint  ## lint, then the fast tests (a few minutes on 2 cores)
	$(PY) -m pytest -m "not slow"

test-all: lint  ## lint, then every test: the slow accuracy and end-to-end ones too
	$(PY) -m pytest

docs: $(VENV)/.train  ## the API reference from the docstrings, into site/ (strict)
	$(PIP) -e '.[docs]'
	$(PY) -m mkdocs build --strict

bench: $(VENV)/.bench  ## nodenet against PyTorch CPU and a plain NumPy loop
	$(PY) bench/run.py $(ARGS)

bench-auto: $(VENV)/.train  ## the measurements behind workers="auto" on this machine
	$(PY) bench/auto_rule.py $(ARGS)

bench-ray: $(VENV)/.installed  ## the Ray backend against the pool (as root: a loopback-only netns)
	$(PIP) -e '.[test,ray]'
	ip netns add nodenet-bench
	ip netns exec nodenet-bench ip link set lo up
	ip netns exec nodenet-bench $(PY) bench/ray_bench.py $(ARGS); status=$$?; \
	ip netns del nodenet-bench; exit $$status

profile: $(VENV)/.train  ## worker throughput table and plot
	$(PY) scripts/profile_workers.py $(ARGS)

clean:  ## remove the venv and build files
	rm -rf $(VENV) build site *.egg-info .pytest_cache .ruff_cache
