"""The container group calls (reconcilers/azure/aci.c) end to end against
the Azure emulator's Microsoft.ContainerInstance (tests/emulator/aci.py, the
published 2025-09-01 swagger).

Each test drives acrpool-armtool's aci-* commands (tests/e2e/armtool/
armtool.c) and checks, as test_arm_emulator.py does, two views of the same
calls: the tool's JSON (what the client understood) and the emulator's
request log (what went over the wire). A secure environment variable goes
to the tool through its environment and to ARM only as secureValue in the
PUT body: it must appear in no output of the tool, no answer, and no line
of the emulator's logs.
"""
import json
import uuid

import pytest

from emulator import RG, SUB, Emulator
from procs import wait_until
from test_arm_emulator import EXIT_CALL, TOOL, Az, assert_arm_headers, redacted

V = "2025-09-01"
SECURE = "azp-pat-" + uuid.uuid4().hex  # distinctive, so a leak is findable
CG_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups"
IDENTITY = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pull"
SUBNET = f"/subscriptions/{SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/agents"
FAST = ("--poll-cap-ms", "100")


class Aci(Az):
    """Az with the secure value in the tool's environment and ACI helpers."""

    def env(self, *args, **kw):
        env = super().env(*args, **kw)
        env["ACI_SECURE"] = SECURE
        env["ACI_EXIT_CODE"] = "3"
        return env

    def run(self, *args, secrets=(), **kw):
        return super().run(*args, secrets=(SECURE, *secrets), **kw)

    def control(self, method, path, body=None):
        return self.emu.control(method, f"aci/{path}", body)

    def spec(self, name="spec.json", **over):
        spec = {"location": "eastus", "tags": {"acrpool.dev/pool": "ns.agents"}, "container": "agent",
                "image": "myregistry.azurecr.io/azp-agent:1", "cpu": 1, "memoryInGB": 1.5,
                "env": [{"name": "AZP_URL", "value": "https://dev.azure.com/org"},
                        {"name": "AZP_TOKEN", "secureValueEnv": "ACI_SECURE"}],
                "command": ["/azp/start.sh", "--once"], "subnetIds": [SUBNET], "identity": IDENTITY,
                "registryServer": "myregistry.azurecr.io"}
        spec.update(over)
        return self.write_json(name, spec)

    def aci_log(self):
        return [e for e in self.arm_log() if "/Microsoft.ContainerInstance/" in e["path"]]


def assert_secure_value_nowhere(a):
    """Neither the emulator's request log nor its stderr log holds it."""
    assert SECURE not in json.dumps(a.log())
    assert SECURE not in a.emu.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    assert TOOL.exists(), f"{TOOL} is missing: build it with `ninja -C <build> acrpool-armtool`"
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


@pytest.fixture
def aci(emu, tmp_path):
    emu.reset()
    a = Aci(emu, tmp_path)
    a.setup()
    yield a
    assert_secure_value_nowhere(a)


# ---- every operation ----------------------------------------------------------------------


