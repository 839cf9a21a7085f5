"""The Azure docs' agent pool workflow, declared: Registry and AgentPool
reconcilers end to end against the real API server, the real operator
binary, real kubectl and the Azure emulator (issue 5)."""
import json
import time

import pytest

from emulator import CLIENT, RG, SUB, TENANT, Emulator
from harness import (FINALIZER, SP_SECRET, arm, events, finalizer_on_create, install_finalizer_policy, pool_obj,
                     registry_obj, remove_finalizer_policy, setup_azure, start_operator, wait_condition, wait_event,
                     wait_events)
from procs import wait_until

SUBNET = (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
          "virtualNetworks/myvnet/subnets/mysubnetname")


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


@pytest.fixture
def azure(emu, kube, namespace):
    emu.reset()
    setup_azure(kube, emu, namespace)
    return emu


@pytest.fixture
def operator(kube, azure, namespace):
    procs = []

    def start(*extra, **kw):
        p = start_operator(kube, azure, namespace, *extra, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        alive = p.alive()
        p.kill() if not alive else p.stop()
        p.assert_clean()
        assert SP_SECRET not in p.text(), "the client secret appeared in the operator's log"


def azure_pool(emu, name):
    try:
        return emu.pool(SUB, RG, "myregistry", name)
    except AssertionError:
        return None


def get(kube, kind, name, ns):
    return kube.get(kind, name, ns)


def writes(emu, path_part):
    return [r for r in emu.requests(path_contains=path_part) if r["method"] in ("PUT", "PATCH", "DELETE")]


# 1. The docs' workflow -----------------------------------------------------

def test_docs_workflow_create_scale_zero_delete(kube, namespace, azure, operator):
    op = operator()
    # az acr agentpool create --name myagentpool --tier S2 (count defaults to 1)
    kube.apply(pool_obj("myagentpool", tier="S2"), namespace)
    p = kube.run("wait", "--for=condition=Ready", "agentpool/myagentpool", "-n", namespace, "--timeout=60s")
    assert "condition met" in p.stdout
    pool = azure_pool(azure, "myagentpool")
    assert pool["properties"]["tier"] == "S2" and pool["properties"]["count"] == 1
    assert pool["location"] == "eastus"
    obj = get(kube, "agentpool", "myagentpool", namespace)
    assert obj["status"]["azureResourceId"].lower() == pool["id"].lower()
    assert obj["status"]["provisioningState"] == "Succeeded"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]

    # az acr agentpool update --count 2, then --count 0
    for count in (2, 0):
        kube.apply(pool_obj("myagentpool", tier="S2", count=count), namespace)
        wait_until(f"Azure count {count}", lambda: azure_pool(azure, "myagentpool")["properties"]["count"] == count)
        kube.run("wait", f"--for=jsonpath={{.status.count}}={count}", "agentpool/myagentpool", "-n", namespace,
                 "--timeout=60s")
        wait_condition(kube, "agentpool", "myagentpool", namespace, "Ready")
    # Azure answered each PUT and PATCH with Succeeded: one Event per
    # outcome (created, scaled to 2, scaled to 0), no Event per step.
    wait_events(kube, namespace, "myagentpool",
                lambda ev: sorted(e["reason"] for e in ev) == ["Created", "Scaled", "Scaled"])

    # az acr agentpool delete: the Azure pool goes, then the finalizer.
    azure.clear_requests()
    kube.run("delete", "agentpool", "myagentpool", "-n", namespace, "--timeout=60s")
    assert azure_pool(azure, "myagentpool") is None
    assert kube.run("get", "agentpool", "myagentpool", "-n", namespace, check=False).returncode != 0
    # Azure answered the DELETE at once: that is the one request on the
    # pool (no queue read, no GET to learn it is gone), and one Event.
    assert [r["method"] for r in azure.requests(path_contains="/agentPools/myagentpool")] == ["DELETE"]
    wait_events(kube, namespace, "myagentpool",
                lambda ev: sorted(e["reason"] for e in ev) == ["Created", "Deleted", "Scaled", "Scaled"])
    assert op.alive()


