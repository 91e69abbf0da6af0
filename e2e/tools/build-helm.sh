#!/usr/bin/env bash
# Builds helm (and kwok, for scale tests) from Go modules, cached by version under
# $VEDETTE_CACHE (default ~/.cache/vedette). Prints the directory holding the binaries.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
CACHE="${VEDETTE_CACHE:-$HOME/.cache/vedette}"
BIN="$CACHE/tools/helm-$HELM_VERSION-kwok-$KWOK_VERSION/bin"
mkdir -p "$BIN" "$CACHE/tools"
exec 9>"$CACHE/tools/.build.lock"
flock 9
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local GOBIN="$BIN"
if [ -x "$BIN/helm" ] && [ -x "$BIN/kwok" ]; then
  echo "$BIN"
  exit 0
fi
# A build cache of its own, removed afterwards: only the binaries are worth keeping.
GOCACHE="$(mktemp -d "$CACHE/go-build.XXXXXX")"
export GOCACHE
trap 'rm -rf "$GOCACHE"' EXIT
if [ ! -x "$BIN/helm" ]; then
  echo "build-helm: building helm $HELM_VERSION" >&2
  go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
if [ ! -x "$BIN/kwok" ]; then
  echo "build-helm: building kwok $KWOK_VERSION" >&2
  go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
echo "$BIN"
