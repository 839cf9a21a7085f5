"""The Azure DevOps stand-in (devops.py) and the simulated agent (agent_sim.py).

The stand-in is driven over HTTP in the emulator process the conftest starts;
agent_sim.run_agent is called in-process with a hand-built ctx, as the ACI
stand-in would call it for one container start.
"""

import base64
import os
import sys
import threading
import time
import uuid
from urllib.parse import urlencode, urlsplit

import pytest

from conftest import TENANT, wait_for

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import agent_sim  # noqa: E402
from rsa_keys import RsaKey, jwt_sign  # noqa: E402

ORG = "contoso"
POOL = "aci-linux"
DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
PAT_MANAGE = "m" * 20 + "anage" + "x" * 27          # 52 characters, as a PAT has
PAT_READ = "r" * 52
PAT_OTHER = "o" * 52                                # scoped to builds only
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ERROR_KEYS = {"$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"}
SP_CLIENT = "22222222-3333-4444-5555-666666666666"
SP_SECRET = "sp-secret-never-logged"


def basic(pat, user=""):
    return "Basic " + base64.b64encode(f"{user}:{pat}".encode()).decode()


class DevOpsClient:
    """HTTP helpers for one organization of the stand-in."""

    def __init__(self, client):
        self.c = client
        self.base = f"http://127.0.0.1:{client.port}"
        self.org_url = f"{self.base}/devops/{ORG}"

    def call(self, method, path, auth=PAT_MANAGE, body=None, version="7.1", query=None, headers=None):
        q = dict(query or {})
        if version:
            q["api-version"] = version
        url = f"/devops/{ORG}/_apis/{path}" + (f"?{urlencode(q)}" if q else "")
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = auth if " " in auth else basic(auth)
        return self.c.request(method, url, body, hdrs)

    def pool_id(self, name=POOL):
        r = self.call("GET", "distributedtask/pools", query={"poolName": name})
        assert r.status == 200, r
        return r.json["value"][0]["id"]

    def add_agent(self, name, key, pool=POOL, auth=PAT_MANAGE):
        body = {"name": name, "version": "4.258.1", "maxParallelism": 1,
                "authorization": {"publicKey": key.public_key_json()}}
        return self.call("POST", f"distributedtask/pools/{self.pool_id(pool)}/agents", auth=auth, body=body)

    def agent_token(self, agent, key, **over):
        authz = agent["authorization"]
        now = int(time.time())
        claims = {"iss": authz["clientId"], "sub": authz["clientId"], "aud": authz["authorizationUrl"],
                  "nbf": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        claims.update(over)
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": jwt_sign(key, claims)}
        path = urlsplit(authz["authorizationUrl"]).path
        return self.c.request("POST", path, raw_body=urlencode(form).encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})

    def jobs(self):
        return self.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}/jobs")["value"]

    def queue(self, count, duration=0.2, result="succeeded"):
        return self.c.control("POST", f"devops/orgs/{ORG}/pools/{POOL}/jobs",
                              {"count": count, "durationSeconds": duration, "result": result})["value"]

    def entra_token(self, scope):
        self.c.control("POST", "identity/clients", {"tenantId": TENANT, "clientId": SP_CLIENT,
                                                    "clientSecret": SP_SECRET})
        r = self.c.token_request({"grant_type": "client_credentials", "client_id": SP_CLIENT,
                                  "client_secret": SP_SECRET, "scope": scope})
        assert r.status == 200, r
        return r.json["access_token"]


@pytest.fixture
def dv(client):
    client.control("PUT", f"devops/orgs/{ORG}", {})
    client.control("PUT", f"devops/orgs/{ORG}/pools/{POOL}", {})
    for token, scopes in ((PAT_MANAGE, ["vso.agentpools_manage"]), (PAT_READ, ["vso.agentpools"]),
                          (PAT_OTHER, ["vso.build"])):
        client.control("POST", f"devops/orgs/{ORG}/pats", {"token": token, "scopes": scopes})
    # These tests of locks, sessions and the simulated agent queue their
    # jobs before any agent exists, which the service would fail at once
    # (test_a_pool_with_no_agent_fails_jobs_at_once_... turns it back on).
    client.control("PATCH", "devops/settings", {"failJobsWithoutAgent": False})
    return DevOpsClient(client)


@pytest.fixture(autouse=True)
def small_keys(monkeypatch):
    monkeypatch.setattr(agent_sim, "KEY_BITS", 1024)  # 2048 in test_agent_sim_pre_registered_mode


@pytest.fixture(scope="module")
def key():
    return RsaKey.generate(1024)


def assert_error(r, status, type_key):
    assert r.status == status, r
    assert ERROR_KEYS <= set(r.json), r.json
    assert r.json["typeKey"] == type_key, r.json
    assert r.json["typeName"].split(",")[0].endswith("." + type_key)


# -- pools, auth ----------------------------------------------------------------------------------

