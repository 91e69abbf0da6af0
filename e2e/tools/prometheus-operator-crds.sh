#!/usr/bin/env bash
# The Prometheus Operator's PodMonitor and ServiceMonitor CRDs, which the chart's monitors are
# tested against (e2e/tests/install_helm.rs): taken from the Go module
# github.com/prometheus-operator/prometheus-operator (example/prometheus-operator-crd/, with
# the module's LICENSE beside them). Idempotent: cached by version under $VEDETTE_CACHE
# (default ~/.cache/vedette) and downloaded only when missing.
# Prints the directory holding the CRD files on its last line.
set -euo pipefail

VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
MODULE=github.com/prometheus-operator/prometheus-operator
FILES=(monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_servicemonitors.yaml)
CACHE="${VEDETTE_CACHE:-$HOME/.cache/vedette}"
OUT="$CACHE/prometheus-operator/$VERSION"
mkdir -p "$CACHE/prometheus-operator"

exec 9>"$CACHE/prometheus-operator/.lock"
flock 9

log() { echo "prometheus-operator-crds: $*" >&2; }

have_all() {
  for f in "${FILES[@]}" LICENSE; do
    [ -s "$OUT/$f" ] || return 1
  done
}

if have_all; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "go is required to download $MODULE"; exit 1; }
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
log "downloading $MODULE@$VERSION"
# Outside any module (an empty directory): `go mod download` of a path and version needs none.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dir="$(cd "$work" && go mod download -json "$MODULE@$VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
[ -d "$dir/example/prometheus-operator-crd" ] || {
  log "$MODULE@$VERSION has no example/prometheus-operator-crd/"
  exit 1
}
tmp="$(mktemp -d "$CACHE/prometheus-operator/.$VERSION.XXXXXX")"
for f in "${FILES[@]}"; do
  cp "$dir/example/prometheus-operator-crd/$f" "$tmp/$f"
done
cp "$dir/LICENSE" "$tmp/LICENSE"
chmod 755 "$tmp" && chmod 644 "$tmp"/*
rm -rf "$OUT"
mv "$tmp" "$OUT"
have_all || { log "some files are missing in $OUT"; exit 1; }
echo "$OUT"
