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

srckey() {
	cat "$SRC"/go.mod "$SRC"/go.sum "$SRC"/main.go | sha256sum | cut -c1-12
}

binpath() { echo "$CACHE/peer/acrpool-peer-$(srckey)/acrpool-peer"; }

cmd_build() {
	local out dir go tmp start
	out=$(binpath); dir=$(dirname "$out")
	if [ -x "$out" ]; then
		echo "$out"; return 0
	fi
	go=$("$ROOT/scripts/go.sh") || die "no Go >= 1.26 to build the peer with"
	export PATH="$(dirname "$go"):$PATH" GOTOOLCHAIN=local CGO_ENABLED=0
	export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod} GOCACHE=${GOCACHE:-$CACHE/gobuild}
	export GOFLAGS=-modcacherw
	tmp="$dir.tmp.$$"
	rm -rf "$tmp"; mkdir -p "$tmp"
	start=$(date +%s)
	echo "peer: building bench/peer (controller-runtime) into $dir" >&2
	(cd "$SRC" && go build -trimpath -ldflags "-s -w" -o "$tmp/acrpool-peer" .) || { rm -rf "$tmp"; die "build failed"; }
	rm -rf "$dir"; mv "$tmp" "$dir"
	echo "peer: built in $(( $(date +%s) - start ))s" >&2
	echo "$out"
}

case "${1:-}" in
build) cmd_build ;;
path) binpath ;;
*) die "usage: peer.sh build|path" ;;
esac
