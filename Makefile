# The two commands the README promises: `make preview STACK=staging` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= staging

.PHONY: setup setup-app system-packages preview policy-check test test-fast lint typecheck bench clean \
  migration-lint app-lock

# Enough for preview, policy-check and lint: wheels only, no compiler or system packages.
$(VENV)/.installed: requirements.txt requirements-dev.txt policy/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# The reference app's dependencies, for what imports or runs the app. psycopg-c builds from source.
$(VENV)/.app-installed: $(VENV)/.installed app/requirements.txt
	$(PY) -m pip install -q --require-hashes -r app/requirements.txt
	touch $@

setup: $(VENV)/.installed

# The Debian packages come first: gcc, libpq-dev, python3-dev for psycopg-c; python3-venv for a fresh .venv.
setup-app: system-packages $(VENV)/.app-installed

system-packages:
	scripts/install-system-packages.sh

preview: setup
	$(PY) -m harness.preview $(STACK)

policy-check: setup
	$(PY) -m harness.preview staging --quiet
	$(PY) -m harness.preview prod --quiet

test: setup-app
	$(PY) -m pytest

test-fast: setup-app
	$(PY) -m pytest -m "not image and not services"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Lints the SQL alembic generates for every migration with squawk (PostgreSQL migration linter).
migration-lint: setup-app
	mkdir -p out
	cd app && ../$(PY) -m notes_app migrate --sql base:head > ../out/migrations.sql
	$(VENV)/bin/squawk --pg-version=15 out/migrations.sql

# Re-locks the app's dependencies with hashes after editing app/requirements.in.
app-lock: setup
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links app/requirements.in -o app/requirements.txt

# mypy follows the app's imports (uvicorn, psycopg, ...): without them it reports errors in app/.
typecheck: setup-app
	$(VENV)/bin/mypy .

bench: setup
	$(PY) bench/preview_bench.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
