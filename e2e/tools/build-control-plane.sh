#!/usr/bin/env bash
# Builds the Kubernetes control plane Vedette's e2e tier runs against, from Go modules:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes) and etcd
# (go.etcd.io/etcd/server/v3). Idempotent: binaries are cached by version under
# $VEDETTE_CACHE (default ~/.cache/vedette) and rebuilt only when missing.
# Prints the directory holding the binaries on its last line.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${VEDETTE_CACHE:-$HOME/.cache/vedette}"
BIN="$CACHE/k8s/$K8S_VERSION-etcd-$ETCD_VERSION/bin"
mkdir -p "$BIN"

exec 9>"$CACHE/k8s/.build.lock"
flock 9

log() { echo "build-control-plane: $*" >&2; }

have_all() {
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do
    [ -x "$BIN/$b" ] || return 1
  done
}

if have_all; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is required to build the control plane"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# A build cache of its own, removed afterwards: the binaries are what is cached, and Go's
# build cache for Kubernetes would keep gigabytes of disk for nothing.
GOCACHE="$(mktemp -d "$CACHE/go-build.XXXXXX")"
export GOCACHE
trap 'rm -rf "$GOCACHE"' EXIT

build_kubernetes() {
  local work minor
  work="$(mktemp -d)"
  minor="${K8S_VERSION#v1.}"            # 34.4
  log "resolving k8s.io/kubernetes@$K8S_VERSION"
  (cd "$work" && go mod init vedette.dev/k8sbuild >/dev/null 2>&1)
  local gomod
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  {
    echo "module vedette.dev/k8sbuild"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # Every staging module k8s.io/kubernetes replaces locally, pinned to its published twin.
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod" | sort -u |
      while read -r m; do echo "replace $m => $m v0.$minor"; done
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$work" && GOFLAGS="$GOFLAGS -mod=mod" go get "k8s.io/kubernetes@$K8S_VERSION" >/dev/null)
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean"
  done
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$BIN/$cmd" ] && continue
    log "building $cmd $K8S_VERSION (cold builds take minutes)"
    (cd "$work" && GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "$ldflags" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
  done
  rm -rf "$work"
}

build_etcd() {
  [ -x "$BIN/etcd" ] && return 0
  local work
  work="$(mktemp -d)"
  log "building etcd $ETCD_VERSION"
  (cd "$work" && go mod init vedette.dev/etcdbuild >/dev/null 2>&1 &&
    GOFLAGS="$GOFLAGS -mod=mod" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 &&
    GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
  rm -rf "$work"
}

build_etcd
build_kubernetes
have_all || { log "some binaries are missing in $BIN"; exit 1; }
echo "$BIN"
