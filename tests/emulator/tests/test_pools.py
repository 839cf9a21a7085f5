"""Agent pools: LRO wire shapes per api-version, provisioning conflicts,
immutability, quota, the Premium requirement, PATCH limits and paging."""

import pytest

from conftest import REG, RG, SUB, V2019, V2025, wait_for

POOL = {"location": "eastus", "properties": {"count": 1, "tier": "S1", "os": "Linux"}}
REG_CTL = f"registries/{SUB}/{RG}/{REG}"


def slow(client, seconds=0.4):
    client.control("PATCH", REG_CTL, {"provisioningDelaySeconds": seconds})


def poll_async(client, url):
    """Follow an Azure-AsyncOperation URL to a terminal status."""
    def done():
        r = client.get_url(url)
        assert r.status == 200, r
        return r.json if r.json["status"] in ("Succeeded", "Failed", "Canceled") else None
    return wait_for(done, what="async operation")


def test_create_2025_is_201_with_async_operation_and_retry_after(client):
    slow(client)
    r = client.arm("PUT", "agentPools/pool1", POOL, version=V2025)
    assert r.status == 201, r
    assert r.json["properties"]["provisioningState"] == "Creating"
    assert r.header("Retry-After") == "1"
    url = r.header("Azure-AsyncOperation")
    first = client.get_url(url)
    assert first.status == 200 and first.json["status"] == "InProgress", first
    final = poll_async(client, url)
    assert final["status"] == "Succeeded" and "endTime" in final
    assert client.pool("pool1").json["properties"]["provisioningState"] == "Succeeded"
    assert "systemData" in client.pool("pool1").json


def test_create_2019_is_201_without_lro_headers(client):
    slow(client)
    r = client.arm("PUT", "agentPools/pool1", POOL, version=V2019)
    assert r.status == 201, r
    assert r.header("Azure-AsyncOperation") is None and r.header("Location") is None
    assert r.json["properties"]["provisioningState"] == "Creating"
    assert "systemData" not in r.json
    wait_for(lambda: client.pool("pool1", V2019).json["properties"]["provisioningState"] == "Succeeded")


def test_delete_2025_is_202_with_location_then_204(client):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    slow(client)
    r = client.arm("DELETE", "agentPools/pool1", version=V2025)
    assert r.status == 202 and r.header("Retry-After") == "1", r
    location = r.header("Location")
    assert "agentPoolsOperationResults" in location
    assert client.pool("pool1").json["properties"]["provisioningState"] == "Deleting"
    assert client.get_url(location).status == 202
    wait_for(lambda: client.get_url(location).status == 204, what="delete to finish")
    assert client.pool("pool1").status == 404
    assert client.pool("pool1").json["error"]["code"] == "ResourceNotFound"
    assert client.arm("DELETE", "agentPools/pool1", version=V2025).status == 204


def test_delete_2019_is_200_when_immediate_and_204_when_missing(client):
    assert client.arm("PUT", "agentPools/pool1", POOL, version=V2019).status == 201
    assert client.arm("DELETE", "agentPools/pool1", version=V2019).status == 200
    assert client.arm("DELETE", "agentPools/pool1", version=V2019).status == 204


def test_delete_2025_without_delay_still_answers_202(client):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    r = client.arm("DELETE", "agentPools/pool1", version=V2025)
    assert r.status == 202
    assert client.get_url(r.header("Location")).status == 204


def test_patch_2025_in_progress_is_201_with_retry_after(client):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    slow(client)
    r = client.arm("PATCH", "agentPools/pool1", {"properties": {"count": 3}})
    assert r.status == 201 and r.header("Retry-After") == "1", r
    assert r.json["properties"] == {"count": 3, "tier": "S1", "os": "Linux", "provisioningState": "Updating"}
    wait_for(lambda: client.pool("pool1").json["properties"]["provisioningState"] == "Succeeded")


def test_mutations_during_provisioning_get_409(client):
    slow(client, 5)
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    for method, body in (("PATCH", {"properties": {"count": 2}}), ("PUT", POOL), ("DELETE", None)):
        r = client.arm(method, "agentPools/pool1", body)
        assert r.status == 409, r
        assert r.json["error"]["code"] == "AnotherOperationInProgress"
    # Reads still work while the operation runs.
    assert client.pool("pool1").json["properties"]["provisioningState"] == "Creating"


def test_update_of_failed_pool_is_registry_status_conflict(client):
    client.control("PATCH", REG_CTL, {"provisioningOutcome": "Failed"})
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    assert client.pool("pool1").json["properties"]["provisioningState"] == "Failed"
    r = client.arm("PATCH", "agentPools/pool1", {"properties": {"count": 2}})
    assert (r.status, r.json["error"]["code"]) == (409, "RegistryStatusConflict")
    # A failed pool can still be deleted.
    assert client.arm("DELETE", "agentPools/pool1").status == 202


def test_failed_provisioning_reports_error_on_async_operation(client):
    client.control("PATCH", REG_CTL, {"provisioningOutcome": "Failed", "provisioningDelaySeconds": 0.2})
    r = client.arm("PUT", "agentPools/pool1", POOL)
    final = poll_async(client, r.header("Azure-AsyncOperation"))
    assert final["status"] == "Failed" and final["error"]["code"]


