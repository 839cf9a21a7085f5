"""PipelineAgentPool end to end, the cases of issue 14 that
test_pipelineagentpool.py does not cover: Azure refusing a container group
for quota, an agent pool the organization does not have, VNet injection
(and a subnet ACI refuses), a template change while every agent runs a job
(and while the replaced agents take time to come online), environment
variables from a Secret, and Azure DevOps throttling.

Same setup as test_pipelineagentpool.py (its Env, the emulator's container
groups running the simulated agent, the real operator under its RBAC, and
its operator fixture, which scans after each test the operator's log, the
Events and the objects' status for every PAT, the service principal's
secret, any agent key and every Secret value a test put in
spec.aci.environment)."""
import base64
import hashlib
import json
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest

from emulator import RG, SUB
from harness import arm_token, condition, events, wait_condition, wait_event
from procs import wait_until
from test_pipelineagentpool import BROKEN_IMAGE, IMAGE, KEY_MARKERS, ORG, Env, status, wait_ready
from test_pipelineagentpool import emu, operator  # noqa: F401 (the module's fixtures)

ACI_API = "2025-09-01"
IMAGE2 = "example.azurecr.io/azp-agent:2"
LOCATION = "eastus"
SUBNET = (f"/subscriptions/{SUB}/resourceGroups/network-rg/providers/Microsoft.Network/virtualNetworks/"
          "ci-vnet/subnets/aci-agents")


@pytest.fixture
def env(emu, kube, namespace):  # noqa: F811
    e = Env(emu, kube, namespace)
    e.emu.control("PUT", "aci/images", {"image": IMAGE2, "program": "azure-pipelines-agent"})
    return e


# -- helpers -------------------------------------------------------------------------------------

def arm_get(e, path):
    """GET on the emulator's ARM, as a client of the service would see it."""
    url = f"{e.url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance{path}" \
          f"?api-version={ACI_API}"
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + arm_token(e)})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def redacted(value):
    """What the emulator's request log keeps of a secureValue (aci.mask_body)."""
    return "<redacted sha256:%s>" % hashlib.sha256(json.dumps(value).encode()).hexdigest()[:12]


def group_puts(e, since=0.0):
    return [r for r in e.requests(method="PUT", path_contains="/containerGroups/") if r["time"] >= since]


def container_env(put):
    return {e["name"]: e for e in put["body"]["properties"]["containers"][0]["properties"]["environmentVariables"]}


def stalled(obj):
    c = condition(obj, "Stalled")
    return c if c and c["status"] == "True" else None


def secret_obj(name, **data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "stringData": data}


def parse_iso(text):
    """The emulator's RFC 3339 (7 fractional digits, Z) as epoch seconds."""
    head, frac = text.rstrip("Z").split(".")
    return datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp() + float("0." + frac)


# -- 1. ACI quota --------------------------------------------------------------------------------

def test_container_group_quota_stalls_and_touches_nothing_else(kube, namespace, env, operator):
    """Azure refuses the third container group for the region's quota: the
    object is Stalled with ACI's code and message and a Warning Event, the
    two running instances are left alone, and the agent registered for the
    refused group is taken back."""
    operator()
    env.emu.control("PUT", f"aci/quota/{SUB}/{LOCATION}", {"maxContainerGroups": 2})
    kube.apply(env.obj(count=2), namespace)
    wait_ready(kube, namespace, count=2)
    before = {a["name"]: a["id"] for a in env.agents()}
    env.emu.clear_requests()

    kube.run("patch", "pipelineagentpool", "agents", "-n", namespace, "--type=merge", "-p", '{"spec":{"count":3}}')
    obj = wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled",
                         reason="ContainerGroupQuotaReached", timeout=60)
    c = stalled(obj)
    assert "ContainerGroupQuotaReached" in c["message"], c
    # The service's own words: which quota, where, the limit.
    assert "quota 'ContainerGroups' exceeded in region 'eastus'" in c["message"], c
    assert "Limit: '2'" in c["message"], c
    ready = condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainerGroupQuotaReached", ready
    ev = wait_event(kube, namespace, "agents", "ContainerGroupQuotaReached", "Warning")
    assert "exceeded in region 'eastus'" in ev["note"], ev

    # Every agent the operator added for agents-2 it deleted again (a later
    # pass may try once more; wait for the last one to be taken back).
    def adds_and_deletes():
        reqs = env.emu.requests(path_contains=f"/devops/{ORG}/_apis/distributedtask/pools/")
        adds = [r for r in reqs if r["method"] == "POST" and r["path"].rstrip("/").endswith("/agents")
                and r["status"] == 200]
        deletes = [r for r in reqs if r["method"] == "DELETE" and "/agents/" in r["path"]]
        return (adds, deletes) if adds and len(deletes) == len(adds) else None
    adds, deletes = wait_until("each agent added for agents-2 deleted", adds_and_deletes, timeout=30)
    assert all(r["body"]["name"] == "agents-2" for r in adds), [r["body"]["name"] for r in adds]
    assert sorted(a["name"] for a in env.agents()) == ["agents-0", "agents-1"]
    assert {a["name"]: a["id"] for a in env.agents()} == before
    assert all(a["enabled"] and a["status"] == "online" for a in env.agents()), env.agents()
    assert env.groups() == ["agents-0", "agents-1"]

    # Nothing else was touched: no write on the running instances, in Azure
    # or in Azure DevOps; the only group PUT was the refused one.
    writes = [r for r in env.emu.requests() if r["method"] in ("PUT", "PATCH", "DELETE", "POST")]
    aci_writes = [(r["method"], r["path"].rsplit("/", 1)[1], r["status"]) for r in writes
                  if "/Microsoft.ContainerInstance/" in r["path"]]
    assert aci_writes and all(w == ("PUT", "agents-2", 400) for w in aci_writes), aci_writes
    ids = {str(i) for i in before.values()}
    touched = [(r["method"], r["path"]) for r in writes if "/_apis/distributedtask/" in r["path"]
               and "/agents/" in r["path"] and r["path"].rstrip("/").rsplit("/", 1)[1] in ids]
    assert touched == [], touched
    assert status(kube, namespace)["count"] == 2


