# One entry point for every developer task. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
CARGO ?= cargo
export VEDETTE_CACHE ?= $(HOME)/.cache/vedette

.PHONY: test deps plugins fmt-check clippy unit e2e fuzz generate demo demo-cluster bench bench-peers scale-bench

## test: everything CI checks: formatting, lints, unit, integration and e2e tests
test: deps fmt-check clippy unit e2e

## deps: install or build whatever the tests need (idempotent, cached)
deps: plugins
	bash e2e/tools/build-control-plane.sh >/dev/null
	bash e2e/tools/build-helm.sh >/dev/null
	bash e2e/tools/prometheus-operator-crds.sh >/dev/null
	bash e2e/tools/install-browser.sh >/dev/null

## plugins: the Debian packages of the real Nagios plugins (idempotent)
plugins:
	bash e2e/tools/install-packages.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit: unit and integration tests of every crate (no Kubernetes); this includes a short run
## of every fuzz target (1 s each, vedette-fuzz)
unit:
	$(CARGO) test --workspace --exclude vedette-e2e

## fuzz: every fuzz target (fuzz/tests/targets.rs) for FUZZ_SECONDS seconds each, two at a
## time; seeds in fuzz/corpus/<target>/, a failing input is saved and named in the failure.
## FUZZ_SEED=<n> repeats a run (each run prints its seed).
FUZZ_SECONDS ?= 30
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test -p vedette-fuzz -- --test-threads 2 --nocapture

## e2e: scenarios against a real kube-apiserver, etcd and kube-controller-manager
e2e: deps
	$(CARGO) test -p vedette-e2e -- --test-threads 2

## generate: regenerate the CRD YAML in crds/ from the Rust types
generate:
	$(CARGO) run -q -p vedette-crds --bin crdgen

## demo: standalone mode on config/samples: compile them for this machine, run a satellite
## and this machine's agent in one process, print a summary when the state changes (no
## Kubernetes). The labels make this machine the samples' batch server (the twopm process)
## and a web node of the shop (the storefront rule set) besides a Linux machine; every
## check has run a few seconds after start (operator/tests/standalone_demo.rs).
DEMO_FLAGS ?= --label vedette.dev/role=batch --label app.kubernetes.io/part-of=storefront \
	--label node-role.kubernetes.io/web=
demo: plugins
	$(CARGO) run -q -p vedette-operator -- standalone -f config/samples/ $(DEMO_FLAGS)

## demo-cluster: start a local control plane, apply crds/ and the samples, show them
demo-cluster: deps
	$(CARGO) run -q -p vedette-e2e --bin vedette-demo

## scale-bench: the operator against NODES fake Nodes (kwok); prints numbers, see docs/benchmarks.md
NODES ?= 2000
scale-bench: deps
	$(CARGO) run --release -p vedette-e2e --bin scale-bench -- --nodes $(NODES)

## bench-peers: the peers benchmarks compare against (Icinga 2 from Debian; idempotent)
bench-peers:
	bash e2e/tools/install-bench-peers.sh

## bench: benchmarks that print numbers, each against its peer (see docs/benchmarks.md);
## `make bench BENCHES="exec_overhead spool_append"` runs some of them
bench:
	bash bench/run.sh $(BENCHES)
