"""Container groups (Microsoft.ContainerInstance, api-version 2025-09-01):
ARM operations and their long-running answers, the simulated container
runtime and restart policies, secrets, quota and pull errors, and the
published examples of spec/examples/2025-09-01/.

Waits poll a condition with a deadline (conftest.wait_for); nothing sleeps
to wait."""

import glob
import json
import os
import re

import pytest

from conftest import SPEC_DIR, SUB, wait_for
from test_examples import _missing_keys

V = "2025-09-01"
RG = "rg-aci"
LOC = "eastus"
SECRET = "pat-SECRET-never-echoed-4711"


def group_path(name, rg=RG, sub=SUB):
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}"


def body(image="example.azurecr.io/agent:1", policy="Always", cpu=1, memory=1.5, env=None, tags=None, **props):
    b = {"location": LOC,
         "properties": {"osType": "Linux", "restartPolicy": policy,
                        "containers": [{"name": "agent", "properties": {
                            "image": image, "resources": {"requests": {"cpu": cpu, "memoryInGB": memory}},
                            "environmentVariables": env or []}}], **props}}
    if tags is not None:
        b["tags"] = tags
    return b


@pytest.fixture
def aci(client):
    client.control("PUT", "aci/settings", {"provisioningDelaySeconds": 0, "deleteDelaySeconds": 0,
                                           "restartDelaySeconds": 0.05})
    return client


def put(c, name, b, **kw):
    return c.arm("PUT", group_path(name, **kw), b, version=V)


def get(c, name, **kw):
    return c.arm("GET", group_path(name, **kw), version=V)


def op_status(c, url):
    r = c.get_url(url)
    assert r.status == 200, r
    return r.json["status"]


def wait_op(c, url, status="Succeeded"):
    return wait_for(lambda: op_status(c, url) == status, what=f"operation {status}")


def wait_state(c, name, predicate, what, timeout=10, **kw):
    def check():
        r = get(c, name, **kw)
        return r.json if r.status == 200 and predicate(r.json) else None
    return wait_for(check, timeout=timeout, what=what)


def running(c, name, **kw):
    return wait_state(c, name, lambda g: g["properties"]["instanceView"]["state"] == "Running", "Running", **kw)


def container(g):
    return g["properties"]["containers"][0]["properties"]["instanceView"]


def starts(c, name):
    return c.control("GET", f"aci/starts?group={name}")["value"]


# -- ARM operations -------------------------------------------------------------------------

def test_create_is_long_running_then_runs(aci):
    aci.control("PUT", "aci/settings", {"provisioningDelaySeconds": 0.4})
    r = put(aci, "cg1", body(tags={"team": "ci"}))
    assert r.status == 201, r
    assert r.json["properties"]["provisioningState"] == "Pending"
    assert r.json["properties"]["instanceView"]["state"] == "Pending"
    assert r.json["type"] == "Microsoft.ContainerInstance/containerGroups" and r.json["tags"] == {"team": "ci"}
    url = r.header("Azure-AsyncOperation")
    assert re.search(r"/providers/Microsoft\.ContainerInstance/locations/eastus/operations/[^/?]+\?api-version="
                     + V, url), url
    assert r.header("Retry-After") == "1"
    assert op_status(aci, url) == "InProgress"
    wait_op(aci, url)
    g = running(aci, "cg1")
    assert g["properties"]["provisioningState"] == "Succeeded"
    iv = container(g)
    assert iv["restartCount"] == 0 and iv["currentState"]["state"] == "Running"
    assert [e["name"] for e in iv["events"]] == ["Pulling", "Pulled", "Started"]
    assert g["properties"]["restartPolicy"] == "Always"


def test_restart_policy_defaults_to_always(aci):
    b = body()
    del b["properties"]["restartPolicy"]
    assert put(aci, "cg1", b).json["properties"]["restartPolicy"] == "Always"


def test_get_missing_and_names(aci):
    r = get(aci, "nope")
    assert (r.status, r.json["error"]["code"]) == (404, "ResourceNotFound")
    assert "Microsoft.ContainerInstance/containerGroups/nope" in r.json["error"]["message"]
    r = aci.arm("GET", group_path("cg1"), version="2023-05-01")
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidApiVersionParameter")
    r = aci.arm("GET", group_path("cg1"), version=None)
    assert (r.status, r.json["error"]["code"]) == (400, "MissingApiVersionParameter")


