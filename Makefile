# Quickstart targets: `make run` (sandbox) and `make test` (lint, types, the whole suite).
# Both create and reuse .venv and install the exact versions of the lock files with uv:
# requirements.lock (what the service runs on) for `make run`, requirements-dev.lock (plus the
# tools and test libraries) for `make test`. `make lock` upgrades both (docs/performance.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := $(BIN)/uv
UV_INSTALL := $(UV) pip install --quiet --python $(BIN)/python
# What `make test` installs is also compiled to bytecode (uv does not by default): where
# PYTHONDONTWRITEBYTECODE is set (containers often set it; this machine does), Python never
# writes a .pyc, so every process compiled each module it imported, every time: about 2 s of CPU
# per start of `marketplace-saas`, and the suite starts hundreds of processes. (`make run` starts
# one: compiling every installed module would cost it more than it saves.) uv compiles only what
# it installs, hence --reinstall: what `make run` installed before is compiled too.
UV_INSTALL_COMPILED := $(UV_INSTALL) --compile-bytecode --reinstall
LOCK := $(UV) pip compile pyproject.toml --quiet --universal --python-version 3.11
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
SERVE_ARGS ?=
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: run test lint typecheck pytest browser bench reliability lock clean bytecode

# uv from PyPI, into the venv: by the base interpreter's pip (no pip in .venv: faster), or by
# the venv's own pip where the base interpreter has none.
$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install $(PIP_QUIET) uv==$(UV_VERSION) 2>/dev/null || { \
	  $(BIN)/python -m ensurepip --default-pip >/dev/null && \
	  $(BIN)/python -m pip install $(PIP_QUIET) uv==$(UV_VERSION); }

# The service's own dependencies, at the locked versions; then the project itself (editable).
$(RUN_STAMP): requirements.lock pyproject.toml | $(UV)
	$(UV_INSTALL) -r requirements.lock
	$(UV_INSTALL) --no-deps -e .
	touch $@

# Everything `make test` needs (a superset of the above).
$(STAMP): requirements-dev.lock pyproject.toml | $(UV)
	$(UV_INSTALL_COMPILED) -r requirements-dev.lock
	$(UV_INSTALL) --no-deps -e .
	touch $@ $(RUN_STAMP)

# The project's own modules (installed editable: uv leaves them to Python), compiled where they
# changed since, for the same reason.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src

run: $(RUN_STAMP)
	$(BIN)/marketplace-saas serve $(SERVE_ARGS)

# Upgrade the locked versions to the newest that pyproject.toml allows; run `make test` after.
lock: | $(UV)
	$(LOCK) --upgrade -o requirements.lock
	$(LOCK) --upgrade --extra dev -o requirements-dev.lock

# Debian's Chromium drives the browser tests; Playwright's own browser download does not work here.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: the browser tests will be skipped (CI fails)"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser bytecode
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP) bytecode
	$(BIN)/python -m benchmarks

# The full chaos run (tests/reliability): >= 2,000 events per approval policy, a replica killed
# every few seconds; prints its figures. RELIABILITY_SEED=N replays a run, RELIABILITY_EVENTS=N
# changes its size. (`make test` runs the reduced one.)
reliability: $(STAMP) bytecode
	RELIABILITY_FULL=1 $(BIN)/pytest tests/reliability -k full -s -p no:cacheprovider -o timeout=3600

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
