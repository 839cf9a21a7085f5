"""PipelineAgentPool end to end (issue 14): the real operator binary under
its RBAC, the real kube-apiserver, and the emulator's container groups
(running the simulated Azure Pipelines agent, tests/emulator/agent_sim.py)
and Azure DevOps stand-in. Pre-registered mode: the operator registers each
agent with a key of its own making and hands the container only that key.

No PAT and no agent key may appear in the operator's log, in Events or in
status. The PAT is known to the test; an agent key is base64 of a JSON
object that starts with {"ContainerName" (agentkey.c), so its base64 and
its JSON are looked for."""
import base64
import calendar
import json
import time
import uuid

import pytest

from emulator import CLIENT, RG, SUB, TENANT, Emulator
from harness import SP_SECRET, events, registry_obj, start_operator, wait_condition, wait_event
from procs import wait_until

ORG = "contoso"
POOL = "aci-linux"
IMAGE = "example.azurecr.io/azp-agent:1"
BROKEN_IMAGE = "example.azurecr.io/missing:1"
CG_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups"
# What an agent key looks like in a log (agentkey.c: the JSON's first member).
KEY_MARKERS = (base64.b64encode(b'{"ContainerName"').decode()[:20], '"ContainerName"', "inverseQ")


def new_pat():
    return ("p" + uuid.uuid4().hex + uuid.uuid4().hex)[:52]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


class Env:
    """The emulator set up for one test: the organization, its pool, PATs,
    the ARM service principal and the agent image; the Secrets in the
    namespace."""

    def __init__(self, emu, kube, namespace):
        self.emu, self.kube, self.ns = emu, kube, namespace
        emu.reset()
        emu.client(TENANT, CLIENT, secret=SP_SECRET)
        kube.run("create", "secret", "generic", "sp", "-n", namespace,
                 f"--from-literal=AZURE_TENANT_ID={TENANT}", f"--from-literal=AZURE_CLIENT_ID={CLIENT}",
                 f"--from-literal=AZURE_CLIENT_SECRET={SP_SECRET}")
        emu.control("PUT", f"devops/orgs/{ORG}", {})
        self.pool_id = emu.control("PUT", f"devops/orgs/{ORG}/pools/{POOL}", {})["id"]
        emu.control("PUT", "aci/images", {"image": IMAGE, "program": "azure-pipelines-agent"})
        emu.control("PUT", "aci/images", {"image": BROKEN_IMAGE, "pullError": True})
        self.pats = []
        self.secrets = []  # further values never to be shown (Secret values of spec.aci.environment)
        self.pat_secret("pat", ["vso.agentpools_manage"])

    def pat_secret(self, name, scopes):
        token = new_pat()
        self.emu.control("POST", f"devops/orgs/{ORG}/pats", {"token": token, "scopes": scopes})
        self.pats.append(token)
        self.kube.run("create", "secret", "generic", name, "-n", self.ns, f"--from-literal=pat={token}")
        return token

    def obj(self, name="agents", count=3, pat="pat", image=IMAGE, **spec):
        s = {"organizationUrl": f"https://dev.azure.com/{ORG}", "agentPool": POOL,
             "registration": {"patSecretRef": {"name": pat}},
             "credential": {"servicePrincipal": {"secretRef": {"name": "sp"}}},
             "count": count,
             "aci": {"subscriptionId": SUB, "resourceGroup": RG, "location": "eastus", "image": image,
                     "cpu": 0.5, "memoryInGB": 1,
                     "environment": [{"name": "TEAM", "value": "ci"}]},
             **spec}
        return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "PipelineAgentPool",
                "metadata": {"name": name}, "spec": s}

    def groups(self, prefix="agents"):
        out = self.emu.control("GET", "aci/groups")
        items = out.get("value", out) if isinstance(out, dict) else out
        names = [g["id"].rsplit("/", 1)[1] for g in items]
        return sorted(n for n in names if n.startswith(prefix + "-"))

    def pool(self):
        return self.emu.control("PUT", f"devops/orgs/{ORG}/pools/{POOL}", {})

    def agents(self):
        return self.pool()["agents"]

    def jobs(self):
        return self.emu.control("GET", f"devops/orgs/{ORG}/pools/{POOL}/jobs")["value"]

    def queue(self, count, seconds):
        return self.emu.control("POST", f"devops/orgs/{ORG}/pools/{POOL}/jobs",
                                {"count": count, "durationSeconds": seconds, "result": "succeeded"})["value"]