def test_arm_needs_a_token(aci):
    r = aci.arm("GET", group_path("cg1"), version=V, auth=False)
    assert (r.status, r.json["error"]["code"]) == (401, "AuthenticationFailed")


def test_list_by_resource_group_and_subscription_with_paging(aci):
    aci.control("PUT", "aci/settings", {"pageSize": 2})
    for i in range(5):
        assert put(aci, f"cg{i}", body()).status == 201
    assert put(aci, "other", body(), rg="rg-other").status == 201

    def collect(path):
        names, url, pages = [], path, 0
        while url:
            r = aci.get_url(url) if url.startswith("http") else aci.arm("GET", url, version=V)
            assert r.status == 200, r
            pages += 1
            for item in r.json["value"]:
                assert "instanceView" not in item["properties"]  # as the list examples show
                names.append(item["name"])
            url = r.json.get("nextLink")
        return sorted(names), pages

    rg_path = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups"
    assert collect(rg_path) == ([f"cg{i}" for i in range(5)], 3)
    sub_path = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups"
    assert collect(sub_path)[0] == sorted([f"cg{i}" for i in range(5)] + ["other"])


def test_patch_replaces_tags_only(aci):
    put(aci, "cg1", body(tags={"a": "1"}))
    running(aci, "cg1")
    r = aci.arm("PATCH", group_path("cg1"), {"tags": {"b": "2"}}, version=V)
    assert r.status == 200 and r.json["tags"] == {"b": "2"}, r
    assert len(starts(aci, "cg1")) == 1  # tags do not restart anything
    r = aci.arm("PATCH", group_path("cg1"), {"properties": {}}, version=V)
    assert (r.status, r.json["error"]["code"], r.json["error"]["target"]) == (400, "InvalidRequestContent",
                                                                                "properties")
    r = aci.arm("PATCH", group_path("nope"), {"tags": {}}, version=V)
    assert r.status == 404


def test_delete_is_long_running_and_stops_programs(aci):
    aci.control("PUT", "aci/settings", {"deleteDelaySeconds": 0.3})
    put(aci, "cg1", body())
    running(aci, "cg1")
    r = aci.arm("DELETE", group_path("cg1"), version=V)
    assert r.status == 202, r
    url = r.header("Azure-AsyncOperation")
    assert get(aci, "cg1").json["properties"]["provisioningState"] == "Deleting"
    again = aci.arm("DELETE", group_path("cg1"), version=V)
    assert again.status == 202 and again.header("Azure-AsyncOperation") == url
    wait_op(aci, url)
    assert get(aci, "cg1").status == 404
    assert aci.arm("DELETE", group_path("cg1"), version=V).status == 204
    wait_for(lambda: starts(aci, "cg1")[0]["stopped"], what="the program to stop")


def test_conflict_while_an_operation_runs(aci):
    aci.control("PUT", "aci/settings", {"provisioningDelaySeconds": 5})
    r = put(aci, "cg1", body())
    assert r.status == 201
    for method, payload in (("PUT", body()), ("PATCH", {"tags": {}})):
        again = aci.arm(method, group_path("cg1"), payload, version=V)
        assert (again.status, again.json["error"]["code"]) == (409, "ContainerGroupTransitioning"), again
        assert again.json["error"]["message"] == ("The container group 'cg1' is still transitioning, "
                                                  "please retry later.")
    for action in ("restart", "stop", "start"):
        assert aci.arm("POST", group_path("cg1") + "/" + action, version=V).status == 409
    assert aci.arm("DELETE", group_path("cg1"), version=V).status == 202  # a delete is always taken
    wait_for(lambda: get(aci, "cg1").status == 404, what="the group to go")
    assert op_status(aci, r.header("Azure-AsyncOperation")) == "Canceled"


