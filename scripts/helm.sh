#!/usr/bin/env bash
# helm.sh: the Helm CLI the chart tests run (charts/acrpool, issue 15).
#
#   helm.sh build     build helm into the cache unless it is there, then
#                     print the binary's path
#   helm.sh path      print where the binary is (built or not)
#
# Debian does not package Helm, so it is built from the Go module proxy
# (helm.sh/helm/v4 at HELM_VERSION) with the Go toolchain scripts/go.sh
# finds, into a cache outside the repository keyed by that version, the way
# scripts/testenv.sh builds the control plane; a missing cache is rebuilt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ACRPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/acrpool}
HELM_VERSION=${HELM_VERSION:-v4.3.2}

die() { echo "helm: $*" >&2; exit 1; }

binpath() { echo "$CACHE/helm/helm-$HELM_VERSION/helm"; }

cmd_build() {
	local out dir go tmp start
	out=$(binpath); dir=$(dirname "$out")
	if [ -x "$out" ]; then
		echo "$out"; return 0
	fi
	go=$("$ROOT/scripts/go.sh") || die "no Go >= 1.26 to build helm with"
	export PATH="$(dirname "$go"):$PATH" GOTOOLCHAIN=local CGO_ENABLED=0
	export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod} GOCACHE=${GOCACHE:-$CACHE/gobuild}
	export GOFLAGS=-modcacherw
	tmp="$dir.tmp.$$"
	rm -rf "$tmp"; mkdir -p "$tmp"
	start=$(date +%s)
	echo "helm: building helm.sh/helm/v4 $HELM_VERSION into $dir" >&2
	GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
		|| { rm -rf "$tmp"; die "build failed"; }
	rm -rf "$dir"; mv "$tmp" "$dir"
	echo "helm: built in $(( $(date +%s) - start ))s" >&2
	echo "$out"
}

case "${1:-}" in
build) cmd_build ;;
path) binpath ;;
*) die "usage: helm.sh build|path" ;;
esac
