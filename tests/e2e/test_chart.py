"""The Helm chart (charts/acrpool, issue 15 point 1).

The kustomize base (manifests/base) is the one source; the chart is checked
against it so the two cannot drift:

- `helm lint --strict` passes; values.schema.json refuses bad values with
  the value's path in the message;
- the chart's CRDs are byte for byte the repository's crds/;
- rendered with its defaults, the chart is the base (same objects, same
  RBAC rules, same pod spec), apart from the Namespace, which Helm leaves
  to `--create-namespace`; rendered with watchNamespaces it is the
  single-namespace overlay (RoleBindings in the watched namespaces, no
  cluster-wide binding);
- both renders are accepted by the real API server (server-side dry run,
  no PodSecurity warning under the restricted standard);
- each value lands where it should;
- the operator runs from the chart's rendered Deployment (its flags and
  environment) as the chart's ServiceAccount with only the chart's RBAC,
  and a pool becomes Ready with no request refused.

Helm is built by scripts/helm.sh from the Go module proxy (the Makefile's
e2e target builds it before the suite runs).
"""
import copy
import json
import os
import pathlib
import subprocess
import time
import uuid

import pytest

from emulator import Emulator
from harness import OPERATOR, SP_SECRET, pool_obj, setup_azure, wait_condition
from kubeenv import ROOT
from procs import Proc
from test_delivery import BASE, OVERLAY, build, ensure_namespaces, json_stream, known_flags, one

CHART = ROOT / "charts" / "acrpool"
RELEASE_NS = "acrpool-system"


