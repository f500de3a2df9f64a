# The two set-up commands: `make demo` runs the bridge, `make test` the whole suite.
# Each creates .venv and installs what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/comfy-bridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/comfy-bridge
	$(BIN)/comfy-bridge demo

test: $(BIN)/comfy-bridge
	$(BIN)/pytest

lint: $(BIN)/comfy-bridge
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/comfy-bridge
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
