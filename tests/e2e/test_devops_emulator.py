"""The Azure DevOps client (reconcilers/devops/: devops.c, agentkey.c) end to
end against the emulator's Azure DevOps stand-in (tests/emulator/devops.py).

Each test drives acrpool-devopstool (tests/e2e/devopstool/devopstool.c), a
thin command-line driver over devops.h, and checks the tool's JSON (what the
client understood, with its HTTP attempts) against the stand-in's own view
(the control endpoint and the request log). The pre-registered mode is
proven with the emulator's simulated agent (tests/emulator/agent_sim.py, run
in-process as one container start): it authenticates with exactly the key
the client generated and registered, and runs a queued job. No PAT, token or
private key may appear in the tool's output or the emulator's log, and the
sanitizers must have nothing to say.
"""
import base64
import json
import os
import subprocess
import sys
import threading
import uuid

import pytest

from emulator import TENANT, Emulator
from procs import BUILD, ROOT

sys.path.insert(0, str(ROOT / "tests" / "emulator"))
import agent_sim  # noqa: E402
from rsa_keys import RsaKey  # noqa: E402

TOOL = BUILD / "tests" / "unit" / "acrpool-devopstool"
ORG = "contoso"
POOL = "aci-linux"
DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
SP_CLIENT = "33333333-4444-5555-6666-777777777777"
SP_SECRET = "sp-secret-" + uuid.uuid4().hex
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")
EXIT_CALL = 1


def new_pat():
    # 52 characters, as Azure DevOps PATs are; distinctive, so a leak is findable.
    return ("p" + uuid.uuid4().hex + uuid.uuid4().hex)[:52]


class Result:
    def __init__(self, rc, stdout, stderr):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        lines = [json.loads(l) for l in stdout.splitlines() if l.strip()]
        assert len(lines) == 1, stdout
        self.out = lines[0]

    @property
    def error(self):
        assert "error" in self.out, self.stdout
        return self.out["error"]

    def __repr__(self):
        return f"Result(rc={self.rc}, stdout={self.stdout!r}, stderr={self.stderr[-2000:]!r})"


class DevOps:
    """The stand-in set up for one test, and the tool pointed at it."""

    def __init__(self, emu, tmp_path):
        self.emu = emu
        self.tmp = tmp_path
        self.secrets = [SP_SECRET]
        emu.control("PUT", f"devops/orgs/{ORG}", {})
        self.pool_id = emu.control("PUT", f"devops/orgs/{ORG}/pools/{POOL}", {})["id"]
        self.pat_manage = self.pat(["vso.agentpools_manage"])
        self.pat_read = self.pat(["vso.agentpools"])
        self.key_file = tmp_path / "agent.key"

    def pat(self, scopes):
        token = new_pat()
        self.emu.control("POST", f"devops/orgs/{ORG}/pats", {"token": token, "scopes": scopes})
        self.secrets.append(token)
        return token

    def pool_state(self):
        return self.emu.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")

    def queue(self, count, duration=0.2):
        return self.emu.control("POST", f"devops/orgs/{ORG}/pools/{POOL}/jobs",
                                {"count": count, "durationSeconds": duration})["value"]

    def jobs(self):
        return self.emu.control("GET", f"devops/orgs/{ORG}/pools/{POOL}/jobs")["value"]

    def log(self):
        return [e for e in self.emu.requests() if e["path"].startswith("/devops/")]

    def run(self, *args, pat=None, entra=False, resource=None, org_url=None, expect=0, extra=()):
        argv = [str(TOOL), "--org-url", org_url or f"https://dev.azure.com/{ORG}",
                "--endpoint", self.emu.url + "/devops", "--key-file", str(self.key_file), *extra]
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"):
            env.pop(k, None)
        if entra:
            argv += ["--credential", "sp", "--authority-host", self.emu.url + "/", "--tenant", TENANT,
                     "--client", SP_CLIENT, "--secret-env", "DEVOPSTOOL_SECRET"]
            if resource:
                argv += ["--resource", resource]
            env["DEVOPSTOOL_SECRET"] = SP_SECRET
        else:
            argv += ["--pat-env", "DEVOPSTOOL_PAT"]
            env["DEVOPSTOOL_PAT"] = pat or self.pat_manage
        p = subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=120)
        self.assert_clean(p.stdout + p.stderr)
        r = Result(p.returncode, p.stdout, p.stderr)
        assert r.rc == expect, r
        return r

    def key_value(self):
        return self.key_file.read_text()

    def assert_clean(self, text, keys=()):
        for marker in SANITIZER_MARKERS:
            assert marker not in text, f"sanitizer report:\n{text[-4000:]}"
        for s in (*self.secrets, *keys):
            assert s not in text, "a secret leaked"
        # Every token the emulator issues is a JWT (base64url of '{"').
        assert "eyJ" not in text, f"a token leaked:\n{text}"

    def assert_log_clean(self, keys=()):
        """The emulator's stderr log and request log hold no PAT or key."""
        text = self.emu.log_path.read_text(errors="replace") + json.dumps(self.emu.requests())
        for s in (*self.secrets, *keys):
            assert s not in text, "a secret reached the emulator's log"
        for k in keys:
            blob = json.loads(base64.b64decode(k))
            for field in ("d", "p", "q", "dp", "dq", "inverseQ"):
                assert blob[field] not in text, f"private key member {field} reached the emulator's log"


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    assert TOOL.exists(), (f"{TOOL} is missing: build it with `ninja -C {BUILD} acrpool-devopstool` "
                           "(or set ACRPOOL_BUILD_DIR)")
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


