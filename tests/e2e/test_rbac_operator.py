"""The operator under least privilege (issue 8, item 2).

The harness runs acrpool-controller as the ServiceAccount
acrpool-system/acrpool-controller, with exactly the RBAC of manifests/base
and a TokenRequest token (`kubectl create token`). Here:

- the kubeconfig the harness hands the operator authenticates as that
  ServiceAccount, and not as admin;
- with it, the operator works end to end: a pool becomes Ready and is
  deleted through its finalizer, Events are recorded, the Lease in
  acrpool-system is taken, renewed and released, and not one request of
  the operator is refused;
- the same token, used directly against the API server, is refused (403)
  what the operator must not have: Pods, writing or deleting Secrets, nodes,
  Leases outside acrpool-system, core/v1 Events, deleting our own kinds,
  RBAC objects;
- the operator itself, told to keep its Lease in another namespace, is
  refused and never starts reconciling;
- `kubectl auth can-i --list` with the token lists no wildcard resource or
  verb, and nothing beyond the ClusterRole, the leader-election Role and
  the self-review rules every authenticated user has;
- it may create TokenReviews and SubjectAccessReviews (to review scrapers
  of its /metrics) but may not itself read /metrics: that is the
  acrpool-metrics-reader role's, bound to scrapers, not to the operator.
"""
import json
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from emulator import Emulator
from harness import (OPERATOR_NAMESPACE, OPERATOR_USER, SP_SECRET, operator_identity, pool_obj,
                     setup_azure, start_operator, wait_condition, wait_events)
from procs import wait_until


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
def identity(kube):
    return operator_identity(kube)


@pytest.fixture
def operator(kube, azure, namespace, identity):
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
        assert identity.token not in p.text(), "the ServiceAccount token appeared in the operator's log"


def forbidden_requests(op):
    """Requests of the operator the API server refused (403), by its own
    rest_client_requests_total."""
    return op.metric("rest_client_requests_total", {"code": "403"}) or 0