def test_update_restarts_the_group_with_the_new_spec(aci):
    aci.control("PUT", "aci/images", {"image": "img:*", "exitAfterSeconds": 0.1, "exitCode": 1})
    put(aci, "cg1", body(image="img:1"))
    wait_state(aci, "cg1", lambda g: container(g)["restartCount"] >= 1, "a restart")
    r = put(aci, "cg1", body(image="img:2"))
    assert r.status == 200 and r.json["properties"]["provisioningState"] == "Updating", r
    assert r.header("Azure-AsyncOperation")
    g = wait_state(aci, "cg1", lambda g: g["properties"]["provisioningState"] == "Succeeded"
                   and container(g)["currentState"].get("startTime"), "updated")
    assert g["properties"]["containers"][0]["properties"]["image"] == "img:2"
    new = [s for s in starts(aci, "cg1") if s["image"] == "img:2"]
    assert new and new[0]["start"] == 0  # fresh containers: restart count starts again
    old = [s for s in starts(aci, "cg1") if s["image"] == "img:1"]
    wait_for(lambda: all(s["finishTime"] for s in starts(aci, "cg1") if s["image"] == "img:1"),
             what="old programs to end")
    assert old
    # Same definition again (tags only): no restart.
    before = len(starts(aci, "cg1"))
    aci.control("DELETE", "aci/images")
    r = put(aci, "cg2", body())
    running(aci, "cg2")
    r = put(aci, "cg2", body(tags={"x": "y"}))
    assert r.status == 200 and r.json["properties"]["provisioningState"] == "Succeeded"
    assert len(starts(aci, "cg2")) == 1 and before >= 2


def test_location_cannot_change(aci):
    put(aci, "cg1", body())
    running(aci, "cg1")
    b = body()
    b["location"] = "westus"
    r = put(aci, "cg1", b)
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidResourceLocation")


def test_stop_start_restart(aci):
    put(aci, "cg1", body())
    running(aci, "cg1")
    assert aci.arm("POST", group_path("cg1") + "/stop", version=V).status == 204
    g = get(aci, "cg1").json
    assert g["properties"]["instanceView"]["state"] == "Stopped"
    assert container(g)["currentState"]["state"] == "Terminated"
    wait_for(lambda: starts(aci, "cg1")[0]["stopped"], what="stop to reach the program")
    r = aci.arm("POST", group_path("cg1") + "/start", version=V)
    assert r.status == 202 and r.header("Azure-AsyncOperation"), r
    wait_op(aci, r.header("Azure-AsyncOperation"))
    running(aci, "cg1")
    assert aci.arm("POST", group_path("cg1") + "/start", version=V).status == 204  # already running
    assert aci.arm("POST", group_path("cg1") + "/restart", version=V).status == 204
    g = get(aci, "cg1").json
    assert container(g)["restartCount"] == 1
    assert any(e["name"] == "Killing" for e in container(g)["events"])
    assert [s["start"] for s in starts(aci, "cg1")] == [0, 0, 1]
    assert aci.arm("POST", group_path("nope") + "/restart", version=V).status == 404


# -- the runtime ----------------------------------------------------------------------------------

def test_always_restarts_after_every_exit(aci):
    aci.control("PUT", "aci/images", {"image": "job:*", "exitAfterSeconds": 0.05, "exitCode": 0})
    put(aci, "cg1", body(image="job:1", policy="Always"))
    g = wait_state(aci, "cg1", lambda g: container(g)["restartCount"] >= 3, "3 restarts")
    iv = container(g)
    assert iv["previousState"]["state"] == "Terminated" and iv["previousState"]["exitCode"] == 0
    assert iv["previousState"]["detailStatus"] == "Completed"
    started = next(e for e in iv["events"] if e["name"] == "Started")
    assert started["count"] >= iv["restartCount"]  # ACI counts repeated events
    record = starts(aci, "cg1")
    assert [s["start"] for s in record[:4]] == [0, 1, 2, 3]
    assert all(s["exitCode"] == 0 for s in record if s["finishTime"])


