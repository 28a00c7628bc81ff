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
system-deps: ## Install with apt-get the Debian packages the worker, the node and the image build use (when missing)
	@bash scripts/system-deps.sh

# The local cluster runs a real node (kubelet, containerd, runc, CNI), which needs root, as kind's
# nodes and k3s do: say so before installing anything.
.PHONY: root
root:
	@[ "$$(id -u)" = 0 ] || { echo "make: the local cluster runs a real Kubernetes node (kubelet, containerd, runc), which needs root, as kind's nodes and k3s do: run as root (sudo make $(MAKECMDGOALS))" >&2; exit 1; }

.PHONY: binaries
binaries: system-deps ## Build the cluster's binaries: control plane, node, CoreDNS, kube-router, BuildKit, helm (cached)
	@bash localcluster/build-binaries.sh >/dev/null

.PHONY: image
image: root venv system-deps binaries ## Build the images (project image: .local/images/audio-extract.oci.tar; cached)
	$(PY) -m audio_extract_localcluster.images

.PHONY: dev
dev: root venv system-deps binaries ## Run the local cluster (real node) with the chart installed from the image built here (Ctrl-C stops; KUEUE=1: Kueue admits the Jobs)
	$(PY) -m audio_extract_localcluster.dev $(if $(KUEUE),--kueue)

.PHONY: dev-reload
dev-reload: root venv system-deps binaries ## Rebuild the image and roll it out into the cluster `make dev` runs
	$(PY) -m audio_extract_localcluster.release reload

.PHONY: test
test: root venv system-deps binaries ## Run every test tier (unit, component, cluster, chart)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: venv system-deps ## Unit and component tests only (no cluster)
	$(PY) -m pytest -m "not cluster and not chart" $(PYTEST_ARGS)

.PHONY: crds
crds: venv ## Regenerate crds/ and the chart's CRD copy from the models
	$(PY) -m audio_extract_dev.crdgen

.PHONY: lint
lint: venv ## Ruff: lint rules
	$(VENV)/bin/ruff check .

.PHONY: format-check
format-check: venv ## Ruff: the code is formatted (`ruff format .` formats it)
	$(VENV)/bin/ruff format --check .

.PHONY: typecheck
typecheck: venv ## mypy: strict on common and the worker; the API and the operator against their baseline (pyproject.toml)
	$(VENV)/bin/mypy --strict -p audio_extract_common -p audio_extract_worker
	$(VENV)/bin/mypy -p audio_extract_api -p audio_extract_operator

.PHONY: imports
imports: venv ## import-linter: the layering contracts in pyproject.toml
	PYTHONPATH=tests $(VENV)/bin/lint-imports

.PHONY: check
check: lint format-check typecheck imports ## Every static check CI runs before the tests

.PHONY: bench
bench: root venv system-deps binaries ## Run the benchmarks in bench/ (not part of the tests)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# kind-deploy: the chart on a throw-away kind cluster, for users with Docker (cannot run here).
# One node, so the store can be kind's ReadWriteOnce local-path volume: every pod on a node shares it.
KIND_CLUSTER ?= audio-extract
IMAGE_REPO ?= audio-extract
IMAGE_TAG ?= dev
API_KEY ?= axk_local-kind-key

.PHONY: kind-deploy
kind-deploy: ## Kind cluster + image build/load + helm install (needs docker, kind, helm, kubectl)
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name '$(KIND_CLUSTER)'
	docker build -t '$(IMAGE_REPO):$(IMAGE_TAG)' .
	kind load docker-image '$(IMAGE_REPO):$(IMAGE_TAG)' --name '$(KIND_CLUSTER)'
	helm upgrade --install audio-extract charts/audio-extract --kube-context 'kind-$(KIND_CLUSTER)' \
	  --namespace audio-extract --create-namespace --wait \
	  --set image.repository='$(IMAGE_REPO)' --set image.tag='$(IMAGE_TAG)' --set image.pullPolicy=Never \
	  --set store.type=volume --set 'store.accessModes={ReadWriteOnce}' --set store.size=5Gi \
	  --set secrets.apiKeys.dev=$$(printf %s '$(API_KEY)' | sha256sum | cut -d' ' -f1)
	helm test audio-extract --kube-context 'kind-$(KIND_CLUSTER)' --namespace audio-extract
	@echo "API: kubectl --context kind-$(KIND_CLUSTER) -n audio-extract port-forward svc/audio-extract-api 8000:80"
	@echo "     then: curl -H 'X-API-Key: $(API_KEY)' http://127.0.0.1:8000/v1/batch ..."

.PHONY: clean
clean: ## Remove .venv and .local (the binary cache in ~/.cache/audio-extract stays)
	rm -rf $(VENV) .local