def test_pools_list_filter_and_get(dv):
    r = dv.call("GET", "distributedtask/pools")
    assert r.status == 200 and r.json["count"] == 3
    assert [p["name"] for p in r.json["value"]] == ["Default", "Azure Pipelines", POOL]
    r = dv.call("GET", "distributedtask/pools", query={"poolName": POOL.upper()}, version=None)  # KEDA omits it
    assert r.status == 200 and r.json["count"] == 1
    pool = r.json["value"][0]
    for k in ("id", "name", "isHosted", "poolType", "size", "createdOn", "scope", "autoProvision", "owner"):
        assert k in pool
    assert (pool["name"], pool["isHosted"], pool["poolType"], pool["size"]) == (POOL, False, "automation", 0)
    r = dv.call("GET", f"distributedtask/pools/{pool['id']}")
    assert r.status == 200 and r.json["id"] == pool["id"]
    assert dv.call("GET", "distributedtask/pools", query={"poolName": "nope"}).json == {"count": 0, "value": []}
    assert_error(dv.call("GET", "distributedtask/pools/999"), 404, "TaskAgentPoolNotFoundException")
    assert r.header("ActivityId")
    r = dv.c.request("GET", "/devops/fabrikam/_apis/distributedtask/pools", headers={"Authorization": basic(PAT_READ)})
    assert_error(r, 404, "HostNotFoundException")


def test_pat_401_and_403(dv):
    r = dv.call("GET", "distributedtask/pools", auth=None)
    assert_error(r, 401, "UnauthorizedRequestException")
    assert r.header("WWW-Authenticate") and r.header("X-TFS-FedAuthRealm")
    assert_error(dv.call("GET", "distributedtask/pools", auth="not-a-pat-" + "z" * 42), 401,
                 "UnauthorizedRequestException")
    assert dv.call("GET", "distributedtask/pools", auth=basic(PAT_READ, user="anyone")).status == 200
    # A PAT without Agent Pools scope: 403, before any existence check.
    assert_error(dv.call("GET", "distributedtask/pools", auth=PAT_OTHER), 403, "UnauthorizedRequestException")
    assert_error(dv.call("GET", "distributedtask/pools/999/agents", auth=PAT_OTHER), 403,
                 "UnauthorizedRequestException")
    # Read scope reads but does not manage.
    pid = dv.pool_id()
    assert dv.call("GET", f"distributedtask/pools/{pid}/agents", auth=PAT_READ).status == 200
    r = dv.add_agent("a-0", RsaKey.generate(1024), auth=PAT_READ)
    assert_error(r, 403, "UnauthorizedRequestException")
    assert "vso.agentpools_manage" in r.json["message"]
    # Revoked and expired PATs.
    pats = dv.c.control("GET", f"devops/orgs/{ORG}")["pats"]
    read_id = next(p["id"] for p in pats if p["scopes"] == ["vso.agentpools"])
    dv.c.control("DELETE", f"devops/orgs/{ORG}/pats/{read_id}")
    assert_error(dv.call("GET", "distributedtask/pools", auth=PAT_READ), 401, "UnauthorizedRequestException")
    short = dv.c.control("POST", f"devops/orgs/{ORG}/pats", {"scopes": ["vso.agentpools"], "expiresInSeconds": 0})
    assert len(short["token"]) == 52
    assert dv.call("GET", "distributedtask/pools", auth=short["token"]).status == 401


def test_api_version_rules(dv):
    pid = dv.pool_id()
    r = dv.call("POST", f"distributedtask/pools/{pid}/agents", body={"name": "x"}, version=None)
    assert_error(r, 400, "VssVersionNotSpecifiedException")
    assert_error(dv.call("GET", "distributedtask/pools", version="9.0"), 400, "VssVersionOutOfRangeException")
    assert dv.call("GET", "distributedtask/pools", version="7.1-preview.1").status == 200
    assert dv.call("GET", "distributedtask/pools", version=None,
                   headers={"Accept": "application/json; api-version=7.1"}).status == 200


def test_entra_token_audience(dv, key):
    token = dv.entra_token(f"{DEVOPS_RESOURCE}/.default")
    r = dv.call("GET", "distributedtask/pools", auth=f"Bearer {token}")
    assert r.status == 200, r
    assert dv.add_agent("entra-agent", key, auth=f"Bearer {token}").status == 200
    # A token for ARM (another audience) is refused, as is the ARM client's.
    arm = dv.entra_token("https://management.azure.com/.default")
    r = dv.call("GET", "distributedtask/pools", auth=f"Bearer {arm}")
    assert_error(r, 401, "UnauthorizedRequestException")
    assert "audience" in r.json["message"]
    assert dv.call("GET", "distributedtask/pools", auth=f"Bearer {dv.c.token}").status == 401
    assert dv.call("GET", "distributedtask/pools", auth="Bearer forged.jwt.token").status == 401
    # Organizations may admit only some principals.
    dv.c.control("PUT", f"devops/orgs/{ORG}", {"entraClients": ["someone-else"]})
    assert dv.call("GET", "distributedtask/pools", auth=f"Bearer {token}").status == 401
    dv.c.control("PUT", f"devops/orgs/{ORG}", {"entraClients": [SP_CLIENT]})
    assert dv.call("GET", "distributedtask/pools", auth=f"Bearer {token}").status == 200


# -- agents ------------------------------------------------------------------------------------------

