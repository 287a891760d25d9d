# migratrack: `make demo` and `make test` do all set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install services demo demo-quick test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Redis and PostgreSQL on their default loopback ports: started, or installed, where missing.
services:
	bash scripts/services.sh

demo: install
	$(BIN)/migratrack demo

demo-quick: install
	$(BIN)/migratrack demo --quick

test: install services
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: install services
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache migratrack.db*
