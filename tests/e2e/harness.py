"""The operator under test: acrpool-controller against the test control
plane and the Azure emulator, plus the objects every scenario starts from
(a service principal Secret and a Registry).

By default the operator runs as it does in a cluster: as the ServiceAccount
acrpool-system/acrpool-controller, with exactly the RBAC of manifests/base
(issue 8). start_operator() applies that RBAC once per session (the
Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, Role and
RoleBinding of the kustomization; not the Deployment), mints a token for the
ServiceAccount with TokenRequest (`kubectl create token`) and hands the
operator a kubeconfig holding that token. Pass admin=True for a test that
needs the admin kubeconfig instead.

/metrics: start_operator() serves it in the development mode,
--metrics-secure=false on 127.0.0.1 (plain HTTP, no authentication, which
the operator allows on a loopback address only), so Proc.metric() and the
bench read it with a plain GET. tests/e2e/test_metrics_secure.py passes
metrics_secure=True for the default, HTTPS with TokenReview and
SubjectAccessReview."""
import atexit
import base64
import json
import os
import pathlib
import secrets as pysecrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from emulator import CLIENT, RG, SUB, TENANT
from kubeenv import ROOT
from procs import BUILD, Proc, wait_until

OPERATOR = BUILD / "reconcilers" / "acrpool-controller"
SP_SECRET = "sp-" + pysecrets.token_hex(12)   # never may appear in any output

BASE = ROOT / "manifests" / "base"
OPERATOR_NAMESPACE = "acrpool-system"
OPERATOR_SA = "acrpool-controller"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
TOKEN_DURATION = "2h"
TOKEN_REUSE_S = 3600          # mint a fresh token when the last one is older than this

_lock = threading.Lock()
_rbac_applied = set()         # admin kubeconfig paths whose cluster has the RBAC
_identities = {}              # admin kubeconfig path -> OperatorIdentity


def _json_objects(text):
    """The objects of concatenated JSON documents (kubectl -o json of several)."""
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.extend(obj["items"] if obj.get("kind") == "List" else [obj])


def operator_rbac_objects(kube):
    """The RBAC-related objects of manifests/base (namespace, ServiceAccount,
    roles and bindings), as the kustomization builds them."""
    yaml_text = kube.run("kustomize", str(BASE)).stdout
    out = kube.run("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", "-",
                   input=yaml_text).stdout
    return [o for o in _json_objects(out) if o["kind"] in RBAC_KINDS]


def install_operator_rbac(kube):
    """Apply manifests/base's RBAC to the test cluster, once per session
    (kubectl apply is idempotent, so a repeat is harmless)."""
    with _lock:
        if kube.kubeconfig in _rbac_applied:
            return
        objs = operator_rbac_objects(kube)
        kinds = {o["kind"] for o in objs}
        assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds, kinds
        # The Namespace first, so the namespaced objects have somewhere to go.
        objs.sort(key=lambda o: o["kind"] != "Namespace")
        kube.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
        _rbac_applied.add(kube.kubeconfig)