@pytest.fixture
def dv(emu, tmp_path):
    emu.reset()
    return DevOps(emu, tmp_path)


def sim_ctx(dv, name, agent, key_value, start=0):
    """The environment the operator gives a pre-registered container."""
    logs = []
    env = {"AZP_URL": f"https://dev.azure.com/{ORG}", "AZP_POOL": POOL, "AZP_AGENT_NAME": name,
           "AZP_AGENT_ID": str(agent["id"]), "AZP_POOL_ID": str(dv.pool_id),
           "AZP_AGENT_CLIENT_ID": agent["clientId"], "AZP_AGENT_AUTH_URL": agent["authorizationUrl"],
           "AZP_AGENT_KEY": key_value}
    ctx = {"group_id": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
                       f"containerGroups/cg-{name}",
           "group_name": f"cg-{name}", "container_name": "agent", "image": "example.azurecr.io/azp-agent:1",
           "env": env, "start": start, "stop": threading.Event(), "emulator_url": dv.emu.url,
           "log": logs.append}
    return ctx, logs


# ---- pools, agents, and the pre-registered agent running a job ---------------------------------


def test_pat_lists_pools_and_agents_with_basic_auth(dv):
    r = dv.run("pool-get", POOL.upper())
    assert r.out["pool"] == {"id": dv.pool_id, "name": POOL, "isHosted": False, "size": 0}
    assert [h["status"] for h in r.out["http"]] == [200]
    assert r.out["http"][0]["operation"] == "devops.pools.list"
    r = dv.run("agents", str(dv.pool_id))
    assert r.out["agents"] == []
    get_pool, get_agents = dv.log()
    assert get_pool["method"] == "GET" and get_pool["path"] == f"/devops/{ORG}/_apis/distributedtask/pools"
    assert get_pool["query"]["poolName"] == POOL.upper() and get_pool["apiVersion"] == "7.1"
    assert get_agents["path"] == f"/devops/{ORG}/_apis/distributedtask/pools/{dv.pool_id}/agents"
    assert get_agents["query"]["includeAssignedRequest"] == "true"
    assert all(e["hasAuthorization"] and e["userAgent"].startswith("acrpool/") for e in dv.log())
    # A pool the organization does not have.
    r = dv.run("pool-get", "no-such-pool", expect=EXIT_CALL)
    assert r.error["code"] == "not_found" and r.error["reason"] == "TaskAgentPoolNotFoundException"
    dv.assert_log_clean()


def test_visualstudio_org_url_goes_to_the_same_org(dv):
    r = dv.run("pool-get", POOL, org_url=f"https://{ORG}.visualstudio.com/")
    assert r.out["pool"]["id"] == dv.pool_id