def test_agent_add_list_replace_update_delete(dv, key):
    pid = dv.pool_id()
    r = dv.add_agent("agent-0", key)
    assert r.status == 200, r
    agent = r.json
    for k in ("id", "name", "version", "enabled", "status", "provisioningState", "createdOn", "maxParallelism",
              "_links", "authorization"):
        assert k in agent, k
    assert (agent["status"], agent["enabled"], agent["provisioningState"]) == ("offline", True, "Provisioned")
    authz = agent["authorization"]
    uuid.UUID(authz["clientId"])
    assert urlsplit(authz["authorizationUrl"]).path.startswith("/devops/_vstoken/")
    assert authz["publicKey"] == key.public_key_json()
    assert_error(dv.add_agent("AGENT-0", key), 409, "TaskAgentExistsException")
    r = dv.call("POST", f"distributedtask/pools/{pid}/agents", body={"name": "no-key"})
    assert_error(r, 400, "ArgumentNullException")
    assert_error(dv.add_agent("hosted", key, pool="Azure Pipelines"), 400, "InvalidTaskAgentPoolException")
    dv.add_agent("agent-1", key)

    r = dv.call("GET", f"distributedtask/pools/{pid}/agents")
    assert r.json["count"] == 2 and "systemCapabilities" not in r.json["value"][0]
    r = dv.call("GET", f"distributedtask/pools/{pid}/agents",
                query={"agentName": "agent-1", "includeCapabilities": "true", "includeAssignedRequest": "true"})
    assert [a["name"] for a in r.json["value"]] == ["agent-1"]
    assert r.json["value"][0]["systemCapabilities"] == {} and "assignedRequest" not in r.json["value"][0]
    assert dv.call("GET", f"distributedtask/pools/{pid}").json["size"] == 2

    # The old key gets a token; replace (config --replace) swaps the key and kills that token.
    assert dv.agent_token(agent, key).status == 200
    old_token = dv.agent_token(agent, key).json["access_token"]
    new_key = RsaKey.generate(1024)
    body = dict(agent, authorization={"publicKey": new_key.public_key_json()}, version="4.260.0")
    r = dv.call("PUT", f"distributedtask/pools/{pid}/agents/{agent['id']}", body=body)
    assert r.status == 200, r
    assert r.json["id"] == agent["id"] and r.json["version"] == "4.260.0"
    assert r.json["authorization"]["clientId"] == authz["clientId"]
    assert r.json["authorization"]["publicKey"] == new_key.public_key_json()
    assert dv.agent_token(agent, key).status == 401
    assert dv.agent_token(agent, new_key).status == 200
    r = dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}", auth=f"Bearer {old_token}")
    assert r.status == 401
    # Replace without a key is refused (the agent always sends one).
    r = dv.call("PUT", f"distributedtask/pools/{pid}/agents/{agent['id']}", body={"name": "agent-0"})
    assert_error(r, 400, "ArgumentNullException")

    r = dv.call("PATCH", f"distributedtask/pools/{pid}/agents/{agent['id']}", body={"enabled": False})
    assert r.status == 200 and r.json["enabled"] is False and r.json["version"] == "4.260.0"
    assert dv.call("DELETE", f"distributedtask/pools/{pid}/agents/{agent['id']}").status == 204
    assert_error(dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}"), 404,
                 "TaskAgentNotFoundException")
    assert_error(dv.call("DELETE", f"distributedtask/pools/{pid}/agents/{agent['id']}"), 404,
                 "TaskAgentNotFoundException")
    assert dv.agent_token(agent, new_key).status == 401