@pytest.fixture
def env(emu, kube, namespace):
    return Env(emu, kube, namespace)


@pytest.fixture
def operator(kube, env, namespace):
    procs = []

    def start(*extra, env_vars=None):
        p = start_operator(kube, env.emu, namespace, "--queue-poll-interval", "1s", *extra, env=env_vars)
        procs.append(p)
        return p

    yield start
    for p in procs:
        alive = p.alive()
        p.kill() if not alive else p.stop()
        p.assert_clean()
    # No credential anywhere: the operator's log, the Events, the objects' status.
    texts = [p.text() for p in procs]
    texts.append(json.dumps(events(kube, namespace)))
    got = kube.run("get", "pipelineagentpools", "-n", namespace, "-o", "json", check=False)
    texts.append(got.stdout)
    for t in texts:
        assert SP_SECRET not in t
        for pat in env.pats:
            assert pat not in t, "a PAT leaked"
        for value in env.secrets:
            assert value not in t, "a Secret value of spec.aci.environment leaked"
        for marker in KEY_MARKERS:
            assert marker not in t, "an agent key leaked"


def status(kube, ns, name="agents"):
    return kube.get("pipelineagentpool", name, ns).get("status") or {}


def wait_ready(kube, ns, name="agents", count=3, timeout=90):
    def check():
        s = status(kube, ns, name)
        ready = [c for c in s.get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"]
        return s if ready and s.get("count") == count and s.get("online") == count else None
    return wait_until(f"{name} Ready with {count} online", check, timeout=timeout)


def test_pool_of_three_runs_ten_jobs_one_per_container_start(kube, namespace, env, operator):
    op = operator()
    kube.apply(env.obj(count=3), namespace)
    s = wait_ready(kube, namespace)
    assert env.groups() == ["agents-0", "agents-1", "agents-2"]
    agents = env.agents()
    assert sorted(a["name"] for a in agents) == ["agents-0", "agents-1", "agents-2"]
    assert all(a["status"] == "online" and a["enabled"] for a in agents)
    assert s["poolId"] == env.pool_id and s["desiredCount"] == 3
    assert [i["name"] for i in s["instances"]] == ["agents-0", "agents-1", "agents-2"]
    assert all(i["agentStatus"] == "online" and i["provisioningState"] == "Succeeded" for i in s["instances"])
    wait_event(kube, namespace, "agents", "Created")
    # The printer columns say so too.
    row = kube.run("get", "pap", "agents", "-n", namespace, "--no-headers").stdout.split()
    assert row[:5] == ["agents", POOL, "3", "3", "3"] and "True" in row, row

    env.queue(10, 1)

    def all_finished():
        jobs = env.jobs()
        return jobs if len(jobs) == 10 and all(j["state"] == "finished" for j in jobs) else None
    jobs = wait_until("10 jobs finished", all_finished, timeout=120)
    assert all(j["result"] == "succeeded" for j in jobs), jobs
    starts = [(j["ranIn"]["containerGroup"], j["ranIn"]["start"]) for j in jobs]
    assert len(set(starts)) == 10, f"a container start ran two jobs: {starts}"
    assert {g for g, _ in starts} <= {"agents-0", "agents-1", "agents-2"}
    wait_until("jobsCompleted 10", lambda: status(kube, namespace).get("jobsCompleted") == 10, timeout=30)
    # status.instances[].restartCount: the jobs each instance took (one
    # restart after each), 10 in all.
    wait_until("10 restarts in status", lambda: sum(i.get("restartCount", 0)
                                                   for i in status(kube, namespace)["instances"]) == 10, timeout=30)
    assert op.alive()


def test_scale_down_while_jobs_run_never_cuts_a_job(kube, namespace, env, operator):
    operator()
    kube.apply(env.obj(count=3), namespace)
    wait_ready(kube, namespace)
    env.queue(3, 6)
    wait_until("3 agents busy", lambda: sum(1 for a in env.agents() if a.get("assignedRequestId")) == 3,
               timeout=30)
    kube.run("patch", "pipelineagentpool", "agents", "-n", namespace, "--type=merge", "-p", '{"spec":{"count":1}}')
    wait_until("1 group and 1 agent", lambda: len(env.groups()) == 1 and len(env.agents()) == 1, timeout=90)
    jobs = env.jobs()
    assert all(j["state"] == "finished" and j["result"] == "succeeded" for j in jobs), jobs
    wait_ready(kube, namespace, count=1)
    assert status(kube, namespace)["desiredCount"] == 1
    wait_event(kube, namespace, "agents", "Scaled")


def test_delete_removes_every_group_and_agent(kube, namespace, env, operator):
    op = operator()
    kube.apply(env.obj(count=2), namespace)
    wait_ready(kube, namespace, count=2)
    # The pool's gauges say what its status says, and go with it.
    me = {"namespace": namespace, "name": "agents"}
    for name, want in (("instances", 2), ("desired_instances", 2), ("online_agents", 2), ("busy_agents", 0),
                       ("queued_jobs", 0)):
        assert op.metric(f"acrpool_pipelineagentpool_{name}", me) == want, name
    kube.run("delete", "pipelineagentpool", "agents", "-n", namespace, "--wait=false")
    wait_until("object gone", lambda: kube.run("get", "pap", "agents", "-n", namespace,
                                               check=False).returncode != 0, timeout=60)
    assert env.groups() == [] and env.agents() == []
    wait_until("gauges gone", lambda: op.metric("acrpool_pipelineagentpool_desired_instances", me) is None,
               timeout=30)
    assert op.metric("acrpool_pipelineagentpool_instances", me) is None


def test_orphan_leaves_groups_and_agents(kube, namespace, env, operator):
    operator()
    kube.apply(env.obj(count=2, deletionPolicy="Orphan"), namespace)
    wait_ready(kube, namespace, count=2)
    kube.run("delete", "pipelineagentpool", "agents", "-n", namespace, "--wait=false")
    wait_until("object gone", lambda: kube.run("get", "pap", "agents", "-n", namespace,
                                               check=False).returncode != 0, timeout=60)
    assert env.groups() == ["agents-0", "agents-1"]
    assert sorted(a["name"] for a in env.agents()) == ["agents-0", "agents-1"]


def test_pat_without_manage_scope_stalls_and_creates_nothing(kube, namespace, env, operator):
    operator()
    env.pat_secret("readonly", ["vso.agentpools"])
    kube.apply(env.obj(count=2, pat="readonly"), namespace)
    obj = wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled", timeout=60)
    c = [c for c in obj["status"]["conditions"] if c["type"] == "Stalled"][0]
    assert c["reason"] == "AzureDevOpsAccessDenied", c
    assert "403" in c["message"] and "Agent Pools (read, manage)" in c["message"], c
    ev = wait_event(kube, namespace, "agents", "AzureDevOpsAccessDenied", "Warning")
    assert "403" in ev["note"]
    assert env.groups() == [] and env.agents() == []
    assert not [r for r in env.emu.requests(path_contains="/Microsoft.ContainerInstance/") if r["method"] == "PUT"]


def test_missing_pat_secret_stalls(kube, namespace, env, operator):
    operator()
    kube.apply(env.obj(count=1, pat="nosuch"), namespace)
    wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled", reason="RegistrationSecretNotFound",
                   timeout=60)
    assert env.groups() == []


