#!/usr/bin/env bash
# testenv.sh: a real Kubernetes control plane (etcd + kube-apiserver) on
# loopback, for the tests, the quick start and any developer.
#
#   testenv.sh build            build kube-apiserver, kubectl and etcd from the
#                               Go modules in tests/controlplane/ into the cache
#                               (no-op when the cache already has them)
#   testenv.sh bindir           print the directory holding the built binaries
#   testenv.sh start DIR        start etcd and kube-apiserver with state in DIR,
#                               wait until ready, write DIR/admin.kubeconfig and
#                               DIR/env (sourceable: KUBECONFIG, ports, PIDs)
#   testenv.sh stop DIR         stop both and remove their data
#   testenv.sh restart-apiserver DIR
#                               restart kube-apiserver alone (fault tests);
#                               TESTENV_COMPACT=1 compacts etcd meanwhile
#
# Opt-in audit log: TESTENV_AUDIT_LOG=PATH at start has kube-apiserver write
# one JSON line per request to PATH (Metadata level: who, verb, resource,
# user agent, code, times; no bodies), kept across restart-apiserver.
#
# The binaries are cached outside the repository, keyed by the pinned
# versions and a hash of the wrapper modules, so a change of pin rebuilds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_VERSION=1.36.3
ETCD_VERSION=3.6.8
CACHE=${ACRPOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/acrpool}

die() { echo "testenv: $*" >&2; exit 1; }

modkey() {
	cat "$ROOT"/tests/controlplane/k8s/go.{mod,sum} "$ROOT"/tests/controlplane/k8s/tools.go \
	    "$ROOT"/tests/controlplane/etcd/go.{mod,sum} "$ROOT"/tests/controlplane/etcd/main.go |
		sha256sum | cut -c1-12
}

bindir() { echo "$CACHE/testbin/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION-$(modkey)"; }