def test_pool_in_a_subnet(kube, namespace, azure, operator):
    operator()
    kube.apply(pool_obj("myvnetpool", subnetId=SUBNET), namespace)
    wait_condition(kube, "agentpool", "myvnetpool", namespace, "Ready")
    put = [r for r in azure.requests(method="PUT", path_contains="/agentPools/myvnetpool")][0]
    assert put["body"]["properties"]["virtualNetworkSubnetResourceId"] == SUBNET
    assert put["body"]["properties"]["os"] == "Linux"
    cols = kube.run("get", "agentpools", "-n", namespace, "-o", "wide").stdout
    assert SUBNET in cols


def test_queue_depth_in_status(kube, namespace, azure, operator):
    operator("--queue-poll-interval", "1s")
    kube.apply(pool_obj("qpool", count=0), namespace)
    wait_condition(kube, "agentpool", "qpool", namespace, "Ready")
    # A pool at zero runs nothing: three runs wait in its queue.
    for i in range(3):
        azure.control("PUT", f"registries/{SUB}/{RG}/myregistry/runs/q{i}",
                      {"properties": {"agentPoolName": "qpool", "status": "Queued"}})
    # The next pass (resync, or any change) reads listQueueStatus.
    kube.run("annotate", "agentpool", "qpool", "-n", namespace, "poke=1")
    kube.apply(pool_obj("qpool", count=0, tags={"poke": "1"}), namespace)
    kube.run("wait", "--for=jsonpath={.status.queuedRuns}=3", "agentpool/qpool", "-n", namespace,
             "--timeout=60s")
    assert "3" in kube.run("get", "agentpool", "qpool", "-n", namespace).stdout.splitlines()[1].split()[5]
    # Scale up: the runs are taken, and the queue empties without any
    # change to the object (the operator keeps polling while runs wait).
    azure.settings(runDurationSeconds=0.2)
    kube.apply(pool_obj("qpool", count=1, tags={"poke": "1"}), namespace)
    kube.run("wait", "--for=jsonpath={.status.queuedRuns}=0", "agentpool/qpool", "-n", namespace,
             "--timeout=60s")


# 2. Status, conditions, Events, no self-triggered writes --------------------

def test_status_conditions_and_printer_columns(kube, namespace, azure, operator):
    azure.settings(provisioningDelaySeconds=2)
    operator()
    kube.apply(pool_obj("mypool"), namespace)
    obj = wait_condition(kube, "agentpool", "mypool", namespace, "Reconciling", reason="Creating")
    assert obj["status"]["provisioningState"] in ("Creating", "Succeeded")
    assert obj["status"]["desiredCount"] == 1 and obj["status"]["desiredCountSource"] == "Spec"
    ready = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False"
    obj = wait_condition(kube, "agentpool", "mypool", namespace, "Ready")
    types = {c["type"] for c in obj["status"]["conditions"]}
    assert types == {"Ready"}, "Reconciling and Stalled must be gone once Ready"
    for c in obj["status"]["conditions"]:
        assert c["lastTransitionTime"] and c["observedGeneration"] == obj["metadata"]["generation"]
    row = kube.run("get", "agentpool", "mypool", "-n", namespace).stdout.splitlines()[1].split()
    assert row[:8] == ["mypool", "S2", "1", "1", "Spec", "0", "Succeeded", "True"]


def cached_text_bytes(obj):
    """An object's size as the operator's cache would hold it uncompressed:
    compact JSON without managedFields and kubectl's last-applied copy."""
    meta = dict(obj["metadata"])
    meta.pop("managedFields", None)
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if k != "kubectl.kubernetes.io/last-applied-configuration"}
    meta.pop("annotations", None)
    if ann:
        meta["annotations"] = ann
    return len(json.dumps({**obj, "metadata": meta}, separators=(",", ":")))