def test_image_that_cannot_be_pulled_stalls(kube, namespace, env, operator):
    operator()
    kube.apply(env.obj(count=1, image=BROKEN_IMAGE), namespace)
    obj = wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled", reason="InaccessibleImage",
                         timeout=60)
    assert "InaccessibleImage" in [c for c in obj["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    assert env.groups() == []
    # The agent registered for it was taken back.
    assert env.agents() == []


def test_entra_registration_uses_the_credential_identity(kube, namespace, env, operator):
    """registration.entra: spec.credential's service principal gets a token
    for Azure DevOps; an organization restricted to other clients refuses it."""
    operator()
    env.emu.control("PUT", f"devops/orgs/{ORG}", {"entraClients": [CLIENT]})
    obj = env.obj(count=1)
    obj["spec"]["registration"] = {"entra": {}}
    kube.apply(obj, namespace)
    wait_ready(kube, namespace, count=1)
    assert [a["name"] for a in env.agents()] == ["agents-0"]
    assert env.emu.requests(path_contains=f"/devops/{ORG}/_apis/distributedtask")
    # Ready passes (one a second here) reuse the client and its token: no
    # token request per pass (a new one comes only near the token's expiry).
    env.emu.clear_requests()

    def agent_lists():
        return [r for r in env.emu.requests(method="GET") if r["path"].rstrip("/").endswith("/agents")]
    wait_until("3 passes", lambda: len(agent_lists()) >= 3, timeout=30)
    tokens = [r["path"] for r in env.emu.requests() if "/oauth2/" in r["path"]]
    assert tokens == [], tokens


def test_ready_pass_costs_two_devops_reads_and_one_list(kube, namespace, env, operator):
    """A steady pool's pass (every --queue-poll-interval): ARM one container
    group LIST (drift shows there), no GET of a group one by one (nothing
    moved: restartCount cannot have either); Azure DevOps one agents LIST
    and one job requests LIST; no write anywhere."""
    operator()
    kube.apply(env.obj(count=2), namespace)
    wait_ready(kube, namespace, count=2)
    # The passes right after Ready still read the groups whose agents
    # just came online; then the pool is steady.
    def lists():
        return [r for r in env.emu.requests(method="GET", path_contains="/Microsoft.ContainerInstance/")
                if r["path"].rstrip("/").endswith("/containerGroups")]
    env.emu.clear_requests()
    wait_until("2 passes", lambda: len(lists()) >= 2, timeout=30)
    env.emu.clear_requests()
    wait_until("3 passes", lambda: len(lists()) >= 3, timeout=30)
    reqs = env.emu.requests()
    passes = len([r for r in reqs if r["method"] == "GET" and r["path"].rstrip("/").endswith("/containerGroups")])
    aci = [r for r in reqs if "/Microsoft.ContainerInstance/" in r["path"]]
    devops = [r for r in reqs if f"/devops/{ORG}/_apis/distributedtask/pools/" in r["path"]]
    assert all(r["method"] == "GET" for r in aci + devops), [(r["method"], r["path"]) for r in aci + devops]
    gets = [r["path"] for r in aci if not r["path"].rstrip("/").endswith("/containerGroups")]
    assert gets == [], gets
    agent_lists = [r for r in devops if r["path"].rstrip("/").endswith("/agents")]
    job_lists = [r for r in devops if r["path"].rstrip("/").endswith("/jobrequests")]
    # The window may cut a pass in two: allow one pass of slack.
    assert abs(len(agent_lists) - passes) <= 1 and abs(len(job_lists) - passes) <= 1, \
        (passes, len(agent_lists), len(job_lists))
    assert len(devops) - len(agent_lists) - len(job_lists) == 0, [r["path"] for r in devops]
    # restartCount stays in status from the last read.
    assert all(i.get("restartCount") == 0 for i in status(kube, namespace)["instances"])


def test_template_change_replaces_every_instance_then_ready(kube, namespace, env, operator):
    operator()
    kube.apply(env.obj(count=2), namespace)
    wait_ready(kube, namespace, count=2)
    env.emu.clear_requests()
    kube.run("patch", "pipelineagentpool", "agents", "-n", namespace, "--type=json", "-p",
             '[{"op":"replace","path":"/spec/aci/environment/0/value","value":"platform"}]')

    def puts():
        return [r["path"].rsplit("/", 1)[1] for r in env.emu.requests(method="PUT", path_contains="/containerGroups/")]
    wait_until("both groups replaced", lambda: sorted(set(puts())) == ["agents-0", "agents-1"], timeout=90)
    wait_ready(kube, namespace, count=2)
    assert len(puts()) == 2, puts()
    # Each replace gave the agent a new key: its own PUT, no new agent.
    assert sorted(a["name"] for a in env.agents()) == ["agents-0", "agents-1"]


def test_group_changed_by_hand_is_put_back(kube, namespace, env, operator):
    """Drift: a container group whose image someone changed by hand (its
    template tag still ours) is replaced with the declared one; one deleted
    by hand comes back."""
    operator()
    kube.apply(env.obj(count=2), namespace)
    wait_ready(kube, namespace, count=2)
    env.emu.clear_requests()
    env.emu.control("PATCH", f"aci/groups/{SUB}/{RG}/agents-1", {"image": "example.azurecr.io/other:9"})

    def puts():
        return [r["path"].rsplit("/", 1)[1] for r in env.emu.requests(method="PUT", path_contains="/containerGroups/")]
    wait_until("agents-1 put back", lambda: puts() == ["agents-1"], timeout=60)
    put = env.emu.requests(method="PUT", path_contains="/containerGroups/agents-1")[0]
    assert put["body"]["properties"]["containers"][0]["properties"]["image"] == IMAGE
    wait_ready(kube, namespace, count=2)

    env.emu.control("DELETE", f"aci/groups/{SUB}/{RG}/agents-0")
    wait_until("agents-0 created again", lambda: "agents-0" in puts(), timeout=60)
    wait_ready(kube, namespace, count=2)
    assert env.groups() == ["agents-0", "agents-1"]


def test_autoscale_from_zero_to_the_queue_and_back_keeps_a_placeholder(kube, namespace, env, operator):
    """autoscale scales with the pool's queued job requests, to and from
    zero. At zero one agent stays registered, offline, with no container
    group: Azure DevOps fails a job at once in a pool with no agent (the
    emulator does too), so without it the queue that should bring agents
    back would never fill."""
    operator()
    obj = env.obj(count=None, autoscale={"minCount": 0, "maxCount": 3, "scaleDownDelaySeconds": 2})
    del obj["spec"]["count"]
    kube.apply(obj, namespace)
    s = wait_ready(kube, namespace, count=0)
    assert s["desiredCount"] == 0 and s["desiredCountSource"] == "Autoscale", s
    placeholder = wait_until("a placeholder agent", lambda: env.agents() if len(env.agents()) == 1 else None,
                             timeout=30)
    assert placeholder[0]["name"] == "agents-0" and placeholder[0]["status"] == "offline"
    assert placeholder[0]["enabled"] and env.groups() == []

    env.queue(3, 3)
    assert all(j["state"] != "finished" for j in env.jobs()), "the placeholder should keep jobs queued"
    wait_until("scaled to 3", lambda: status(kube, namespace).get("desiredCount") == 3, timeout=30)

    def all_finished():
        jobs = env.jobs()
        return jobs if all(j["state"] == "finished" for j in jobs) else None
    jobs = wait_until("3 jobs finished", all_finished, timeout=120)
    assert [j["result"] for j in jobs] == ["succeeded"] * 3, jobs
    assert len({(j["ranIn"]["containerGroup"], j["ranIn"]["start"]) for j in jobs}) == 3

    # Idle past the delay: back to zero, the placeholder left behind.
    s = wait_until("back to zero", lambda: (lambda s: s if s.get("desiredCount") == 0 and s.get("count") == 0
                                            and any(c["type"] == "Ready" and c["status"] == "True"
                                                    for c in s.get("conditions", [])) else None)(
        status(kube, namespace)), timeout=120)
    wait_until("no group left", lambda: env.groups() == [], timeout=60)
    left = wait_until("one agent left", lambda: env.agents() if len(env.agents()) == 1 else None, timeout=60)
    assert left[0]["enabled"] and left[0]["status"] == "offline"
    assert s["lastBusyTime"] and s["capacityMessage"]
    wait_event(kube, namespace, "agents", "ScaleUp")
    wait_event(kube, namespace, "agents", "ScaleDown")
    # Queued again: the pool comes back from zero.
    env.queue(1, 1)
    wait_until("scaled to 1", lambda: status(kube, namespace).get("desiredCount") == 1, timeout=30)
    job = wait_until("the job ran", lambda: (lambda j: j if j["state"] == "finished" else None)(env.jobs()[-1]),
                     timeout=90)
    assert job["result"] == "succeeded", job


def test_count_schedule_windows_set_the_count(kube, namespace, env, operator, tmp_path):
    """countSchedule as on AgentPool: weekdays 08:00 two agents, 19:00
    none (with the placeholder kept), read in the declared time zone; the
    operator's clock comes from ACRPOOL_TEST_CLOCK_FILE."""
    clock = tmp_path / "clock"

    def at(text):  # a UTC wall time
        clock.write_text(str(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M"))))
    at("2026-12-08 09:30")  # Tuesday 10:30 in Amsterdam (CET, UTC+1)
    operator(env_vars={"ACRPOOL_TEST_CLOCK_FILE": str(clock)})
    kube.apply(env.obj(count=1, countSchedule={"timeZone": "Europe/Amsterdam", "windows": [
        {"cron": "0 8 * * 1-5", "count": 2}, {"cron": "0 19 * * 1-5", "count": 0}]}), namespace)
    s = wait_ready(kube, namespace, count=2)
    assert s["desiredCountSource"] == "Schedule" and s["activeWindow"] == "0 8 * * 1-5", s
    assert s["nextWindowTime"] == "2026-12-08T18:00:00Z", s
    row = kube.run("get", "pap", "agents", "-n", namespace, "-o", "wide", "--no-headers").stdout
    assert "Schedule" in row, row

    at("2026-12-08 18:30")  # 19:30 in Amsterdam: the night window
    s = wait_until("night: zero", lambda: (lambda s: s if s.get("desiredCount") == 0 and s.get("count") == 0
                                           else None)(status(kube, namespace)), timeout=90)
    assert s["activeWindow"] == "0 19 * * 1-5" and s["nextWindowTime"] == "2026-12-09T07:00:00Z", s
    wait_until("the placeholder only", lambda: env.groups() == [] and len(env.agents()) == 1, timeout=60)
    wait_event(kube, namespace, "agents", "ScheduleWindow")


def test_image_pulled_from_a_registry_object(kube, namespace, env, operator):
    """imagePull.registryRef: the login server comes from a Registry object
    (say, the one whose weekly Task builds the agent image), pulled with the
    declared user-assigned identity. Before that Registry exists the pool
    is Stalled naming it; its creation brings the pool on, with nothing
    else to do."""
    operator()
    ident = (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/"
             "userAssignedIdentities/agent-pull")
    obj = env.obj(count=1)
    obj["spec"]["aci"]["imagePull"] = {"registryRef": {"name": "myregistry"}, "identityId": ident}
    kube.apply(obj, namespace)
    wait_condition(kube, "pipelineagentpool", "agents", namespace, "Stalled", reason="RegistryRefNotFound")
    assert env.groups() == []
    env.emu.registry(SUB, RG, "myregistry", sku="Premium")
    kube.apply(registry_obj(), namespace)
    wait_ready(kube, namespace, count=1)
    login = kube.get("registry", "myregistry", namespace)["status"]["loginServer"]
    put = env.emu.requests(method="PUT", path_contains="/containerGroups/agents-0")[0]["body"]
    assert put["properties"]["imageRegistryCredentials"] == [{"server": login, "identity": ident}], put
    assert list(put["identity"]["userAssignedIdentities"]) == [ident], put
    # Both forms at once, or neither, is refused by the API server.
    obj["spec"]["aci"]["imagePull"]["server"] = login
    p = kube.run("apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)
    assert p.returncode != 0 and "exactly one of server and registryRef" in p.stderr, p.stderr
