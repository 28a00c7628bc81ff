# audio-extract: the front door. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with the project and its dev dependencies

.PHONY: system-deps
system-deps: ## Install ffmpeg/ffprobe with apt when missing
	@bash scripts/system-deps.sh

.PHONY: control-plane
control-plane: ## Build etcd, kube-apiserver, controller-manager, scheduler, kubectl, helm (cached)
	@bash localcluster/build-binaries.sh >/dev/null

.PHONY: dev
dev: venv system-deps control-plane ## Run the local cluster, node agent, operator and API (Ctrl-C stops)
	$(PY) -m audio_extract_localcluster.dev

.PHONY: test
test: venv system-deps control-plane ## Run every test tier (unit, component, cluster, chart)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: venv system-deps ## Unit and component tests only (no cluster)
	$(PY) -m pytest -m "not cluster and not chart" $(PYTEST_ARGS)

.PHONY: crds
crds: venv ## Regenerate crds/ and the chart's CRD copy from the models
	$(PY) -m audio_extract_operator.crdgen

.PHONY: lint
lint: venv ## Ruff
	$(VENV)/bin/ruff check .

.PHONY: bench
bench: venv system-deps control-plane ## Run the benchmarks in bench/ (not part of the tests)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

.PHONY: clean
clean: ## Remove .venv and .local (the binary cache in ~/.cache/audio-extract stays)
	rm -rf $(VENV) .local
