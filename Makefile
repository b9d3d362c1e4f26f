# Quickstart targets: `make run` (sandbox) and `make test` (lint, types, the whole suite).
# Both create and reuse .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest browser bench reliability clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/marketplace-saas serve

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

pytest: $(STAMP) browser
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The full chaos run (tests/reliability): >= 2,000 events per approval policy, a replica killed
# every few seconds; prints its figures. RELIABILITY_SEED=N replays a run, RELIABILITY_EVENTS=N
# changes its size. (`make test` runs the reduced one.)
reliability: $(STAMP)
	RELIABILITY_FULL=1 $(BIN)/pytest tests/reliability -k full -s -p no:cacheprovider -o timeout=3600

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