@pytest.mark.parametrize("policy,code,restarts,group_state", [
    ("OnFailure", 0, False, "Succeeded"),
    ("OnFailure", 3, True, None),
    ("Never", 3, False, "Failed"),
    ("Never", 0, False, "Succeeded"),
])
def test_restart_policies(aci, policy, code, restarts, group_state):
    aci.control("PUT", "aci/images", {"image": "job:*", "exitAfterSeconds": 0.05, "exitCode": code})
    put(aci, "cg1", body(image="job:1", policy=policy))
    if restarts:
        g = wait_state(aci, "cg1", lambda g: container(g)["restartCount"] >= 2, "restarts on failure")
        assert container(g)["previousState"]["exitCode"] == code
        return
    g = wait_state(aci, "cg1", lambda g: g["properties"]["instanceView"]["state"] == group_state, group_state)
    iv = container(g)
    assert iv["restartCount"] == 0
    assert iv["currentState"]["state"] == "Terminated" and iv["currentState"]["exitCode"] == code
    assert iv["currentState"]["finishTime"]
    assert len(starts(aci, "cg1")) == 1


def test_programs_see_plain_and_secure_values(aci):
    aci.control("PUT", "aci/images", {"image": "probe:*", "program": "env-exit-code"})
    env = [{"name": "SLEEP_SECONDS", "value": "0"}, {"name": "EXIT_CODE", "secureValue": "7"}]
    put(aci, "cg1", body(image="probe:1", policy="Never", env=env))
    g = wait_state(aci, "cg1", lambda g: g["properties"]["instanceView"]["state"] == "Failed", "exit")
    assert container(g)["currentState"]["exitCode"] == 7
    rec = starts(aci, "cg1")[0]
    assert (rec["program"], rec["exitCode"], rec["container"], rec["start"]) == ("env-exit-code", 7, "agent", 0)
    assert rec["groupId"].endswith("/containerGroups/cg1") and rec["startTime"] and rec["finishTime"]


def test_image_rules(aci):
    r = aci.request("PUT", "/_emulator/aci/images", {"image": "x", "program": "no-such-program"})
    assert r.status == 400 and "no-such-program" in r.json["error"]["message"]
    r = aci.request("PUT", "/_emulator/aci/images", {"image": "x", "pullError": True, "exitAfterSeconds": 1})
    assert r.status == 400
    assert "env-exit-code" in aci.control("GET", "aci/programs")["value"]
    aci.control("PUT", "aci/images", {"image": "x", "pullError": True})
    aci.control("PUT", "aci/images", {"image": "x", "exitAfterSeconds": 1})  # replaces the rule for x
    assert aci.control("GET", "aci/images")["value"] == [{"image": "x", "exitAfterSeconds": 1.0, "exitCode": 0}]


# -- secrets ---------------------------------------------------------------------------------------

def _emulator_files(tmp_path_factory):
    """The session emulator's stderr log and request log on disk (conftest
    starts it in a tmp folder named emulator*)."""
    base = str(tmp_path_factory.getbasetemp())
    return (glob.glob(os.path.join(base, "emulator*", "emulator.log"))
            + glob.glob(os.path.join(base, "emulator*", "state", "requests.jsonl")))


