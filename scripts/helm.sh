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
# shellcheck source=scripts/gocache.sh
. "$ROOT/scripts/gocache.sh"

binpath() { echo "$CACHE/helm/helm-$HELM_VERSION/helm"; }

build_helm() {
	GOBIN="$1" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
}

cmd_build() {
	gocache_build "helm $HELM_VERSION" "$(binpath)" build_helm
}

case "${1:-}" in
build) cmd_build ;;
path) binpath ;;
*) die "usage: helm.sh build|path" ;;
esac
