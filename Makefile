# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest test-matrix bench torture clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/python bench/demo.py

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

# The suite on every supported CPython (3.9-3.13) found on this machine.
test-matrix:
	PYTHON=$(PYTHON) ./.ci/matrix

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The torture suite at full counts (make test runs it reduced); writes docs/RELIABILITY.md.
torture: $(STAMP)
	$(BIN)/python tests/torture.py --scale full --write docs/RELIABILITY.md

clean:
	rm -rf $(VENV) .venv-* build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
