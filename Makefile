# Two commands for a fresh machine: `make run` and `make test`. Both create or refresh
# .venv from pyproject.toml first; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint faults bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m opsconsole.sandbox run

test: $(STAMP)
	$(BIN)/python -m opsconsole.sandbox test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The fault drills at their full counts (20 SIGKILL runs, ...), the long drills marked
# `faults`, and the long end-to-end scenarios marked `long`; `make test` runs the other
# drills once and leaves the long ones out to stay within its 15 minutes.
faults: $(STAMP)
	FAULTS_FULL=1 $(BIN)/python -m opsconsole.sandbox test -m "faults or integration" tests/faults
	$(BIN)/python -m opsconsole.sandbox test -m long --ignore=tests/faults tests

# Every benchmark, or some with their options: make bench BENCH="rollout --tenants 200".
bench: $(STAMP)
	$(BIN)/python -m opsconsole.sandbox bench $(BENCH)

clean:
	rm -rf $(VENV) .sandbox .pytest_cache tests/browser/node_modules