# -- 2. an agent pool the organization does not have ---------------------------------------------

def test_agent_pool_that_does_not_exist_stalls_and_creates_nothing(kube, namespace, env, operator):
    operator()
    obj = env.obj(count=2)
    obj["spec"]["agentPool"] = "no-such-pool"
    applied = time.time()
    kube.apply(obj, namespace)
    got = wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled", reason="AgentPoolNotFound",
                         timeout=60)
    c = stalled(got)
    assert "no-such-pool" in c["message"] and ORG in c["message"], c
    ev = wait_event(kube, namespace, "agents", "AgentPoolNotFound", "Warning")
    assert "no-such-pool" in ev["note"], ev
    assert env.groups() == [] and env.agents() == []
    # (The log may still get the last requests of an earlier test's agents: only this test's count.)
    assert not [r for r in env.emu.requests(path_contains="/Microsoft.ContainerInstance/")
                if r["method"] != "GET" and r["time"] >= applied]
    assert not [(r["method"], r["path"]) for r in env.emu.requests(path_contains="/_apis/distributedtask/pools")
                if r["method"] != "GET" and r["time"] >= applied]
    assert "poolId" not in (got.get("status") or {})


# -- 3. VNet injection ---------------------------------------------------------------------------

def test_subnet_ids_reach_every_container_group(kube, namespace, env, operator):
    operator()
    obj = env.obj(count=2)
    obj["spec"]["aci"]["subnetIds"] = [SUBNET]
    kube.apply(obj, namespace)
    wait_ready(kube, namespace, count=2)
    puts = group_puts(env.emu)
    assert sorted(p["path"].rsplit("/", 1)[1] for p in puts) == ["agents-0", "agents-1"]
    for p in puts:
        assert [s["id"] for s in p["body"]["properties"]["subnetIds"]] == [SUBNET], p["body"]["properties"]
    # What Azure stored (and answers on GET) is the declared subnet.
    for name in ("agents-0", "agents-1"):
        got = arm_get(env.emu, f"/containerGroups/{name}")
        assert [s["id"] for s in got["properties"]["subnetIds"]] == [SUBNET], got["properties"]


def test_subnet_azure_refuses_stalls_quoting_azure(kube, namespace, env, operator):
    """A subnet not delegated to Microsoft.ContainerInstance/containerGroups:
    ACI refuses the group; the object is Stalled with ACI's code and
    message, a Warning Event says so, and no agent is left registered."""
    operator()
    env.emu.control("PUT", "aci/subnets", {"id": SUBNET, "delegated": False})
    obj = env.obj(count=1)
    obj["spec"]["aci"]["subnetIds"] = [SUBNET]
    kube.apply(obj, namespace)
    got = wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled",
                         reason="SubnetMissingRequiredDelegation", timeout=60)
    c = stalled(got)
    assert "Subnet missing required delegation 'Microsoft.ContainerInstance'" in c["message"], c
    ev = wait_event(kube, namespace, "agents", "SubnetMissingRequiredDelegation", "Warning")
    assert "missing required delegation" in ev["note"], ev
    assert env.groups() == []
    added = [r for r in env.emu.requests(method="POST", path_contains=f"/devops/{ORG}/_apis/distributedtask/pools/")
             if r["path"].endswith("/agents") and r["status"] == 200]
    assert added, "no agent was registered for the group"
    wait_until("the agent registered for it taken back", lambda: env.agents() == [], timeout=30)


