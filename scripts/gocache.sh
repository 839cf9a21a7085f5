# shellcheck shell=bash
# gocache.sh: sourced by scripts/peer.sh and scripts/helm.sh. One Go-built
# tool in the cache outside the repository, the way scripts/testenv.sh keeps
# the control plane: built with the Go toolchain scripts/go.sh finds, from
# the Go module proxy, into a temporary directory renamed into place only
# when the build succeeded, so an interrupted build never looks done.
#
#   gocache_build LABEL OUT BUILDER   print OUT, first running
#                                     `BUILDER TMPDIR` (which must leave the
#                                     binary at TMPDIR/$(basename OUT)) if
#                                     OUT is missing
# The caller defines ROOT and CACHE.

gocache_build() {
	local label=$1 out=$2 builder=$3 dir go tmp start
	dir=$(dirname "$out")
	if [ -x "$out" ]; then
		echo "$out"; return 0
	fi
	go=$("$ROOT/scripts/go.sh") || { echo "$label: no Go >= 1.26 to build with" >&2; return 1; }
	PATH="$(dirname "$go"):$PATH"
	export PATH GOTOOLCHAIN=local CGO_ENABLED=0
	export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod} GOCACHE=${GOCACHE:-$CACHE/gobuild}
	export GOFLAGS=-modcacherw
	tmp="$dir.tmp.$$"
	rm -rf "$tmp"; mkdir -p "$tmp"
	start=$(date +%s)
	echo "$label: building into $dir" >&2
	"$builder" "$tmp" || { rm -rf "$tmp"; echo "$label: build failed" >&2; return 1; }
	rm -rf "$dir"; mv "$tmp" "$dir"
	echo "$label: built in $(( $(date +%s) - start ))s" >&2
	echo "$out"
}