def test_cache_metrics_give_objects_and_bytes_per_resource(kube, namespace, azure, operator):
    # /metrics says what the cache holds, per resource, exactly when read;
    # each pool more costs a fraction of its JSON (the cache keeps objects
    # as their differences from one of them).
    azure.registry(SUB, RG, "myregistry", sku="Premium", quota={"standardVCPU": 1000})
    kube.apply(registry_obj(quota={"standardVCPU": 1000}), namespace)
    op = operator()

    def cache(resource):
        return (op.metric("acrpool_cache_objects", {"resource": resource}),
                op.metric("acrpool_cache_bytes", {"resource": resource}))

    def apply_ready(names):
        kube.run("apply", "-n", namespace, "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [pool_obj(n, tier="S1") for n in names]}))
        for n in names:
            wait_condition(kube, "agentpool", n, namespace, "Ready")

    apply_ready([f"c{i:03d}" for i in range(10)])
    wait_until("10 pools cached", lambda: cache("agentpools")[0] == 10, timeout=30)
    assert cache("registries")[0] == 1 and cache("tasks")[0] == 0
    ten = cache("agentpools")[1]
    apply_ready([f"c{i:03d}" for i in range(10, 50)])
    wait_until("50 pools cached", lambda: cache("agentpools")[0] == 50, timeout=30)
    fifty = cache("agentpools")[1]
    items = json.loads(kube.run("get", "agentpools", "-n", namespace, "-o", "json").stdout)["items"]
    text = sum(cached_text_bytes(o) for o in items) / len(items)
    # About a quarter of the JSON: the packed record, its key and header.
    # Half leaves room for a reference object made meanwhile (its index
    # is about 9 KiB), which the 40 pools share.
    per_pool = (fifty - ten) / 40
    assert 0 < per_pool < text / 2, f"{per_pool:.0f} bytes a pool for {text:.0f} bytes of JSON"

    kube.run("delete", "agentpools", "-n", namespace, *[f"c{i:03d}" for i in range(25)], "--wait=false")
    wait_until("25 pools left in the cache", lambda: cache("agentpools")[0] == 25, timeout=60)
    assert cache("agentpools")[1] < fifty


def test_status_written_only_when_changed(kube, namespace, azure, operator):
    op = operator("--resync-period", "2s")
    kube.apply(pool_obj("steady"), namespace)
    wait_condition(kube, "agentpool", "steady", namespace, "Ready")
    # The Registry's vCPU figures trail its pools by up to a second (pool
    # changes are coalesced into one Registry write): let that write land.
    kube.run("wait", "--for=jsonpath={.status.vcpu.pools}=1", "registry/myregistry", "-n", namespace,
             "--timeout=30s")
    rv = get(kube, "agentpool", "steady", namespace)["metadata"]["resourceVersion"]
    start = op.metric("controller_runtime_reconcile_total", {"controller": "agentpool"})
    patches = op.metric("rest_client_requests_total", {"verb": "PATCH"}) or 0
    # Wait for several more reconciles (resyncs) of a pool in sync.
    wait_until("three more reconciles",
               lambda: op.metric("controller_runtime_reconcile_total", {"controller": "agentpool"}) >= start + 3,
               timeout=30)
    assert get(kube, "agentpool", "steady", namespace)["metadata"]["resourceVersion"] == rv
    assert (op.metric("rest_client_requests_total", {"verb": "PATCH"}) or 0) == patches

    assert writes(azure, "/agentPools/steady") and len(writes(azure, "/agentPools/steady")) == 1


# 3. Long operations never block a worker -----------------------------------

def test_twenty_slow_pools_progress_in_parallel_with_two_workers(kube, namespace, azure, operator):
    azure.registry(SUB, RG, "myregistry", sku="Premium", quota={"standardVCPU": 1000})
    kube.apply(registry_obj(quota={"standardVCPU": 1000}), namespace)
    azure.settings(provisioningDelaySeconds=600)  # ten minutes per pool
    operator("--workers", "2")
    for i in range(20):
        kube.apply(pool_obj(f"slow{i}", tier="S1"), namespace)
    # Every pool gets its PUT and says Creating long before one would finish.
    wait_until("20 pools Creating in Azure",
               lambda: len([r for r in azure.requests(method="PUT", path_contains="/agentPools/slow")]) >= 20,
               timeout=90)

    def all_reconciling():
        items = json.loads(kube.run("get", "agentpools", "-n", namespace, "-o", "json").stdout)["items"]
        return len(items) == 20 and all(
            (c := [x for x in (i.get("status") or {}).get("conditions", []) if x["type"] == "Reconciling"])
            and c[0]["reason"] == "Creating" for i in items)
    wait_until("20 pools Reconciling/Creating", all_reconciling, timeout=60)


# 4. Registry ----------------------------------------------------------------

def test_registry_ready_with_vcpu_counting_unmanaged_pools(kube, namespace, azure, operator):
    # Someone else's S3 pool (8 vCPU) in the same registry.
    azure.pool(SUB, RG, "myregistry", "theirs", "PUT", {"tier": "S3", "count": 1})
    operator()
    kube.apply(pool_obj("ours", tier="S1", count=2), namespace)
    wait_condition(kube, "agentpool", "ours", namespace, "Ready")

    def vcpu():
        st = get(kube, "registry", "myregistry", namespace).get("status", {})
        return st.get("vcpu", {}).get("standardInUse")
    wait_until("12 vCPU in use (8 theirs + 4 ours)", lambda: vcpu() == 12)
    reg = wait_condition(kube, "registry", "myregistry", namespace, "Ready")
    st = reg["status"]
    assert st["sku"] == "Premium" and st["location"] == "eastus" and st["loginServer"]
    assert st["vcpu"]["standard"] == "12/16" and st["vcpu"]["pools"] == 2
    assert "12/16" in kube.run("get", "registry", "myregistry", "-n", namespace).stdout


def test_registry_missing_or_not_premium_is_stalled_and_pools_say_so(kube, namespace, azure, operator):
    kube.apply(registry_obj(name="gone", azure_name="doesnotexist"), namespace)
    azure.registry(SUB, RG, "basicreg", sku="Standard")
    kube.apply(registry_obj(name="basic", azure_name="basicreg"), namespace)
    operator()
    kube.apply(pool_obj("pool1", registry="gone"), namespace)
    kube.apply(pool_obj("pool2", registry="basic"), namespace)
    r = wait_condition(kube, "registry", "gone", namespace, "Stalled", reason="RegistryNotFound")
    assert "doesnotexist" in [c for c in r["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    r = wait_condition(kube, "registry", "basic", namespace, "Stalled", reason="RegistryNotPremium")
    assert "Premium" in [c for c in r["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    wait_condition(kube, "agentpool", "pool1", namespace, "Stalled", reason="RegistryNotFound")
    wait_condition(kube, "agentpool", "pool2", namespace, "Stalled", reason="RegistryNotPremium")
    assert not writes(azure, "/agentPools/")
    wait_event(kube, namespace, "pool2", "RegistryNotPremium", "Warning")


# 5. Quota -----------------------------------------------------------------

def test_quota_exceeded_before_any_write_then_raised(kube, namespace, azure, operator):
    operator()
    kube.apply(pool_obj("big", tier="S3", count=3), namespace)  # 24 vCPU > 16
    obj = wait_condition(kube, "agentpool", "big", namespace, "Stalled", reason="QuotaExceeded")
    msg = [c for c in obj["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    assert "24" in msg and "16" in msg
    assert not writes(azure, "/agentPools/big"), "a request Azure would refuse was sent"
    # Support raised the quota; so does the Registry.
    azure.registry(SUB, RG, "myregistry", sku="Premium", quota={"standardVCPU": 32})
    kube.apply(registry_obj(quota={"standardVCPU": 32}), namespace)
    wait_condition(kube, "agentpool", "big", namespace, "Ready")
    assert azure_pool(azure, "big")["properties"]["count"] == 3


def test_quota_checked_on_scale_up(kube, namespace, azure, operator):
    operator()
    kube.apply(pool_obj("grow", tier="S2", count=2), namespace)
    wait_condition(kube, "agentpool", "grow", namespace, "Ready")
    before = len(writes(azure, "/agentPools/grow"))
    kube.apply(pool_obj("grow", tier="S2", count=5), namespace)  # 20 > 16
    wait_condition(kube, "agentpool", "grow", namespace, "Stalled", reason="QuotaExceeded")
    assert len(writes(azure, "/agentPools/grow")) == before
    assert azure_pool(azure, "grow")["properties"]["count"] == 2


# 6. Immutable fields and Recreate -------------------------------------------

def test_tier_change_refused_without_recreate(kube, namespace, azure, operator):
    operator()
    kube.apply(pool_obj("fixed"), namespace)
    wait_condition(kube, "agentpool", "fixed", namespace, "Ready")
    p = kube.apply(pool_obj("fixed", tier="S3"), namespace, check=False)
    assert p.returncode != 0 and "spec.tier" in p.stderr and "Recreate" in p.stderr


def test_recreate_drains_deletes_and_recreates(kube, namespace, azure, operator):
    operator()
    kube.apply(pool_obj("swap", tier="S1", count=0), namespace)
    wait_condition(kube, "agentpool", "swap", namespace, "Ready")
    for i in range(2):
        azure.control("PUT", f"registries/{SUB}/{RG}/myregistry/runs/d{i}",
                      {"properties": {"agentPoolName": "swap", "status": "Queued"}})
    kube.apply(pool_obj("swap", tier="S2", count=0, updateStrategy="Recreate", drainTimeoutSeconds=600), namespace)
    wait_condition(kube, "agentpool", "swap", namespace, "Reconciling", reason="Draining")
    assert not [r for r in azure.requests(method="DELETE", path_contains="/agentPools/swap")]
    # The queue empties (the runs are canceled); the recreate proceeds.
    for i in range(2):
        arm(azure, "POST", f"/runs/d{i}/cancel")
    wait_until("the pool recreated as S2", lambda: (azure_pool(azure, "swap") or {}).get(
        "properties", {}).get("tier") == "S2", timeout=90)
    wait_condition(kube, "agentpool", "swap", namespace, "Ready")
    methods = [r["method"] for r in azure.requests(path_contains="/agentPools/swap")
               if r["method"] in ("PUT", "PATCH", "DELETE")]
    assert methods.index("DELETE") < len(methods) - 1 and methods[-1] == "PUT"
    wait_events(kube, namespace, "swap", lambda ev: {"Draining", "Recreating"} <= {e["reason"] for e in ev})


def test_recreate_drain_is_bounded(kube, namespace, azure, operator):
    operator()
    kube.apply(pool_obj("stuck", tier="S1", count=0), namespace)
    wait_condition(kube, "agentpool", "stuck", namespace, "Ready")
    azure.control("PUT", f"registries/{SUB}/{RG}/myregistry/runs/s0",
                  {"properties": {"agentPoolName": "stuck", "status": "Queued"}})
    kube.apply(pool_obj("stuck", tier="S2", count=0, updateStrategy="Recreate", drainTimeoutSeconds=3), namespace)
    wait_until("the pool recreated as S2 despite the queue",
               lambda: (azure_pool(azure, "stuck") or {}).get("properties", {}).get("tier") == "S2", timeout=90)
    wait_condition(kube, "agentpool", "stuck", namespace, "Ready")


# 7. Adoption and conflict ---------------------------------------------------

def test_matching_pool_adopted_without_write(kube, namespace, azure, operator):
    azure.pool(SUB, RG, "myregistry", "existing", "PUT", {"tier": "S2", "count": 1})
    operator()
    kube.apply(pool_obj("existing", tier="S2", count=1), namespace)
    obj = wait_condition(kube, "agentpool", "existing", namespace, "Ready")
    assert obj["status"]["azureResourceId"]
    assert not writes(azure, "/agentPools/existing")
    wait_event(kube, namespace, "existing", "Adopted")


def test_conflicting_pool_stalled_and_never_modified(kube, namespace, azure, operator):
    azure.pool(SUB, RG, "myregistry", "taken", "PUT", {"tier": "S3", "count": 2})
    operator()
    kube.apply(pool_obj("taken", tier="S2", count=1), namespace)
    obj = wait_condition(kube, "agentpool", "taken", namespace, "Stalled", reason="ConflictingPool")
    assert "tier" in [c for c in obj["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    assert not writes(azure, "/agentPools/taken")
    # Deleting our object leaves their pool alone.
    kube.run("delete", "agentpool", "taken", "-n", namespace, "--timeout=60s")
    assert azure_pool(azure, "taken")["properties"]["count"] == 2
    assert not writes(azure, "/agentPools/taken")


# 8. Deletion ------------------------------------------------------------------

def test_orphan_leaves_the_azure_pool(kube, namespace, azure, operator):
    operator()
    kube.apply(pool_obj("keep", deletionPolicy="Orphan"), namespace)
    wait_condition(kube, "agentpool", "keep", namespace, "Ready")
    kube.run("delete", "agentpool", "keep", "-n", namespace, "--timeout=60s")
    assert azure_pool(azure, "keep") is not None
    assert not [r for r in azure.requests(method="DELETE", path_contains="/agentPools/keep")]


def test_registry_gone_in_azure_releases_the_finalizer(kube, namespace, azure, operator):
    operator("--resync-period", "3s")
    kube.apply(pool_obj("orphaned"), namespace)
    wait_condition(kube, "agentpool", "orphaned", namespace, "Ready")
    azure.control("DELETE", f"registries/{SUB}/{RG}/myregistry")
    kube.run("delete", "agentpool", "orphaned", "-n", namespace, "--timeout=60s")
    assert kube.run("get", "agentpool", "orphaned", "-n", namespace, check=False).returncode != 0


def test_delete_while_creating_ends_with_no_pool(kube, namespace, azure, operator):
    azure.settings(provisioningDelaySeconds=4)
    operator()
    kube.apply(pool_obj("hasty"), namespace)
    wait_until("the PUT", lambda: azure.requests(method="PUT", path_contains="/agentPools/hasty"))
    kube.run("delete", "agentpool", "hasty", "-n", namespace, "--wait=false")
    wait_until("the object gone", lambda: kube.run("get", "agentpool", "hasty", "-n", namespace,
                                                   check=False).returncode != 0, timeout=90)
    assert azure_pool(azure, "hasty") is None


# The finalizer: set by the API server (manifests/finalizer-policy) or by us

def operator_entries(obj, other_manager):
    """(operation, subresource) of each managedFields entry not of
    other_manager: what the operator (and only it) wrote to the object."""
    return sorted((m["operation"], m.get("subresource", "")) for m in obj["metadata"]["managedFields"]
                  if m["manager"] != other_manager)


def with_managed_fields(kube, kind, name, namespace):
    return json.loads(kube.run("get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields").stdout)


@pytest.fixture
def finalizer_policy(kube, namespace):
    """manifests/finalizer-policy, bound to this test's namespace only (the
    rest of the suite runs without it, as the base installs), removed after."""
    install_finalizer_policy(kube, namespace, namespaces=[namespace])
    yield
    remove_finalizer_policy(kube, namespace)


def test_finalizer_set_at_create_leaves_the_operator_only_its_status(kube, namespace, azure, operator,
                                                                     finalizer_policy):
    """Under manifests/finalizer-policy (Kubernetes 1.36 or later, as on the
    test API server) the API server sets the finalizer when a GitOps
    controller creates the pool with a server-side apply: the operator's
    only write to the pool is its status (no finalizer write first), a
    later apply that does not name the finalizer leaves it in place, and
    deletion still waits on it until the Azure pool is gone. A namespace
    the binding does not name gets no finalizer."""
    operator()
    manifest = pool_obj("gitopspool", count=1)
    manifest["metadata"]["namespace"] = namespace
    elsewhere = "other-" + namespace
    kube.run("create", "namespace", elsewhere)
    assert finalizer_on_create(kube, elsewhere) is False

    def ssa(obj):
        kube.run("apply", "--server-side", "--field-manager=gitops", "-f", "-", input=json.dumps(obj))
    ssa(manifest)
    wait_condition(kube, "agentpool", "gitopspool", namespace, "Ready")
    obj = with_managed_fields(kube, "agentpool", "gitopspool", namespace)
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    assert operator_entries(obj, "gitops") == [("Update", "status")]

    manifest["spec"]["count"] = 2
    ssa(manifest)
    wait_until("Azure count 2", lambda: azure_pool(azure, "gitopspool")["properties"]["count"] == 2)
    obj = with_managed_fields(kube, "agentpool", "gitopspool", namespace)
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    assert operator_entries(obj, "gitops") == [("Update", "status")]

    kube.run("delete", "agentpool", "gitopspool", "-n", namespace, "--timeout=60s")
    assert azure_pool(azure, "gitopspool") is None


def test_finalizer_missing_is_written_by_the_operator(kube, namespace, azure, operator):
    """Without manifests/finalizer-policy (the default install) the operator
    writes the finalizer on a new pool itself, and again when someone takes
    it off by hand: the same gate every pass goes through before Azure is
    touched."""
    operator()
    kube.apply(pool_obj("handmade", count=1), namespace)
    wait_condition(kube, "agentpool", "handmade", namespace, "Ready")
    obj = with_managed_fields(kube, "agentpool", "handmade", namespace)
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    azure.clear_requests()
    kube.run("patch", "agentpool", "handmade", "-n", namespace, "--type=json", "-p",
             json.dumps([{"op": "remove", "path": "/metadata/finalizers"},
                         {"op": "replace", "path": "/spec/count", "value": 2}]))
    wait_until("Azure count 2", lambda: azure_pool(azure, "handmade")["properties"]["count"] == 2)
    obj = with_managed_fields(kube, "agentpool", "handmade", namespace)
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    # kubectl's own entries are "kubectl-client-side-apply" and "kubectl-patch".
    ours = [m for m in obj["metadata"]["managedFields"] if not m["manager"].startswith("kubectl")]
    assert any(m["operation"] == "Update" and not m.get("subresource") and
               "f:finalizers" in m["fieldsV1"].get("f:metadata", {}) for m in ours), ours
    kube.run("delete", "agentpool", "handmade", "-n", namespace, "--timeout=60s")
    assert azure_pool(azure, "handmade") is None


# 9. Drift and the cost of resync --------------------------------------------

def test_drift_corrected_at_resync_with_one_list_per_registry(kube, namespace, azure, operator):
    op = operator("--resync-period", "4s")
    for name in ("drift1", "drift2", "drift3"):
        kube.apply(pool_obj(name, tier="S1", count=1), namespace)
    kube.apply(pool_obj("idle0", tier="S1", count=0), namespace)
    for name in ("drift1", "drift2", "drift3", "idle0"):
        wait_condition(kube, "agentpool", name, namespace, "Ready")
        kube.run("wait", "--for=jsonpath={.status.queuedRuns}=0", f"agentpool/{name}", "-n", namespace,
                 "--timeout=60s")
    # az acr agentpool update --count 5, behind the operator's back.
    azure.pool(SUB, RG, "myregistry", "drift2", "PATCH", {"count": 5})
    azure.clear_requests()
    wait_until("count put back to 1", lambda: azure_pool(azure, "drift2")["properties"]["count"] == 1
               and len(writes(azure, "/agentPools/drift2")) == 1, timeout=60)
    ev = wait_event(kube, namespace, "drift2", "DriftCorrected")
    assert "5" in ev["note"] and ev["type"] == "Warning"
    # Steady state: a resync reads the pools with LISTs, never one GET per pool.
    azure.clear_requests()
    start = op.metric("controller_runtime_reconcile_total", {"controller": "agentpool"})
    gets = op.metric("rest_client_requests_total", {"verb": "GET"}) or 0
    wait_until("two resyncs of the four pools",
               lambda: op.metric("controller_runtime_reconcile_total", {"controller": "agentpool"}) >= start + 8,
               timeout=30)
    # Nor an API server read per pool: the pools come from the cache, and
    # the Registry's Secret is read once per half resync for all of them.
    api_gets = (op.metric("rest_client_requests_total", {"verb": "GET"}) or 0) - gets
    assert api_gets <= 3, f"{api_gets} API server GETs for two resyncs of four pools"
    reqs = azure.requests(method="GET")
    per_pool = [r for r in reqs if "/agentPools/" in r["path"]]
    lists = [r for r in reqs if r["path"].rstrip("/").lower().endswith("/agentpools")]
    assert per_pool == [], f"GET per pool at resync: {[r['path'] for r in per_pool]}"
    assert 1 <= len(lists) <= 6, f"{len(lists)} LISTs for two resyncs of one registry"
    # Nor a queue read (an ARM POST) per pool: a fixed pool with instances
    # and nothing waiting is not asked; a pool at zero, where queued runs
    # would never start, is.
    queue = azure.requests(method="POST", path_contains="/listQueueStatus")
    fixed = [r["path"] for r in queue if "/agentPools/idle0/" not in r["path"]]
    assert fixed == [], f"queue of an idle fixed pool read at resync: {fixed}"
    assert any("/agentPools/idle0/" in r["path"] for r in queue), "the queue of a pool at zero went unwatched"


# 10. Faults -----------------------------------------------------------------

def test_throttling_and_outages_delay_but_never_lose_convergence(kube, namespace, azure, operator):
    azure.fault(status=429, count=15, retryAfter=1, path="/agentPools")
    azure.fault(status=503, count=5, path="/agentPools")
    operator()
    kube.apply(pool_obj("storm", count=2), namespace)
    wait_condition(kube, "agentpool", "storm", namespace, "Ready", timeout=120)
    assert azure_pool(azure, "storm")["properties"]["count"] == 2
    total = len(azure.requests())
    assert total < 120, f"{total} requests: the operator hot-looped under throttling"


def test_auth_failure_is_stalled_with_the_reason(kube, namespace, azure, operator):
    kube.run("delete", "secret", "sp", "-n", namespace)
    kube.run("create", "secret", "generic", "sp", "-n", namespace,
             "--from-literal=AZURE_TENANT_ID=22222222-2222-2222-2222-222222222222",
             "--from-literal=AZURE_CLIENT_ID=11111111-1111-1111-1111-111111111111",
             "--from-literal=AZURE_CLIENT_SECRET=wrong-secret-value")
    op = operator("--resync-period", "5s")
    kube.apply(pool_obj("denied"), namespace)
    r = wait_condition(kube, "registry", "myregistry", namespace, "Stalled", reason="AuthenticationFailed")
    msg = [c for c in r["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    assert "AADSTS" in msg
    wait_condition(kube, "agentpool", "denied", namespace, "Stalled", reason="AuthenticationFailed")
    assert "wrong-secret-value" not in op.text()
    assert "wrong-secret-value" not in json.dumps(events(kube, namespace))
    # Fix the Secret: a refusal is Stalled (no retry storm against Entra);
    # the next resync reads the Secret again and goes on, no restart.
    kube.run("delete", "secret", "sp", "-n", namespace)
    kube.run("create", "secret", "generic", "sp", "-n", namespace, f"--from-literal=AZURE_TENANT_ID={TENANT}",
             f"--from-literal=AZURE_CLIENT_ID={CLIENT}", f"--from-literal=AZURE_CLIENT_SECRET={SP_SECRET}")
    wait_condition(kube, "agentpool", "denied", namespace, "Ready", timeout=90)
    assert SP_SECRET not in op.text()


def test_unreachable_azure_is_stalled_with_the_reason(kube, namespace, azure, operator):
    op = operator("--arm-endpoint", "http://127.0.0.1:9")  # discard port: nothing listens
    kube.apply(pool_obj("nowhere"), namespace)
    obj = wait_condition(kube, "agentpool", "nowhere", namespace, "Stalled", reason="AzureUnreachable", timeout=90)
    assert "127.0.0.1 port 9" in [c for c in obj["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    assert op.alive()