def test_agent_oauth_client_credentials(dv, key):
    agent = dv.add_agent("agent-0", key).json
    r = dv.agent_token(agent, key)
    assert r.status == 200, r
    assert r.json["access_token"] and r.json["expires_in"] == 3600 and r.header("Cache-Control") == "no-store"
    bearer = f"Bearer {r.json['access_token']}"
    pid = dv.pool_id()
    # The agent's token reads its own agent and pool, and nothing it should not.
    assert dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}", auth=bearer).status == 200
    assert dv.call("GET", "distributedtask/pools", auth=bearer).json["count"] == 1
    assert_error(dv.call("POST", f"distributedtask/pools/{pid}/agents", auth=bearer, body={"name": "x"}), 403,
                 "AccessCheckException")
    assert_error(dv.call("GET", f"distributedtask/pools/{pid}/jobrequests", auth=bearer), 403,
                 "AccessCheckException")
    # Refusals: another key, another audience, expired, wrong grant, garbage.
    r = dv.agent_token(agent, RsaKey.generate(1024))
    assert r.status == 401 and r.json["error"] == "invalid_client"
    assert "signature" in r.json["error_description"]
    assert dv.agent_token(agent, key, aud="https://example.com/token").status == 401
    assert dv.agent_token(agent, key, exp=int(time.time()) - 10).status == 401
    assert dv.agent_token(agent, key, iss="someone", sub="someone").status == 401
    path = urlsplit(agent["authorization"]["authorizationUrl"]).path
    r = dv.c.request("POST", path, raw_body=b"grant_type=password&username=a&password=b",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400 and r.json["error"] == "unsupported_grant_type"
    r = dv.c.request("POST", path, raw_body=urlencode({"grant_type": "client_credentials",
                                                       "client_assertion_type": ASSERTION_TYPE,
                                                       "client_assertion": "x.y"}).encode())
    assert r.status == 400
    # The request log keeps the token form with the assertion hashed.
    entries = dv.c.control("GET", "requests")["value"]
    forms = [e["body"] for e in entries if "/_vstoken/" in e["path"] and e["body"]]
    secrets_ = [v for f in forms for k, v in f.items() if k in ("client_assertion", "password")]
    assert len(secrets_) >= 6 and all(v.startswith("<redacted sha256:") for v in secrets_)


# -- job requests, sessions, messages --------------------------------------------------------------------

def open_session(dv, key, name="agent-0"):
    agent = dv.add_agent(name, key).json
    bearer = f"Bearer {dv.agent_token(agent, key).json['access_token']}"
    pid = dv.pool_id()
    r = dv.call("POST", f"distributedtask/pools/{pid}/sessions", auth=bearer,
                body={"ownerName": "host-1", "agent": {"id": agent["id"], "name": name},
                      "systemCapabilities": {"emulator.containerGroup": "cg-1", "emulator.container": "agent",
                                             "emulator.start": "4"}})
    assert r.status == 200, r
    return agent, bearer, pid, r.json["sessionId"]


def test_jobrequests_queued_assigned_finished(dv, key):
    # An agent first: a pool with none fails a job at once (next test).
    agent, bearer, pid, session = open_session(dv, key)
    dv.queue(2, duration=5)
    r = dv.call("GET", f"distributedtask/pools/{pid}/jobrequests", auth=PAT_READ)
    assert r.status == 200 and r.json["count"] == 2
    for job in r.json["value"]:
        assert {"requestId", "queueTime", "serviceOwner", "hostId", "scopeId", "planType", "planId", "jobId",
                "definition", "owner", "data", "poolId", "orchestrationId", "matchesAllAgentsInPool"} <= set(job)
        assert not {"assignTime", "receiveTime", "finishTime", "result", "reservedAgent", "lockedUntil"} & set(job)
    assert dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}").json["status"] == "online"

    r = dv.call("GET", f"distributedtask/pools/{pid}/messages", auth=bearer, query={"sessionId": session})
    assert r.status == 200, r
    msg = r.json
    assert msg["messageType"] == "PipelineAgentJobRequest" and isinstance(msg["messageId"], int)
    import json
    job_msg = json.loads(msg["body"])
    rid = job_msg["requestId"]
    assert job_msg["variables"]["emulator.durationSeconds"]["value"] == "5.0"
    # The same message again until it is deleted or acknowledged.
    again = dv.call("GET", f"distributedtask/pools/{pid}/messages", auth=bearer, query={"sessionId": session})
    assert again.json["messageId"] == msg["messageId"]
    assert dv.call("DELETE", f"distributedtask/pools/{pid}/messages/{msg['messageId']}", auth=bearer,
                   query={"sessionId": session}).status == 204

    jobs = {j["requestId"]: j for j in dv.call("GET", f"distributedtask/pools/{pid}/jobrequests",
                                               auth=PAT_READ).json["value"]}
    assigned = jobs[rid]
    assert assigned["reservedAgent"]["id"] == agent["id"] and assigned["reservedAgent"]["status"] == "online"
    assert "assignTime" in assigned and "receiveTime" in assigned and "lockedUntil" in assigned
    assert "result" not in assigned
    other = next(j for k, j in jobs.items() if k != rid)
    assert "reservedAgent" not in other and "assignTime" not in other
    # What KEDA counts as queued (no result) and what "not yet assigned" means.
    assert sum(1 for j in jobs.values() if "result" not in j) == 2
    assert sum(1 for j in jobs.values() if "reservedAgent" not in j) == 1
    r = dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}", query={"includeAssignedRequest": "true"})
    assert r.json["assignedRequest"]["requestId"] == rid

    url = f"distributedtask/pools/{pid}/jobrequests/{rid}"
    lock = {"lockToken": "00000000-0000-0000-0000-000000000000"}
    r = dv.call("PATCH", url, auth=bearer, query=lock, body={"requestId": rid})
    assert r.status == 200 and "lockedUntil" in r.json and "result" not in r.json
    assert_error(dv.call("PATCH", url, auth=PAT_MANAGE, query=lock, body={"requestId": rid}), 403,
                 "AccessCheckException")
    r = dv.call("PATCH", url, auth=bearer, query=lock,
                body={"requestId": rid, "result": "succeeded", "finishTime": "2030-01-01T00:00:00Z"})
    assert r.status == 200 and r.json["result"] == "succeeded" and "finishTime" in r.json
    assert "lockedUntil" not in r.json

    r = dv.call("GET", f"distributedtask/pools/{pid}/jobrequests", auth=PAT_READ,
                query={"completedRequestCount": "0"})
    assert [j["requestId"] for j in r.json["value"]] == [other["requestId"]]
    r = dv.call("GET", f"distributedtask/pools/{pid}/jobrequests", auth=PAT_READ, query={"agentId": agent["id"]})
    assert [j["requestId"] for j in r.json["value"]] == [rid]
    r = dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}",
                query={"includeLastCompletedRequest": "true"})
    assert r.json["lastCompletedRequest"]["result"] == "succeeded"
    described = {j["requestId"]: j for j in dv.jobs()}
    assert described[rid]["state"] == "finished"
    assert described[rid]["ranIn"] == {"ownerName": "host-1", "containerGroupId": None,
                                       "containerGroup": "cg-1", "container": "agent", "start": 4}
    assert described[other["requestId"]]["state"] == "queued"


