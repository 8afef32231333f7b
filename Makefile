# Two entry points for a newcomer (see README.md):
#   make quickstart   set up .venv, train the quick-start transformer on data/moses, sample, evaluate
#   make test         set up .venv, run ruff, the default test suite, then the slow tests (what CI runs)
#   make test-fast    the default test suite only (slow and gpu tests deselected; under 4 minutes on 2 cores)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned to the local CPU wheel, so nothing pulls multi-GB CUDA packages.
TORCH ?= torch==2.13.0

.PHONY: setup quickstart test test-fast lint bench clean

$(BIN)/molgen: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/molgen

setup: $(BIN)/molgen

quickstart: setup
	$(BIN)/molgen quickstart --out runs/quickstart

# pyproject's addopts deselect slow and gpu tests; a later -m on the command line replaces that filter.
test: setup
	$(BIN)/ruff check molgen tests benchmarks
	$(BIN)/pytest -q
	$(BIN)/pytest -q -m "slow and not gpu"

test-fast: setup
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python benchmarks/sampling.py

clean:
	rm -rf runs .pytest_cache
