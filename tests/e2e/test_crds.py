"""The API as the API server enforces it: CRDs install and become
Established, every sample is accepted, and each invalid manifest in the
table is refused with a message that names the offending field."""
import copy
import re
import json

import pytest

from kubeenv import ROOT

KINDS = {"registries": "Registry", "agentpools": "AgentPool", "tasks": "Task", "taskruns": "TaskRun",
         "pipelineagentpools": "PipelineAgentPool"}

REGISTRY = {
    "apiVersion": "acrpool.dev/v1alpha1", "kind": "Registry", "metadata": {"name": "reg"},
    "spec": {"subscriptionId": "00000000-0000-0000-0000-000000000000", "resourceGroup": "rg",
             "name": "myregistry",
             "credential": {"managedIdentity": {}}},
}
POOL = {
    "apiVersion": "acrpool.dev/v1alpha1", "kind": "AgentPool", "metadata": {"name": "pool"},
    "spec": {"registryRef": {"name": "reg"}, "tier": "S2"},
}
TASK = {
    "apiVersion": "acrpool.dev/v1alpha1", "kind": "Task", "metadata": {"name": "mytask"},
    "spec": {"registryRef": {"name": "reg"},
             "step": {"docker": {"contextPath": "https://github.com/Azure-Samples/acr-build-helloworld-node.git#main",
                                 "imageNames": ["myimage:mytag"]}}},
}
TASKRUN = {
    "apiVersion": "acrpool.dev/v1alpha1", "kind": "TaskRun", "metadata": {"name": "run1"},
    "spec": {"registryRef": {"name": "reg"}, "taskRef": {"name": "mytask"}},
}
PAP_SAMPLE = ROOT / "manifests" / "samples" / "pipelineagentpool.yaml"
GUID = "00000000-0000-0000-0000-000000000000"
PAP = {
    "apiVersion": "acrpool.dev/v1alpha1", "kind": "PipelineAgentPool", "metadata": {"name": "agents"},
    "spec": {"organizationUrl": "https://dev.azure.com/contoso", "agentPool": "aci",
             "registration": {"patSecretRef": {"name": "azdo-pat"}},
             "credential": {"managedIdentity": {}},
             "aci": {"subscriptionId": GUID, "resourceGroup": "rg", "location": "westeurope",
                     "image": "myregistry.azurecr.io/azure-pipelines-agent:1"}},
}
SUBNET = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
          "Microsoft.Network/virtualNetworks/vnet/subnets/default")


PAP_SUBNET = SUBNET.replace("subnets/default", "subnets/aci")
IDENTITY = (f"/subscriptions/{GUID}/resourceGroups/rg/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/acr-pull")


def with_(base, path, value, name=None):
    """A copy of base with the dotted path set to value (None deletes)."""
    obj = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = obj
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    if name:
        obj["metadata"]["name"] = name
    return obj


def test_crds_established(kube):
    for plural in KINDS:
        crd = json.loads(kube.run("get", "crd", f"{plural}.acrpool.dev", "-o", "json").stdout)
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conds.get("Established") == "True", crd["status"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_every_schema_field_has_a_description(kube):
    """kubectl explain is only as good as the descriptions; check every
    property of every kind as the API server stores it."""
    missing = []

    def walk(schema, path):
        for name, prop in schema.get("properties", {}).items():
            if name == "metadata" and "." not in path:
                continue  # ObjectMeta is described by the API server itself
            p = f"{path}.{name}"
            if not prop.get("description"):
                missing.append(p)
            walk(prop, p)
        if "items" in schema:
            walk(schema["items"], path + "[]")
        if isinstance(schema.get("additionalProperties"), dict):
            walk(schema["additionalProperties"], path + "{}")

    for plural, kind in KINDS.items():
        crd = json.loads(kube.run("get", "crd", f"{plural}.acrpool.dev", "-o", "json").stdout)
        walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], kind)
    assert missing == []


