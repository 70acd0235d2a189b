# Graph-based image annotation: `make help` lists the targets.
# `make test` and `make reproduce` set themselves up (.venv, pinned dependencies).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Re-install only when the dependency list changes (idempotent second runs).
STAMP  := $(VENV)/.installed
PARAMS ?= default
DATA   ?= data/scenes
SEED   ?= 0

.DEFAULT_GOAL := help
.PHONY: help install test test-fast lint format data lab reproduce tables bench clean

help: ## show this help
	@echo "usage: make <target> [PARAMS=default|smoke|corel5k] [DATA=dir]"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv and install the package with pinned dependencies

test: $(STAMP) ## run the whole test suite (offline)
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP) ## the test suite without the slow end-to-end tests
	$(PY) -m pytest -n 2 -m "not slow"

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

format: $(STAMP) ## ruff format + fix imports
	$(VENV)/bin/ruff check --fix --select I .

data: $(STAMP) ## draw the embedded scenes dataset into data/scenes
	$(PY) -m lib synth data/scenes --seed $(SEED)

lab: $(STAMP) ## open the notebooks in JupyterLab
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	$(VENV)/bin/jupyter lab notebooks/

clean: ## remove generated results (keeps data/ and .venv)
	rm -rf results/executed results/reports results/runs