cmd_build() {
	local out; out=$(bindir)
	if [ -x "$out/kube-apiserver" ] && [ -x "$out/kubectl" ] && [ -x "$out/etcd" ]; then
		return 0
	fi
	local go
	go=$("$ROOT/scripts/go.sh") || die "no Go >= 1.26 to build the control plane with"
	export PATH="$(dirname "$go"):$PATH" GOTOOLCHAIN=local CGO_ENABLED=0
	export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod} GOCACHE=${GOCACHE:-$CACHE/gobuild}
	export GOFLAGS=-modcacherw
	local tmp="$out.tmp.$$" minor ldf p start
	rm -rf "$tmp"; mkdir -p "$tmp"
	start=$(date +%s)
	minor=$(echo "$K8S_VERSION" | cut -d. -f2)
	# Stamp the version the way hack/lib/version.sh does, so /version and the
	# emulation-version checks see v1.Y.Z and not v0.0.0-master.
	ldf="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldf="$ldf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
		ldf="$ldf -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
	done
	echo "testenv: building etcd v$ETCD_VERSION, kube-apiserver and kubectl v$K8S_VERSION (once; cached in $out)" >&2
	(cd "$ROOT/tests/controlplane/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
	(cd "$ROOT/tests/controlplane/k8s" &&
		go build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver &&
		go build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl)
	rm -rf "$out"; mv "$tmp" "$out"
	echo "testenv: built in $(( $(date +%s) - start ))s" >&2
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for DESC TIMEOUT CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local desc=$1 timeout=$2 deadline; shift 2
	deadline=$(( $(date +%s) + timeout ))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

gen_certs() {
	local d=$1
	(
	cd "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 -subj /CN=acrpool-testenv-ca 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=localhost 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > srv.ext
	openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile srv.ext -out apiserver.crt 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' > cli.ext
	openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile cli.ext -out admin.crt 2>/dev/null
	openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
	openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
	rm -f ./*.csr ./*.ext ca.srl
	)
}

# write_audit_policy DIR: every request at the Metadata level, once when its
# answer is complete, and for a long-running one (a WATCH) also when its
# answer starts, so a watch still open is seen. --audit-log-maxsize=0: one
# file, never rotated; blocking mode: no event is dropped.
write_audit_policy() {
	local d=$1 log
	mkdir -p "$(dirname "$TESTENV_AUDIT_LOG")"
	log=$(cd "$(dirname "$TESTENV_AUDIT_LOG")" && pwd)/$(basename "$TESTENV_AUDIT_LOG")
	: >>"$log"
	echo "$log" >"$d/audit-log.path"
	cat >"$d/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
POLICY
}

# start_apiserver DIR: run kube-apiserver against DIR's etcd on DIR's port
# and wait until it is ready. Used by start and restart-apiserver.
start_apiserver() {
	local d=$1 bin ep ap adv=()
	bin=$(bindir); ep=$(cat "$d/etcd.port"); ap=$(cat "$d/apiserver.port")
	# kube-apiserver refuses a loopback advertise address and otherwise takes
	# the default route's; with no default route (a bare network namespace)
	# give it a documentation address: it is only written into the
	# `kubernetes` Endpoints, nothing connects to it.
	ip route show default 2>/dev/null | grep -q . || adv=(--advertise-address=192.0.2.10)
	local audit=()
	[ ! -f "$d/audit-log.path" ] || audit=(--audit-policy-file="$d/audit-policy.yaml"
		--audit-log-path="$(cat "$d/audit-log.path")" --audit-log-format=json
		--audit-log-maxsize=0 --audit-log-mode=blocking)
	# shellcheck disable=SC2086
	"$bin/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:$ep" \
		--secure-port="$ap" --bind-address=127.0.0.1 "${adv[@]}" \
		--tls-cert-file="$d/apiserver.crt" --tls-private-key-file="$d/apiserver.key" \
		--client-ca-file="$d/ca.crt" \
		--service-account-issuer="https://127.0.0.1:$ap/" \
		--service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \
		--authorization-mode=RBAC \
		--service-cluster-ip-range=10.0.0.0/24 \
		--disable-admission-plugins=ServiceAccount \
		--cert-dir="$d/certs" "${audit[@]}" \
		${TESTENV_APISERVER_ARGS:-} >>"$d/apiserver.log" 2>&1 &
	echo $! >"$d/apiserver.pid"
	# Authenticated probe: anonymous /readyz can be 401/403 until the RBAC
	# bootstrap roles exist.
	wait_for apiserver 120 curl -fsS --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
		"https://127.0.0.1:$ap/readyz"
}

# restart-apiserver DIR: kill kube-apiserver (SIGKILL, as a crash) and start
# it again on the same port; etcd keeps running. With TESTENV_COMPACT=1, etcd is compacted to
# its current revision while the API server is down, so every client that
# resumes a watch from before gets 410 Gone and must relist.
cmd_restart_apiserver() {
	local d=${1:?usage: testenv.sh restart-apiserver DIR} ep rev
	stop_pid "$d/apiserver.pid" KILL
	if [ "${TESTENV_COMPACT:-}" = 1 ]; then
		ep=$(cat "$d/etcd.port")
		# etcd's JSON gateway: read the current revision, then compact to it.
		rev=$(curl -fsS -X POST "http://127.0.0.1:$ep/v3/kv/range" -d '{"key":"AA=="}' |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
		curl -fsS -X POST "http://127.0.0.1:$ep/v3/kv/compaction" \
			-d "{\"revision\": \"$rev\", \"physical\": true}" >/dev/null
	fi
	start_apiserver "$d" || { tail -20 "$d/apiserver.log" >&2; die "kube-apiserver did not come back"; }
	sed -i "s/^export TESTENV_APISERVER_PID=.*/export TESTENV_APISERVER_PID=$(cat "$d/apiserver.pid")/" "$d/env"
}

cmd_start() {
	local d=${1:?usage: testenv.sh start DIR} bin ep pp ap t0
	t0=$(date +%s%N)
	cmd_build
	bin=$(bindir)
	mkdir -p "$d"; d=$(cd "$d" && pwd)
	[ ! -f "$d/env" ] || die "$d already holds a running control plane; stop it first"
	gen_certs "$d"
	ep=$(free_port); pp=$(free_port); ap=$(free_port)

	"$bin/etcd" --name testenv --data-dir="$d/etcd" \
		--listen-client-urls="http://127.0.0.1:$ep" --advertise-client-urls="http://127.0.0.1:$ep" \
		--listen-peer-urls="http://127.0.0.1:$pp" --initial-advertise-peer-urls="http://127.0.0.1:$pp" \
		--initial-cluster="testenv=http://127.0.0.1:$pp" --unsafe-no-fsync=true \
		--log-level=warn >"$d/etcd.log" 2>&1 &
	echo $! >"$d/etcd.pid"
	wait_for etcd 60 curl -fsS "http://127.0.0.1:$ep/health" ||
		{ tail -20 "$d/etcd.log" >&2; cmd_stop "$d"; die "etcd did not become healthy"; }

	echo "$ep" >"$d/etcd.port"
	echo "$ap" >"$d/apiserver.port"
	rm -f "$d/audit-log.path"
	[ -z "${TESTENV_AUDIT_LOG:-}" ] || write_audit_policy "$d"
	start_apiserver "$d" ||
		{ tail -20 "$d/apiserver.log" >&2; cmd_stop "$d"; die "kube-apiserver did not become ready"; }

	local k="$d/admin.kubeconfig" kc="$bin/kubectl"
	"$kc" config --kubeconfig="$k" set-cluster testenv --server="https://127.0.0.1:$ap" \
		--certificate-authority="$d/ca.crt" --embed-certs >/dev/null
	"$kc" config --kubeconfig="$k" set-credentials admin --client-certificate="$d/admin.crt" \
		--client-key="$d/admin.key" --embed-certs >/dev/null
	"$kc" config --kubeconfig="$k" set-context testenv --cluster=testenv --user=admin >/dev/null
	"$kc" config --kubeconfig="$k" use-context testenv >/dev/null
	wait_for namespace 60 "$kc" --kubeconfig="$k" get namespace default ||
		{ cmd_stop "$d"; die "namespace default never appeared"; }

	cat >"$d/env" <<ENV
export KUBECONFIG=$k
export TESTENV_DIR=$d
export TESTENV_BIN=$bin
export PATH=$bin:\$PATH
export TESTENV_APISERVER=https://127.0.0.1:$ap
export TESTENV_APISERVER_PORT=$ap
export TESTENV_ETCD=http://127.0.0.1:$ep
export TESTENV_ETCD_PID=$(cat "$d/etcd.pid")
export TESTENV_APISERVER_PID=$(cat "$d/apiserver.pid")
ENV
	[ ! -f "$d/audit-log.path" ] || echo "export TESTENV_AUDIT_LOG=$(cat "$d/audit-log.path")" >>"$d/env"
	# A watchdog stops everything if the owner (the test run that started
	# us) dies without calling stop, e.g. on SIGKILL.
	if [ -n "${TESTENV_OWNER_PID:-}" ]; then
		( trap '' INT; while kill -0 "$TESTENV_OWNER_PID" 2>/dev/null && [ -f "$d/env" ]; do sleep 1; done
		  [ -f "$d/env" ] && "$ROOT/scripts/testenv.sh" stop "$d" ) >/dev/null 2>&1 </dev/null &
	fi
	echo "testenv: control plane up at https://127.0.0.1:$ap in $(( ($(date +%s%N) - t0) / 1000000 )) ms; source $d/env" >&2
}

# stop_pid FILE [SIG]: signal the process (SIGTERM by default), give it 5 s,
# then SIGKILL. kube-apiserver drains open watches for up to a minute on
# SIGTERM; nothing here needs that.
stop_pid() {
	local f=$1 sig=${2:-TERM} pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -"$sig" "$pid" 2>/dev/null; then
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$f"
}

cmd_stop() {
	local d=${1:?usage: testenv.sh stop DIR}
	[ -d "$d" ] || return 0
	rm -f "$d/env"
	stop_pid "$d/apiserver.pid"
	stop_pid "$d/etcd.pid"
	rm -rf "$d/etcd" "$d/certs"
}


case "${1:-}" in
build) cmd_build ;;
bindir) bindir ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
restart-apiserver) shift; cmd_restart_apiserver "$@" ;;
*) die "usage: testenv.sh build|bindir|start DIR|stop DIR|restart-apiserver DIR" ;;
esac
