#!/usr/bin/env bash
# peer.sh: the controller-runtime peer operator bench/scale.py measures
# acrpool-controller against (bench/peer/, bench-only, never part of the
# product).
#
#   peer.sh build     build bench/peer into the cache unless it is there,
#                     then print the binary's path
#   peer.sh path      print where the binary is (built or not)
#
# Built with the Go toolchain scripts/go.sh finds, from the Go module proxy,
# into a cache outside the repository keyed by a hash of bench/peer's
# go.mod, go.sum and main.go, as scripts/testenv.sh
# does for the control plane; the module and build caches are the same.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/bench/peer
CACHE=${ACRPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/acrpool}

die() { echo "peer: $*" >&2; exit 1; }
# shellcheck source=scripts/gocache.sh
. "$ROOT/scripts/gocache.sh"

srckey() {
	cat "$SRC"/go.mod "$SRC"/go.sum "$SRC"/main.go | sha256sum | cut -c1-12
}

binpath() { echo "$CACHE/peer/acrpool-peer-$(srckey)/acrpool-peer"; }

build_peer() {
	(cd "$SRC" && go build -trimpath -ldflags "-s -w" -o "$1/acrpool-peer" .)
}

cmd_build() {
	gocache_build "peer (bench/peer, controller-runtime)" "$(binpath)" build_peer
}

case "${1:-}" in
build) cmd_build ;;
path) binpath ;;
*) die "usage: peer.sh build|path" ;;
esac
