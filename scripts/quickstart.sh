#!/usr/bin/env bash
# quickstart.sh: the README's first command. Brings up a real control plane
# on loopback, installs the CRDs and the samples, shows them, and keeps
# everything running until Ctrl-C (then stops it all).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${QUICKSTART_DIR:-${XDG_RUNTIME_DIR:-/tmp}/acrpool-quickstart}

"$ROOT/scripts/testenv.sh" stop "$STATE" 2>/dev/null || true
trap '"$ROOT/scripts/testenv.sh" stop "$STATE"; echo; echo "quickstart: stopped"' EXIT
TESTENV_OWNER_PID=$$ "$ROOT/scripts/testenv.sh" start "$STATE"
# shellcheck disable=SC1091
source "$STATE/env"

kubectl apply -f "$ROOT/crds/"
kubectl wait --for condition=Established --timeout=60s -f "$ROOT/crds/"
kubectl create namespace acrpool-demo --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n acrpool-demo -k "$ROOT/manifests/samples"
echo
kubectl get -n acrpool-demo registries,agentpools,tasks,taskruns
cat <<MSG

quickstart: a real kube-apiserver is serving the acrpool API.
  In another shell:  source $STATE/env
                     kubectl get -n acrpool-demo agentpools -o yaml
                     kubectl explain agentpool.spec
Press Ctrl-C to stop everything.
MSG
if [ "${QUICKSTART_EXIT:-}" = 1 ]; then exit 0; fi
while :; do sleep 3600; done