def test_secure_values_are_never_returned_or_logged(aci, tmp_path_factory):
    env = [{"name": "AZP_URL", "value": "https://dev.azure.com/org"},
           {"name": "AZP_TOKEN", "secureValue": SECRET}]
    b = body(env=env)
    b["properties"]["imageRegistryCredentials"] = [
        {"server": "example.azurecr.io", "identity": "/subscriptions/s/resourceGroups/r/providers/"
                                                    "Microsoft.ManagedIdentity/userAssignedIdentities/pull"},
        {"server": "other.io", "username": "u", "password": SECRET + "-pw"}]
    b["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pull": {}}}
    answers = [put(aci, "cg1", b)]
    running(aci, "cg1")
    answers.append(get(aci, "cg1"))
    answers.append(aci.arm("GET", f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                                  "Microsoft.ContainerInstance/containerGroups", version=V))
    answers.append(aci.arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups",
                           version=V))
    answers.append(aci.arm("PATCH", group_path("cg1"), {"tags": {"k": "v"}}, version=V))
    answers.append(put(aci, "cg1", b))  # an update answer too
    bad = body(env=[{"name": "T", "secureValue": 12345}])
    rejected = put(aci, "cg2", bad)
    assert (rejected.status, rejected.json["error"]["target"]) == (
        400, "properties.containers[0].properties.environmentVariables[0].secureValue")
    assert "12345" not in rejected.raw.decode()
    for r in answers:
        assert r.status in (200, 201), r
        assert SECRET.encode() not in r.raw, r
    g = answers[1].json
    assert g["properties"]["containers"][0]["properties"]["environmentVariables"] == [
        {"name": "AZP_URL", "value": "https://dev.azure.com/org"}, {"name": "AZP_TOKEN"}]
    creds = g["properties"]["imageRegistryCredentials"]
    assert creds[0]["identity"].endswith("/pull") and "password" not in creds[1]
    uai = g["identity"]["userAssignedIdentities"]
    assert all(v["clientId"] and v["principalId"] for v in uai.values())
    for path in ("aci/groups", "aci/starts", "requests"):
        assert SECRET not in json.dumps(aci.control("GET", path))
    files = _emulator_files(tmp_path_factory)
    assert files, "the emulator's log files were not found"
    for fn in files:
        with open(fn, encoding="utf-8", errors="replace") as f:
            assert SECRET not in f.read(), fn
    # The request log keeps the body, with the secret replaced by a hash.
    logged = [e for e in aci.control("GET", "requests")["value"] if e["method"] == "PUT"
              and e["path"].endswith("/cg1")]
    ev = logged[0]["body"]["properties"]["containers"][0]["properties"]["environmentVariables"][1]
    assert ev["name"] == "AZP_TOKEN" and ev["secureValue"].startswith("<redacted sha256:")


# -- errors ------------------------------------------------------------------------------------------

def test_container_group_count_quota(aci):
    aci.control("PUT", f"aci/quota/{SUB}/{LOC}", {"maxContainerGroups": 2})
    assert put(aci, "cg1", body()).status == 201
    assert put(aci, "cg2", body()).status == 201
    r = put(aci, "cg3", body())
    assert (r.status, r.json["error"]["code"]) == (400, "ContainerGroupQuotaReached"), r
    assert "Limit: '2', Usage: '2' Requested: '1'" in r.json["error"]["message"]
    running(aci, "cg1")
    assert put(aci, "cg1", body(tags={"a": "b"})).status == 200  # an update is not a new group
    assert put(aci, "cg3", body(), rg="rg-other").status == 400  # per subscription and region
    b = body()
    b["location"] = "westus"
    assert put(aci, "cg3", b).status == 201


def test_core_quota_and_usage(aci):
    aci.control("PUT", f"aci/quota/{SUB}/{LOC}", {"maxCores": 3})
    assert put(aci, "cg1", body(cpu=2)).status == 201
    r = put(aci, "cg2", body(cpu=1.5))
    assert (r.status, r.json["error"]["code"]) == (400, "ContainerGroupQuotaReached"), r
    assert r.json["error"]["message"] == (
        "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' "
        "exceeded in region 'eastus'. Limit: '3', Usage: '2' Requested: '1.5'.")
    assert put(aci, "cg2", body(cpu=1)).status == 201
    usage = aci.arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/{LOC}/usages",
                    version=V)
    assert usage.status == 200, usage
    by_name = {u["name"]["value"]: u for u in usage.json["value"]}
    assert (by_name["StandardCores"]["currentValue"], by_name["StandardCores"]["limit"]) == (3, 3)
    assert by_name["ContainerGroups"]["currentValue"] == 2
    q = aci.control("GET", f"aci/quota/{SUB}/{LOC}")
    assert q["usage"] == {"containerGroups": 2, "cores": 3.0}


def test_group_larger_than_the_region_offers(aci):
    r = put(aci, "cg1", body(cpu=5, memory=4.1))
    assert (r.status, r.json["error"]["code"]) == (409, "ServiceUnavailable"), r
    assert r.json["error"]["message"].endswith("Resource requested: '5' CPU '4.1' GB memory 'Linux' OS")