@pytest.mark.parametrize("field,value", [
    ("tier", "S2"), ("os", "Windows"),
    ("virtualNetworkSubnetResourceId",
     f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"),
])
def test_immutable_properties_on_put(client, field, value):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    body = {"location": "eastus", "properties": dict(POOL["properties"], **{field: value})}
    r = client.arm("PUT", "agentPools/pool1", body)
    assert r.status == 400, r
    if field != "os":  # Windows is refused outright (Linux only), before any comparison
        assert r.json["error"]["code"] == "PropertyChangeNotAllowed"
    assert r.json["error"]["target"] == f"properties.{field}"


def test_location_is_immutable(client):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    r = client.arm("PUT", "agentPools/pool1", dict(POOL, location="westeurope"))
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidResourceLocation")
    # Same location spelt differently is the same location.
    assert client.arm("PUT", "agentPools/pool1", dict(POOL, location="East US")).status == 200


def test_put_on_existing_pool_scales_it(client):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    body = {"location": "eastus", "tags": {"a": "b"}, "properties": {"count": 4, "tier": "s1", "os": "linux"}}
    r = client.arm("PUT", "agentPools/pool1", body)
    assert r.status == 200, r
    assert r.json["properties"]["count"] == 4 and r.json["tags"] == {"a": "b"}


def test_patch_accepts_only_count_and_tags(client):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    for body, target in (({"properties": {"tier": "S2"}}, "properties.tier"),
                         ({"location": "westus"}, "location"),
                         ({"properties": {"count": 1, "os": "Linux"}}, "properties.os")):
        r = client.arm("PATCH", "agentPools/pool1", body)
        assert (r.status, r.json["error"]["code"], r.json["error"]["target"]) == \
            (400, "InvalidRequestContent", target), r
    r = client.arm("PATCH", "agentPools/pool1", {"properties": {"count": 0}, "tags": {"t": "1"}})
    assert r.status == 200 and r.json["properties"]["count"] == 0 and r.json["tags"] == {"t": "1"}


def test_quota_standard(client):
    # Default standard quota 16 vCPU: 2 x S3 fit, one more S1 does not.
    assert client.arm("PUT", "agentPools/big", {"location": "eastus",
                                                 "properties": {"tier": "S3", "count": 2}}).status == 201
    r = client.arm("PUT", "agentPools/small", POOL)
    assert (r.status, r.json["error"]["code"]) == (400, "QuotaExceeded"), r
    # Scaling within quota is fine; scaling beyond is not; scaling down always is.
    assert client.arm("PATCH", "agentPools/big", {"properties": {"count": 1}}).status == 200
    assert client.arm("PUT", "agentPools/small", POOL).status == 201
    r = client.arm("PATCH", "agentPools/small", {"properties": {"count": 5}})
    assert (r.status, r.json["error"]["code"]) == (400, "QuotaExceeded")


def test_quota_isolated_defaults_to_zero_and_is_settable(client):
    body = {"location": "eastus", "properties": {"tier": "I6", "count": 1}}
    r = client.arm("PUT", "agentPools/iso", body)
    assert (r.status, r.json["error"]["code"]) == (400, "QuotaExceeded")
    client.control("PATCH", REG_CTL, {"quota": {"isolatedVCPU": 64}})
    assert client.arm("PUT", "agentPools/iso", body).status == 201


def test_quota_counts_out_of_band_pools(client):
    client.control("PUT", f"{REG_CTL}/agentPools/manual", {"tier": "S2", "count": 4})
    r = client.arm("PUT", "agentPools/pool1", POOL)
    assert (r.status, r.json["error"]["code"]) == (400, "QuotaExceeded")


def test_vcpu_in_use_follows_every_pool_change(client):
    """The registry's vCPU total is kept as pools come, go and scale (it is
    not recounted per request): after each change it matches the pools."""
    client.control("PATCH", REG_CTL, {"quota": {"standardVCPU": 100, "isolatedVCPU": 128}})

    def check():
        d = client.control("GET", REG_CTL)
        want = {"standard": 0, "isolated": 0}
        for p in d["agentPools"]:
            tier, count = p["properties"]["tier"], p["properties"]["count"]
            want["isolated" if tier == "I6" else "standard"] += {"S1": 2, "S2": 4, "S3": 8, "I6": 64}[tier] * count
        assert d["vcpuInUse"] == want
        return want

    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    assert client.arm("PUT", "agentPools/iso1", {"location": "eastus",
                                                  "properties": {"tier": "I6", "count": 2}}).status == 201
    assert check() == {"standard": 2, "isolated": 128}
    assert client.arm("PUT", "agentPools/pool1", {"location": "eastus",
                                                   "properties": {"tier": "S1", "count": 3}}).status == 200
    assert client.arm("PATCH", "agentPools/iso1", {"properties": {"count": 1}}).status == 200
    assert check() == {"standard": 6, "isolated": 64}
    client.control("PUT", f"{REG_CTL}/agentPools/manual", {"tier": "S3", "count": 2})
    client.control("PATCH", f"{REG_CTL}/agentPools/pool1", {"count": 5})
    assert check() == {"standard": 26, "isolated": 64}
    client.control("PUT", f"{REG_CTL}/agentPools/manual", {"tier": "S2", "count": 1})   # replaced
    client.control("DELETE", f"{REG_CTL}/agentPools/iso1")
    assert check() == {"standard": 14, "isolated": 0}
    assert client.arm("DELETE", "agentPools/pool1").status == 202
    assert check() == {"standard": 4, "isolated": 0}
    # A delete that takes time frees the quota when it is done, as before.
    slow(client, 0.2)
    assert client.arm("DELETE", "agentPools/manual").status == 202
    assert check() == {"standard": 4, "isolated": 0}
    wait_for(lambda: client.pool("manual").status == 404, what="delete to finish")
    assert check() == {"standard": 0, "isolated": 0}
    # The quota check sees the same figures: 100 - 0 leaves room for 12 x S3, not 13.
    r = client.arm("PUT", "agentPools/big", {"location": "eastus", "properties": {"tier": "S3", "count": 13}})
    assert (r.status, r.json["error"]["code"]) == (400, "QuotaExceeded"), r
    assert client.arm("PUT", "agentPools/big", {"location": "eastus",
                                                 "properties": {"tier": "S3", "count": 12}}).status == 201


def test_operation_of_a_pool_replaced_out_of_band_never_lands(client):
    """A pool replaced (or reset) through the control endpoint while its
    ARM operation runs keeps what the control endpoint set: the operation's
    end must not reach the new pool."""
    slow(client, 0.3)
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    assert client.arm("PUT", "agentPools/pool2", POOL).status == 201
    client.control("PUT", f"{REG_CTL}/agentPools/pool1", {"tier": "S1", "count": 1,
                                                          "provisioningState": "Updating"})
    client.control("PATCH", f"{REG_CTL}/agentPools/pool2", {"provisioningState": "Creating"})
    assert client.arm("PUT", "agentPools/pool3", POOL).status == 201
    # pool3's operation ends after the other two's would have.
    wait_for(lambda: client.pool("pool3").json["properties"]["provisioningState"] == "Succeeded")
    assert client.pool("pool1").json["properties"]["provisioningState"] == "Updating"
    assert client.pool("pool2").json["properties"]["provisioningState"] == "Creating"


def test_non_premium_registry_refuses_pools(client):
    client.registry("basicreg1", sku="Basic")
    reg = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/basicreg1"
    r = client.arm("PUT", "agentPools/pool1", POOL, registry=reg)
    assert (r.status, r.json["error"]["code"]) == (400, "RegistrySkuNotSupported")
    got = client.arm("GET", "", registry=reg, version="2023-07-01")
    assert got.status == 200 and got.json["sku"] == {"name": "Basic", "tier": "Basic"}


def test_unknown_tier_is_rejected(client):
    r = client.arm("PUT", "agentPools/pool1", {"location": "eastus", "properties": {"tier": "S9"}})
    assert (r.status, r.json["error"]["code"], r.json["error"]["target"]) == \
        (400, "InvalidInputValue", "properties.tier")


def test_out_of_band_drift_is_visible(client):
    assert client.arm("PUT", "agentPools/pool1", POOL).status == 201
    client.control("PATCH", f"{REG_CTL}/agentPools/pool1", {"count": 5})
    assert client.pool("pool1").json["properties"]["count"] == 5


def test_list_is_paged_with_next_link(client):
    client.control("PATCH", "settings", {"pageSize": 2})
    for i in range(5):
        client.control("PUT", f"{REG_CTL}/agentPools/pool{i}", {"tier": "S1", "count": 0})
    names, url, pages = [], None, 0
    r = client.arm("GET", "agentPools")
    while True:
        assert r.status == 200, r
        pages += 1
        names += [p["name"] for p in r.json["value"]]
        url = r.json.get("nextLink")
        if not url:
            break
        assert url.startswith(client.base)
        r = client.get_url(url)
    assert pages == 3 and sorted(names) == [f"pool{i}" for i in range(5)]


def test_registry_get(client):
    r = client.arm("GET", "")
    assert r.status == 200, r
    body = r.json
    assert body["type"] == "Microsoft.ContainerRegistry/registries"
    assert body["sku"] == {"name": "Premium", "tier": "Premium"}
    assert body["properties"]["loginServer"] == f"{REG}.azurecr.io"
    assert body["properties"]["provisioningState"] == "Succeeded"


def test_missing_registry_and_resource_group(client):
    other = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/nosuchreg"
    r = client.arm("GET", "agentPools", registry=other)
    assert (r.status, r.json["error"]["code"]) == (404, "ResourceNotFound")
    norg = f"/subscriptions/{SUB}/resourceGroups/nosuchrg/providers/Microsoft.ContainerRegistry/registries/{REG}"
    r = client.arm("GET", "agentPools", registry=norg)
    assert (r.status, r.json["error"]["code"]) == (404, "ResourceGroupNotFound")
