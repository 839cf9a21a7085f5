#!/usr/bin/env bash
# quickstart.sh: the README's first command, the whole demo on this machine:
# a real kube-apiserver and etcd on loopback, the Azure emulator, the
# operator (authenticating with workload identity, as on AKS), and the
# samples applied; then a PipelineAgentPool of two Azure Pipelines agents in
# the emulator's container groups, running jobs queued in its Azure DevOps
# stand-in; then a live view of the pools until Ctrl-C, which stops
# everything.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${ACRPOOL_BUILD_DIR:-$ROOT/build}
STATE=${QUICKSTART_DIR:-${TMPDIR:-/tmp}/acrpool-quickstart}
SUB=00000000-0000-0000-0000-000000000000
TENANT=22222222-2222-2222-2222-222222222222
CLIENT=11111111-1111-1111-1111-111111111111
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	"$ROOT/scripts/testenv.sh" stop "$STATE/cp" >/dev/null 2>&1 || true
	echo
	echo "quickstart: stopped (logs in $STATE)"
}

"$ROOT/scripts/testenv.sh" stop "$STATE/cp" >/dev/null 2>&1 || true
rm -rf "$STATE"; mkdir -p "$STATE"
trap cleanup EXIT
trap 'exit 130' INT TERM
TESTENV_OWNER_PID=$$ "$ROOT/scripts/testenv.sh" start "$STATE/cp"
# shellcheck disable=SC1091
source "$STATE/cp/env"

kubectl apply -f "$ROOT/crds/" >/dev/null
kubectl wait --for condition=Established --timeout=60s -f "$ROOT/crds/" >/dev/null

# The Azure side: the emulator with a Premium registry, and an app whose
# federated credential trusts our API server's service account tokens,
# exactly as Microsoft Entra Workload ID is set up for AKS.
python3 "$ROOT/tests/emulator/acr_emulator.py" --port 0 --port-file "$STATE/emulator.port" \
	2>"$STATE/emulator.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$STATE/emulator.port" ] && break; sleep 0.1; done
EMU="http://127.0.0.1:$(cat "$STATE/emulator.port")"
ctl() { curl -fsS -X "$1" "$EMU/_emulator/$2" -H 'Content-Type: application/json' -d "$3" >/dev/null; }
ctl PUT "registries/$SUB/myresourcegroup/myregistry" '{"location": "eastus", "sku": "Premium"}'
ctl POST identity/clients "{\"tenantId\": \"$TENANT\", \"clientId\": \"$CLIENT\",
	\"federatedCredentials\": [{\"issuer\": \"$TESTENV_APISERVER/\",
	\"subject\": \"system:serviceaccount:acrpool-system:acrpool-controller\",
	\"audience\": \"api://AzureADTokenExchange\"}]}"

# The operator's identity: a service account token for the Entra audience,
# where the workload identity webhook would project it on AKS.
kubectl create namespace acrpool-system >/dev/null
kubectl -n acrpool-system create serviceaccount acrpool-controller >/dev/null
kubectl -n acrpool-system create token acrpool-controller --audience api://AzureADTokenExchange \
	--duration 24h >"$STATE/azure-identity-token"

# --devops-endpoint: Azure DevOps organizations are the emulator's stand-in.
# --queue-poll-interval 5s: a Ready PipelineAgentPool is read again every 5 s
# (default 30 s), so its JOBS and ONLINE columns follow the demo's jobs.
AZURE_FEDERATED_TOKEN_FILE="$STATE/azure-identity-token" "$BUILD/reconcilers/acrpool-controller" \
	--kubeconfig "$KUBECONFIG" --arm-endpoint "$EMU" --authority-host "$EMU/" --devops-endpoint "$EMU/devops" \
	--queue-poll-interval 5s \
	--metrics-bind-address 127.0.0.1:0 --metrics-secure=false --health-probe-bind-address 127.0.0.1:0 \
	2>"$STATE/operator.log" &
PIDS+=($!)

kubectl create namespace acrpool-demo >/dev/null
kubectl apply -n acrpool-demo -k "$ROOT/manifests/samples"
kubectl wait -n acrpool-demo --for=condition=Ready --timeout=120s registry/myregistry >/dev/null
kubectl wait -n acrpool-demo --for=condition=Ready --timeout=120s agentpool --all >/dev/null