def api(identity, method, path, body=None):
    """One request to the API server with the operator's token and nothing
    else (no client certificate): (status, decoded body)."""
    ctx = ssl.create_default_context(cafile=identity.ca)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": "Bearer " + identity.token, "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = ("application/merge-patch+json" if method == "PATCH" else "application/json")
    req = urllib.request.Request(identity.server + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def kubectl_as_operator(kube, identity, *args):
    """kubectl with the token alone: no kubeconfig user, so nothing but the
    token can authenticate the request."""
    cmd = [kube.kubectl_bin, "--kubeconfig=/dev/null", f"--server={identity.server}",
           f"--certificate-authority={identity.ca}", f"--token={identity.token}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


# --- who the operator is ---------------------------------------------------------

def test_harness_runs_the_operator_as_the_service_account(kube, identity, namespace, azure):
    p = subprocess.run([kube.kubectl_bin, "--kubeconfig", identity.kubeconfig, "auth", "whoami", "-o", "json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    user = json.loads(p.stdout)["status"]["userInfo"]
    assert user["username"] == OPERATOR_USER
    assert "system:masters" not in user.get("groups", [])
    cfg = json.loads(subprocess.run([kube.kubectl_bin, "--kubeconfig", identity.kubeconfig, "config", "view",
                                     "--minify", "-o", "json"], capture_output=True, text=True, check=True).stdout)
    assert cfg["contexts"][0]["context"]["namespace"] == OPERATOR_NAMESPACE
    (u,) = cfg["users"]
    assert set(u["user"]) == {"token"}, "the operator's kubeconfig must carry the token and nothing else"

    op = start_operator(kube, azure, namespace)
    admin_op = start_operator(kube, azure, namespace, admin=True)
    try:
        args = op.p.args
        assert args[args.index("--kubeconfig") + 1] == identity.kubeconfig
        args = admin_op.p.args
        assert args[args.index("--kubeconfig") + 1] == kube.kubeconfig
    finally:
        for p in (op, admin_op):
            p.stop()
            p.assert_clean()


# --- everything works under it ------------------------------------------------------

def test_operator_works_end_to_end_under_least_privilege(kube, namespace, azure, operator):
    me = "acrpool-controller-" + uuid.uuid4().hex[:8]
    lease = "acrpool-lease-" + namespace
    op = operator("--leader-elect", "--leader-election-id", lease,
                  "--lease-duration", "6s", "--renew-deadline", "4s", "--retry-period", "1s",
                  env={"POD_NAME": me})

    # The Lease lives in acrpool-system, held by this replica.
    def held():
        p = kube.run("get", "lease", lease, "-n", OPERATOR_NAMESPACE, "-o", "json", check=False)
        return json.loads(p.stdout) if p.returncode == 0 and me in p.stdout else None
    first = wait_until("the Lease in acrpool-system", held, timeout=60)
    assert first["spec"]["holderIdentity"] == me
    assert kube.run("get", "lease", lease, "-n", namespace, check=False).returncode != 0

    # The docs' workflow: create, scale to zero, delete.
    kube.apply(pool_obj("leastpriv", tier="S1"), namespace)
    obj = wait_condition(kube, "agentpool", "leastpriv", namespace, "Ready")
    assert obj["metadata"]["finalizers"], "the finalizer was not added"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    wait_condition(kube, "registry", "myregistry", namespace, "Ready")
    kube.apply(pool_obj("leastpriv", tier="S1", count=0), namespace)
    kube.run("wait", "--for=jsonpath={.status.count}=0", "agentpool/leastpriv", "-n", namespace, "--timeout=60s")

    # one Event per outcome, Azure answering at once
    ev = wait_events(kube, namespace, "leastpriv", lambda ev: {e["reason"] for e in ev} == {"Created", "Scaled"})
    assert all(e["reportingController"] == "acrpool.dev/acrpool-controller" for e in ev)
    assert all(e["reportingInstance"] == me for e in ev)

    # The Lease is renewed, not only taken.
    wait_until("a renewal of the Lease",
               lambda: (held() or {}).get("spec", {}).get("renewTime") != first["spec"]["renewTime"], timeout=30)

    kube.run("delete", "agentpool", "leastpriv", "-n", namespace, "--timeout=60s")
    assert azure.requests(method="DELETE", path_contains="/agentPools/leastpriv")

    # Not one of the operator's requests was refused.
    assert op.metric("rest_client_requests_total", {"verb": "PATCH"}), "no PATCH recorded at all"
    assert forbidden_requests(op) == 0, "the operator was refused a request it needs"

    # SIGTERM releases the Lease (an update, which the Role allows).
    assert op.stop() == 0
    lease_obj = kube.get("lease", lease, OPERATOR_NAMESPACE)
    assert not lease_obj["spec"].get("holderIdentity")


def test_operator_refused_a_lease_outside_its_namespace(kube, namespace, azure, operator):
    """--leader-election-namespace pointing elsewhere: the Role does not
    reach there, so the operator is refused the Lease (403), keeps asking
    and never starts reconciling; nothing is written to Azure."""
    op = operator("--leader-elect", "--leader-election-namespace", namespace, "--retry-period", "1s",
                  "--renew-deadline", "4s", "--lease-duration", "6s")
    kube.apply(pool_obj("neverled"), namespace)
    wait_until("the operator refused its Lease", lambda: forbidden_requests(op) >= 1, timeout=60)
    seen = forbidden_requests(op)
    wait_until("three more refusals", lambda: forbidden_requests(op) >= seen + 3, timeout=60)
    assert op.alive()
    assert op.find("waiting for leadership") and not op.find("became leader")
    assert not (kube.get("agentpool", "neverled", namespace).get("status") or {}).get("conditions")
    assert kube.run("get", "leases", "-n", namespace, "-o", "name").stdout.strip() == ""
    assert not [r for r in azure.requests() if r["method"] in ("PUT", "PATCH", "DELETE")]
    assert op.stop() == 0


# --- the token, used directly, is refused the rest -------------------------------------

def _lease(name):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
            "spec": {"holderIdentity": "someone", "leaseDurationSeconds": 15}}


DENIED = [
    ("create a Pod in acrpool-system", "POST", "/api/v1/namespaces/acrpool-system/pods",
     {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evil"},
      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    ("delete a Secret", "DELETE", "/api/v1/namespaces/{ns}/secrets/sp", None),
    ("create a Secret", "POST", "/api/v1/namespaces/{ns}/secrets",
     {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "planted"}, "stringData": {"k": "v"}}),
    ("update a Secret", "PATCH", "/api/v1/namespaces/{ns}/secrets/sp", {"stringData": {"AZURE_CLIENT_SECRET": "x"}}),
    ("update a ConfigMap", "PATCH", "/api/v1/namespaces/{ns}/configmaps/cm", {"data": {"k": "changed"}}),
    ("list nodes", "GET", "/api/v1/nodes", None),
    ("list namespaces", "GET", "/api/v1/namespaces", None),
    ("update a Lease in another namespace", "PUT", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/theirs",
     _lease("theirs")),
    ("create a Lease in another namespace", "POST", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
     _lease("mine")),
    ("delete the Lease in acrpool-system", "DELETE",
     "/apis/coordination.k8s.io/v1/namespaces/acrpool-system/leases/acrpool-controller", None),
    ("create a core/v1 Event", "POST", "/api/v1/namespaces/{ns}/events",
     {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x.1"},
      "involvedObject": {"kind": "Secret", "name": "sp", "namespace": "{ns}"}, "reason": "X", "message": "x"}),
    ("delete an AgentPool", "DELETE", "/apis/acrpool.dev/v1alpha1/namespaces/{ns}/agentpools/victim", None),
    ("create an AgentPool", "POST", "/apis/acrpool.dev/v1alpha1/namespaces/{ns}/agentpools",
     pool_obj("planted")),
    ("create a ClusterRole", "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "escalate"},
      "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
    ("bind itself to cluster-admin", "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "escalate"},
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
      "subjects": [{"kind": "ServiceAccount", "name": "acrpool-controller", "namespace": "acrpool-system"}]}),
    ("create a token for itself", "POST",
     "/api/v1/namespaces/acrpool-system/serviceaccounts/acrpool-controller/token",
     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    ("read /metrics (acrpool-metrics-reader is for scrapers)", "GET", "/metrics", None),
    ("patch a CRD", "PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/agentpools.acrpool.dev",
     {"metadata": {"labels": {"x": "y"}}}),
]


@pytest.fixture
def targets(kube, namespace):
    """What the denied requests aim at, created as admin."""
    kube.run("create", "secret", "generic", "sp", "-n", namespace, "--from-literal=AZURE_CLIENT_SECRET=keep")
    kube.run("create", "configmap", "cm", "-n", namespace, "--from-literal=k=v")
    kube.apply(_lease("theirs"), namespace)
    kube.apply(pool_obj("victim"), namespace)
    return namespace


def _fill(value, ns):
    return json.loads(json.dumps(value).replace("{ns}", ns)) if value is not None else None


@pytest.mark.parametrize("what,method,path,body", DENIED, ids=[d[0] for d in DENIED])
def test_token_is_refused(kube, identity, targets, what, method, path, body):
    ns = targets
    status, res = api(identity, method, _fill(path, ns), _fill(body, ns))
    assert status == 403, f"{what}: {status} {res}"
    assert isinstance(res, dict) and res.get("reason") == "Forbidden", res
    assert OPERATOR_USER in res["message"], res["message"]
    # And nothing changed.
    assert kube.get("secret", "sp", ns)["data"]["AZURE_CLIENT_SECRET"] == "a2VlcA=="  # "keep"
    assert kube.get("configmap", "cm", ns)["data"] == {"k": "v"}
    assert kube.get("lease", "theirs", ns)["spec"]["holderIdentity"] == "someone"
    assert kube.run("get", "agentpool", "victim", "-n", ns, check=False).returncode == 0


ALLOWED = [
    ("read a Secret", "GET", "/api/v1/namespaces/{ns}/secrets/sp"),
    ("read a ConfigMap", "GET", "/api/v1/namespaces/{ns}/configmaps/cm"),
    ("list AgentPools everywhere", "GET", "/apis/acrpool.dev/v1alpha1/agentpools"),
    ("read an AgentPool's status", "GET", "/apis/acrpool.dev/v1alpha1/namespaces/{ns}/agentpools/victim/status"),
]


@pytest.mark.parametrize("what,method,path", ALLOWED, ids=[a[0] for a in ALLOWED])
def test_token_is_allowed_what_the_operator_reads(identity, targets, what, method, path):
    """The control for the refusals above: the same token, same client, is
    accepted for what the operator does use."""
    status, res = api(identity, method, _fill(path, targets))
    assert status == 200, f"{what}: {status} {res}"


def test_token_may_review_scrapers(kube, identity):
    """What the metrics endpoint asks the API server, with the operator's
    own token: a TokenReview (here of its own token) and a
    SubjectAccessReview for the reviewed user on /metrics, which says no:
    the operator is not a scraper."""
    status, res = api(identity, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                      {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                       "spec": {"token": identity.token}})
    assert status == 201, res
    user = res["status"]["user"]
    assert res["status"]["authenticated"] is True and user["username"] == OPERATOR_USER
    status, res = api(identity, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                      {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                       "spec": {"user": user["username"], "groups": user["groups"],
                                "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}})
    assert status == 201, res
    assert res["status"]["allowed"] is False


# --- kubectl auth can-i --list -------------------------------------------------------------

SELF_REVIEWS = {"selfsubjectreviews.authentication.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io",
                "selfsubjectrulesreviews.authorization.k8s.io"}
KINDS = ["registries", "agentpools", "tasks", "taskruns", "pipelineagentpools"]


def can_i_list(kube, identity, namespace):
    """The rows of `kubectl auth can-i --list`: (resource, non-resource URL,
    resource names, verbs)."""
    p = kubectl_as_operator(kube, identity, "auth", "can-i", "--list", "-n", namespace)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    header = lines[0]
    cols = [header.index(h) for h in ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() if b else line[a:].strip()
                 for a, b in zip(cols, cols[1:] + [None])]
        verbs = cells[3].strip("[]").split()
        rows.append((cells[0], cells[1].strip("[]"), cells[2].strip("[]"), frozenset(verbs)))
    return rows


@pytest.mark.parametrize("where", ["workload", OPERATOR_NAMESPACE])
def test_can_i_list_shows_no_wildcard(kube, identity, namespace, where):
    ns = namespace if where == "workload" else where
    rows = can_i_list(kube, identity, ns)
    resources = {r[0]: r[3] for r in rows if r[0]}
    for res, verbs in resources.items():
        assert "*" not in res, f"wildcard resource {res}"
        assert "*" not in verbs, f"wildcard verb on {res}"
    expected = {f"{k}.acrpool.dev": {"get", "list", "watch", "update", "patch"} for k in KINDS}
    expected |= {f"{k}.acrpool.dev/status": {"get", "update", "patch"} for k in KINDS}
    expected |= {f"{k}.acrpool.dev/finalizers": {"update"} for k in KINDS}
    expected |= {"secrets": {"get", "list", "watch"}, "configmaps": {"get", "list", "watch"},
                 "events.events.k8s.io": {"create", "patch"}}
    expected |= {r: {"create"} for r in SELF_REVIEWS}
    # Reviewing scrapers of /metrics (manifests/base/metrics-rbac.yaml).
    expected |= {"tokenreviews.authentication.k8s.io": {"create"},
                 "subjectaccessreviews.authorization.k8s.io": {"create"}}
    if ns == OPERATOR_NAMESPACE:
        expected["leases.coordination.k8s.io"] = {"get", "create", "update"}
    assert resources == expected
    # Non-resource URLs are the API server's default discovery, health and
    # OIDC discovery paths every authenticated user may GET (the bootstrap
    # roles system:discovery, system:public-info-viewer and
    # system:service-account-issuer-discovery); read-only.
    for res, url, names, verbs in rows:
        if not res:
            assert url and verbs == {"get"}, (url, verbs)
            assert url.rstrip("/*").rstrip("/") in ("/api", "/apis", "/openapi", "/healthz", "/livez", "/readyz",
                                                    "/version", "/.well-known/openid-configuration",
                                                    "/openid/v1/jwks"), url
        assert names == "", f"{res} limited by resource names: unexpected"