# -- 4. a template change while every agent runs a job --------------------------------------------

def test_image_change_while_jobs_run_never_cuts_a_job_short(kube, namespace, env, operator):
    """Three agents busy on jobs of 5, 10 and 15 s when the image changes:
    every job ends succeeded; each container group is replaced, and its
    agent given a new key, only after the job it was running finished; and
    the instances leave service one at a time (an instance is out of
    service from the moment its agent is disabled, or its group or agent
    rewritten, until its agent opens a session from the new group)."""
    operator()
    kube.apply(env.obj(count=3), namespace)
    wait_ready(kube, namespace, count=3)
    for seconds in (5, 10, 15):
        env.queue(1, seconds)
    wait_until("3 agents busy", lambda: sum(1 for a in env.agents() if a.get("assignedRequestId")) == 3,
               timeout=30)
    running = {j["agent"]["name"]: j for j in env.jobs() if j["state"] == "assigned"}
    assert sorted(running) == ["agents-0", "agents-1", "agents-2"], running
    changed = roll_to(kube, namespace, env, IMAGE2, timeout=120)

    jobs = env.jobs()
    assert all(j["state"] == "finished" and j["result"] == "succeeded" for j in jobs), \
        [(j["requestId"], j["state"], j["result"]) for j in jobs]
    assert len(jobs) == 3

    # One at a time as the operator acts: no instance is disabled or
    # rewritten while another one's replacement is still to come. (That the
    # replaced agent is also back online first: the next test.)
    assert_one_at_a_time(out_of_service(env, changed, running, until="replaced"), changed)


def roll_to(kube, namespace, env, image, timeout):
    """Change the image of the pool of 3 and wait until every group was
    replaced with it and the pool is Ready again; the time of the change."""
    changed = time.time()
    kube.run("patch", "pipelineagentpool", "agents", "-n", namespace, "--type=json", "-p",
             json.dumps([{"op": "replace", "path": "/spec/aci/image", "value": image}]))

    def rolled():
        names = {p["path"].rsplit("/", 1)[1] for p in group_puts(env.emu, changed)
                 if p["body"]["properties"]["containers"][0]["properties"]["image"] == image}
        return names == {"agents-0", "agents-1", "agents-2"}
    wait_until("every group replaced with the new image", rolled, timeout=timeout)
    wait_ready(kube, namespace, count=3, timeout=60)
    return changed


def out_of_service(env, since, running=None, until="online"):
    """Per instance rolled since `since`: (start, end, name), from its agent's
    disable (or its group's or agent's rewrite, if earlier) to, with
    until="online", its agent's first session from the new group (back in
    service as Azure DevOps sees it), or with until="replaced", the answer
    to its last group PUT. With running ({name: job} at the change), also
    checks that neither the group nor the agent was rewritten before that
    job finished."""
    pool_id = env.pool_id
    ids = {a["name"]: str(a["id"]) for a in env.agents()}
    reqs = [r for r in env.emu.requests() if r["time"] >= since]
    jobs = {j["requestId"]: j for j in env.jobs()}
    agent_base = f"/_apis/distributedtask/pools/{pool_id}/agents/"

    def agent_writes(name, method):
        return [r for r in reqs if r["method"] == method and r["path"].endswith(agent_base + ids[name])]

    intervals = []
    for name in sorted(ids):
        gputs = [p for p in group_puts(env.emu, since) if p["path"].endswith("/" + name)]
        keys = agent_writes(name, "PUT")
        assert gputs and keys, (name, len(gputs), len(keys))
        if running and name in running:
            finished = parse_iso(jobs[running[name]["requestId"]]["finishTime"])
            assert min(p["time"] for p in gputs) >= finished, \
                f"{name}: its container group was replaced before its job finished"
            assert min(k["time"] for k in keys) >= finished, \
                f"{name}: its agent got a new key before its job finished"
        disables = [r for r in agent_writes(name, "PATCH") if (r["body"] or {}).get("enabled") is False]
        start = min(r["time"] for r in disables + gputs + keys)
        last_put = max(p["time"] for p in gputs)
        if until == "replaced":
            intervals.append((start, max(p["time"] + p["durationMs"] / 1000.0 for p in gputs), name))
            continue
        sessions = [r for r in reqs if r["method"] == "POST" and r["path"].endswith(f"/pools/{pool_id}/sessions")
                    and ((r["body"] or {}).get("agent") or {}).get("name") == name and r["time"] > last_put]
        assert sessions, f"{name}: no session from the new group"
        intervals.append((start, min(s["time"] for s in sessions), name))
    return sorted(intervals)


