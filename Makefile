# Quick start: `make run` (console + worker on SQLite) and `make test` (lint + whole suite);
# `make test-fast` while editing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test test-fast lint format install install-test clean

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

# Lint, fail on a model change that has no migration, and check the type hints (mypy with
# the Django and DRF plugins; what it checks is in pyproject.toml).
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=console.test_settings DATABASE_URL=sqlite://:memory: \
		$(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=console.test_settings DATABASE_URL=sqlite://:memory: $(VENV)/bin/mypy

test: lint
	bin/ensure-chromium
	$(VENV)/bin/pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== the same suite on PostgreSQL ($$(echo $$TEST_DATABASE_URL | sed 's#//[^@]*@#//#'))"; \
		DATABASE_URL="$$TEST_DATABASE_URL" $(VENV)/bin/pytest; \
	else \
		echo "TEST_DATABASE_URL not set: skipped the PostgreSQL run"; \
	fi

# The edit loop: lint and every test but the end-to-end and browser ones (SQLite only).
test-fast: lint
	$(VENV)/bin/pytest -m "not e2e and not browser"

format: install-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .mypy_cache