def test_a_pool_with_no_agent_fails_jobs_at_once_and_an_offline_one_keeps_them(dv, key):
    """What scaling to zero has to respect: Azure Pipelines fails a job at
    once when its pool has no agent at all, and queues it while an
    offline (or disabled) one is registered."""
    dv.c.control("PATCH", "devops/settings", {"failJobsWithoutAgent": True})
    failed = dv.queue(1, duration=5)[0]
    assert failed["state"] == "finished" and failed["result"] == "failed"
    assert "No agent found in pool" in failed["error"]
    agent, bearer, pid, session = open_session(dv, key)
    assert dv.call("DELETE", f"distributedtask/pools/{pid}/sessions/{session}", auth=bearer).status == 204
    assert dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}").json["status"] == "offline"
    waiting = dv.queue(1, duration=5)[0]
    assert waiting["state"] == "queued"
    # The last agent removed: what waited fails the same way.
    assert dv.call("DELETE", f"distributedtask/pools/{pid}/agents/{agent['id']}", auth=PAT_MANAGE).status == 204
    after = {j["requestId"]: j for j in dv.jobs()}[waiting["requestId"]]
    assert after["result"] == "failed" and "No agent found" in after["error"]


def test_session_rules_and_long_poll(dv, key):
    dv.c.control("PATCH", "devops/settings", {"longPollSeconds": 0.3})
    agent, bearer, pid, session = open_session(dv, key)
    r = dv.call("POST", f"distributedtask/pools/{pid}/sessions", auth=bearer,
                body={"ownerName": "x", "agent": {"id": agent["id"]}})
    assert_error(r, 409, "TaskAgentSessionConflictException")
    assert_error(dv.call("POST", f"distributedtask/pools/{pid}/sessions", auth=PAT_MANAGE,
                         body={"agent": {"id": agent["id"]}}), 403, "AccessCheckException")
    started = time.monotonic()
    r = dv.call("GET", f"distributedtask/pools/{pid}/messages", auth=bearer, query={"sessionId": session})
    assert r.status == 202 and not r.raw and time.monotonic() - started >= 0.25
    # A long poll hands out a job queued while it waits.
    dv.c.control("PATCH", "devops/settings", {"longPollSeconds": 10})
    box = {}
    t = threading.Thread(target=lambda: box.update(r=dv.call("GET", f"distributedtask/pools/{pid}/messages",
                                                             auth=bearer, query={"sessionId": session})))
    t.start()
    wait_for(lambda: dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")["agents"][0]["session"],
             what="session polling")
    dv.queue(1)
    t.join(timeout=10)
    assert box["r"].status == 200 and box["r"].json["messageType"] == "PipelineAgentJobRequest"
    # Deleting the session takes the agent offline; its session id is then unknown.
    assert dv.call("DELETE", f"distributedtask/pools/{pid}/sessions/{session}", auth=bearer).status == 204
    assert dv.call("GET", f"distributedtask/pools/{pid}/agents/{agent['id']}").json["status"] == "offline"
    assert_error(dv.call("GET", f"distributedtask/pools/{pid}/messages", auth=bearer, query={"sessionId": session}),
                 404, "TaskAgentSessionExpiredException")


def test_lock_expiry_abandons_the_job(dv, key):
    dv.c.control("PATCH", "devops/settings", {"jobLockSeconds": 0.2})
    dv.queue(1, duration=60)
    agent, bearer, pid, session = open_session(dv, key)
    assert dv.call("GET", f"distributedtask/pools/{pid}/messages", auth=bearer,
                   query={"sessionId": session}).status == 200
    job = wait_for(lambda: (lambda j: j if j["result"] else None)(dv.jobs()[0]), what="job abandoned")
    assert job["result"] == "abandoned" and job["state"] == "finished"


def test_restarted_agent_abandons_the_job_its_last_process_held(dv, key):
    """A container that died after its job was assigned: the job is
    abandoned when the agent comes back (new session or --replace), and the
    new process takes the next job instead of waiting out the lock."""
    dv.queue(2, duration=0.1)
    agent, bearer, pid, session = open_session(dv, key, name="agent-0")
    assert dv.call("GET", f"distributedtask/pools/{pid}/messages", auth=bearer,
                   query={"sessionId": session}).status == 200
    ctx, logs = make_ctx(dv, "agent-0", start=1)
    assert agent_sim.run_agent(ctx) == 0, logs
    first, second = dv.jobs()
    assert first["result"] == "abandoned" and first["ranIn"]["start"] == 4
    assert second["result"] == "succeeded" and second["ranIn"]["start"] == 1


def test_429_injection_on_devops(dv, key):
    rule = dv.c.control("POST", "faults", {"status": 429, "path": "^/devops/.*/pools$", "count": 1,
                                           "retryAfter": 2})
    r = dv.call("GET", "distributedtask/pools")
    assert_error(r, 429, "RequestBlockedException")
    assert r.header("Retry-After") == "2" and r.header("X-RateLimit-Remaining") == "0"
    assert dv.call("GET", "distributedtask/pools").status == 200
    assert next(f for f in dv.c.control("GET", "faults")["value"] if f["id"] == rule["id"])["fired"] == 1
    # The simulated agent waits out a 429 on session creation and carries on.
    dv.c.control("POST", "faults", {"status": 429, "path": "/sessions$", "method": "POST", "count": 1,
                                    "retryAfter": 0})
    dv.queue(1, duration=0.1)
    ctx, logs = make_ctx(dv, "agent-429")
    assert agent_sim.run_agent(ctx) == 0, logs
    assert any("429" in line for line in logs)
    assert dv.jobs()[0]["result"] == "succeeded"