def test_samples_accepted(kube, namespace):
    p = kube.run("apply", "-n", namespace, "-k", str(ROOT / "manifests" / "samples"))
    assert "created" in p.stdout
    pool = kube.get("agentpool", "myagentpool", namespace)
    # The CLI's defaults (count 1, Linux) are the schema's defaults.
    assert pool["spec"]["count"] == 1
    assert pool["spec"]["os"] == "Linux"
    assert pool["spec"]["tier"] == "S2"
    assert pool["spec"]["deletionPolicy"] == "Delete"
    task = kube.get("task", "mytask", namespace)
    assert task["spec"]["timers"] == [{"name": "nightly", "schedule": "0 21 * * *", "enabled": True}]
    assert task["spec"]["step"]["docker"]["push"] is True
    assert task["spec"]["timeoutSeconds"] == 3600
    assert task["spec"]["platform"] == {"os": "Linux", "architecture": "amd64"}
    # The agent image (agents/azure-pipelines) rebuilt weekly on the pool.
    image = kube.get("task", "agent-image", namespace)
    assert image["spec"]["timers"] == [{"name": "weekly", "schedule": "0 3 * * 0", "enabled": True}]
    assert image["spec"]["agentPoolRef"] == {"name": "myagentpool"}
    assert image["spec"]["step"]["docker"]["contextPath"].endswith(":agents/azure-pipelines")
    assert image["spec"]["step"]["docker"]["noCache"] is True
    run = kube.get("taskrun", "quick-build-1", namespace)
    assert run["spec"]["build"]["agentPoolRef"] == {"name": "myagentpool"}
    assert run["spec"]["cancel"] is False
    reg = kube.get("registry", "myregistry", namespace)
    assert reg["spec"]["quota"] == {"standardVCPU": 16, "isolatedVCPU": 0}
    assert reg["spec"]["cloud"] == "AzureCloud"


def test_pipelineagentpool_sample_accepted(kube, namespace):
    """manifests/samples/pipelineagentpool.yaml is not in the samples'
    kustomization (it names a real organization; the quick start applies its
    own after making the PAT Secret); it is checked here on its own."""
    p = kube.run("apply", "-n", namespace, "-f", str(PAP_SAMPLE))
    assert "pipelineagentpool.acrpool.dev/ci-agents created" in p.stdout
    pap = kube.get("pipelineagentpool", "ci-agents", namespace)
    spec = pap["spec"]
    assert spec["count"] == 3
    assert spec["agentNamePrefix"] == "ci-agents"
    assert spec["registration"] == {"patSecretRef": {"name": "azdo-pat", "key": "pat"}}
    assert spec["deletionPolicy"] == "Delete"
    assert spec["cloud"] == "AzureCloud"
    assert spec["aci"]["cpu"] == 2 and spec["aci"]["memoryInGB"] == 4
    assert spec["aci"]["imagePull"]["server"] == "myregistry.azurecr.io"
    # The sample's Secret is a comment only: nothing that looks like a token.
    text = PAP_SAMPLE.read_text()
    assert "kind: Secret" in text and not re.search(r"^kind: Secret", text, re.M)
    assert not re.search(r"[A-Za-z0-9]{40,}", text)


def test_pipelineagentpool_defaults(kube, namespace):
    kube.apply(PAP, namespace)
    spec = kube.get("pipelineagentpool", "agents", namespace)["spec"]
    assert spec["count"] == 1
    assert spec["deletionPolicy"] == "Delete"
    assert spec["cloud"] == "AzureCloud"
    assert spec["registration"]["patSecretRef"]["key"] == "pat"
    assert spec["aci"]["cpu"] == 1 and spec["aci"]["memoryInGB"] == 2
    assert "agentNamePrefix" not in spec  # the operator uses metadata.name