@pytest.fixture(scope="module")
def helm():
    p = subprocess.run([str(ROOT / "scripts" / "helm.sh"), "build"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def render(kube, helm, *sets, ns=RELEASE_NS, check=True):
    """helm template of the chart as a list of objects (YAML turned into JSON
    by kubectl, as test_delivery does for kustomize)."""
    args = [helm, "template", "acrpool", str(CHART), "-n", ns]
    for s in sets:
        args += ["--set", s]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if not check:
        return p
    assert p.returncode == 0, p.stderr
    out = kube.run("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", "-", input=p.stdout).stdout
    return json_stream(out)


def key(o):
    return (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))


def essentials(o):
    """What must be the same between base and chart: everything but labels
    (the chart adds Helm's), and the pod template's labels likewise."""
    o = copy.deepcopy(o)
    md = o["metadata"]
    o["metadata"] = {k: md[k] for k in ("name", "namespace", "annotations") if k in md}
    if o["kind"] == "Deployment":
        o["spec"]["template"]["metadata"].pop("labels")
    return o


def assert_same_objects(base_objs, chart_objs):
    base = {key(o): o for o in base_objs if o["kind"] != "Namespace"}
    chart = {key(o): o for o in chart_objs}
    assert sorted(chart) == sorted(base)
    for k, b in base.items():
        c = chart[k]
        if k[0] == "CustomResourceDefinition":
            # The files themselves, unlabelled (kustomize adds part-of).
            assert c["spec"] == b["spec"], k
            continue
        # The base's labels are all there; the chart may add its own.
        assert b["metadata"].get("labels", {}).items() <= c["metadata"].get("labels", {}).items(), k
        if k[0] == "Deployment":
            bt, ct = b["spec"]["template"]["metadata"]["labels"], c["spec"]["template"]["metadata"]["labels"]
            assert bt.items() <= ct.items()
        assert essentials(c) == essentials(b), f"{k} differs between the chart and the kustomize base"


def test_chart_lints(helm):
    p = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run([helm, "lint", "--strict", str(CHART), "--set", "watchNamespaces={ci,qa}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_chart_crds_are_the_repository_crds():
    ours = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert chart == ours, "charts/acrpool/files/crds differs from crds/: cp crds/*.yaml charts/acrpool/files/crds/"


def test_default_render_is_the_kustomize_base(kube, helm):
    assert_same_objects(build(kube, BASE), render(kube, helm))


def test_watch_namespaces_render_is_the_single_namespace_overlay(kube, helm):
    # The overlay watches `ci`.
    chart = render(kube, helm, "watchNamespaces={ci}")
    # Only the metrics reviews stay cluster-wide (a RoleBinding cannot grant them).
    assert [o["metadata"]["name"] for o in chart if o["kind"] == "ClusterRoleBinding"] == \
        ["acrpool-controller-metrics-auth"]
    assert_same_objects(build(kube, OVERLAY), chart)
    two = render(kube, helm, "watchNamespaces={ci,qa}")
    bindings = sorted(o["metadata"]["namespace"] for o in two
                      if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "acrpool-controller")
    assert bindings == ["ci", "qa"]
    (c,) = one(two, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--namespaces=ci,qa" in c["args"]


@pytest.mark.parametrize("sets", [[], ["watchNamespaces={ci}"]], ids=["default", "single-namespace"])
def test_render_accepted_by_api_server(kube, helm, sets):
    objs = render(kube, helm, *sets)
    if kube.run("get", "namespace", RELEASE_NS, check=False).returncode != 0:
        kube.run("create", "namespace", RELEASE_NS)
    # The restricted Pod Security Standard, as docs/deploy-aks.md asks of
    # the release's namespace: the API server warns if the pods break it.
    kube.run("label", "--overwrite", "namespace", RELEASE_NS, "pod-security.kubernetes.io/enforce=restricted")
    ensure_namespaces(kube, objs)
    p = kube.run("apply", "--dry-run=server", "-f", "-",
                 input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    assert "deployment.apps/acrpool-controller created (server dry run)" in p.stdout or \
        "deployment.apps/acrpool-controller configured (server dry run)" in p.stdout or \
        "deployment.apps/acrpool-controller unchanged (server dry run)" in p.stdout, p.stdout
    assert "would violate PodSecurity" not in p.stderr, p.stderr


@pytest.mark.parametrize("value,path", [
    ("replicas=0", "/replicas"),
    ("logLevel=verbose", "/logLevel"),
    ("workers=0", "/workers"),
    ("resyncPeriod=soon", "/resyncPeriod"),
    ("workloadIdentity.clientId=not-a-guid", "/workloadIdentity/clientId"),
    ("watchNamespaces={Bad_NS}", "/watchNamespaces/0"),
    ("extraArgs={leader-elect}", "/extraArgs/0"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("nope=1", "nope"),
])
def test_values_schema_refuses_bad_values(kube, helm, value, path):
    p = render(kube, helm, value, check=False)
    assert p.returncode != 0
    assert path in p.stderr, p.stderr


def test_values_land_where_they_should(kube, helm):
    objs = render(kube, helm, "image.repository=myregistry.azurecr.io/acrpool-controller", "image.tag=1.2.3",
                  "replicas=3", "logLevel=debug", "resyncPeriod=5m", "workers=8",
                  "workloadIdentity.clientId=11111111-2222-3333-4444-555555555555",
                  "extraArgs={--queue-poll-interval=15s}", "extraEnv[0].name=HTTPS_PROXY",
                  "extraEnv[0].value=http://proxy:3128", "nodeSelector.agentpool=system",
                  "tolerations[0].key=CriticalAddonsOnly", "tolerations[0].operator=Exists",
                  "podAnnotations.team=platform", "priorityClassName=system-cluster-critical",
                  "resources.limits.memory=512Mi", "installCRDs=false", "networkPolicy.enabled=false",
                  "leaderElection=false")
    kinds = {o["kind"] for o in objs}
    assert "CustomResourceDefinition" not in kinds and "NetworkPolicy" not in kinds
    assert not [o for o in objs if o["kind"] == "Role"], "no leader-election Role without leader election"
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert dep["spec"]["replicas"] == 3
    assert c["image"] == "myregistry.azurecr.io/acrpool-controller:1.2.3"
    assert c["args"] == ["--log-level=debug", "--resync-period=5m", "--workers=8", "--queue-poll-interval=15s"]
    flags, _ = known_flags()
    assert all(a[2:].split("=")[0] in flags for a in c["args"]), c["args"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in c["env"]
    assert c["resources"]["limits"]["memory"] == "512Mi" and c["resources"]["requests"]["cpu"] == "50m"
    assert pod["nodeSelector"] == {"agentpool": "system"}
    assert pod["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"team": "platform"}
    sa = one(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == "11111111-2222-3333-4444-555555555555"
    # The image tag defaults to the chart's appVersion.
    (c,) = one(render(kube, helm), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "acrpool-controller:0.1.0"


# --- the operator as the chart deploys it ------------------------------------------------------

@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


def sa_kubeconfig(kube, ns, sa, directory):
    """A kubeconfig for ServiceAccount ns/sa with a TokenRequest token, as a
    pod of the chart's Deployment would authenticate."""
    token = kube.run("-n", ns, "create", "token", sa, "--duration=1h").stdout.strip()
    view = json.loads(kube.run("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = view["clusters"][0]["cluster"]
    path = directory / "chart-operator.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "testenv", "cluster": {k: cluster[k] for k in cluster
                                                       if k in ("server", "certificate-authority-data",
                                                                "certificate-authority")}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "testenv", "user": sa, "namespace": ns}}],
    }))
    os.chmod(path, 0o600)
    return token, str(path)


def test_operator_runs_from_the_rendered_chart(kube, helm, emu, namespace, tmp_path):
    # A release namespace of its own: the chart's ServiceAccount there has
    # only what the chart grants it (no other binding names it).
    release_ns = "acrpool-chart-" + uuid.uuid4().hex[:6]
    kube.run("create", "namespace", release_ns)
    try:
        objs = render(kube, helm, f"watchNamespaces={{{namespace}}}", "installCRDs=false", ns=release_ns)
        rbac = [o for o in objs if o["kind"] in ("ServiceAccount", "ClusterRole", "Role", "RoleBinding")]
        kube.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}))
        token, kubeconfig = sa_kubeconfig(kube, release_ns, "acrpool-controller", tmp_path)

        (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
        # The container's flags and environment as rendered; the pod's
        # downward API values filled in as the kubelet would; only the
        # endpoints differ (the emulator, loopback ports and plain metrics
        # for the test to read, no in-cluster config).
        env = dict(os.environ)
        for e in c["env"]:
            ref = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            env[e["name"]] = {"metadata.namespace": release_ns, "metadata.name": "acrpool-controller-0"}[ref] \
                if ref else e["value"]
        args = [*c["args"], "--kubeconfig", kubeconfig, "--arm-endpoint", emu.url, "--authority-host", emu.url,
                "--metrics-bind-address", "127.0.0.1:0", "--metrics-secure=false",
                "--health-probe-bind-address", "127.0.0.1:0"]
        emu.reset()
        setup_azure(kube, emu, namespace)
        op = Proc(OPERATOR, args, env=env)
        try:
            kube.apply(pool_obj("chartpool", count=1), namespace)
            wait_condition(kube, "agentpool", "chartpool", namespace, "Ready", "True")
            # The Lease is in the release's namespace (POD_NAMESPACE), and not
            # one request of the operator was refused.
            lease = json.loads(kube.run("-n", release_ns, "get", "lease", "acrpool-controller", "-o", "json").stdout)
            assert lease["spec"]["holderIdentity"] == "acrpool-controller-0"
            assert (op.metric("rest_client_requests_total", {"code": "403"}) or 0) == 0
        finally:
            op.stop()
            op.assert_clean()
        for secret in (SP_SECRET, token):
            assert secret not in op.text()
    finally:
        kube.run("delete", "namespace", release_ns, "--wait=false")
