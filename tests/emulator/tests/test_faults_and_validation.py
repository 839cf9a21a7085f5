"""Request validation (spec-driven 400s, name rules, api-version), ARM
headers, fault injection and the request log."""

import http.client
import json
import time

import pytest

from conftest import V2019, V2025

POOL = {"location": "eastus", "properties": {"count": 1, "tier": "S1", "os": "Linux"}}


@pytest.mark.parametrize("body,code,target", [
    ({"location": "eastus", "properties": {"count": 1, "bogus": 1}}, "InvalidRequestContent", "properties.bogus"),
    ({"location": "eastus", "extra": True}, "InvalidRequestContent", "extra"),
    ({"location": "eastus", "properties": {"count": "two"}}, "InvalidRequestContent", "properties.count"),
    ({"location": "eastus", "properties": {"count": 1.5}}, "InvalidRequestContent", "properties.count"),
    ({"location": "eastus", "tags": {"a": 1}}, "InvalidRequestContent", "tags.a"),
    ({"properties": {"count": 1}}, "InvalidRequestContent", "location"),
    ({"location": "eastus", "properties": {"os": "Solaris"}}, "InvalidInputValue", "properties.os"),
])
def test_pool_body_validation(client, body, code, target):
    r = client.arm("PUT", "agentPools/pool1", body)
    assert r.status == 400, r
    err = r.json["error"]
    assert (err["code"], err["target"]) == (code, target)
    assert target.split(".")[-1] in err["message"]


def test_run_request_discriminator_and_required(client):
    r = client.arm("POST", "scheduleRun", {"type": "MagicRequest"})
    assert (r.status, r.json["error"]["target"]) == (400, "type")
    r = client.arm("POST", "scheduleRun", {"type": "DockerBuildRequest", "platform": {"os": "Linux"}})
    assert (r.status, r.json["error"]["target"]) == (400, "dockerFilePath")
    r = client.arm("POST", "scheduleRun", {"type": "FileTaskRunRequest", "taskFilePath": "t.yaml",
                                           "platform": {"os": "Linux"}, "dockerFilePath": "x"})
    assert (r.status, r.json["error"]["target"]) == (400, "dockerFilePath")  # not a FileTaskRunRequest member
    r = client.arm("POST", "scheduleRun", {"type": "DockerBuildRequest", "dockerFilePath": "D",
                                           "platform": {"os": "Linux"}, "timeout": 10})
    assert (r.status, r.json["error"]["code"], r.json["error"]["target"]) == (400, "InvalidInputValue", "timeout")


def test_enums_are_case_insensitive_and_canonicalised(client):
    r = client.arm("PUT", "agentPools/pool1", {"location": "eastus", "properties": {"os": "linux", "tier": "s1"}})
    assert r.status == 201 and r.json["properties"]["os"] == "Linux" and r.json["properties"]["tier"] == "S1"
    r = client.arm("POST", "scheduleRun", {"type": "dockerbuildrequest", "dockerFilePath": "D",
                                           "platform": {"os": "LINUX", "architecture": "AMD64"}})
    assert r.status == 200, r
    assert r.json["properties"]["platform"] == {"os": "Linux", "architecture": "amd64"}


def test_read_only_members_are_ignored(client):
    body = {"id": "/whatever", "name": "other", "type": "x", "location": "eastus",
            "properties": {"count": 1, "provisioningState": "Failed"}}
    r = client.arm("PUT", "agentPools/pool1", body)
    assert r.status == 201, r
    assert r.json["name"] == "pool1" and r.json["properties"]["provisioningState"] == "Succeeded"


def test_malformed_json(client):
    path = client.arm("GET", "").json["id"] + "/agentPools/pool1?api-version=" + V2025
    r = client.request("PUT", path, raw_body=b"{", headers={"Authorization": f"Bearer {client.token}"})
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidRequestContent")
    r = client.arm("PUT", "agentPools/pool1", None)
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidRequestContent")


@pytest.mark.parametrize("path,target", [
    ("agentPools/ab", "agentPoolName"),
    ("agentPools/has_underscore", "agentPoolName"),
    ("agentPools/a-pool-name-that-is-far-too-long", "agentPoolName"),
    ("tasks/abcd", "taskName"),
    ("tasks/bad.name", "taskName"),
    ("taskRuns/run_1", "taskRunName"),
])
def test_name_rules(client, path, target):
    r = client.arm("GET", path)
    assert (r.status, r.json["error"]["code"], r.json["error"]["target"]) == (400, "InvalidResourceName", target), r