def test_pipelineagentpool_entra_and_full_aci_accepted(kube, namespace):
    obj = with_(with_(PAP, "spec.registration", {"entra": {}}), "spec.agentNamePrefix", "ci")
    aci = dict(obj["spec"]["aci"], subnetIds=[PAP_SUBNET], cpu=0.5, memoryInGB=1.5,
               imagePull={"server": "myregistry.azurecr.io", "identityId": IDENTITY},
               environment=[{"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
                            {"name": "NPM_TOKEN", "secretKeyRef": {"name": "npm", "key": "token"}}],
               tags={"team": "platform"})
    obj = with_(with_(obj, "spec.aci", aci), "spec.count", 0)
    kube.apply(obj, namespace)
    # A name over 52 characters is fine once agentNamePrefix is set.
    kube.apply(with_(obj, "metadata.name", "a" * 60), namespace)
    got = kube.get("pipelineagentpool", "agents", namespace)["spec"]
    assert got["count"] == 0 and got["registration"] == {"entra": {}}
    assert got["aci"]["cpu"] == 0.5 and got["aci"]["subnetIds"] == [PAP_SUBNET]


def test_kubectl_get_acr_lists_every_kind(kube, namespace):
    """`kubectl get acr` (the category on every kind) lists all of ours; each
    kind keeps a short name of its own."""
    kube.run("apply", "-n", namespace, "-k", str(ROOT / "manifests" / "samples"))
    kube.run("apply", "-n", namespace, "-f", str(PAP_SAMPLE))
    listed = kube.run("get", "acr", "-n", namespace, "-o", "name").stdout.split()
    kinds = {name.split("/")[0] for name in listed}
    assert kinds == {f"{kind.lower()}.acrpool.dev" for kind in KINDS.values()}, listed
    assert "registry.acrpool.dev/myregistry" in listed and "taskrun.acrpool.dev/quick-build-1" in listed
    assert "pipelineagentpool.acrpool.dev/ci-agents" in listed
    assert kube.run("get", "acrpool", "-n", namespace, "-o", "name").stdout.split() == listed
    for short, kind in (("acrreg", "registry"), ("ap", "agentpool"), ("acrtask", "task"), ("acrrun", "taskrun"),
                        ("pap", "pipelineagentpool")):
        names = kube.run("get", short, "-n", namespace, "-o", "name").stdout.split()
        assert names and all(n.startswith(f"{kind}.acrpool.dev/") for n in names), (short, names)


def test_printer_columns_tell_the_story(kube, namespace):
    kube.apply(POOL, namespace)
    out = kube.run("get", "agentpools", "-n", namespace).stdout.splitlines()[0].split()
    assert out == ["NAME", "TIER", "COUNT", "DESIRED", "SOURCE", "QUEUED", "STATE", "READY", "REASON", "AGE"]


def test_pipelineagentpool_printer_columns(kube, namespace):
    kube.apply(PAP, namespace)
    out = kube.run("get", "pipelineagentpools", "-n", namespace).stdout.splitlines()[0].split()
    assert out == ["NAME", "POOL", "COUNT", "DESIRED", "ONLINE", "BUSY", "QUEUED", "JOBS", "READY", "AGE"]


INVALID_CREATES = [
    ("pool bad tier", with_(POOL, "spec.tier", "S4"), "spec.tier"),
    ("pool negative count", with_(POOL, "spec.count", -1), "spec.count"),
    ("pool azureName too long", with_(POOL, "spec.azureName", "a" * 21), "spec.azureName"),
    ("pool azureName bad chars", with_(POOL, "spec.azureName", "my_pool"), "spec.azureName"),
    ("pool metadata.name unusable in Azure", with_(POOL, "metadata.name", "pool.with.dots"), "spec.azureName"),
    ("pool os Windows", with_(POOL, "spec.os", "Windows"), "spec.os"),
    ("pool subnet not a subnet id", with_(POOL, "spec.subnetId", "/subscriptions/x/vnet"), "spec.subnetId"),
    ("pool deletionPolicy", with_(POOL, "spec.deletionPolicy", "Keep"), "spec.deletionPolicy"),
    ("pool no registryRef", with_(POOL, "spec.registryRef", None), "spec.registryRef"),
    ("pool autoscale min over max", with_(POOL, "spec.autoscale", {"minCount": 3, "maxCount": 2}),
     "spec.autoscale.minCount"),
    ("pool window both count and bounds",
     with_(POOL, "spec.countSchedule", {"windows": [{"cron": "0 7 * * 1-5", "count": 1, "maxCount": 3}]}),
     "spec.countSchedule.windows[0]"),
    ("pool window bad cron", with_(POOL, "spec.countSchedule", {"windows": [{"cron": "every day", "count": 1}]}),
     "spec.countSchedule.windows[0].cron"),
    ("pool too many tags", with_(POOL, "spec.tags", {f"k{i}": "v" for i in range(51)}), "spec.tags"),
    ("task two steps", with_(TASK, "spec.step.encoded", {"taskContent": "steps: []"}), "spec.step"),
    ("task no step", with_(TASK, "spec.step", {}), "spec.step"),
    ("task timeout below 300", with_(TASK, "spec.timeoutSeconds", 299), "spec.timeoutSeconds"),
    ("task timeout above 28800", with_(TASK, "spec.timeoutSeconds", 28801), "spec.timeoutSeconds"),
    ("task cpu on a pool", with_(with_(TASK, "spec.cpu", 2), "spec.agentPoolRef", {"name": "pool"}), "spec.cpu"),
    ("task azureName too short", with_(TASK, "spec.azureName", "abcd"), "spec.azureName"),
    ("task bad architecture", with_(TASK, "spec.platform", {"os": "Linux", "architecture": "sparc"}),
     "spec.platform.architecture"),
    ("task argument value and secret",
     with_(TASK, "spec.step.docker.arguments",
           [{"name": "A", "value": "x", "secretKeyRef": {"name": "s", "key": "k"}}]),
     "spec.step.docker.arguments[0]"),
    ("task timer without schedule", with_(TASK, "spec.timers", [{"name": "nightly"}]), "spec.timers[0].schedule"),
    ("registry two credentials",
     with_(REGISTRY, "spec.credential", {"managedIdentity": {}, "servicePrincipal": {"secretRef": {"name": "sp"}}}),
     "spec.credential"),
    ("registry no credential kind", with_(REGISTRY, "spec.credential", {}), "spec.credential"),
    ("registry bad subscription", with_(REGISTRY, "spec.subscriptionId", "not-a-guid"), "spec.subscriptionId"),
    ("registry name with dash", with_(REGISTRY, "spec.name", "my-registry"), "spec.name"),
    ("registry unknown cloud", with_(REGISTRY, "spec.cloud", "AzureMars"), "spec.cloud"),
    ("registry negative quota", with_(REGISTRY, "spec.quota", {"standardVCPU": -1}), "spec.quota.standardVCPU"),
    ("taskrun both task and build",
     with_(TASKRUN, "spec.build", {"sourceLocation": "https://github.com/x/y.git"}), "spec"),
    ("taskrun neither task nor build", with_(TASKRUN, "spec.taskRef", None), "spec"),
    ("taskrun build with two sources",
     with_(with_(TASKRUN, "spec.taskRef", None), "spec.build",
           {"sourceLocation": "https://github.com/x/y.git", "configMapRef": {"name": "src"}}), "spec.build"),
    ("taskrun bad status value via spec", with_(TASKRUN, "spec.cancel", "yes"), "spec.cancel"),
    ("pap both registration modes",
     with_(PAP, "spec.registration", {"patSecretRef": {"name": "azdo-pat"}, "entra": {}}), "spec.registration"),
    ("pap no registration mode", with_(PAP, "spec.registration", {}), "spec.registration"),
    ("pap organizationUrl not https", with_(PAP, "spec.organizationUrl", "http://dev.azure.com/contoso"),
     "spec.organizationUrl"),
    ("pap organizationUrl not azure devops", with_(PAP, "spec.organizationUrl", "https://github.com/contoso"),
     "spec.organizationUrl"),
    ("pap negative count", with_(PAP, "spec.count", -1), "spec.count"),
    ("pap count above 100", with_(PAP, "spec.count", 101), "spec.count"),
    ("pap AZP_ environment name",
     with_(PAP, "spec.aci.environment", [{"name": "AZP_TOKEN", "value": "x"}]), "spec.aci.environment[0].name"),
    ("pap environment value and secret",
     with_(PAP, "spec.aci.environment", [{"name": "A", "value": "x", "secretKeyRef": {"name": "s", "key": "k"}}]),
     "spec.aci.environment[0]"),
    ("pap subnet not a subnet id", with_(PAP, "spec.aci.subnetIds", ["/subscriptions/x/vnet"]),
     "spec.aci.subnetIds[0]"),
    ("pap imagePull identity not an identity id",
     with_(PAP, "spec.aci.imagePull", {"server": "myregistry.azurecr.io", "identityId": "acr-pull"}),
     "spec.aci.imagePull.identityId"),
    ("pap agentNamePrefix with capitals", with_(PAP, "spec.agentNamePrefix", "CI-Agents"), "spec.agentNamePrefix"),
    ("pap metadata.name too long without agentNamePrefix", with_(PAP, "metadata.name", "a" * 53),
     "spec.agentNamePrefix"),
]


@pytest.mark.parametrize("case,obj,field", INVALID_CREATES, ids=[c[0] for c in INVALID_CREATES])
def test_invalid_manifest_refused_naming_field(kube, namespace, case, obj, field):
    p = kube.apply(obj, namespace, check=False)
    assert p.returncode != 0, f"{case}: accepted"
    assert "is invalid" in p.stderr, p.stderr
    assert re.search(r"(^|[\s*])" + re.escape(field) + ":", p.stderr), f"{case}: message does not name {field}: {p.stderr}"
    kind = obj["kind"].lower()
    assert kube.run("get", kind, obj["metadata"]["name"], "-n", namespace, check=False).returncode != 0


INVALID_UPDATES = [
    ("tier change without Recreate", POOL, "spec.tier", "S3", "spec.tier"),
    ("subnet added without Recreate", POOL, "spec.subnetId", SUBNET, "spec.subnetId"),
    ("subnet changed without Recreate", with_(POOL, "spec.subnetId", SUBNET), "spec.subnetId",
     SUBNET.replace("default", "other"), "spec.subnetId"),
    ("pool azureName change", with_(POOL, "spec.azureName", "pool-a"), "spec.azureName", "pool-b", "spec.azureName"),
    ("pool registryRef change", POOL, "spec.registryRef", {"name": "other"}, "spec.registryRef.name"),
    ("task azureName change", with_(TASK, "spec.azureName", "task-a"), "spec.azureName", "task-b", "spec.azureName"),
    ("taskrun retarget", TASKRUN, "spec.taskRef", {"name": "othertask"}, "spec.taskRef"),
    ("taskrun uncancel", with_(TASKRUN, "spec.cancel", True), "spec.cancel", False, "spec.cancel"),
    ("pap agentNamePrefix change", with_(PAP, "spec.agentNamePrefix", "agents-a"), "spec.agentNamePrefix",
     "agents-b", "spec.agentNamePrefix"),
    ("pap agentNamePrefix added", PAP, "spec.agentNamePrefix", "agents-a", "spec.agentNamePrefix"),
    ("pap aci.resourceGroup change", PAP, "spec.aci.resourceGroup", "other-rg", "spec.aci.resourceGroup"),
]


@pytest.mark.parametrize("case,base,path,value,field", INVALID_UPDATES, ids=[c[0] for c in INVALID_UPDATES])
def test_invalid_change_refused_naming_field(kube, namespace, case, base, path, value, field):
    kube.apply(base, namespace)
    p = kube.apply(with_(base, path, value), namespace, check=False)
    assert p.returncode != 0, f"{case}: accepted"
    assert re.search(r"(^|[\s*])" + re.escape(field) + ":", p.stderr), f"{case}: message does not name {field}: {p.stderr}"
    after = kube.get(base["kind"].lower(), base["metadata"]["name"], namespace)
    node = after
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    assert node != value, f"{case}: the refused change was stored"


def test_tier_change_allowed_with_recreate(kube, namespace):
    kube.apply(POOL, namespace)
    kube.apply(with_(with_(POOL, "spec.tier", "S3"), "spec.updateStrategy", "Recreate"), namespace)
    assert kube.get("agentpool", "pool", namespace)["spec"]["tier"] == "S3"


def test_count_change_allowed_in_place(kube, namespace):
    kube.apply(POOL, namespace)
    kube.apply(with_(POOL, "spec.count", 0), namespace)
    assert kube.get("agentpool", "pool", namespace)["spec"]["count"] == 0


def test_taskrun_cancel_can_be_set(kube, namespace):
    kube.apply(TASKRUN, namespace)
    kube.apply(with_(TASKRUN, "spec.cancel", True), namespace)
    assert kube.get("taskrun", "run1", namespace)["spec"]["cancel"] is True


def test_pipelineagentpool_count_and_image_change_in_place(kube, namespace):
    kube.apply(PAP, namespace)
    aci = dict(PAP["spec"]["aci"], image="myregistry.azurecr.io/azure-pipelines-agent:2", cpu=2)
    kube.apply(with_(with_(PAP, "spec.count", 5), "spec.aci", aci), namespace)
    spec = kube.get("pipelineagentpool", "agents", namespace)["spec"]
    assert spec["count"] == 5 and spec["aci"]["image"].endswith(":2") and spec["aci"]["cpu"] == 2