def test_pre_registered_agent_runs_a_queued_job_with_the_generated_key(dv):
    r = dv.run("agent-add", str(dv.pool_id), "aci-0")
    agent = r.out["agent"]
    assert agent["name"] == "aci-0" and agent["enabled"] and r.out["keyBits"] == 2048
    assert agent["clientId"] and agent["authorizationUrl"].endswith("/oauth2/token")
    key_value = dv.key_value()
    assert os.stat(dv.key_file).st_mode & 0o777 == 0o600
    dv.assert_clean(r.stdout + r.stderr, keys=[key_value])
    # What went over the wire: the public half only, as config.sh sends it.
    (post,) = [e for e in dv.log() if e["method"] == "POST"]
    assert post["path"] == f"/devops/{ORG}/_apis/distributedtask/pools/{dv.pool_id}/agents"
    assert post["apiVersion"] == "7.1"
    assert set(post["body"]) == {"name", "enabled", "maxParallelism", "authorization"}
    assert set(post["body"]["authorization"]["publicKey"]) == {"exponent", "modulus"}
    # The stand-in holds exactly the key whose private half is in the file.
    rsaparams = json.loads(base64.b64decode(key_value))
    assert set(rsaparams) == {"ContainerName", "UseCng", "d", "dp", "dq", "exponent", "inverseQ", "modulus", "p",
                              "q"}
    key = RsaKey.from_rsaparams_json(rsaparams)
    assert post["body"]["authorization"]["publicKey"] == key.public_key_json()
    state = dv.pool_state()
    assert state["agents"][0]["keyFingerprint"] == key.fingerprint() == r.out["keyFingerprint"]

    queued = dv.queue(1, duration=0.2)
    assert dv.run("queued", str(dv.pool_id)).out["queued"] == 1
    ctx, logs = sim_ctx(dv, "aci-0", agent, key_value)
    assert agent_sim.run_agent(ctx) == 0, logs
    (job,) = dv.jobs()
    assert job["requestId"] == queued[0]["requestId"]
    assert job["state"] == "finished" and job["result"] == "succeeded"
    assert job["agent"]["id"] == agent["id"] and job["ranIn"]["containerGroup"] == "cg-aci-0"
    # Pre-registered: the agent never registered itself (no second key).
    state = dv.pool_state()
    assert state["agents"][0]["keyGeneration"] == 0
    r = dv.run("jobs", str(dv.pool_id), "10")
    assert r.out["counts"] == {"queued": 0, "running": 0, "finished": 1}
    assert r.out["requests"][0]["agentId"] == agent["id"]
    assert not any(key_value in line for line in logs)
    dv.assert_log_clean(keys=[key_value])


def test_replace_key_disable_enable_delete_show_in_the_stand_in(dv):
    agent = dv.run("agent-add", str(dv.pool_id), "aci-1").out["agent"]
    old_key = dv.key_value()
    aid = str(agent["id"])
    r = dv.run("agent-enable", str(dv.pool_id), aid, "false")
    assert r.out["agent"]["enabled"] is False
    assert dv.pool_state()["agents"][0]["enabled"] is False
    (patch,) = [e for e in dv.log() if e["method"] == "PATCH"]
    assert patch["body"] == {"id": agent["id"], "enabled": False} and patch["apiVersion"] == "7.1"
    # Rotation: a new key while disabled; the old one is dead.
    r = dv.run("agent-replace", str(dv.pool_id), aid, "aci-1", "false")
    new_key = dv.key_value()
    assert new_key != old_key and r.out["agent"]["enabled"] is False
    state = dv.pool_state()["agents"][0]
    assert state["keyGeneration"] == 1 and state["keyFingerprint"] == r.out["keyFingerprint"]
    assert state["enabled"] is False and state["clientId"] == agent["clientId"]
    r = dv.run("agent-enable", str(dv.pool_id), aid, "true")
    assert r.out["agent"]["enabled"] is True and dv.pool_state()["agents"][0]["enabled"] is True
    listed = dv.run("agents", str(dv.pool_id), "aci-1").out["agents"]
    assert [(a["id"], a["enabled"], a["online"], a["busy"]) for a in listed] == [(agent["id"], True, False, False)]
    # The old key is refused; the new one works.
    dv.queue(1, duration=0.1)
    ctx, logs = sim_ctx(dv, "aci-1", agent, old_key)
    assert agent_sim.run_agent(ctx) == 1 and any("refused" in line for line in logs)
    ctx, logs = sim_ctx(dv, "aci-1", agent, new_key, start=1)
    assert agent_sim.run_agent(ctx) == 0, logs
    assert dv.jobs()[0]["result"] == "succeeded"
    # Delete, then delete again: already gone is success.
    assert dv.run("agent-delete", str(dv.pool_id), aid).out == {"deleted": True, "http": [
        {"method": "DELETE", "operation": "devops.agents.delete", "status": 204}], "sleptMs": 0}
    assert dv.pool_state()["agents"] == []
    r = dv.run("agent-delete", str(dv.pool_id), aid)
    assert r.out["deleted"] is True and r.out["http"][0]["status"] == 404
    dv.assert_log_clean(keys=[old_key, new_key])


def test_busy_agent_shows_its_assigned_request(dv):
    agent = dv.run("agent-add", str(dv.pool_id), "aci-2").out["agent"]
    key_value = dv.key_value()
    dv.queue(1, duration=3)
    ctx, logs = sim_ctx(dv, "aci-2", agent, key_value)
    t = threading.Thread(target=agent_sim.run_agent, args=(ctx,))
    t.start()
    try:
        from procs import wait_until
        wait_until("the job to be assigned", lambda: dv.jobs()[0]["state"] == "assigned", timeout=20)
        (a,) = dv.run("agents", str(dv.pool_id)).out["agents"]
        assert a["busy"] and a["online"] and a["assignedRequestId"] == dv.jobs()[0]["requestId"]
        r = dv.run("jobs", str(dv.pool_id))
        assert r.out["counts"] == {"queued": 0, "running": 1, "finished": 0}
        assert dv.run("queued", str(dv.pool_id)).out["queued"] == 0
    finally:
        ctx["stop"].set()
        t.join(30)
    assert not t.is_alive()