def test_registry_name_rule(client):
    reg = "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerRegistry/registries/bad-name"
    r = client.arm("GET", "agentPools", registry=reg)
    assert (r.status, r.json["error"]["target"]) == (400, "registryName")


def test_api_version(client):
    r = client.arm("GET", "agentPools", version=None)
    assert (r.status, r.json["error"]["code"]) == (400, "MissingApiVersionParameter")
    r = client.arm("GET", "agentPools", version="2021-01-01")
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidApiVersionParameter")
    assert "2025-03-01-preview" in r.json["error"]["message"]
    # The registry GET also takes the registries resource type's own versions.
    assert client.arm("GET", "", version="2023-07-01").status == 200


def test_request_id_headers(client):
    r = client.arm("GET", "agentPools", headers={"x-ms-client-request-id": "abc-123",
                                                 "x-ms-correlation-request-id": "corr-1"})
    assert r.header("x-ms-request-id") and r.header("x-ms-client-request-id") == "abc-123"
    assert r.header("x-ms-correlation-request-id") == "corr-1"
    err = client.arm("GET", "agentPools/nosuchpool")
    assert err.status == 404 and err.header("x-ms-request-id") and err.header("x-ms-correlation-request-id")


def test_429_for_next_n_matching_requests(client):
    client.control("POST", "faults", {"status": 429, "count": 2, "method": "GET", "path": "/agentPools$",
                                      "retryAfter": 3})
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201  # method does not match
    for _ in range(2):
        r = client.arm("GET", "agentPools")
        assert r.status == 429 and r.json["error"]["code"] == "TooManyRequests"
        assert r.header("Retry-After") == "3"
        assert r.header("x-ms-ratelimit-remaining-subscription-reads") == "0"
    assert client.arm("GET", "agentPools").status == 200
    assert client.control("GET", "faults")["value"][0]["fired"] == 2


@pytest.mark.parametrize("status,code", [(500, "InternalServerError"), (503, "ServiceUnavailable")])
def test_5xx(client, status, code):
    client.control("POST", "faults", {"status": status, "count": 1})
    r = client.arm("GET", "agentPools")
    assert (r.status, r.json["error"]["code"]) == (status, code)
    assert client.arm("GET", "agentPools").status == 200


def test_after_lets_matches_pass_then_bursts_follow_in_order(client):
    client.control("POST", "faults", {"status": 500, "count": 2, "path": "/agentPools$"})
    client.control("POST", "faults", {"status": 503, "count": 1, "after": 2, "path": "/agentPools$"})
    seen = [client.arm("GET", "agentPools").status for _ in range(6)]
    assert seen == [500, 500, 200, 200, 503, 200]
    assert [r["fired"] for r in client.control("GET", "faults")["value"]] == [2, 1]


def test_rate_zero_never_fires_and_delete_clears(client):
    client.control("POST", "faults", {"status": 500, "rate": 0.0})
    assert all(client.arm("GET", "agentPools").status == 200 for _ in range(5))
    client.control("POST", "faults", {"status": 500})
    assert client.arm("GET", "agentPools").status == 500
    client.control("DELETE", "faults")
    assert client.arm("GET", "agentPools").status == 200


def test_latency(client):
    client.control("POST", "faults", {"latencyMs": 300, "count": 1})
    start = time.monotonic()
    assert client.arm("GET", "agentPools").status == 200
    assert time.monotonic() - start >= 0.3


def test_dropped_connection(client):
    client.control("POST", "faults", {"drop": True, "count": 1, "path": "/oauth2/"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.login()
    client.login()  # the rule was used up


def test_control_endpoint_is_never_faulted(client):
    client.control("POST", "faults", {"status": 503})
    assert client.control("GET", "health") == {"ok": True}


def test_request_log(client):
    client.control("DELETE", "requests")
    client.arm("PUT", "agentPools/pool1", POOL, version=V2019, headers={"x-ms-client-request-id": "cid-1"})
    client.arm("GET", "agentPools/pool1")
    log = client.control("GET", "requests")["value"]
    put = log[0]
    assert (put["method"], put["apiVersion"], put["status"]) == ("PUT", V2019, 201)
    assert put["body"] == POOL and put["clientRequestId"] == "cid-1" and put["hasAuthorization"]
    assert put["path"].endswith("/agentPools/pool1") and put["query"] == {"api-version": V2019}
    assert "Bearer" not in json.dumps(log)
    since = client.control("GET", f"requests?since={put['seq']}")["value"]
    assert [e["method"] for e in since] == ["GET"] and since[0]["apiVersion"] == V2025