def assert_one_at_a_time(intervals, since):
    for (s1, e1, n1), (s2, e2, n2) in zip(intervals, intervals[1:]):
        assert s2 >= e1, (f"{n1} and {n2} were out of service at the same time: {n1} from {s1 - since:.2f}s to "
                          f"{e1 - since:.2f}s, {n2} from {s2 - since:.2f}s (seconds after the change)")


def test_roll_waits_for_the_replaced_agent_to_come_online(kube, namespace, env, operator):
    """A real agent takes seconds to come online after its container
    starts (listener start, self-update); the simulated one here takes 10 s
    (AGENT_SIM_START_SECONDS). A roll must not take the next instance out of
    service before the replaced one's agent is back online."""
    operator()
    obj = env.obj(count=3)
    obj["spec"]["aci"]["environment"].append({"name": "AGENT_SIM_START_SECONDS", "value": "10"})
    kube.apply(obj, namespace)
    wait_ready(kube, namespace, count=3, timeout=120)
    changed = roll_to(kube, namespace, env, IMAGE2, timeout=150)
    assert_one_at_a_time(out_of_service(env, changed), changed)


def test_reverting_an_image_azure_refused_brings_every_agent_back(kube, namespace, env, operator):
    """The image is changed to one ACI cannot pull: the roll's first
    replace is refused (Stalled InaccessibleImage) and the other instance
    keeps serving. Changing the image back must bring the pool back to
    every agent online, the one whose replace was refused included."""
    operator()
    kube.apply(env.obj(count=2), namespace)
    wait_ready(kube, namespace, count=2)
    kube.run("patch", "pipelineagentpool", "agents", "-n", namespace, "--type=json", "-p",
             json.dumps([{"op": "replace", "path": "/spec/aci/image", "value": BROKEN_IMAGE}]))
    wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled", reason="InaccessibleImage", timeout=60)
    serving = [a for a in env.agents() if a["enabled"] and a["status"] == "online"]
    assert len(serving) == 1, env.agents()
    assert env.groups() == ["agents-0", "agents-1"]
    kube.run("patch", "pipelineagentpool", "agents", "-n", namespace, "--type=json", "-p",
             json.dumps([{"op": "replace", "path": "/spec/aci/image", "value": IMAGE}]))
    wait_ready(kube, namespace, count=2, timeout=40)
    assert all(a["enabled"] and a["status"] == "online" for a in env.agents()), env.agents()
    # And the pool still runs jobs on both.
    env.queue(2, 1)
    wait_until("2 jobs finished", lambda: [j for j in env.jobs() if j["state"] == "finished"] == env.jobs()
               and len(env.jobs()) == 2, timeout=60)
    assert all(j["result"] == "succeeded" for j in env.jobs()), env.jobs()


# -- 5. environment from a Secret ------------------------------------------------------------------

