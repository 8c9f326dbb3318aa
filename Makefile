# Playpulse. `make run` shows the pipeline on an embedded broker; `make test`
# installs what it needs and proves it against real Kafka, Chromium and kcat.
SHELL := /bin/bash
GO ?= go
BIN := bin
SERVICES := producer fanout controller
MODULES := services/playback services/producer services/fanout services/controller tests
TEST_FLAGS ?= -race -count=1 -timeout 25m

.PHONY: all build run test test-unit deps bench fuzz docs tidy vet clean help

all: build

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/producer, bin/fanout, bin/controller, bin/devstack
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ ./services/producer/cmd/producer ./services/fanout/cmd/fanout ./services/controller/cmd/controller ./tests/cmd/devstack

run: build ## the whole pipeline on an embedded Kafka; dashboard on http://localhost:8080
	@$(BIN)/devstack -bin $(BIN)

deps: ## install chromium and kcat (apt, as root), the Kafka jars (Maven) and Go modules
	@hack/deps.sh

vet: ## go vet every module
	$(GO) vet $(addprefix ./,$(addsuffix /...,$(MODULES)))

test: deps build vet ## everything, against real Kafka, Chromium and kcat (what CI runs)
	$(GO) test $(TEST_FLAGS) $(addprefix ./,$(addsuffix /...,$(MODULES)))

test-unit: ## the fast tests only: no broker, no browser
	$(GO) test -race -count=1 -short ./services/playback/... ./services/producer/... ./services/fanout/... ./services/controller/...

bench: build ## benchmarks; prints a table with the machine and the figures
	$(GO) test -run '^$$' -bench . -benchmem ./services/playback/...

fuzz: ## fuzz the event decoder for FUZZTIME (default 60s) and keep the new corpus
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s} ./services/playback/event/
	cp -n $$($(GO) env GOCACHE)/fuzz/playpulse.dev/services/playback/event/FuzzDecode/* services/playback/event/testdata/fuzz/FuzzDecode/ 2>/dev/null || true

docs: ## regenerate the configuration tables in README.md from the config structs
	$(GO) run ./tests/cmd/readmegen README.md

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

clean: ## remove build output
	rm -rf $(BIN)
