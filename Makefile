# Playpulse. `make run` shows the pipeline on an embedded broker; `make test`
# installs what it needs and proves it against real Kafka, Chromium and kcat.
SHELL := /bin/bash
GO ?= go
BIN := bin
SERVICES := producer fanout controller
MODULES := services/playback services/producer services/fanout services/controller tests
TEST_FLAGS ?= -race -count=1 -p 1 -timeout 30m
# Stamped into every binary (ops.Version, ops.Revision), as the image builds do.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X playpulse.dev/services/playback/ops.Version=$(VERSION) -X playpulse.dev/services/playback/ops.Revision=$(REVISION)

.PHONY: all build run test test-unit deps bench fuzz docs tidy vet clean help envtest generate

all: build

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/producer, bin/fanout, bin/controller, bin/devstack
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./services/producer/cmd/producer ./services/fanout/cmd/fanout ./services/controller/cmd/controller ./tests/cmd/devstack

.PHONY: dashboard
dashboard: ## rebuild the committed dashboard bundle (services/fanout/internal/web/dashboard) from web/ui: npm ci from the lock file, esbuild
	@services/fanout/internal/web/ui/build.sh

run: build ## the whole pipeline on an embedded Kafka; dashboard on http://localhost:8080
	@$(BIN)/devstack -bin $(BIN)

deps: ## install chromium and kcat (apt, as root), the Kafka jars (Maven) and Go modules
	@hack/deps.sh

vet: ## go vet every module
	$(GO) vet $(addprefix ./,$(addsuffix /...,$(MODULES)))

test: deps dashboard build vet ## everything, against real Kafka, Chromium, kcat and a real kube-apiserver (what CI runs)
	@assets=$$(set -o pipefail; hack/envtest.sh | tail -1) || exit 1; \
	echo "KUBEBUILDER_ASSETS=$$assets"; \
	export KUBEBUILDER_ASSETS="$$assets"; \
	$(GO) test $(TEST_FLAGS) $(addprefix ./,$(addsuffix /...,$(MODULES)))

envtest: ## build kube-apiserver, etcd and kubectl for envtest (once, ~9 min; cached) and print their directory
	@hack/envtest.sh | tail -1

generate: ## regenerate the PlaybackStream CRD, RBAC rules and deepcopy code with controller-gen
	hack/generate.sh

test-unit: ## the fast tests only: no broker, no browser
	$(GO) test -race -count=1 -short ./services/playback/... ./services/producer/... ./services/fanout/... ./services/controller/...

bench: build ## benchmarks (simulator, codec, producer and fan-out against real Kafka); each prints a table with the machine and the figures
	$(GO) test -run '^$$' -bench . -benchmem ./services/playback/...
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./tests/benchproducer/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./tests/bench/

fuzz: ## fuzz the event decoder for FUZZTIME (default 60s) and keep the new corpus
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s} ./services/playback/event/
	cp -n $$($(GO) env GOCACHE)/fuzz/playpulse.dev/services/playback/event/FuzzDecode/* services/playback/event/testdata/fuzz/FuzzDecode/ 2>/dev/null || true

docs: ## regenerate the configuration tables in README.md from the config structs
	$(GO) run ./tests/cmd/readmegen README.md

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

clean: ## remove build output
	rm -rf $(BIN)

# --- Packaging: images, chart, kind, Tilt (docs/kubernetes.md) ---
.PHONY: chart-crds chart images helm kind-up kind-down test-packaging
CHART := charts/playpulse
CONTROLLER_CRDS := services/controller/config/crd
IMAGE_TAG ?= $(VERSION)

chart-crds: ## copy the generated PlaybackStream CRD and RBAC rules into the chart (after make generate)
	@files=$$(ls $(CONTROLLER_CRDS)/*.yaml $(CONTROLLER_CRDS)/bases/*.yaml 2>/dev/null); \
	test -n "$$files" || { echo "no CRD in $(CONTROLLER_CRDS): run make generate" >&2; exit 1; }; \
	rm -f $(CHART)/crds/*.yaml && cp $$files $(CHART)/crds/ && echo "copied $$files to $(CHART)/crds/"
	cp services/controller/config/rbac/role.yaml $(CHART)/files/controller-role.yaml

helm: ## build the pinned helm CLI into the cache (hack/helm.sh) and print its path
	@hack/helm.sh --path

chart: ## helm lint --strict and helm template the chart (quick; make test-packaging for everything)
	hack/helm.sh lint --strict $(CHART)
	hack/helm.sh lint --strict $(CHART) --values $(CHART)/ci/all-on-values.yaml
	hack/helm.sh template playpulse $(CHART) --namespace playpulse --values $(CHART)/ci/all-on-values.yaml >/dev/null

images: ## print the docker build commands of the three images (no Docker engine here)
	@for s in producer fanout controller; do \
	  echo "docker build -f build/$$s.Dockerfile -t playpulse/$$s:$(IMAGE_TAG) --build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$(REVISION) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) --build-arg SOURCE=$$(git remote get-url origin 2>/dev/null) ."; \
	done

kind-up: ## kind cluster + local registry + cloud-provider-kind + Strimzi (needs Docker); then tilt up
	hack/kind-up.sh

kind-down: ## delete the kind cluster, the registry and cloud-provider-kind
	hack/kind-down.sh

test-packaging: ## the chart, manifests, Tiltfile and Dockerfiles against envtest (part of make test)
	$(GO) test -count=1 -timeout 15m ./tests/packaging/...