def test_environment_secret_is_a_secure_value_and_its_change_rolls_the_instances(kube, namespace, env, operator):
    op = operator()
    first, second = "js1-" + uuid.uuid4().hex, "js2-" + uuid.uuid4().hex
    env.secrets += [first, second]
    kube.apply(secret_obj("job-secret", token=first), namespace)
    obj = env.obj(count=2)
    obj["spec"]["aci"]["environment"] = [{"name": "TEAM", "value": "ci"},
                                         {"name": "JOB_TOKEN", "secretKeyRef": {"name": "job-secret", "key": "token"}}]
    kube.apply(obj, namespace)
    wait_ready(kube, namespace, count=2)

    puts = group_puts(env.emu)
    assert sorted(p["path"].rsplit("/", 1)[1] for p in puts) == ["agents-0", "agents-1"]
    for p in puts:
        ev = container_env(p)
        assert ev["TEAM"].get("value") == "ci"
        assert "value" not in ev["JOB_TOKEN"], "the Secret's value was sent as a plain value"
        assert ev["JOB_TOKEN"].get("secureValue") == redacted(first), "the Secret's value is not the secureValue"
        assert "JOB_TOKEN" in ev["AZP_ENV_PASSTHROUGH"].get("value", ""), ev["AZP_ENV_PASSTHROUGH"]
    # Azure never answers with it.
    for name in ("agents-0", "agents-1"):
        got = arm_get(env.emu, f"/containerGroups/{name}")
        assert first not in json.dumps(got)
        ev = {e["name"]: e for e in got["properties"]["containers"][0]["properties"]["environmentVariables"]}
        assert set(ev["JOB_TOKEN"]) == {"name"}, ev["JOB_TOKEN"]
    listing = arm_get(env.emu, "/containerGroups")
    assert first not in json.dumps(listing)

    # A new value in the Secret rolls both instances onto it.
    rolled_from = time.time()
    kube.apply(secret_obj("job-secret", token=second), namespace)

    def rolled():
        names = {p["path"].rsplit("/", 1)[1] for p in group_puts(env.emu, rolled_from)
                 if container_env(p)["JOB_TOKEN"].get("secureValue") == redacted(second)}
        return names == {"agents-0", "agents-1"}
    wait_until("both groups given the Secret's new value", rolled, timeout=90)
    wait_ready(kube, namespace, count=2)
    for name in ("agents-0", "agents-1"):
        assert second not in json.dumps(arm_get(env.emu, f"/containerGroups/{name}"))
    assert first not in op.text() and second not in op.text()


# -- 6. Azure DevOps throttling ------------------------------------------------------------------

def test_devops_429_with_retry_after_is_waited_out_not_stalled(kube, namespace, env, operator):
    """Azure DevOps throttles the pool lookup twice and the agent
    registration once (429, Retry-After: 2): the operator waits as told and
    goes on; the object is never Stalled and no Warning Event is written."""
    operator()
    env.emu.fault(status=429, method="GET", path=r"/_apis/distributedtask/pools$", count=2, retryAfter=2)
    env.emu.fault(status=429, method="POST", path=r"/_apis/distributedtask/pools/\d+/agents$", count=1,
                  retryAfter=2)
    kube.apply(env.obj(count=1), namespace)
    seen_stalled = []

    def ready():
        s = status(kube, namespace)
        c = [c for c in s.get("conditions", []) if c["type"] == "Stalled" and c["status"] == "True"]
        seen_stalled.extend(c)
        r = [c for c in s.get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"]
        return s if r and s.get("online") == 1 else None
    wait_until("Ready after the throttling", ready, timeout=90)
    assert seen_stalled == [], seen_stalled
    assert [a["name"] for a in env.agents()] == ["agents-0"]

    reqs = env.emu.requests(path_contains=f"/devops/{ORG}/_apis/distributedtask/pools")
    throttled = [r for r in reqs if r["fault"] is not None]
    assert len(throttled) == 3, [(r["method"], r["path"], r["status"]) for r in throttled]
    for t in throttled:
        answered = t["time"] + t["durationMs"] / 1000.0
        later = [r for r in reqs if r["method"] == t["method"] and r["path"] == t["path"] and r["time"] > t["time"]]
        assert later, f"{t['method']} {t['path']} was not tried again"
        waited = min(r["time"] for r in later) - answered
        assert waited >= 1.8, f"{t['method']} {t['path']} tried again after {waited:.2f}s, Retry-After said 2"
    assert not [e for e in events(kube, namespace, "agents") if e["type"] == "Warning"]


# -- an agent deleted by hand ------------------------------------------------------------------

def test_an_agent_deleted_by_hand_is_registered_again(kube, namespace, env, operator):
    """Someone deletes an agent in the Azure DevOps UI: its container can no
    longer sign in. The operator registers it again (a new agent, a new key
    in the replaced container group) and the pool is back to every agent
    online."""
    operator()
    kube.apply(env.obj(count=2), namespace)
    wait_ready(kube, namespace, count=2)
    victim = next(a for a in env.agents() if a["name"] == "agents-1")
    url = (f"{env.emu.url}/devops/{ORG}/_apis/distributedtask/pools/{env.pool_id}/agents/{victim['id']}"
           "?api-version=7.1")
    auth = base64.b64encode(f":{env.pats[0]}".encode()).decode()
    req = urllib.request.Request(url, method="DELETE", headers={"Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204
    wait_until("agents-1 registered again and online",
               lambda: any(a["name"] == "agents-1" and a["id"] != victim["id"] and a["status"] == "online"
                           for a in env.agents()), timeout=60)
    wait_ready(kube, namespace, count=2)
    assert env.groups() == ["agents-0", "agents-1"]
    assert sorted(a["name"] for a in env.agents()) == ["agents-0", "agents-1"]