# -- the simulated agent --------------------------------------------------------------------------------

def make_ctx(dv, name, start=0, group=None, **env_over):
    logs = []
    env = {"AZP_URL": f"https://dev.azure.com/{ORG}", "AZP_POOL": POOL, "AZP_AGENT_NAME": name,
           "AZP_TOKEN": PAT_MANAGE, "HOME": "/home/agent"}
    env.update(env_over)
    env = {k: v for k, v in env.items() if v is not None}
    group = group or f"cg-{name}"
    ctx = {"group_id": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
                       f"containerGroups/{group}",
           "group_name": group, "container_name": "agent", "image": "example.azurecr.io/azp-agent:1",
           "env": env, "start": start, "stop": threading.Event(), "emulator_url": dv.base, "log": logs.append}
    return ctx, logs


def test_agent_sim_takes_exactly_one_job_per_start(dv):
    dv.queue(5, duration=0.2)
    # Two instances, restarted like ACI restarts them: every start takes one job.
    results, threads = [], []

    def instance(i, starts):
        for start in range(starts):
            ctx, logs = make_ctx(dv, f"agent-{i}", start=start)
            results.append((i, start, agent_sim.run_agent(ctx), logs))

    for i, starts in ((0, 3), (1, 2)):
        threads.append(threading.Thread(target=instance, args=(i, starts)))
        threads[-1].start()
    for t in threads:
        t.join(timeout=60)
    assert [r[2] for r in results] == [0] * 5, results
    jobs = dv.jobs()
    assert all(j["state"] == "finished" and j["result"] == "succeeded" for j in jobs), jobs
    starts = [(j["ranIn"]["containerGroup"], j["ranIn"]["container"], j["ranIn"]["start"]) for j in jobs]
    assert len(set(starts)) == 5, starts  # no start ran two jobs; every job ran in its own start
    assert sorted(starts) == sorted([(f"cg-agent-{i}", "agent", s) for i, n in ((0, 3), (1, 2)) for s in range(n)])
    # Each agent was registered once and replaced on every later start; all are offline now.
    pool = dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")
    assert sorted(a["name"] for a in pool["agents"]) == ["agent-0", "agent-1"]
    assert all(a["status"] == "offline" for a in pool["agents"])
    assert {a["name"]: a["keyGeneration"] for a in pool["agents"]} == {"agent-0": 2, "agent-1": 1}
    # The job's environment had no credential: the agent reported what it kept.
    pid = dv.pool_id()
    caps = dv.call("GET", f"distributedtask/pools/{pid}/agents",
                   query={"includeCapabilities": "true"}).json["value"][0]["systemCapabilities"]
    assert "AZP_TOKEN" not in caps["emulator.jobEnvNames"].split(",") and "HOME" in caps["emulator.jobEnvNames"]
    assert not any(PAT_MANAGE in v for v in caps.values())
    # Nothing the emulator recorded carries the PAT.
    assert PAT_MANAGE not in repr(dv.c.control("GET", "requests"))


