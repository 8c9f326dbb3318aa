# Playpulse. `make run` shows the pipeline on an embedded broker; `make test`
# installs what it needs and proves it against real Kafka, Chromium and kcat.
SHELL := /bin/bash
GO ?= go
BIN := bin
SERVICES := producer fanout controller collector
MODULES := services/playback services/producer services/fanout services/controller services/collector tests tools
TEST_FLAGS ?= -race -count=1 -p 1 -timeout 30m
# Stamped into every binary (ops.Version, ops.Revision), as the image builds do.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X playpulse.dev/services/playback/ops.Version=$(VERSION) -X playpulse.dev/services/playback/ops.Revision=$(REVISION)

.PHONY: all build run test test-unit deps bench fuzz tidy vet lint clean help envtest generate soak

all: build

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/producer, bin/fanout, bin/controller, bin/collector, bin/devstack
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./services/producer/cmd/producer ./services/fanout/cmd/fanout ./services/controller/cmd/controller ./services/collector/cmd/collector ./tools/cmd/devstack

.PHONY: dashboard
dashboard: ## rebuild only the dashboard bundle (one step of make generate): npm ci from the lock file, esbuild
	@hack/generate.sh dashboard

run: build ## the whole pipeline on an embedded Kafka; dashboard on http://localhost:8080
	@$(BIN)/devstack -bin $(BIN)

deps: ## install chromium and kcat (apt, as root), the Kafka jars (Maven) and Go modules
	@hack/deps.sh

vet: ## go vet every module
	$(GO) vet $(addprefix ./,$(addsuffix /...,$(MODULES)))

lint: vet ## go vet and staticcheck (pinned in hack/tools, built on first use) on every module
	@staticcheck=$$(set -o pipefail; hack/tools.sh staticcheck | tail -1) || exit 1; \
	echo "staticcheck $(addprefix ./,$(addsuffix /...,$(MODULES)))"; \
	$$staticcheck $(addprefix ./,$(addsuffix /...,$(MODULES)))

test: deps dashboard build lint ## everything, against real Kafka, Chromium, kcat, a real kube-apiserver and a real single-node cluster (what CI runs)
	@assets=$$(set -o pipefail; hack/envtest.sh | tail -1) || exit 1; \
	hack/cluster.sh build >/dev/null || exit 1; \
	echo "KUBEBUILDER_ASSETS=$$assets"; \
	export KUBEBUILDER_ASSETS="$$assets"; \
	MODULES="$(MODULES)" hack/test.sh $(TEST_FLAGS)

envtest: ## build kube-apiserver, etcd and kubectl for envtest (once, ~9 min; cached) and print their directory
	@hack/envtest.sh | tail -1

generate: ## regenerate every generated file: CRD, RBAC, deepcopy (controller-gen), their chart copies, README and chart tables, values schema, dashboard bundle
	hack/generate.sh

test-unit: ## the fast tests only: no broker, no browser
	$(GO) test -race -count=1 -short ./services/playback/... ./services/producer/... ./services/fanout/... ./services/controller/... ./services/collector/...

bench: build ## benchmarks (simulator, codec, CMCD parser, producer, fan-out and collector against real Kafka); each prints a table with the machine and the figures
	$(GO) test -run '^$$' -bench . -benchmem ./services/playback/... ./services/collector/internal/cmcd/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./tests/benchproducer/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./tests/bench/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./tests/benchcollector/

soak: build ## an hour under load and faults (SOAK_DURATION=10m for less): a table of RSS, goroutines, open files and Kafka lag per service with their slope, and whether anything was lost
	SOAK_DURATION=$${SOAK_DURATION:-1h} $(GO) test -tags soak -run '^TestSoak$$' -count=1 -v -timeout 0 ./tests/faults/

fuzz: ## fuzz the event decoder, the CMCD parser (against httpsfv) and parser+mapping for FUZZTIME each (default 60s) and keep the new corpus
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s} ./services/playback/event/
	cp -n $$($(GO) env GOCACHE)/fuzz/playpulse.dev/services/playback/event/FuzzDecode/* services/playback/event/testdata/fuzz/FuzzDecode/ 2>/dev/null || true
	$(GO) test -run '^$$' -fuzz FuzzParseAgainstHttpsfv -fuzztime $${FUZZTIME:-60s} ./services/collector/internal/cmcd/
	mkdir -p services/collector/internal/cmcd/testdata/fuzz/FuzzParseAgainstHttpsfv services/collector/internal/sessions/testdata/fuzz/FuzzParseMap
	cp -n $$($(GO) env GOCACHE)/fuzz/playpulse.dev/services/collector/internal/cmcd/FuzzParseAgainstHttpsfv/* services/collector/internal/cmcd/testdata/fuzz/FuzzParseAgainstHttpsfv/ 2>/dev/null || true
	$(GO) test -run '^$$' -fuzz FuzzParseMap -fuzztime $${FUZZTIME:-60s} ./services/collector/internal/sessions/
	cp -n $$($(GO) env GOCACHE)/fuzz/playpulse.dev/services/collector/internal/sessions/FuzzParseMap/* services/collector/internal/sessions/testdata/fuzz/FuzzParseMap/ 2>/dev/null || true

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

clean: ## remove build output
	rm -rf $(BIN)

# --- Packaging: images, chart, kind, Tilt (docs/kubernetes.md) ---
.PHONY: chart images helm kind-up kind-down test-packaging
CHART := charts/playpulse
IMAGE_TAG ?= $(VERSION)

helm: ## build the pinned helm CLI into the cache (hack/helm.sh) and print its path
	@hack/helm.sh --path

chart: ## helm lint --strict and helm template the chart (quick; make test-packaging for everything)
	hack/helm.sh lint --strict $(CHART)
	hack/helm.sh lint --strict $(CHART) --values $(CHART)/ci/all-on-values.yaml
	hack/helm.sh template playpulse $(CHART) --namespace playpulse --values $(CHART)/ci/all-on-values.yaml >/dev/null

images: ## print the docker build commands of the images (no Docker engine here)
	@for s in $(SERVICES); do \
	  echo "docker build -f build/$$s.Dockerfile -t playpulse/$$s:$(IMAGE_TAG) --build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$(REVISION) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) --build-arg SOURCE=$$(git remote get-url origin 2>/dev/null) ."; \
	done

kind-up: ## kind cluster + local registry + cloud-provider-kind + Strimzi (needs Docker); then tilt up
	hack/kind-up.sh

kind-down: ## delete the kind cluster, the registry and cloud-provider-kind
	hack/kind-down.sh

# --- The test bed: a real single-node cluster (hack/cluster.sh, docs/kubernetes.md) ---
.PHONY: cluster-up cluster-down cluster-status cluster-images test-cluster

cluster-up: ## start the single-node test-bed cluster (builds it the first time, ~20 min); prints KUBECONFIG=...
	@hack/cluster.sh up

cluster-down: ## stop the test-bed cluster and check the host is as it was
	@hack/cluster.sh down

cluster-status: ## the test bed's processes with their memory; fails when the node is not Ready
	@hack/cluster.sh status

cluster-images: ## build the images from build/*.Dockerfile without Docker and load them into the test bed
	@hack/cluster.sh images

test-cluster: ## the chart, images and streams on the test-bed cluster (tests/cluster; part of make test)
	hack/cluster.sh build >/dev/null
	$(GO) test -count=1 -timeout 20m ./tests/cluster/...

test-packaging: ## the chart, manifests, Tiltfile and Dockerfiles against envtest (part of make test)
	$(GO) test -count=1 -timeout 15m ./tests/packaging/...