def test_inaccessible_image(aci):
    aci.control("PUT", "aci/images", {"image": "private.azurecr.io/*", "pullError": True})
    r = put(aci, "cg1", body(image="private.azurecr.io/agent:1"))
    assert (r.status, r.json["error"]["code"]) == (400, "InaccessibleImage"), r
    assert r.json["error"]["message"] == ("The image 'private.azurecr.io/agent:1' in container group 'cg1' is not "
                                          "accessible. Please check the image and registry credential.")
    assert get(aci, "cg1").status == 404


def test_subnet_without_the_delegation_is_refused(aci):
    subnet = (f"/subscriptions/{SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/"
              "subnets/plain")
    other = subnet.replace("/plain", "/aci")
    # Undeclared subnets are stored and echoed, never checked.
    assert put(aci, "cg0", body(subnetIds=[{"id": other}])).status == 201
    assert [s["id"] for s in get(aci, "cg0").json["properties"]["subnetIds"]] == [other]
    aci.control("PUT", "aci/subnets", {"id": subnet, "delegated": False})
    r = put(aci, "cg1", body(subnetIds=[{"id": subnet.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")}]))
    assert (r.status, r.json["error"]["code"]) == (400, "SubnetMissingRequiredDelegation"), r
    assert r.json["error"]["message"] == ("Subnet missing required delegation 'Microsoft.ContainerInstance' for "
                                          "container group 'cg1'.")
    assert get(aci, "cg1").status == 404
    aci.control("PUT", "aci/subnets", {"id": subnet, "delegated": True})
    assert put(aci, "cg1", body(subnetIds=[{"id": subnet}])).status == 201
    assert aci.control("GET", "aci/subnets")["value"] == [{"id": subnet, "delegated": True}]


@pytest.mark.parametrize("mutate,code,target", [
    (lambda b: b["properties"].update(bogus=1), "InvalidRequestContent", "properties.bogus"),
    (lambda b: b["properties"].update(restartPolicy="Sometimes"), "InvalidInputValue", "properties.restartPolicy"),
    (lambda b: b["properties"].pop("containers"), "InvalidRequestContent", "properties.containers"),
    (lambda b: b["properties"]["containers"][0]["properties"]["resources"]["requests"].pop("cpu"),
     "InvalidRequestContent", "properties.containers[0].properties.resources.requests.cpu"),
    (lambda b: b["properties"]["containers"][0]["properties"]["resources"]["requests"].update(cpu="one"),
     "InvalidRequestContent", "properties.containers[0].properties.resources.requests.cpu"),
    (lambda b: b["properties"]["containers"][0]["properties"]["resources"]["requests"].update(cpu=0),
     "InvalidContainerResourceRequests", "properties.containers[0].properties.resources"),
    (lambda b: b.pop("location"), "LocationRequired", None),
    (lambda b: b["properties"]["containers"][0]["properties"]["environmentVariables"].append({"value": "v"}),
     "InvalidRequestContent", "properties.containers[0].properties.environmentVariables[0].name"),
    (lambda b: b.update(identity={"type": "Magic"}), "InvalidInputValue", "identity.type"),
])
def test_validation_against_the_swagger(aci, mutate, code, target):
    b = body()
    mutate(b)
    r = put(aci, "cg1", b)
    assert r.status == 400, r
    assert (r.json["error"]["code"], r.json["error"].get("target")) == (code, target)


def test_enums_canonicalised_and_read_only_ignored(aci):
    b = body(policy="onfailure")
    b["properties"]["osType"] = "linux"
    b["properties"]["provisioningState"] = "Failed"
    b["id"] = "/elsewhere"
    r = put(aci, "cg1", b)
    assert r.status == 201, r
    p = r.json["properties"]
    assert (p["restartPolicy"], p["osType"], p["provisioningState"]) == ("OnFailure", "Linux", "Pending")
    assert r.json["id"] == group_path("cg1")


def test_control_delete_is_out_of_band(aci):
    put(aci, "cg1", body())
    running(aci, "cg1")
    aci.control("DELETE", f"aci/groups/{SUB}/{RG}/cg1")
    assert get(aci, "cg1").status == 404
    assert aci.control("GET", "aci/groups")["value"] == []


# -- the published examples ------------------------------------------------------------------------

# example file -> response members the example shows that the emulator does
# not produce, and why.
ACI_SHAPE_EXCEPTIONS = {
    # A group-level FailedMount event of an Azure Files volume that failed to
    # mount: the emulator mounts nothing and so never fails to.
    "ContainerGroupsGet_Failed.json": {"properties.instanceView.events"},
    # The example passes `zones` as an operation parameter beside the body;
    # the operation has no such parameter and the body none, so none is stored.
    "ContainerGroupsCreateOrUpdate.json": {"zones"},
}


def _aci_examples():
    with open(os.path.join(SPEC_DIR, f"{V}-containerInstance.json"), encoding="utf-8") as f:
        spec = json.load(f)
    out = []
    for template, item in spec["paths"].items():
        for method, op in item.items():
            if not op["operationId"].startswith("ContainerGroups_"):
                continue
            for ref in (op.get("x-ms-examples") or {}).values():
                rel = ref["$ref"].replace("./examples/", "")
                if os.path.exists(os.path.join(SPEC_DIR, "examples", V, rel)):
                    out.append(pytest.param(method.upper(), template, op["operationId"], rel, id=rel))
    return out


def _seed(c, sub, rg, name, shown):
    """Create what an example reads, from the body its response shows (read-only
    members are ignored). A container shown Terminated runs a program that
    exits with the exit code shown."""
    for cont in shown["properties"]["containers"]:
        state = ((cont["properties"].get("instanceView") or {}).get("currentState") or {})
        if state.get("state") == "Terminated":
            c.control("PUT", "aci/images", {"image": cont["properties"]["image"], "exitAfterSeconds": 0,
                                            "exitCode": state.get("exitCode", 0)})
    seed = json.loads(json.dumps(shown))
    r = c.arm("PUT", group_path(name, rg=rg, sub=sub), seed, version=V)
    assert r.status in (200, 201), r
    wait_state(c, name, lambda g: g["properties"]["provisioningState"] == "Succeeded", "seeded", rg=rg, sub=sub)
    if c.control("GET", "aci/images")["value"]:
        wait_state(c, name, lambda g: g["properties"]["instanceView"]["state"] == shown["properties"]
                   ["instanceView"]["state"], "the state shown", rg=rg, sub=sub)


@pytest.mark.parametrize("method,template,op_id,rel", _aci_examples())
def test_aci_example(aci, method, template, op_id, rel):
    with open(os.path.join(SPEC_DIR, "examples", V, rel), encoding="utf-8") as f:
        example = json.load(f)
    params = example["parameters"]
    sub = params["subscriptionId"]
    ok = (example["responses"].get("200") or {}).get("body")
    if op_id in ("ContainerGroups_List", "ContainerGroups_ListByResourceGroup"):
        for item in ok["value"]:
            rg = item["id"].split("/resourceGroups/")[1].split("/")[0]
            _seed(aci, sub, params.get("resourceGroupName", rg), item["name"], item)
    elif op_id != "ContainerGroups_CreateOrUpdate":
        shown = ok or json.load(open(os.path.join(SPEC_DIR, "examples", V, "ContainerGroupsGet_Succeeded.json"),
                                     encoding="utf-8"))["responses"]["200"]["body"]
        _seed(aci, sub, params["resourceGroupName"], params["containerGroupName"], shown)
    path = re.sub(r"\{([^}]+)\}", lambda m: str(params[m.group(1)]), template)
    body_param = next((p["name"] for p in _op(template, method)["parameters"] if p.get("in") == "body"), None)
    r = aci.arm(method, path, params.get(body_param) if body_param else None, version=V)
    assert str(r.status) in example["responses"], (r, sorted(example["responses"]))
    expected = example["responses"][str(r.status)].get("body")
    if expected is not None:
        assert set(_missing_keys(expected, r.json)) - ACI_SHAPE_EXCEPTIONS.get(rel, set()) == set(), r


def _op(template, method):
    with open(os.path.join(SPEC_DIR, f"{V}-containerInstance.json"), encoding="utf-8") as f:
        return json.load(f)["paths"][template][method.lower()]


def test_every_aci_example_file_is_exercised():
    on_disk = set(os.listdir(os.path.join(SPEC_DIR, "examples", V)))
    assert on_disk == {p.values[3] for p in _aci_examples()}
