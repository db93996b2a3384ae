# modelsync — build, test and demo targets. `make help` lists them.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/modelsync
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Integration tests start real servers; give the whole run room on 2 cores.
TEST_TIMEOUT ?= 45m
FUZZTIME ?= 20s
# go.mod's `toolchain` line names the Go release the binary must be built with
# (the patch release with the standard library's security fixes). `auto` is
# Go's own default and lets the go command fetch that release when the
# installed one is older; a machine configured with GOTOOLCHAIN=local would
# otherwise build, test and vulncheck with whatever Go is installed.
# `make GOTOOLCHAIN=local ...` still overrides it.
export GOTOOLCHAIN ?= auto

.PHONY: help build deps test test-unit vulncheck fuzz schema example-repo bench demo vet clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build bin/modelsync
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/modelsync

deps: ## install the real servers the tests run (cached outside the tree; idempotent)
	test/deps/deps.sh

vet:
	$(GO) vet ./...

# govulncheck exits non-zero only for a vulnerability in code that is
# reachable from ours (or in the standard library it calls); vulnerable
# modules we require but never call are listed in its summary, not failed on.
# The database is a local copy built by deps.sh; SOURCE says which commit of
# golang.org/x/vulndb it holds, i.e. how old the data is.
vulncheck: ## govulncheck ./... against the Go vulnerability database deps.sh builds
	test/deps/deps.sh govulncheck vulndb
	@set -a && . "$$(test/deps/deps.sh --print-cache)/env" && set +a && \
	  echo "vulncheck: $$($(GO) env GOVERSION), database $$(cat "$$MODELSYNC_VULNDB/SOURCE")" && \
	  "$$MODELSYNC_GOVULNCHECK" -db "file://$$MODELSYNC_VULNDB" ./...

test: deps vet vulncheck ## everything: unit + integration tests against real servers, race detector, vulncheck, fuzz smoke
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) fuzz

test-unit: ## the fast part alone (no servers)
	MODELSYNC_SKIP_E2E=1 $(GO) test -race ./...

fuzz: ## run the manifest parser fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz FuzzLoadModel -fuzztime $(FUZZTIME) ./internal/manifest

schema: ## regenerate the manifest and -o json output JSON Schema files from the Go types
	$(GO) generate ./internal/manifest ./internal/outputschema

example-repo: ## turn manifests-example/ into a Git repo with release tags at $(DEST)
	test/scripts/example-repo.sh $${DEST:-/tmp/modelsync-example}

demo: deps build ## the whole stack locally: kube-apiserver, MLflow, MinIO, Git, modelsync serve; a promotion end to end
	$(GO) run ./test/demo

bench: ## Go benchmarks (see test/bench/ for side-by-side scripts)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/manifest ./reconciler

clean:
	rm -rf bin
