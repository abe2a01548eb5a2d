# Bootstrap: `make quickstart` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch 2.13.0 first, so the permissive range in pyproject.toml
	# does not pull a multi-gigabyte CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/pave quickstart

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# The suite without the tests marked slow (the full default quickstart among them); CI runs both.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_patch.py

clean:
	rm -rf $(VENV)