# ---- credentials -----------------------------------------------------------------------------


def test_read_only_pat_gets_403_with_the_service_message(dv):
    # It may read...
    assert dv.run("pool-get", POOL, pat=dv.pat_read).out["pool"]["id"] == dv.pool_id
    # ...but not register.
    r = dv.run("agent-add", str(dv.pool_id), "aci-3", pat=dv.pat_read, expect=EXIT_CALL)
    e = r.error
    assert e["httpStatus"] == 403 and e["code"] == "terminal"
    assert e["reason"] == "UnauthorizedRequestException"
    assert "Agent Pools (read, manage)" in e["message"] and e["message"].startswith("Access denied")
    assert e["requestId"]
    assert dv.pool_state()["agents"] == []
    # A PAT the organization does not know: 401, once (a PAT is not refreshed).
    r = dv.run("agents", str(dv.pool_id), pat=new_pat(), expect=EXIT_CALL)
    assert r.error["code"] == "auth" and r.error["httpStatus"] == 401
    assert r.error["reason"] == "UnauthorizedRequestException" and r.error["message"].startswith("TF400813")
    assert len(r.out["http"]) == 1
    dv.assert_log_clean()


def test_entra_token_for_devops_works_and_one_for_arm_is_refused(dv):
    dv.emu.client(TENANT, SP_CLIENT, secret=SP_SECRET)
    r = dv.run("pool-get", POOL, entra=True)
    assert r.out["pool"]["id"] == dv.pool_id
    tok = [e for e in dv.emu.requests() if e["path"] == f"/{TENANT}/oauth2/v2.0/token"]
    assert tok[-1]["body"]["scope"] == f"{DEVOPS_RESOURCE}/.default"
    r = dv.run("agent-add", str(dv.pool_id), "aci-4", entra=True)
    assert r.out["agent"]["name"] == "aci-4"
    key_value = dv.key_value()
    # A token for ARM: refused (401), fetched again once, refused again.
    r = dv.run("pool-get", POOL, entra=True, resource="https://management.azure.com/", expect=EXIT_CALL)
    assert r.error["code"] == "auth" and r.error["httpStatus"] == 401
    assert "audience" in r.error["message"]
    assert [h["status"] for h in r.out["http"]] == [401, 401]
    dv.assert_log_clean(keys=[key_value])


# ---- job requests, retries ----------------------------------------------------------------------


def placeholder(dv):
    """An offline agent: Azure DevOps fails a job at once in a pool with no
    agent at all, and keeps it queued while one is registered."""
    dv.run("agent-add", str(dv.pool_id), "placeholder-0")


def test_queued_count_matches_the_jobs_queued(dv):
    assert dv.run("queued", str(dv.pool_id)).out["queued"] == 0
    placeholder(dv)
    dv.queue(4)
    r = dv.run("queued", str(dv.pool_id))
    assert r.out["queued"] == 4
    (get,) = [e for e in dv.log() if e["path"].endswith("/jobrequests")][-1:]
    assert get["query"]["completedRequestCount"] == "0"
    r = dv.run("jobs", str(dv.pool_id))
    assert r.out["counts"] == {"queued": 4, "running": 0, "finished": 0}
    assert sorted(j["requestId"] for j in r.out["requests"]) == sorted(j["requestId"] for j in dv.jobs())


def test_429_with_retry_after_is_retried(dv):
    placeholder(dv)
    dv.emu.fault(path="/devops/.*/jobrequests", status=429, count=1, retryAfter=1)
    dv.queue(2)
    r = dv.run("queued", str(dv.pool_id))
    assert r.out["queued"] == 2
    assert [h["status"] for h in r.out["http"]] == [429, 200]
    assert r.out["sleptMs"] == 1000
    # More throttling than the budget allows: the error says when to come back.
    dv.emu.fault(path="/devops/.*/jobrequests", status=429, count=1, retryAfter=30)
    r = dv.run("queued", str(dv.pool_id), expect=EXIT_CALL, extra=("--budget-ms", "5000"))
    assert r.error["code"] == "unavailable" and r.error["reason"] == "RequestBlockedException"
    assert r.error["retryAfterMs"] == 30000 and r.out["sleptMs"] == 0
    dv.emu.clear_faults()
