# One entry point for every developer task. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
CARGO ?= cargo
export VEDETTE_CACHE ?= $(HOME)/.cache/vedette

.PHONY: test deps fmt-check clippy unit e2e generate demo bench scale-bench clean-e2e

## test: everything CI checks: formatting, lints, unit, integration and e2e tests
test: deps fmt-check clippy unit e2e

## deps: install or build whatever the tests need (idempotent, cached)
deps:
	bash e2e/tools/install-packages.sh
	bash e2e/tools/build-control-plane.sh >/dev/null
	bash e2e/tools/build-helm.sh >/dev/null

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit: unit and integration tests of every crate (no Kubernetes)
unit:
	$(CARGO) test --workspace --exclude vedette-e2e

## e2e: scenarios against a real kube-apiserver, etcd and kube-controller-manager
e2e: deps
	$(CARGO) test -p vedette-e2e -- --test-threads 2

## generate: regenerate the CRD YAML in crds/ from the Rust types
generate:
	$(CARGO) run -q -p vedette-crds --bin crdgen

## demo: start a local control plane, apply crds/ and the samples, show them
demo: deps
	$(CARGO) run -q -p vedette-e2e --bin vedette-demo

## scale-bench: the operator against NODES fake Nodes (kwok); prints numbers, see docs/benchmarks.md
NODES ?= 2000
scale-bench: deps
	$(CARGO) run --release -p vedette-e2e --bin scale-bench -- --nodes $(NODES)

## bench: benchmarks that print numbers, each against its peer (see docs/benchmarks.md);
## `make bench BENCHES="exec_overhead spool_append"` runs some of them
bench:
	bash bench/run.sh $(BENCHES)
