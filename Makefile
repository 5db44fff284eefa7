# The two commands the README promises: `make preview STACK=staging` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= staging

.PHONY: setup setup-app system-packages preview policy-check peer-check test test-real-servers test-offline test-fast lint typecheck bench clean \
  migration-lint lock app-lock

# Enough for preview, policy-check and lint: wheels only, no compiler or system packages. Every file is hash-locked
# and installed with --require-hashes, pip itself first; requirements-dev.txt holds the program's and the policy
# pack's locked dependencies too.
$(VENV)/.installed: requirements-pip.txt requirements.txt requirements-dev.txt policy/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements-pip.txt
	$(PY) -m pip install -q --require-hashes -r requirements-dev.txt
	touch $@

# Then the project itself, for its command (.venv/bin/shipsafe): editable, so it runs this checkout, and alone:
# --no-deps (its dependencies are the locks above) and --no-build-isolation (setuptools comes from the locks, not
# from an unpinned download).
$(VENV)/.project-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The reference app's dependencies, for what imports or runs the app. psycopg-c builds from source.
$(VENV)/.app-installed: $(VENV)/.project-installed app/requirements.txt
	$(PY) -m pip install -q --require-hashes -r app/requirements.txt
	touch $@

setup: $(VENV)/.project-installed

# The Debian packages come first: gcc, libpq-dev, python3-dev for psycopg-c; python3-venv for a fresh .venv.
setup-app: system-packages $(VENV)/.app-installed

system-packages:
	scripts/install-system-packages.sh

preview: setup
	$(PY) -m deploy preview $(STACK) --offline

# Every stack the project has (`shipsafe stack list`: one per Pulumi.<stack>.yaml), each with its own policy config;
# all are checked, and the target exits with the code of the last one that failed.
# The image the deploy pipeline builds (.github/workflows/deploy.yml) and promotes to production as it is: its
# Dockerfile judged with every stack's policy config, production's included (a prebuilt stack builds nothing itself).
IMAGE_BUILD := --dockerfile app/Dockerfile --context app --target production

policy-check: setup
	@stacks=$$($(PY) -m deploy stack list) && [ -n "$$stacks" ] || { echo "no stacks found" >&2; exit 1; }; \
	status=0; for stack in $$stacks; do \
	  echo "$(PY) -m deploy preview $$stack --offline --quiet"; \
	  $(PY) -m deploy preview "$$stack" --offline --quiet || { status=$$?; echo "policy check of $$stack failed" >&2; }; \
	done; \
	echo "$(PY) -m deploy image check $(IMAGE_BUILD)"; \
	$(PY) -m deploy image check $(IMAGE_BUILD) || { status=$$?; echo "image check failed" >&2; }; \
	exit $$status

# The peer tool the pack is compared with (checkov) lives in its own venv: its dependency tree would fight the
# project's pins. Hash-locked like every other lock, so the check set it runs is fixed.
PEER_VENV := .venv-peer
$(PEER_VENV)/.installed: requirements-pip.txt requirements-peer.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q --require-hashes -r requirements-pip.txt
	$(PEER_VENV)/bin/python -m pip install -q --require-hashes -r requirements-peer.txt
	touch $@

# checkov on every stack's render and the bad-variant catalogue: exits 1 on a peer finding the pack neither makes
# nor documents in docs/peer-decisions.json.
peer-check: setup $(PEER_VENV)/.installed
	$(PY) -m tests.support.peer_check --checkov $(PEER_VENV)/bin/checkov

# The Docker and real-server tests (`image`, `services`) share one dockerd, the registry on 127.0.0.1:5000 and
# servers whose timings they check, so they run in one process, one at a time. A second pytest session runs every
# other test at the same time on the other cores (pytest-xdist; at least one worker), so on 2 cores no test waits
# for a core. Two sessions, not one with an xdist group: `--dist loadgroup` silently stops grouping under pytest
# 9.2 (pytest-dev/pytest-xdist#1386). Each session's output is printed when it ends. PYTEST_WORKERS=0 runs
# `make test-fast` in one process, for a debugger.
PYTEST_WORKERS ?= auto
OFFLINE_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 1 ? n - 1 : 1 )))

test: setup-app
	$(MAKE) --no-print-directory -j 2 --output-sync=target test-real-servers test-offline

# The two halves of `make test`, run by it after setup (alone they assume `make setup-app` was run).
test-real-servers:
	$(PY) -m pytest -m "image or services"

test-offline:
	$(PY) -m pytest -n $(OFFLINE_WORKERS) -m "not image and not services"

# The loop while developing: no Docker, no real servers, nothing `slow` (the pack over gRPC on whole stacks, offline
# previews and CLI runs in a subprocess, exhaustive sweeps); every rule is still tested on its own
# (tests/policy/rules), and `make test` runs the rest.
test-fast: setup-app
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not image and not services and not package and not slow"

# zizmor audits the workflows and dependabot.yml offline with its most thorough persona: no finding above low.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/zizmor --offline --persona=auditor --min-severity=medium --no-progress .

# Lints the SQL alembic generates for every migration with squawk (PostgreSQL migration linter).
migration-lint: setup-app
	mkdir -p out
	cd app && ../$(PY) -m notes_app migrate --sql base:head > ../out/migrations.sql
	$(VENV)/bin/squawk --pg-version=15 out/migrations.sql

# The locks are for Python 3.11 on Linux x86_64 (CI's runners and the image): run these there. pip-compile keeps
# the pins it can; add PIP_COMPILE_ARGS=--upgrade (or -P PACKAGE) to move them.
PIP_COMPILE = $(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links $(PIP_COMPILE_ARGS)

# Re-locks the app's dependencies with hashes after editing app/requirements.in.
app-lock: setup
	$(PIP_COMPILE) app/requirements.in -o app/requirements.txt

# Re-locks every requirements file with hashes after editing a *.in file. Order matters: each lock is constrained by
# the ones before it (see the -c lines), so the one .venv holds one version of each package; requirements-peer.txt
# is for .venv-peer alone and constrained by nothing.
lock: app-lock
	$(PIP_COMPILE) requirements-pip.in -o requirements-pip.txt
	$(PIP_COMPILE) policy/requirements.in -o policy/requirements.txt
	$(PIP_COMPILE) requirements.in -o requirements.txt
	$(PIP_COMPILE) requirements-dev.in -o requirements-dev.txt
	$(PIP_COMPILE) requirements-peer.in -o requirements-peer.txt

# mypy follows the app's imports (uvicorn, psycopg, ...): without them it reports errors in app/.
typecheck: setup-app
	$(VENV)/bin/mypy .

bench: setup
	$(PY) bench/preview_bench.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
