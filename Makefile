# modelsync — build, test and demo targets. `make help` lists them.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/modelsync
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Integration tests start real servers; give the whole run room on 2 cores.
TEST_TIMEOUT ?= 45m
FUZZTIME ?= 20s

.PHONY: help build deps test test-unit fuzz schema example-repo bench demo vet clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build bin/modelsync
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/modelsync

deps: ## install the real servers the tests run (cached outside the tree; idempotent)
	test/deps/deps.sh

vet:
	$(GO) vet ./...

test: deps vet ## everything: unit + integration tests against real servers, race detector, fuzz smoke
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) fuzz

test-unit: ## the fast part alone (no servers)
	MODELSYNC_SKIP_E2E=1 $(GO) test -race ./...

fuzz: ## run the manifest parser fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz FuzzLoadModel -fuzztime $(FUZZTIME) ./internal/manifest

schema: ## regenerate the manifest JSON Schema files from the Go types
	$(GO) generate ./internal/manifest

example-repo: ## turn manifests-example/ into a Git repo with release tags at $(DEST)
	test/scripts/example-repo.sh $${DEST:-/tmp/modelsync-example}

demo: deps build ## the whole stack locally: kube-apiserver, MLflow, MinIO, Git, modelsync serve; a promotion end to end
	$(GO) run ./test/demo

bench: ## Go benchmarks (see test/bench/ for side-by-side scripts)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/manifest ./reconciler

clean:
	rm -rf bin
