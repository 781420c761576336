# The README's commands. Each target creates the virtualenv and installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install browser run unit test bench lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[embedded,lab,dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install lendwatch with every extra (embedded, lab, dev)

# Debian's Chromium and its driver, for the console's browser test; nothing when both are there.
browser:  ## install Debian's chromium and chromium-driver if missing (the console test needs them)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium chromium-driver; \
	fi

run: $(STAMP)  ## the whole pipeline on embedded Tansu + Valkey with simulated traffic; Ctrl-C stops
	$(BIN)/lendwatch run $(ARGS)

# The unit tests share no broker, port or file, so two processes run them side by side.
unit: $(STAMP)  ## the unit tests alone (all but tests/integration), in 2 processes: under a minute
	$(BIN)/python -m pytest -n 2 --ignore=tests/integration $(ARGS)

# The unit tests in two processes (as `make unit`), then the integration tests in two more: each
# process starts its own broker and Redis (session fixtures) and every test its own topics, group
# and Redis prefix, and the integration tests mostly wait on the broker, so two halve the wall
# time (524 s -> 263 s). ARGS runs pytest on what it names instead.
test: $(STAMP) browser  ## every test: unit, and integration against a real broker and Redis
	$(if $(ARGS),$(BIN)/python -m pytest $(ARGS),$(BIN)/python -m pytest -n 2 --ignore=tests/integration --durations=5 && $(BIN)/python -m pytest -n 2 tests/integration --durations=25)

bench: $(STAMP)  ## throughput, latency and memory against their ceilings (ARGS="--quick")
	$(BIN)/python -m benchmarks $(ARGS)

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
