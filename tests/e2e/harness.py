"""The operator under test: acrpool-controller against the test control
plane and the Azure emulator, plus the objects every scenario starts from
(a service principal Secret and a Registry)."""
import json
import secrets as pysecrets
import urllib.parse
import urllib.request

from emulator import CLIENT, RG, SUB, TENANT
from procs import BUILD, Proc, wait_until

OPERATOR = BUILD / "reconcilers" / "acrpool-controller"
SP_SECRET = "sp-" + pysecrets.token_hex(12)   # never may appear in any output


def start_operator(kube, emu, namespace, *extra, env=None):
    args = ["--kubeconfig", kube.kubeconfig, "--namespaces", namespace,
            "--arm-endpoint", emu.url, "--authority-host", emu.url,
            "--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0",
            *extra]
    return Proc(OPERATOR, args, env=env)


def registry_obj(name="myregistry", azure_name="myregistry", secret="sp", quota=None):
    spec = {"subscriptionId": SUB, "resourceGroup": RG, "name": azure_name,
            "credential": {"servicePrincipal": {"secretRef": {"name": secret}}}}
    if quota:
        spec["quota"] = quota
    return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "Registry", "metadata": {"name": name}, "spec": spec}


def pool_obj(name, tier="S2", count=None, registry="myregistry", **spec):
    s = {"registryRef": {"name": registry}, "tier": tier, **spec}
    if count is not None:
        s["count"] = count
    return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "AgentPool", "metadata": {"name": name}, "spec": s}


def setup_azure(kube, emu, namespace, azure_name="myregistry", sku="Premium", secret_value=None, **reg):
    """A registry in the emulator, a service principal it accepts, and the
    Secret and Registry objects that point at them."""
    emu.registry(SUB, RG, azure_name, sku=sku)
    emu.client(TENANT, CLIENT, secret=SP_SECRET)
    kube.run("create", "secret", "generic", "sp", "-n", namespace,
             f"--from-literal=AZURE_TENANT_ID={TENANT}", f"--from-literal=AZURE_CLIENT_ID={CLIENT}",
             f"--from-literal=AZURE_CLIENT_SECRET={secret_value or SP_SECRET}")
    kube.apply(registry_obj(azure_name=azure_name, **reg), namespace)


def condition(obj, type_):
    for c in (obj.get("status") or {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def wait_condition(kube, kind, name, namespace, type_, status="True", reason=None, timeout=60):
    def check():
        p = kube.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if p.returncode != 0:
            return None
        obj = json.loads(p.stdout)
        c = condition(obj, type_)
        if c and c["status"] == status and (reason is None or c["reason"] == reason):
            return obj
        return None
    return wait_until(f"{kind}/{name} {type_}={status} {reason or ''}", check, timeout)


def events(kube, namespace, name=None):
    items = json.loads(kube.run("get", "events.events.k8s.io", "-n", namespace, "-o", "json").stdout)["items"]
    return [e for e in items if name is None or e["regarding"]["name"] == name]


def arm_token(emu):
    """A token from the emulator's Entra endpoint, for tests that call ARM
    themselves (to queue or cancel runs)."""
    data = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT,
                                   "client_secret": SP_SECRET,
                                   "scope": "https://management.azure.com/.default"}).encode()
    with urllib.request.urlopen(f"{emu.url}/{TENANT}/oauth2/v2.0/token", data=data, timeout=10) as r:
        return json.loads(r.read())["access_token"]


def arm(emu, method, path, body=None, api_version="2019-06-01-preview"):
    url = (f"{emu.url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry"
           f"/registries/myregistry{path}?api-version={api_version}")
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method,
                                 headers={"Authorization": "Bearer " + arm_token(emu),
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else None
