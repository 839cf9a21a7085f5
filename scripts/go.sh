#!/usr/bin/env bash
# go.sh: print the path of a Go toolchain new enough (>= 1.26) to build the
# test control plane, getting one when the machine has none.
#
# Debian 12's golang-go is 1.19, far too old for Kubernetes 1.36. But the Go
# toolchains themselves are published as modules (golang.org/toolchain, the
# same ones `GOTOOLCHAIN` switching fetches), and any Go can download a
# module. So on a bare machine: install Debian's Go, have it download the
# toolchain module through the module proxy, and keep it in the cache.
set -euo pipefail
WANT=1.26.8
CACHE=${ACRPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/acrpool}

new_enough() {
	local v
	v=$("$1" env GOVERSION 2>/dev/null) || return 1   # go1.26.8
	v=${v#go}
	[ "$(printf '%s\n%s\n' 1.26 "$v" | sort -V | head -1)" = 1.26 ]
}

for g in "$(command -v go || true)" /usr/local/go/bin/go "$CACHE/go/go$WANT/bin/go"; do
	if [ -n "$g" ] && [ -x "$g" ] && new_enough "$g"; then
		echo "$g"; exit 0
	fi
done

boot=$(command -v go || true)
[ -n "$boot" ] || boot=/usr/lib/go/bin/go
if [ ! -x "$boot" ]; then
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "go.sh: installing Debian's golang-go to bootstrap Go $WANT" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go >/dev/null
	boot=/usr/lib/go/bin/go
fi
arch=$(dpkg --print-architecture)
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
echo "go.sh: fetching the go$WANT toolchain module with $("$boot" version)" >&2
dir=$(cd "$tmp" && GOMODCACHE="$tmp/mod" GOFLAGS=-modcacherw GO111MODULE=on GOTOOLCHAIN=local \
	"$boot" mod download -json "golang.org/toolchain@v0.0.1-go$WANT.linux-$arch" |
	sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -n "$dir" ] && [ -f "$dir/bin/go" ] || { echo "go.sh: toolchain download failed" >&2; exit 1; }
mkdir -p "$CACHE/go"
rm -rf "$CACHE/go/go$WANT.tmp"
cp -r "$dir" "$CACHE/go/go$WANT.tmp"
# Module zips carry no file modes; the go command restores these bits when
# it switches toolchains itself, so do the same.
chmod -R u+w "$CACHE/go/go$WANT.tmp"
chmod +x "$CACHE/go/go$WANT.tmp"/bin/* "$CACHE/go/go$WANT.tmp"/pkg/tool/*/*
mv "$CACHE/go/go$WANT.tmp" "$CACHE/go/go$WANT"
echo "$CACHE/go/go$WANT/bin/go"