def test_every_container_group_operation(aci):
    create = aci.run("aci-create", "agents-0", aci.spec(), "--wait", *FAST)
    g = create.out["group"]
    assert g["name"] == "agents-0" and g["provisioningState"] == "Pending"
    # The PUT answer already shows the variable by name only.
    assert {"name": "AZP_TOKEN", "secure": True} in g["env"]
    op = create.out["operation"]
    assert op["kind"] == "AzureAsyncOperation" and "/locations/eastus/operations/" in op["pollUrl"]
    assert op["retryAfterMs"] == 1000
    assert create.out["lro"]["state"] == "Succeeded"
    assert create.out["lro"]["result"]["properties"]["provisioningState"] == "Succeeded"

    got = aci.run("aci-get", "agents-0").out["group"]
    assert (got["provisioningState"], got["state"], got["restartCount"]) == ("Succeeded", "Running", 0)
    assert got["currentState"]["state"] == "Running" and got["currentState"]["startTime"]
    assert got["env"] == [{"name": "AZP_URL", "value": "https://dev.azure.com/org"},
                          {"name": "AZP_TOKEN", "secure": True}]
    assert (got["container"], got["image"], got["cpu"], got["memoryInGB"]) == (
        "agent", "myregistry.azurecr.io/azp-agent:1", 1, 1.5)
    assert got["command"] == ["/azp/start.sh", "--once"]
    assert (got["restartPolicy"], got["osType"]) == ("Always", "Linux")
    assert got["subnetIds"] == [SUBNET]
    assert (got["identityType"], got["identityIds"]) == ("UserAssigned", [IDENTITY])
    assert (got["registryServer"], got["registryIdentity"]) == ("myregistry.azurecr.io", IDENTITY)
    assert got["tags"] == {"acrpool.dev/pool": "ns.agents"} and got["id"] == f"{CG_PATH}/agents-0"

    restart = aci.run("aci-restart", "agents-0").out
    assert restart["operation"] is None and restart["http"][-1]["status"] == 204
    assert aci.run("aci-get", "agents-0").out["group"]["restartCount"] == 1

    tagged = aci.run("aci-tags", "agents-0", "team=ci").out["group"]
    assert tagged["tags"] == {"team": "ci"} and tagged["restartCount"] == 1  # nothing restarted

    delete = aci.run("aci-delete", "agents-0", "--wait", *FAST).out
    assert delete["operation"]["kind"] == "AzureAsyncOperation" and delete["lro"]["state"] == "Succeeded"
    err = aci.run("aci-get", "agents-0", expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("not_found", "ResourceNotFound", 404)
    again = aci.run("aci-delete", "agents-0").out
    assert again["operation"] is None and again["http"][-1]["status"] == 204

    arm = aci.aci_log()
    assert_arm_headers(arm)
    assert all(e["apiVersion"] == V for e in arm), [e["apiVersion"] for e in arm]
    name = "/agents-0"
    calls = []
    for e in arm:  # polls of an operation as one "OP": their number depends on timing
        call = (e["method"], e["path"][len(CG_PATH):] if e["path"].startswith(CG_PATH) else "OP")
        if call != ("GET", "OP") or calls[-1] != call:
            calls.append(call)
    assert "/locations/eastus/operations/" in arm[1]["path"]
    assert calls == [("PUT", name), ("GET", "OP"), ("GET", name),  # create, poll, the final GET
                     ("GET", name), ("POST", name + "/restart"), ("GET", name), ("PATCH", name),
                     ("DELETE", name), ("GET", "OP"), ("GET", name), ("DELETE", name)]
    put = arm[0]
    assert put["body"] == {
        "location": "eastus", "tags": {"acrpool.dev/pool": "ns.agents"},
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}},
        "properties": {
            "containers": [{"name": "agent", "properties": {
                "image": "myregistry.azurecr.io/azp-agent:1", "command": ["/azp/start.sh", "--once"],
                "environmentVariables": [{"name": "AZP_URL", "value": "https://dev.azure.com/org"},
                                         {"name": "AZP_TOKEN", "secureValue": redacted(json.dumps(SECURE))}],
                "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}}}}],
            "imageRegistryCredentials": [{"server": "myregistry.azurecr.io", "identity": IDENTITY}],
            "restartPolicy": "Always", "osType": "Linux", "subnetIds": [{"id": SUBNET}]}}
    patch = next(e for e in arm if e["method"] == "PATCH")
    assert patch["body"] == {"tags": {"team": "ci"}}


def test_secure_value_reaches_the_container_and_restarts_are_counted(aci):
    """The built-in env-exit-code program exits with $EXIT_CODE, sent here
    as a secure value: the container saw it although ARM never shows it.
    restartPolicy Always starts it again each time: restartCount grows."""
    aci.control("PUT", "images", {"image": "exit-test:*", "program": "env-exit-code"})
    spec = aci.spec(image="exit-test:1", identity=None, registryServer=None, subnetIds=[], command=[],
                    env=[{"name": "SLEEP_SECONDS", "value": "0.2"},
                         {"name": "EXIT_CODE", "secureValueEnv": "ACI_EXIT_CODE"},
                         {"name": "AZP_TOKEN", "secureValueEnv": "ACI_SECURE"}])
    aci.run("aci-create", "agents-1", spec, "--wait", *FAST)

    def restarted():
        g = aci.run("aci-get", "agents-1").out["group"]
        return g if g["restartCount"] >= 2 else None

    g = wait_until("two restarts", restarted, timeout=30)
    assert [e["name"] for e in g["env"] if e.get("secure")] == ["EXIT_CODE", "AZP_TOKEN"]
    starts = aci.control("GET", "starts?group=agents-1")["value"]
    finished = [s for s in starts if s["finishTime"]]
    assert finished and all(s["exitCode"] == 3 for s in finished)


def test_list_follows_next_link(aci):
    aci.control("PATCH", "settings", {"pageSize": 2})
    spec = aci.spec(identity=None, registryServer=None, subnetIds=[])
    for i in range(5):
        aci.run("aci-create", f"agents-{i}", spec)
    aci.emu.clear_requests()
    groups = aci.run("aci-list").out["groups"]
    assert sorted(g["name"] for g in groups) == [f"agents-{i}" for i in range(5)]
    # A list carries no instanceView: the reconciler GETs for restart counts.
    assert all(g["restartCount"] == -1 and g["state"] is None for g in groups)
    assert all({"name": "AZP_TOKEN", "secure": True} in g["env"] for g in groups)
    pages = aci.aci_log()
    assert [(p["method"], p["path"], p["status"]) for p in pages] == [("GET", CG_PATH, 200)] * 3
    assert all(p["apiVersion"] == V for p in pages)
    assert_arm_headers(pages)


# ---- ARM errors -----------------------------------------------------------------------------------


def test_quota_reached(aci):
    aci.control("PUT", f"quota/{SUB}/eastus", {"maxContainerGroups": 1})
    aci.run("aci-create", "agents-0", aci.spec())
    err = aci.run("aci-create", "agents-1", aci.spec(), expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("terminal", "ContainerGroupQuotaReached", 400)
    assert err["message"].startswith("Resource type 'Microsoft.ContainerInstance/containerGroups' container "
                                     "group quota 'ContainerGroups' exceeded in region 'eastus'.")
    assert "Limit: '1'" in err["message"]
    puts = aci.log(method="PUT")
    assert len(puts) == 2 and err["requestId"] == puts[1]["requestId"]  # 400: not retried


def test_inaccessible_image(aci):
    aci.control("PUT", "images", {"image": "myregistry.azurecr.io/missing:*", "pullError": True})
    err = aci.run("aci-create", "agents-0", aci.spec(image="myregistry.azurecr.io/missing:1"),
                  expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("terminal", "InaccessibleImage", 400)
    assert err["message"] == ("The image 'myregistry.azurecr.io/missing:1' in container group 'agents-0' is "
                              "not accessible. Please check the image and registry credential.")
    assert aci.control("GET", "groups")["value"] == []


def test_capacity_error_is_a_conflict(aci):
    """More CPU than a group may have in the region: ACI's 409
    ServiceUnavailable, not retried by the client."""
    err = aci.run("aci-create", "agents-0", aci.spec(cpu=8), expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("conflict", "ServiceUnavailable", 409)
    assert "Resource requested: '8' CPU" in err["message"]
    assert len(aci.log(method="PUT")) == 1


def test_a_group_deleted_by_hand_is_gone_for_get_and_delete(aci):
    aci.run("aci-create", "agents-0", aci.spec())
    aci.control("DELETE", f"groups/{SUB}/{RG}/agents-0")
    assert aci.run("aci-get", "agents-0", expect=EXIT_CALL).error["code"] == "not_found"
    assert aci.run("aci-delete", "agents-0").out["operation"] is None
    assert aci.run("aci-list").out["groups"] == []
