# Quick start: `make run` (console + worker on SQLite) and `make test` (lint + whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test lint format install install-test clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	exec env PORT=$(PORT) bin/run-console

test: install-test
	bin/ensure-chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== the same suite on PostgreSQL ($$(echo $$TEST_DATABASE_URL | sed 's#//[^@]*@#//#'))"; \
		DATABASE_URL="$$TEST_DATABASE_URL" $(VENV)/bin/pytest; \
	else \
		echo "TEST_DATABASE_URL not set: skipped the PostgreSQL run"; \
	fi

format: install-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
