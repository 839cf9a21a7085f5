"""The Argo CD health check (docs/argocd-health.lua), run by a real Lua
interpreter on objects as the API server returns them.

Each case creates the object, writes its status through the status
subresource exactly as the operator does (so the API server's schema checks
the shape: conditions with type, status, reason, message,
lastTransitionTime, observedGeneration), optionally changes the spec
afterwards (a new generation the operator has not seen), reads it back and
hands it to the script as Argo CD does: a global `obj`, and the script
returns {status, message}. The script runs in an environment holding only
what Argo CD's sandbox offers, so a call to os or io would fail here too.
"""
import json
import shutil
import subprocess

import pytest

from kubeenv import ROOT

SCRIPT = ROOT / "docs" / "argocd-health.lua"
LUA = shutil.which("lua5.4")

HARNESS = r"""
local env = {ipairs = ipairs, pairs = pairs, next = next, tostring = tostring, tonumber = tonumber,
             type = type, error = error, pcall = pcall, select = select, unpack = table.unpack,
             string = string, table = table, math = math}
env.obj = %s
local chunk = assert(loadfile(%s, "t", env))
local hs = chunk()
io.write(hs.status, "\n", hs.message or "")
"""


def lua_literal(v):
    """A Lua expression for a JSON value (what Argo CD's Go-to-Lua conversion
    gives the script: tables for objects and arrays, numbers, strings, booleans)."""
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        out = []
        for b in v.encode():
            c = chr(b)
            out.append(c if 32 <= b < 127 and c not in '"\\' else f"\\{b:03d}")
        return '"' + "".join(out) + '"'
    if isinstance(v, list):
        return "{" + ", ".join(lua_literal(x) for x in v) + "}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def health(obj):
    p = subprocess.run([LUA, "-"], input=HARNESS % (lua_literal(obj), lua_literal(str(SCRIPT))),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    status, _, message = p.stdout.partition("\n")
    return status, message


T = "2026-11-20T10:00:00Z"
GEN = "<generation>"  # replaced by the object's metadata.generation when the status is written


def cond(type_, status, reason, message, gen=GEN):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": T, "observedGeneration": gen}


def kstatus(ready, reconciling, stalled, **extra):
    """Three conditions as the operator keeps them: (status, reason, message) each."""
    return {"observedGeneration": GEN, **extra,
            "conditions": [cond("Ready", *ready), cond("Reconciling", *reconciling), cond("Stalled", *stalled)]}


READY = ("True", "Succeeded", "The pool is ready")
NOT_READY = ("False", "Creating", "Waiting for Azure")
IDLE = ("False", "Succeeded", "Nothing to do")
BUSY = ("True", "Creating", "Azure is creating the pool (provisioningState Creating)")
FINE = ("False", "Succeeded", "")

REGISTRY = {"apiVersion": "acrpool.dev/v1alpha1", "kind": "Registry", "metadata": {"name": "reg"},
            "spec": {"subscriptionId": "00000000-0000-0000-0000-000000000000", "resourceGroup": "rg",
                     "name": "myregistry", "credential": {"managedIdentity": {}}}}
POOL = {"apiVersion": "acrpool.dev/v1alpha1", "kind": "AgentPool", "metadata": {"name": "pool"},
        "spec": {"registryRef": {"name": "reg"}, "tier": "S2"}}
TASK = {"apiVersion": "acrpool.dev/v1alpha1", "kind": "Task", "metadata": {"name": "mytask"},
        "spec": {"registryRef": {"name": "reg"}, "agentPoolRef": {"name": "pool"},
                 "step": {"docker": {"contextPath": "https://github.com/Azure-Samples/acr-build-helloworld-node.git#main",
                                     "imageNames": ["myimage:mytag"]}}}}
TASKRUN = {"apiVersion": "acrpool.dev/v1alpha1", "kind": "TaskRun", "metadata": {"name": "run1"},
           "spec": {"registryRef": {"name": "reg"}, "taskRef": {"name": "mytask"}}}

PAP = {"apiVersion": "acrpool.dev/v1alpha1", "kind": "PipelineAgentPool", "metadata": {"name": "agents"},
       "spec": {"organizationUrl": "https://dev.azure.com/contoso", "agentPool": "aci",
                "registration": {"patSecretRef": {"name": "azdo-pat"}}, "credential": {"managedIdentity": {}},
                "aci": {"subscriptionId": "00000000-0000-0000-0000-000000000000", "resourceGroup": "rg",
                        "location": "westeurope", "image": "myregistry.azurecr.io/azure-pipelines-agent:1"}}}

QUOTA = ("QuotaExceeded: the pools of registry myregistry would use 48 of 16 standard vCPUs; "
         "raise spec.quota after Azure support has raised it")


def run_status(rs, stalled=FINE, **extra):
    """A TaskRun's status for Azure's runStatus rs. Ready is True only once
    the run succeeded; Stalled stays False by default, so the cases show the
    verdict comes from runStatus itself."""
    done = rs in ("Succeeded", "Failed", "Canceled", "Error", "Timeout")
    ready = ("True", "Succeeded", "Run ca1 succeeded") if rs == "Succeeded" else ("False", rs, f"Run ca1 is {rs}")
    reconciling = ("False", rs, "") if done else ("True", rs, f"Run ca1 is {rs}")
    return kstatus(ready, reconciling, stalled, runId="ca1", runStatus=rs, startTime=T, **extra)


# (id, object, status written by the operator, spec change, expected status, expected in message).
# A spec change is ("after", patch): the user changed the spec after the
# operator wrote the status, or ("before", patch): the operator saw it.
CASES = [
    ("pool no status yet", POOL, None, None, "Progressing", "Waiting for the operator"),
    ("pool ready", POOL, kstatus(READY, IDLE, FINE, provisioningState="Succeeded", count=1, desiredCount=1),
     None, "Healthy", "The pool is ready"),
    ("pool creating", POOL, kstatus(NOT_READY, BUSY, FINE, provisioningState="Creating"), None,
     "Progressing", "Creating: Azure is creating the pool"),
    ("pool quota exceeded", POOL,
     kstatus(("False", "QuotaExceeded", QUOTA), ("False", "QuotaExceeded", ""), ("True", "QuotaExceeded", QUOTA)),
     None, "Degraded", "QuotaExceeded: the pools of registry myregistry would use 48 of 16"),
    ("pool conflicting azure pool", POOL,
     kstatus(("False", "ConflictingPool", "x"), FINE,
             ("True", "ConflictingPool", "an Azure pool named pool exists with tier S1, not S2; not modified")),
     None, "Degraded", "ConflictingPool: an Azure pool named pool exists with tier S1"),
    ("pool ready but spec changed since", POOL, kstatus(READY, IDLE, FINE), ("after", {"spec": {"count": 0}}),
     "Progressing", "observe generation 2"),
    ("pool stalled but spec changed since", POOL,
     kstatus(("False", "QuotaExceeded", QUOTA), FINE, ("True", "QuotaExceeded", QUOTA)), ("after", {"spec": {"count": 0}}),
     "Progressing", "observe generation 2"),
    ("pool status without conditions", POOL, {"observedGeneration": GEN}, None,
     "Progressing", "Waiting for the operator to report conditions"),
    ("registry ready", REGISTRY, kstatus(("True", "Succeeded", "Premium registry in westeurope"), IDLE, FINE,
                                         location="westeurope", sku="Premium"),
     None, "Healthy", "Premium registry in westeurope"),
    ("registry not premium", REGISTRY,
     kstatus(("False", "NotPremium", "x"), FINE,
             ("True", "NotPremium", "registry myregistry is Standard; agent pools need Premium")),
     None, "Degraded", "NotPremium: registry myregistry is Standard"),
    ("registry auth failure quotes azure", REGISTRY,
     kstatus(("False", "AuthenticationFailed", "x"), FINE,
             ("True", "AuthenticationFailed",
              'Azure said AADSTS700016: "Application with identifier \'abc\' was not found"')),
     None, "Degraded", "AADSTS700016: \"Application with identifier 'abc' was not found\""),
    ("task waiting for its pool", TASK,
     kstatus(("False", "AgentPoolNotReady", "x"),
             ("True", "AgentPoolNotReady", "waiting for AgentPool pool to be Ready"), FINE),
     None, "Progressing", "AgentPoolNotReady: waiting for AgentPool pool"),
    ("task ready", TASK, kstatus(("True", "Succeeded", "Task mytask is in Azure"), IDLE, FINE), None,
     "Healthy", "Task mytask is in Azure"),
    ("task ready message empty", TASK, kstatus(("True", "Succeeded", ""), IDLE, FINE), None,
     "Healthy", "Succeeded: Ready"),
    ("pipelineagentpool no status yet", PAP, None, None, "Progressing", "Waiting for the operator"),
    ("pipelineagentpool ready", PAP,
     kstatus(("True", "Succeeded", "3 agents online"), IDLE, FINE, poolId=9, count=3, desiredCount=3, online=3,
             busy=1, queuedJobs=0, jobsCompleted=12,
             instances=[{"name": "agents-0", "provisioningState": "Succeeded", "state": "Running", "restartCount": 4,
                         "agentId": 17, "agentStatus": "online", "enabled": True, "busy": True}]),
     None, "Healthy", "3 agents online"),
    ("pipelineagentpool creating instances", PAP,
     kstatus(("False", "Creating", "x"), ("True", "Creating", "creating container group agents-1 (1 of 3 exist)"),
             FINE, count=1, desiredCount=3),
     None, "Progressing", "Creating: creating container group agents-1"),
    ("pipelineagentpool devops pool missing", PAP,
     kstatus(("False", "AgentPoolNotFound", "x"), FINE,
             ("True", "AgentPoolNotFound", "Azure DevOps has no agent pool named aci in https://dev.azure.com/contoso")),
     None, "Degraded", "AgentPoolNotFound: Azure DevOps has no agent pool named aci"),
    ("pipelineagentpool ready but count changed since", PAP, kstatus(READY, IDLE, FINE),
     ("after", {"spec": {"count": 5}}), "Progressing", "observe generation 2"),
    ("taskrun no status yet", TASKRUN, None, None, "Progressing", "Waiting for the operator"),
    ("taskrun queued", TASKRUN, run_status("Queued"), None, "Progressing", "Run ca1 is Queued"),
    ("taskrun started", TASKRUN, run_status("Started"), None, "Progressing", "Run ca1 is Started"),
    ("taskrun running", TASKRUN, run_status("Running"), None, "Progressing", "Run ca1 is Running"),
    ("taskrun succeeded", TASKRUN, run_status("Succeeded", finishTime=T), None, "Healthy", "Run ca1 succeeded"),
    ("taskrun failed with azure error", TASKRUN,
     run_status("Failed", finishTime=T, errorMessage="failed to push image: unauthorized"), None,
     "Degraded", "Run ca1 Failed: failed to push image: unauthorized"),
    ("taskrun failed and stalled", TASKRUN,
     run_status("Failed", stalled=("True", "RunFailed", "Run ca1 failed: step build exited with 1"), finishTime=T),
     None, "Degraded", "Run ca1 Failed: Run ca1 failed: step build exited with 1"),
    ("taskrun error", TASKRUN, run_status("Error", finishTime=T), None, "Degraded", "Run ca1 Error"),
    ("taskrun timeout", TASKRUN, run_status("Timeout", finishTime=T), None, "Degraded", "Run ca1 Timeout"),
    ("taskrun canceled by spec.cancel", TASKRUN, run_status("Canceled", finishTime=T), ("before", {"spec": {"cancel": True}}),
     "Degraded", "Run ca1 Canceled"),
    ("taskrun cancel not yet observed", TASKRUN, run_status("Running"), ("after", {"spec": {"cancel": True}}),
     "Progressing", "observe generation 2"),
    ("taskrun task missing before scheduling", TASKRUN,
     kstatus(("False", "TaskNotFound", "x"), FINE, ("True", "TaskNotFound", "Task mytask does not exist")),
     None, "Degraded", "TaskNotFound: Task mytask does not exist"),
    ("taskrun waiting before scheduling", TASKRUN,
     kstatus(("False", "Scheduling", "x"), ("True", "Scheduling", "scheduling the run"), FINE),
     None, "Progressing", "Scheduling: scheduling the run"),
]


def with_generation(value, gen):
    if value == GEN:
        return gen
    if isinstance(value, dict):
        return {k: with_generation(v, gen) for k, v in value.items()}
    if isinstance(value, list):
        return [with_generation(v, gen) for v in value]
    return value


def write_status(kube, obj, namespace, status):
    kind, name = obj["kind"].lower(), obj["metadata"]["name"]
    gen = kube.get(kind, name, namespace)["metadata"]["generation"]
    kube.run("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge",
             "-p", json.dumps({"status": with_generation(status, gen)}))


@pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed (scripts/deps.sh installs it)")
@pytest.mark.parametrize("case,obj,status,change,want,message", CASES, ids=[c[0] for c in CASES])
def test_argocd_health(kube, namespace, case, obj, status, change, want, message):
    kind, name = obj["kind"].lower(), obj["metadata"]["name"]
    when, patch = change or (None, None)
    kube.apply(obj, namespace)
    if when == "before":
        kube.run("patch", kind, name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    if status is not None:
        write_status(kube, obj, namespace, status)
    if when == "after":
        kube.run("patch", kind, name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    live = kube.get(kind, name, namespace)
    got, msg = health(live)
    assert (got, message in msg) == (want, True), f"{case}: got {got} {msg!r}, want {want} with {message!r}"


@pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed (scripts/deps.sh installs it)")
def test_lua_literal_round_trips_awkward_strings():
    """The converter the cases rely on: quotes, backslashes, newlines and
    UTF-8 reach the script unchanged."""
    s = 'a "quoted" \\ back\nslash é 中'
    obj = {"kind": "AgentPool", "metadata": {"generation": 1},
           "status": {"observedGeneration": 1, "conditions": [cond("Stalled", "True", "X", s, 1)]}}
    assert health(obj) == ("Degraded", "X: " + s)
