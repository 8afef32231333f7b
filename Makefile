# Two entry points for a newcomer (see README.md):
#   make quickstart   set up .venv, train the quick-start transformer on data/moses, sample, evaluate
#   make test         set up .venv and run the test suite (what CI runs)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned to the local CPU wheel, so nothing pulls multi-GB CUDA packages.
TORCH ?= torch==2.13.0

.PHONY: setup quickstart test lint bench clean

$(BIN)/molgen: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/molgen

setup: $(BIN)/molgen

quickstart: setup
	$(BIN)/molgen quickstart --out runs/quickstart

test: setup
	$(BIN)/ruff check molgen tests benchmarks
	$(BIN)/pytest -q -m "not slow and not gpu"

bench: setup
	$(BIN)/python benchmarks/sampling.py

clean:
	rm -rf runs .pytest_cache