def test_agent_sim_waits_for_a_job_then_exits(dv):
    ctx, logs = make_ctx(dv, "agent-0")
    box = {}
    t = threading.Thread(target=lambda: box.update(rc=agent_sim.run_agent(ctx)))
    t.start()
    wait_for(lambda: any(a["status"] == "online" for a in
                         dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")["agents"]), what="agent online")
    assert t.is_alive()
    dv.queue(2, duration=0.1)
    t.join(timeout=15)
    assert box["rc"] == 0
    assert [j["state"] for j in dv.jobs()] == ["finished", "queued"]


def test_agent_sim_stop_cancels_the_running_job(dv):
    dv.queue(1, duration=60)
    ctx, logs = make_ctx(dv, "agent-0")
    box = {}
    t = threading.Thread(target=lambda: box.update(rc=agent_sim.run_agent(ctx)))
    t.start()
    wait_for(lambda: dv.jobs()[0]["renewals"] >= 1, what="job running (first lock renewal)")
    stopped = time.monotonic()
    ctx["stop"].set()
    t.join(timeout=5)
    assert not t.is_alive() and time.monotonic() - stopped < 3
    assert box["rc"] == 0, logs
    assert dv.jobs()[0]["result"] == "canceled", (dv.jobs()[0], logs)
    assert dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")["agents"][0]["status"] == "offline"
    # A stop while only listening ends promptly too.
    ctx, logs = make_ctx(dv, "agent-1")
    t = threading.Thread(target=agent_sim.run_agent, args=(ctx,))
    t.start()
    wait_for(lambda: len([a for a in dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")["agents"]
                          if a["status"] == "online"]) == 1, what="agent-1 online")
    ctx["stop"].set()
    t.join(timeout=3)
    assert not t.is_alive()


def test_agent_sim_start_seconds_keeps_the_agent_offline_that_long(dv):
    """AGENT_SIM_START_SECONDS: the agent makes no request (so stays offline)
    until that long after its container started; a stop meanwhile ends it."""
    def online():
        return [a for a in dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")["agents"]
                if a["status"] == "online"]
    ctx, logs = make_ctx(dv, "agent-0", AGENT_SIM_START_SECONDS="1.5")
    t = threading.Thread(target=agent_sim.run_agent, args=(ctx,))
    started = time.monotonic()
    t.start()
    wait_for(online, what="agent online")
    assert time.monotonic() - started >= 1.5
    ctx["stop"].set()
    t.join(timeout=5)
    assert not t.is_alive()
    # Stopped while starting: no request at all, exit 0, promptly.
    dv.c.control("DELETE", "requests")
    ctx, logs = make_ctx(dv, "agent-1", AGENT_SIM_START_SECONDS="30")
    box = {}
    t = threading.Thread(target=lambda: box.update(rc=agent_sim.run_agent(ctx)))
    t.start()
    time.sleep(0.3)  # let it enter its start; the stop below is what is tested
    stopped = time.monotonic()
    ctx["stop"].set()
    t.join(timeout=3)
    assert not t.is_alive() and time.monotonic() - stopped < 2 and box["rc"] == 0
    assert not [r for r in dv.c.control("GET", "requests")["value"] if r["path"].startswith("/devops/")]
    ctx, logs = make_ctx(dv, "agent-2", AGENT_SIM_START_SECONDS="soon")
    assert agent_sim.run_agent(ctx) == 2 and "AGENT_SIM_START_SECONDS" in logs[0]


def test_agent_sim_pre_registered_mode(dv, monkeypatch):
    """The operator registers the agent and hands the container only the agent's own key."""
    monkeypatch.setattr(agent_sim, "KEY_BITS", 2048)
    key = RsaKey.generate(2048)
    agent = dv.add_agent("agent-7", key).json
    rsaparams = key.rsaparams_json()
    assert set(rsaparams) == {"ContainerName", "UseCng", "d", "dp", "dq", "exponent", "inverseQ", "modulus", "p",
                              "q"}
    blob = base64.b64encode(__import__("json").dumps(rsaparams).encode()).decode()
    dv.queue(1, duration=0.1)
    ctx, logs = make_ctx(dv, "agent-7", AZP_TOKEN=None, AZP_AGENT_ID=str(agent["id"]),
                         AZP_AGENT_CLIENT_ID=agent["authorization"]["clientId"],
                         AZP_AGENT_AUTH_URL=agent["authorization"]["authorizationUrl"], AZP_AGENT_KEY=blob)
    assert agent_sim.run_agent(ctx) == 0, logs
    job = dv.jobs()[0]
    assert job["result"] == "succeeded" and job["agent"]["id"] == agent["id"]
    # Its registration was not touched: same key, no replace.
    pool = dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")
    assert pool["agents"][0]["keyFingerprint"] == key.fingerprint() and pool["agents"][0]["keyGeneration"] == 0
    # With another key in the container: refused, non-zero, the job stays queued.
    dv.queue(1, duration=0.1)
    wrong = base64.b64encode(__import__("json").dumps(RsaKey.generate(1024).rsaparams_json()).encode()).decode()
    ctx["env"]["AZP_AGENT_KEY"] = wrong
    ctx["start"] = 1
    assert agent_sim.run_agent(ctx) == 1
    assert any("refused" in line for line in logs)
    assert dv.jobs()[1]["state"] == "queued"


@pytest.mark.parametrize("missing", ["AZP_URL", "AZP_POOL", "AZP_AGENT_NAME", "AZP_TOKEN"])
def test_agent_sim_missing_variable_fails_clearly(dv, missing):
    ctx, logs = make_ctx(dv, "agent-0", **{missing: None})
    started = time.monotonic()
    assert agent_sim.run_agent(ctx) == 2
    assert time.monotonic() - started < 2
    assert len(logs) == 1 and "missing environment variable" in logs[0] and missing in logs[0]
    assert dv.c.control("GET", f"devops/orgs/{ORG}/pools/{POOL}")["agents"] == []


def test_agent_sim_partial_pre_registration_and_both_modes(dv):
    ctx, logs = make_ctx(dv, "agent-0", AZP_TOKEN=None, AZP_AGENT_ID="1", AZP_AGENT_CLIENT_ID="c")
    assert agent_sim.run_agent(ctx) == 2
    assert "AZP_AGENT_AUTH_URL" in logs[0] and "AZP_AGENT_KEY" in logs[0] and "AZP_AGENT_ID," not in logs[0]
    ctx, logs = make_ctx(dv, "agent-0", AZP_AGENT_KEY="eA==")
    assert agent_sim.run_agent(ctx) == 2 and "not both" in logs[0]


def test_agent_sim_wrong_credential_fails(dv):
    dv.queue(1)
    bad = "w" * 52
    ctx, logs = make_ctx(dv, "agent-0", AZP_TOKEN=bad)
    assert agent_sim.run_agent(ctx) == 1
    assert any("refused" in line and "401" in line for line in logs)
    assert not any(bad in line for line in logs)
    ctx, logs = make_ctx(dv, "agent-0", AZP_TOKEN=PAT_READ)   # read-only: cannot register
    assert agent_sim.run_agent(ctx) == 1
    assert any("denied" in line for line in logs)
    ctx, logs = make_ctx(dv, "agent-0", AZP_POOL="no-such-pool")
    assert agent_sim.run_agent(ctx) == 1 and any("not found" in line for line in logs)
    assert dv.jobs()[0]["state"] == "queued"


def test_agent_sim_entra_token_mode(dv):
    token = dv.entra_token(f"{DEVOPS_RESOURCE}/.default")
    dv.queue(1, duration=0.1, result="failed")
    ctx, logs = make_ctx(dv, "agent-0", AZP_TOKEN=token)
    assert agent_sim.run_agent(ctx) == 0, logs
    assert dv.jobs()[0]["result"] == "failed"
    # An Entra token for another resource is refused like a wrong PAT.
    dv.queue(1)
    ctx, logs = make_ctx(dv, "agent-1", AZP_TOKEN=dv.entra_token("https://management.azure.com/.default"))
    assert agent_sim.run_agent(ctx) == 1


def test_agent_sim_url_mapping():
    emu = "http://127.0.0.1:9"
    assert agent_sim.map_org_url("https://dev.azure.com/contoso/", emu) == f"{emu}/devops/contoso"
    assert agent_sim.map_org_url("https://contoso.visualstudio.com", emu) == f"{emu}/devops/contoso"
    assert agent_sim.map_org_url(f"{emu}/devops/contoso", emu) == f"{emu}/devops/contoso"
    assert agent_sim.map_auth_url("https://vstoken.dev.azure.com/abc/oauth2/token", emu) == \
        f"{emu}/devops/_vstoken/abc/oauth2/token"


# -- with the ACI stand-in: container groups whose containers run the agent ----------------------------

ACI_V = "2025-09-01"
ACI_RG = "rg-agents"


def _aci_group(name, env):
    return {"location": "eastus",
            "properties": {"osType": "Linux", "restartPolicy": "Always",
                           "containers": [{"name": "agent", "properties": {
                               "image": "example.azurecr.io/azp-agent:1",
                               "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                               "environmentVariables": env}}]}}


def _aci_path(name):
    return f"/subscriptions/{SUB_ACI}/resourceGroups/{ACI_RG}/providers/Microsoft.ContainerInstance/" \
           f"containerGroups/{name}"


SUB_ACI = "00000000-1111-2222-3333-444444444444"


@pytest.fixture
def aci_agents(dv):
    try:
        programs = dv.c.control("GET", "aci/programs")["value"]
    except AssertionError:
        pytest.skip("no ACI stand-in in this emulator")
    if agent_sim.PROGRAM not in programs:
        pytest.skip("the ACI stand-in does not run azure-pipelines-agent")
    dv.c.control("PUT", "aci/settings", {"provisioningDelaySeconds": 0, "deleteDelaySeconds": 0,
                                         "restartDelaySeconds": 0.05})
    dv.c.control("PUT", "aci/images", {"image": "example.azurecr.io/azp-agent:*", "program": agent_sim.PROGRAM})
    made = []
    yield made
    for name in made:  # stop the agents: they would keep restarting until the next reset
        dv.c.arm("DELETE", _aci_path(name), version=ACI_V)


def test_aci_groups_run_one_job_per_container_start(dv, aci_agents):
    """The e2e scenario in small: 10 queued jobs on 3 container groups with
    restartPolicy Always; every job ran in a fresh container start and no
    start ran two jobs."""
    dv.queue(10, duration=0.2)
    for i in range(3):
        env = [{"name": "AZP_URL", "value": f"https://dev.azure.com/{ORG}"}, {"name": "AZP_POOL", "value": POOL},
               {"name": "AZP_AGENT_NAME", "value": f"agent-{i}"}, {"name": "AZP_TOKEN", "secureValue": PAT_MANAGE}]
        r = dv.c.arm("PUT", _aci_path(f"cg-agent-{i}"), _aci_group(f"cg-agent-{i}", env), version=ACI_V)
        assert r.status in (200, 201), r
        aci_agents.append(f"cg-agent-{i}")
    jobs = wait_for(lambda: (lambda js: js if all(j["state"] == "finished" for j in js) else None)(dv.jobs()),
                    timeout=60, what="10 jobs finished")
    assert all(j["result"] == "succeeded" for j in jobs)
    ran = [(j["ranIn"]["containerGroup"], j["ranIn"]["container"], j["ranIn"]["start"]) for j in jobs]
    assert len(set(ran)) == 10, ran

    def exited():
        starts = {(s["group"], s["container"], s["start"]): s for s in dv.c.control("GET", "aci/starts")["value"]}
        return starts if all(starts[k]["finishTime"] for k in ran) else None
    starts = wait_for(exited, what="the starts that ran jobs exited")
    for key in ran:  # each of those starts exited 0 after its job
        assert starts[key]["exitCode"] == 0, starts[key]
    assert {j["ranIn"]["containerGroupId"] for j in jobs} <= {_aci_path(n) for n in aci_agents}


def test_aci_group_with_a_wrong_credential_keeps_failing(dv, aci_agents):
    dv.queue(1)
    env = [{"name": "AZP_URL", "value": f"https://dev.azure.com/{ORG}"}, {"name": "AZP_POOL", "value": POOL},
           {"name": "AZP_AGENT_NAME", "value": "agent-x"}, {"name": "AZP_TOKEN", "secureValue": "w" * 52}]
    assert dv.c.arm("PUT", _aci_path("cg-bad"), _aci_group("cg-bad", env), version=ACI_V).status in (200, 201)
    aci_agents.append("cg-bad")
    bad = wait_for(lambda: (lambda s: s if len(s) >= 2 else None)(
        [s for s in dv.c.control("GET", "aci/starts?group=cg-bad")["value"] if s["finishTime"]]),
        what="two failed starts")
    assert all(s["exitCode"] == 1 for s in bad)
    assert dv.jobs()[0]["state"] == "queued"
