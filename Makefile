# Graph-based image annotation: `make help` lists the targets.
# `make test` and `make reproduce` set themselves up (.venv, pinned dependencies).

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
# Re-install only when the dependency list changes (idempotent second runs).
STAMP   := $(VENV)/.installed
# parameter set: params/$(PARAMS).yaml (`make help` lists them)
PARAMS  ?= default
PARAM_SETS := $(sort $(basename $(notdir $(wildcard params/*.yaml))))
# dataset folder; empty = the parameter set's own (data/scenes, drawn when missing)
DATA    ?=
# results folder; empty = results/$(PARAMS)/ (each parameter set has its own)
RESULTS ?=
RESULTS_DIR = $(if $(RESULTS),$(RESULTS),results/$(PARAMS))
# cores Snakemake may use (auto: every core; each kernel gets cores // min(cores, 4) threads)
JOBS    ?= auto
# GPUs handed out one (or a run's gpus:) per training/augmentation job; 0: no GPU bookkeeping
GPUS    ?= 0
# a Snakemake profile under workflow/profiles/ (e.g. slurm); empty: this machine
PROFILE ?=
SNAKEMAKE_ARGS ?=
SEED    ?= 0
# Corel-5k on Kaggle (https://www.kaggle.com/datasets/parhamsalar/corel5k)
KAGGLE_COREL5K ?= parhamsalar/corel5k
COREL5K_DIR    ?= data/corel5k
BENCH_DIR      ?= results/benchmarks

SNAKE = $(VENV)/bin/snakemake -s workflow/Snakefile -d $(abspath $(RESULTS_DIR)) \
	--config params=$(PARAMS) results=$(abspath $(RESULTS_DIR)) $(if $(DATA),data=$(abspath $(DATA))) \
	$(if $(PROFILE),--profile $(abspath workflow/profiles/$(PROFILE)),--cores $(if $(filter auto,$(JOBS)),all,$(JOBS))) \
	$(if $(filter-out 0,$(GPUS)),--resources gpu=$(GPUS)) $(SNAKEMAKE_ARGS)

.DEFAULT_GOAL := help
.PHONY: help install test test-fast lint format data lab reproduce reproduce-dry tables corel5k-standin \
	readme-results bench corel5k clean

help: ## show this help
	@echo "usage: make <target> [PARAMS=<set>] [DATA=dir] [RESULTS=dir]"
	@echo "  <set>: one of $(PARAM_SETS) (params/<set>.yaml; now PARAMS=$(PARAMS))"
	@echo
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {gsub(/\$$\(PARAMS\)/, "<set>", $$2); \
			printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	@touch $@

install: $(STAMP) ## create .venv and install the package, JupyterLab and the test tools (pinned)

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

reproduce: $(STAMP) ## Snakemake: every notebook (papermill), tables, reports into results/$(PARAMS)/; redoes only what changed
	@mkdir -p $(RESULTS_DIR)
	$(SNAKE)
	$(SNAKE) --report $(abspath $(RESULTS_DIR))/reports/.provenance.snakemake.html
	$(PY) -m lib render --params $(PARAMS) --results $(abspath $(RESULTS_DIR)) \
		$(if $(DATA),--data $(abspath $(DATA))) --provenance $(abspath $(RESULTS_DIR))/reports/.provenance.snakemake.html

reproduce-dry: $(STAMP) ## say what `make reproduce` would run, and why (snakemake -n)
	@mkdir -p $(RESULTS_DIR)
	$(SNAKE) -n

tables: $(STAMP) ## rebuild results/$(PARAMS)/tables from the run folders alone
	$(PY) -m lib tables --params $(PARAMS) --runs $(RESULTS_DIR)/runs --out $(RESULTS_DIR)/tables

readme-results: $(STAMP) ## write the tables and one sentence per comparison into README.md's results block
	$(PY) -m lib tables --params $(PARAMS) --readme README.md \
		--runs $(RESULTS_DIR)/runs --out $(RESULTS_DIR)/tables

# the measurements `make bench` runs (the studies wgan_selection, heads_study and
# threshold_fallback are run by hand: see benchmarks/README.md)
BENCHES ?= reproduce_bench install_size parallel_jobs train_throughput wgan_throughput backbone_speed corel_memory gpu_reference

bench: $(STAMP) ## run the benchmarks and write results/benchmarks.md (long: includes a full reproduce)
	@mkdir -p $(BENCH_DIR)
	@set -e; for b in $(BENCHES); do f=benchmarks/$$b.py; \
		echo "== $$f"; \
		AIA_BENCH_DIR=$(BENCH_DIR) $(PY) $$f 2>&1 | tee $(BENCH_DIR)/$$(basename $$f .py).log; \
		test $${PIPESTATUS[0]} -eq 0; \
	done
	$(PY) benchmarks/reproduce_bench.py --summarize $(BENCH_DIR) --write results/benchmarks.md

corel5k-standin: $(STAMP) ## draw Corel-shaped stand-in images for the real annotations into data/corel5k-standin
	$(PY) -m lib standin corel5k-annotations data/corel5k-standin --seed $(SEED)

corel5k: ## fetch Corel-5k from Kaggle into data/corel5k (needs the kaggle CLI + API token)
	@if test -f $(COREL5K_DIR)/train.json; then \
		echo "$(COREL5K_DIR) is ready"; \
	elif command -v kaggle >/dev/null 2>&1; then \
		set -e; mkdir -p data/corel5k-kaggle; \
		kaggle datasets download -d $(KAGGLE_COREL5K) -p data/corel5k-kaggle --unzip; \
		src=$$(dirname $$(find data/corel5k-kaggle -name train.json -path '*orel*' | head -n 1)); \
		test -n "$$src" -a -d "$$src/images" || { echo "no train.json + images/ in the download"; exit 1; }; \
		ln -sfn "$$(cd $$src && pwd)" $(COREL5K_DIR); \
		echo "Corel-5k in $(COREL5K_DIR) -> $$src"; \
		echo "next: make reproduce PARAMS=corel5k DATA=$(COREL5K_DIR)"; \
	else \
		echo "The kaggle CLI is not installed. To get Corel-5k:"; \
		echo "  1. pip install kaggle; put your API token in ~/.kaggle/kaggle.json"; \
		echo "     (kaggle.com > Settings > API > Create New Token), then run make corel5k again;"; \
		echo "  or 2. download https://www.kaggle.com/datasets/$(KAGGLE_COREL5K) by hand, unzip it"; \
		echo "     and move its Corel-5k folder (train.json, test.json, images/) to $(COREL5K_DIR)."; \
		echo "Then: make reproduce PARAMS=corel5k DATA=$(COREL5K_DIR)"; \
		exit 1; \
	fi

# `make lab`: notebooks write to results/lab/ (lib/core/paths.py), never to a parameter set's
# folder; RESULTS=dir chooses another. The kernels talk over IPC sockets (no TCP warning);
# the server listens on 127.0.0.1 only. LAB_ARGS passes more options (e.g. --no-browser).
LAB_ARGS ?=
lab: $(STAMP) ## step through the notebooks in JupyterLab (results/lab/; draws data/scenes when missing)
	@test -f data/scenes/train.json || $(PY) -m lib synth data/scenes --seed $(SEED)
	$(if $(RESULTS),AIA_RESULTS_DIR=$(abspath $(RESULTS))) $(VENV)/bin/jupyter lab \
		--ServerApp.ip=127.0.0.1 --ServerKernelManager.transport=ipc $(LAB_ARGS) notebooks/

clean: ## remove the generated results of results/$(PARAMS)/ (keeps data/ and .venv)
	rm -rf $(RESULTS_DIR)/executed $(RESULTS_DIR)/reports $(RESULTS_DIR)/runs \
		$(RESULTS_DIR)/augment $(RESULTS_DIR)/benchmarks $(RESULTS_DIR)/.snakemake $(RESULTS_DIR)/.gpus
