# Bootstrap: `make quickstart` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test test-slow test-floor lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch 2.13.0 first, so the permissive range in pyproject.toml
	# does not pull a multi-gigabyte CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,lmms]"
	# lmms-eval for tests/integrations/test_lmms_eval.py, last and with --no-deps: its declared
	# requirements pull torchvision, which replaces this torch with a CUDA build and breaks
	# transformers' import next to the CPU one, and they downgrade av. The extra `lmms` holds
	# what it imports at run time (docs/guides/lmms-eval.md).
	$(BIN)/pip install --quiet --no-deps "lmms-eval==0.7.3"
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

# The core of the suite on the lowest versions pyproject.toml allows (torch stays the local 2.13.0).
FLOOR := .venv-floor
FLOOR_PINS := transformers peft accelerate safetensors
FLOOR_TESTS := tests/patch tests/models tests/batching tests/recipes tests/training tests/test_convert.py tests/test_inference.py

$(FLOOR)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/pip install --quiet --upgrade pip
	$(FLOOR)/bin/pip install --quiet "torch==2.13.0"
	$(FLOOR)/bin/python -c "import re, sys, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
	    print('\n'.join(d.replace('>=', '==') for d in deps if re.split('[<>=]', d)[0] in sys.argv[1:]))" $(FLOOR_PINS) > $(FLOOR)/floor.txt
	$(FLOOR)/bin/pip install --quiet -c $(FLOOR)/floor.txt -e ".[dev]"
	touch $@

test-floor: $(FLOOR)/.installed
	$(FLOOR)/bin/pip list 2>/dev/null | grep -iE "^($(shell echo $(FLOOR_PINS) | tr ' ' '|')) "
	$(FLOOR)/bin/python -m pytest -q -m "not slow" $(FLOOR_TESTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_patch.py

clean:
	rm -rf $(VENV) $(FLOOR)