POLICY_DIR = ROOT / "manifests" / "finalizer-policy"
POLICY_KINDS = {"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}
POLICY_NAME = "acrpool-finalizer"
FINALIZER = "acrpool.dev/finalizer"


def finalizer_policy_objects(kube, namespaces=None):
    """manifests/finalizer-policy's objects (the API server sets the
    operator's finalizer on create); with namespaces, its binding matches
    only those, as the chart's does with watchNamespaces."""
    yaml_text = kube.run("kustomize", str(POLICY_DIR)).stdout
    out = kube.run("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", "-",
                   input=yaml_text).stdout
    objs = [o for o in _json_objects(out) if o["kind"] in POLICY_KINDS]
    assert {o["kind"] for o in objs} == POLICY_KINDS, objs
    if namespaces:
        for o in objs:
            if o["kind"] == "MutatingAdmissionPolicyBinding":
                o["spec"]["matchResources"] = {"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(namespaces)}]}}
    return objs


def finalizer_on_create(kube, namespace):
    """Whether an AgentPool created in namespace now gets the finalizer from
    the API server (a server-side dry run: admission runs, nothing is kept);
    None while the API server does not serve AgentPools yet."""
    obj = {"apiVersion": "acrpool.dev/v1alpha1", "kind": "AgentPool",
           "metadata": {"name": "policy-probe", "namespace": namespace},
           "spec": {"registryRef": {"name": "probe"}, "tier": "S1", "count": 0}}
    p = kube.run("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj), check=False)
    if p.returncode != 0:
        # A CRD just Established may not be served for a moment yet.
        assert "ServiceUnavailable" in p.stderr, p.stderr
        return None
    return FINALIZER in (json.loads(p.stdout)["metadata"].get("finalizers") or [])


def install_finalizer_policy(kube, probe_namespace, namespaces=None):
    """Apply the finalizer policy and wait until the API server enforces it
    (its policy informer picks a new policy up within a second or so)."""
    kube.run("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": finalizer_policy_objects(kube, namespaces)}))
    wait_until("the finalizer policy enforced", lambda: finalizer_on_create(kube, probe_namespace), timeout=30)


def remove_finalizer_policy(kube, probe_namespace):
    kube.run("delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy", POLICY_NAME,
             "--ignore-not-found")
    wait_until("the finalizer policy gone", lambda: finalizer_on_create(kube, probe_namespace) is False,
               timeout=30)


class OperatorIdentity:
    """A kubeconfig for the operator's ServiceAccount: the admin kubeconfig's
    server and CA, a TokenRequest token, the context namespace acrpool-system
    (what the pod's namespace is in a cluster)."""

    def __init__(self, kube):
        self.kube = kube
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="acrpool-sa-"))   # 0700
        atexit.register(shutil.rmtree, self.dir, True)   # the tokens go with the session
        self.token = None
        self.kubeconfig = None
        self.server = None
        self.ca = None
        self.minted = 0.0

    def _admin_cluster(self):
        view = json.loads(self.kube.run("config", "view", "--raw", "--minify", "-o", "json").stdout)
        cluster = view["clusters"][0]["cluster"]
        ca = self.dir / "ca.crt"
        if cluster.get("certificate-authority-data"):
            ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        else:
            ca.write_bytes(pathlib.Path(cluster["certificate-authority"]).read_bytes())
        return cluster["server"], ca

    def mint(self):
        token = self.kube.run("-n", OPERATOR_NAMESPACE, "create", "token", OPERATOR_SA,
                              f"--duration={TOKEN_DURATION}").stdout.strip()
        assert token.count(".") == 2, "kubectl create token did not print a JWT"
        server, ca = self._admin_cluster()
        # A new file per token: an operator already running keeps its own.
        path = self.dir / f"operator-{int(time.time() * 1000)}.kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        # kubectl config on the new file only (kube.run would add the admin
        # kubeconfig's --kubeconfig), as scripts/testenv.sh writes the admin one.
        for cmd in (["set-cluster", "testenv", f"--server={server}", f"--certificate-authority={ca}",
                     "--embed-certs"],
                    ["set-credentials", OPERATOR_SA, f"--token={token}"],
                    ["set-context", "operator", "--cluster=testenv", f"--user={OPERATOR_SA}",
                     f"--namespace={OPERATOR_NAMESPACE}"],
                    ["use-context", "operator"]):
            p = subprocess.run([self.kube.kubectl_bin, "config", f"--kubeconfig={path}", *cmd],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, f"kubectl config {cmd[0]}: {p.stderr.strip()}"
        self.token, self.kubeconfig, self.minted = token, str(path), time.monotonic()
        self.server, self.ca = server, str(ca)

    def fresh(self):
        if self.token is None or time.monotonic() - self.minted > TOKEN_REUSE_S:
            self.mint()
        return self


def operator_identity(kube):
    """The ServiceAccount's RBAC installed and a kubeconfig with a token for
    it that is valid for at least another hour."""
    install_operator_rbac(kube)
    with _lock:
        ident = _identities.get(kube.kubeconfig)
        if ident is None:
            ident = _identities[kube.kubeconfig] = OperatorIdentity(kube)
        return ident.fresh()


def start_operator(kube, emu, namespace, *extra, env=None, admin=False, metrics_secure=False):
    """The operator watching namespace, against the emulator. It runs as the
    ServiceAccount acrpool-system/acrpool-controller with manifests/base's
    RBAC, unless admin=True (the admin kubeconfig, for tests that need it).
    With --leader-elect the Lease lives in acrpool-system, as in a cluster.
    /metrics is plain HTTP on 127.0.0.1 unless metrics_secure=True (HTTPS,
    reviewed by the API server, as in a cluster)."""
    kubeconfig = kube.kubeconfig if admin else operator_identity(kube).kubeconfig
    args = ["--kubeconfig", kubeconfig, "--namespaces", namespace,
            "--arm-endpoint", emu.url, "--authority-host", emu.url,
            "--devops-endpoint", f"{emu.url}/devops",
            "--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0",
            f"--metrics-secure={'true' if metrics_secure else 'false'}"]
    if "--leader-elect" in extra and not any(str(a).startswith("--leader-election-namespace") for a in extra):
        args += ["--leader-election-namespace", OPERATOR_NAMESPACE]
    return Proc(OPERATOR, [*args, *extra], env=env)


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


def wait_events(kube, namespace, name, pred, what="the Events", timeout=30):
    """The Events about name once pred(events) holds. The operator sends an
    Event from a thread of its own (as client-go's broadcaster does), so it
    may reach the API server a moment after the status that says the same."""
    def check():
        ev = events(kube, namespace, name)
        return ev if pred(ev) else None
    return wait_until(f"{what} of {name}", check, timeout=timeout)


def wait_event(kube, namespace, name, reason, type_=None, timeout=30):
    """The first Event about name with this reason (and type), once there."""
    ev = wait_events(kube, namespace, name,
                     lambda ev: any(e["reason"] == reason and type_ in (None, e["type"]) for e in ev),
                     what=f"a {reason} Event", timeout=timeout)
    return [e for e in ev if e["reason"] == reason and type_ in (None, e["type"])][0]


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