# Azure Pipelines agents in Azure Container Instances (docs/pipeline-agents.md).
# The Azure DevOps side, in the emulator's stand-in: the organization contoso
# with the agent pool aci, and a PAT with Agent Pools (read, manage) that the
# operator registers the agents with. The PAT is made here, kept in a file
# only this user can read, and goes to the stand-in and to the Secret from
# that file: it is never printed or put on a command line.
ctl PUT devops/orgs/contoso '{}'
ctl PUT devops/orgs/contoso/pools/aci '{}'
pat=$(head -c 40 /dev/urandom | base32 -w0 | tr '[:upper:]' '[:lower:]')
(umask 077 && printf '%s' "${pat:0:52}" >"$STATE/azdo-pat")
unset pat
printf '{"name": "quickstart", "scopes": ["vso.agentpools_manage"], "token": "%s"}' "$(cat "$STATE/azdo-pat")" |
	curl -fsS -X POST "$EMU/_emulator/devops/orgs/contoso/pats" -H 'Content-Type: application/json' -d @- >/dev/null
kubectl -n acrpool-demo create secret generic azdo-pat --from-file=pat="$STATE/azdo-pat" >/dev/null
# The emulator's container groups run a simulated agent for the sample's
# image: it authenticates with its own key, takes one job, exits, and ACI
# starts it again (restartPolicy Always), as the image's start.sh does.
ctl PUT aci/images '{"image": "myregistry.azurecr.io/azure-pipelines-agent:latest", "program": "azure-pipelines-agent"}'
kubectl apply -n acrpool-demo -f "$ROOT/manifests/samples/pipelineagentpool-quickstart.yaml"
kubectl wait -n acrpool-demo --for=condition=Ready --timeout=120s pipelineagentpool/ci-agents >/dev/null
kubectl wait -n acrpool-demo --for=jsonpath='{.status.online}'=2 --timeout=120s pipelineagentpool/ci-agents >/dev/null

# Three jobs queued in the pool, as pipelines would queue them; each agent
# takes one per container start. Wait until the operator reports them done.
JOBS=3
ctl POST devops/orgs/contoso/pools/aci/jobs "{\"count\": $JOBS, \"durationSeconds\": 2, \"name\": \"quickstart build\"}"
kubectl wait -n acrpool-demo --for=jsonpath='{.status.jobsCompleted}'=$JOBS --timeout=120s \
	pipelineagentpool/ci-agents >/dev/null
kubectl wait -n acrpool-demo --for=jsonpath='{.status.online}'=2 --timeout=120s pipelineagentpool/ci-agents >/dev/null
echo
echo "quickstart: $JOBS jobs queued in the Azure DevOps pool aci ran on the agents, one per container start:"
curl -fsS "$EMU/_emulator/devops/orgs/contoso/pools/aci/jobs" | python3 -c '
import json, sys
for j in json.load(sys.stdin)["value"]:
    agent, ran = j["agent"] or {}, j["ranIn"] or {}
    print("  job %s (%s): %s, %s, on agent %s, container start %s"
          % (j["requestId"], j["name"], j["state"], j["result"], agent.get("name"), ran.get("start")))
'
kubectl get -n acrpool-demo pipelineagentpools

cat <<MSG

quickstart: the operator created the sample pools in the Azure emulator, and two Azure Pipelines agents
  in its container groups that ran $JOBS jobs.
  In another shell:   source $STATE/cp/env
                      kubectl -n acrpool-demo patch agentpool myagentpool --type=merge -p '{"spec":{"count":2}}'
                      kubectl -n acrpool-demo describe agentpool myagentpool
                      kubectl -n acrpool-demo get pipelineagentpools --watch
                      curl -s -X POST $EMU/_emulator/devops/orgs/contoso/pools/aci/jobs -d '{"count": 4}' >/dev/null
  Logs:               $STATE/operator.log (operator), $STATE/emulator.log (Azure emulator)
  Real Azure instead: drop --arm-endpoint, --authority-host and --devops-endpoint, point
                      manifests/samples/registry.yaml (and pipelineagentpool.yaml) at your registry,
                      identity and Azure DevOps organization, and deploy as in docs/deploy-aks.md.
Watching agent pools; Ctrl-C stops everything.

MSG
if [ "${QUICKSTART_EXIT:-}" = 1 ]; then
	kubectl get -n acrpool-demo registries,agentpools,pipelineagentpools
	exit 0
fi
kubectl get -n acrpool-demo agentpools --watch
