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

Monitoring (issue 15, points 4 and 5), off by default: manifests/monitoring
is the one source here too.

- the chart's copies of the alert rules and the dashboard
  (files/monitoring) are byte for byte manifests/monitoring's;
- rendered with every monitoring value on, the chart adds exactly the
  objects of manifests/monitoring (ServiceMonitor, PrometheusRule, the
  binding of acrpool-metrics-reader to Prometheus, the dashboard's
  ConfigMap), equal to them apart from the chart's labels, and changes
  nothing else;
- that render lints and is accepted by the real API server with the
  Prometheus Operator's own CRDs installed (server-side dry run, strict
  field validation), whose schemas are seen to be in force;
- each monitoring value lands where it should (selector labels, interval,
  runbook base URL, the binding's subject, the dashboard's label, namespace
  and annotations), and each object comes with its own value only.

Helm is built by scripts/helm.sh from the Go module proxy (the Makefile's
e2e target builds it before the suite runs). The Prometheus Operator's CRDs
come from the Go module proxy too (the module's example/prometheus-operator-crd,
pinned by version and hash, kept in the Go module cache under ~/.cache/acrpool).
"""
import copy
import json
import os
import pathlib
import re
import subprocess
import time
import uuid

import pytest
import yaml

from emulator import Emulator
from harness import OPERATOR, SP_SECRET, pool_obj, setup_azure, wait_condition
from kubeenv import ROOT
from procs import Proc
from test_delivery import BASE, FINALIZER_POLICY, OVERLAY, build, ensure_namespaces, json_stream, known_flags, one

CHART = ROOT / "charts" / "acrpool"
RELEASE_NS = "acrpool-system"
MONITORING = ROOT / "manifests" / "monitoring"
MONITORING_VALUES = ("serviceMonitor", "prometheusRule", "metricsReaderBinding", "dashboard")
MONITORING_ON = [f"monitoring.{v}.enabled=true" for v in MONITORING_VALUES]

# The Prometheus Operator release whose CRDs the monitoring objects are
# checked against, and its module's go.sum hash: every machine tests against
# the same bytes.
PROM_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROM_OPERATOR_VERSION = "v0.85.0"
PROM_OPERATOR_SUM = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="


@pytest.fixture(scope="module")
def helm():
    p = subprocess.run([str(ROOT / "scripts" / "helm.sh"), "build"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


# What a cluster of Kubernetes 1.36 or later serves and `helm template`
# does not assume (its built-in API versions are older): the chart's
# finalizer policy is rendered only where this is served.
MAP_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"


def template(helm, *sets, ns=RELEASE_NS, api_versions=(MAP_API,)):
    """helm template as against a cluster serving api_versions (by default
    the test API server's: Kubernetes 1.36)."""
    args = [helm, "template", "acrpool", str(CHART), "-n", ns]
    for v in api_versions:
        args += ["--api-versions", v]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def render(kube, helm, *sets, ns=RELEASE_NS, check=True, api_versions=(MAP_API,)):
    """helm template of the chart as a list of objects (YAML turned into JSON
    by kubectl, as test_delivery does for kustomize)."""
    p = template(helm, *sets, ns=ns, api_versions=api_versions)
    if not check:
        return p
    assert p.returncode == 0, p.stderr
    out = kube.run("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", "-", input=p.stdout).stdout
    return json_stream(out)


def render_yaml(helm, *sets, ns=RELEASE_NS):
    """helm template as a list of objects read with PyYAML: kubectl cannot
    convert kinds the API server does not serve, and the monitoring objects'
    CRDs (the Prometheus Operator's) are not installed for every test."""
    p = template(helm, *sets, ns=ns)
    assert p.returncode == 0, p.stderr
    return [o for o in yaml.safe_load_all(p.stdout) if o]


def kustomize_yaml(kube, path):
    return [o for o in yaml.safe_load_all(kube.run("kustomize", str(path)).stdout) if o]


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
    p = subprocess.run([helm, "lint", "--strict", str(CHART), *(a for v in MONITORING_ON for a in ("--set", v))],
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


def test_finalizer_policy_render_is_manifests_finalizer_policy(kube, helm):
    """Off by default (the base has no policy either). With
    finalizerPolicy.enabled on a cluster serving MutatingAdmissionPolicy it
    adds exactly manifests/finalizer-policy's objects, bound with
    watchNamespaces to those namespaces only; where the API is not served
    (before Kubernetes 1.36) it renders nothing."""
    base = render(kube, helm)
    assert not [o for o in base if o["kind"].startswith("MutatingAdmissionPolicy")]
    on = render(kube, helm, "finalizerPolicy.enabled=true")
    assert_same_objects(build(kube, BASE) + build(kube, FINALIZER_POLICY), on)
    older = render(kube, helm, "finalizerPolicy.enabled=true", api_versions=())
    assert_same_objects(build(kube, BASE), older)
    scoped = render(kube, helm, "finalizerPolicy.enabled=true", "watchNamespaces={ci,qa}")
    binding = one(scoped, "MutatingAdmissionPolicyBinding")
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ci", "qa"]}]}


def prepare_release_namespace(kube, objs):
    if kube.run("get", "namespace", RELEASE_NS, check=False).returncode != 0:
        kube.run("create", "namespace", RELEASE_NS)
    # The restricted Pod Security Standard, as docs/deploy-aks.md asks of
    # the release's namespace: the API server warns if the pods break it.
    kube.run("label", "--overwrite", "namespace", RELEASE_NS, "pod-security.kubernetes.io/enforce=restricted")
    ensure_namespaces(kube, objs)


@pytest.mark.parametrize("sets", [[], ["watchNamespaces={ci}"]], ids=["default", "single-namespace"])
def test_render_accepted_by_api_server(kube, helm, sets):
    objs = render(kube, helm, *sets)
    prepare_release_namespace(kube, objs)
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
    ("monitoring.serviceMonitor.enabled=yes", "/monitoring/serviceMonitor/enabled"),
    ("monitoring.serviceMonitor.interval=often", "/monitoring/serviceMonitor/interval"),
    ("monitoring.serviceMonitor.additionalLabels.release=not a label value",
     "/monitoring/serviceMonitor/additionalLabels/release"),
    ("monitoring.prometheusRule.runbookBaseURL=docs/operations.md", "/monitoring/prometheusRule/runbookBaseURL"),
    ("monitoring.prometheusRule.runbookBaseURL=https://example.com/ops.md#runbooks",
     "/monitoring/prometheusRule/runbookBaseURL"),
    ("monitoring.metricsReaderBinding.serviceAccount.namespace=Bad_NS",
     "/monitoring/metricsReaderBinding/serviceAccount/namespace"),
    ("monitoring.dashboard.label=grafana dashboard", "/monitoring/dashboard/label"),
    ("monitoring.dashboard.namespace=Grafana", "/monitoring/dashboard/namespace"),
    ("monitoring.grafana.enabled=true", "grafana"),
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


# --- monitoring (manifests/monitoring as optional templates) ----------------------------------

@pytest.fixture(scope="module")
def monitoring_crds(kube, tmp_path_factory):
    """The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs in the
    session's API server. They come from the Go module proxy (the module zip
    holds example/prometheus-operator-crd/) into the Go module cache that
    scripts/helm.sh builds with (~/.cache/acrpool/gomod, keyed by version),
    so only the first run downloads; the hash pins the bytes. Cluster-scoped
    and used by no other test: applied server-side, which is idempotent."""
    go = subprocess.run([str(ROOT / "scripts" / "go.sh")], capture_output=True, text=True, timeout=1800)
    assert go.returncode == 0, go.stderr
    cache = pathlib.Path(os.environ.get("ACRPOOL_CACHE") or
                         pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "acrpool")
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-modcacherw", GO111MODULE="on", GOWORK="off",
               GOMODCACHE=os.environ.get("GOMODCACHE") or str(cache / "gomod"))
    p = subprocess.run([go.stdout.strip(), "mod", "download", "-json", f"{PROM_OPERATOR}@{PROM_OPERATOR_VERSION}"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path_factory.mktemp("gomod"))
    assert p.returncode == 0, p.stdout + p.stderr
    mod = json.loads(p.stdout)
    assert mod["Sum"] == PROM_OPERATOR_SUM, mod
    crds = pathlib.Path(mod["Dir"]) / "example" / "prometheus-operator-crd"
    files = [a for n in ("servicemonitors", "prometheusrules")
             for a in ("-f", str(crds / f"monitoring.coreos.com_{n}.yaml"))]
    kube.run("apply", "--server-side", "--field-manager=acrpool-test-chart", *files)
    kube.run("wait", "--for", "condition=Established", "--timeout=60s", *files)


def test_chart_monitoring_files_are_manifests_monitoring():
    """The rules and the dashboard have one source, manifests/monitoring; the
    chart reads its copies of them as they are."""
    files = CHART / "files" / "monitoring"
    assert sorted(p.name for p in files.iterdir()) == ["dashboard.json", "prometheusrule.yaml"]
    for name in ("prometheusrule.yaml", "dashboard.json"):
        assert (files / name).read_bytes() == (MONITORING / name).read_bytes(), \
            f"charts/acrpool/files/monitoring/{name} differs: cp manifests/monitoring/{name} {files.relative_to(ROOT)}/"


def test_monitoring_is_off_by_default(helm):
    objs = render_yaml(helm)
    assert not [o for o in objs if o["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert "acrpool-metrics-reader-prometheus" not in [o["metadata"]["name"] for o in objs]
    assert "acrpool-grafana-dashboard" not in [o["metadata"]["name"] for o in objs]


def test_monitoring_render_is_manifests_monitoring(kube, helm):
    default = {key(o): o for o in render_yaml(helm)}
    on = render_yaml(helm, *MONITORING_ON)
    added = [o for o in on if key(o) not in default]
    assert sorted(key(o) for o in added) == [
        ("ClusterRoleBinding", "acrpool-metrics-reader-prometheus", None),
        ("ConfigMap", "acrpool-grafana-dashboard", RELEASE_NS),
        ("PrometheusRule", "acrpool-controller", RELEASE_NS),
        ("ServiceMonitor", "acrpool-controller", RELEASE_NS),
    ]
    # The same objects as `kubectl apply -k manifests/monitoring`: rules,
    # runbook URLs, scrape settings, subject, dashboard bytes, labels.
    assert_same_objects(kustomize_yaml(kube, MONITORING), added)
    # The ServiceMonitor finds the chart's metrics Service.
    sm, svc = one(added, "ServiceMonitor"), one(on, "Service", "acrpool-controller-metrics")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in svc["spec"]["ports"]]
    # The binding names the chart's ClusterRole.
    assert one(on, "ClusterRole", one(added, "ClusterRoleBinding")["roleRef"]["name"])
    # And the rest of the release is unchanged.
    assert {key(o): o for o in on if key(o) in default} == default


def test_monitoring_render_accepted_by_api_server(kube, helm, monitoring_crds):
    objs = render_yaml(helm, *MONITORING_ON)
    prepare_release_namespace(kube, objs)
    p = kube.run("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                 input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    for what in ("servicemonitor.monitoring.coreos.com/acrpool-controller",
                 "prometheusrule.monitoring.coreos.com/acrpool-controller",
                 "clusterrolebinding.rbac.authorization.k8s.io/acrpool-metrics-reader-prometheus",
                 "configmap/acrpool-grafana-dashboard",
                 "deployment.apps/acrpool-controller"):
        assert re.search(rf"^{re.escape(what)} (created|configured|unchanged) \(server dry run\)$", p.stdout, re.M), \
            p.stdout
    assert "would violate PodSecurity" not in p.stderr, p.stderr
    # The Prometheus Operator's schemas are in force, not a schema-less
    # stand-in: a malformed rule duration and an unknown endpoint field are refused.
    rule = copy.deepcopy(one(objs, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    p = kube.run("apply", "--dry-run=server", "-f", "-", input=json.dumps(rule), check=False)
    assert p.returncode != 0 and "spec.groups[0].rules[0].for" in p.stderr, p.stdout + p.stderr
    sm = copy.deepcopy(one(objs, "ServiceMonitor"))
    sm["spec"]["endpoints"][0]["bearerToken"] = "x"
    p = kube.run("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(sm), check=False)
    assert p.returncode != 0 and 'unknown field "spec.endpoints[0].bearerToken"' in p.stderr, p.stdout + p.stderr


def test_monitoring_values_land_where_they_should(kube, helm):
    ours = {key(o): o for o in kustomize_yaml(kube, MONITORING)}
    objs = render_yaml(helm, *MONITORING_ON,
                       "monitoring.serviceMonitor.additionalLabels.release=kube-prometheus-stack",
                       "monitoring.serviceMonitor.interval=15s",
                       "monitoring.prometheusRule.additionalLabels.release=kube-prometheus-stack",
                       "monitoring.prometheusRule.runbookBaseURL=https://docs.example.com/acrpool/operations/",
                       "monitoring.metricsReaderBinding.serviceAccount.name=kps-kube-prometheus-stack-prometheus",
                       "monitoring.metricsReaderBinding.serviceAccount.namespace=observability",
                       "monitoring.dashboard.label=dashboards", "monitoring.dashboard.labelValue=1",
                       "monitoring.dashboard.namespace=observability",
                       "monitoring.dashboard.annotations.grafana_folder=CI", ns="ops")
    sm = one(objs, "ServiceMonitor")
    assert sm["metadata"]["namespace"] == "ops"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["metadata"]["labels"]["app.kubernetes.io/name"] == "acrpool-controller"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert sm["spec"]["endpoints"][0]["interval"] == "15s"

    rule = one(objs, "PrometheusRule")
    assert rule["metadata"]["namespace"] == "ops"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    base = ours[("PrometheusRule", "acrpool-controller", "acrpool-system")]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(alerts) == len([r for g in base["spec"]["groups"] for r in g["rules"]]) > 0
    for r in alerts:
        assert r["annotations"]["runbook_url"] == \
            f"https://docs.example.com/acrpool/operations#{r['alert'].lower()}", r["alert"]
    # Only the URLs moved.
    for r in (r for g in [*rule["spec"]["groups"], *base["spec"]["groups"]] for r in g["rules"]):
        r["annotations"].pop("runbook_url")
    assert rule["spec"] == base["spec"]

    binding = one(objs, "ClusterRoleBinding", "acrpool-metrics-reader-prometheus")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kps-kube-prometheus-stack-prometheus",
                                    "namespace": "observability"}]

    cm = one(objs, "ConfigMap", "acrpool-grafana-dashboard")
    assert cm["metadata"]["namespace"] == "observability"
    assert cm["metadata"]["labels"]["dashboards"] == "1"   # a number, written as a label's string
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "CI"}
    assert json.loads(cm["data"]["acrpool.json"]) == json.loads((MONITORING / "dashboard.json").read_text())

    # A label of the release's own is not overridden (nor written twice).
    sm = one(render_yaml(helm, "monitoring.serviceMonitor.enabled=true",
                         "monitoring.serviceMonitor.additionalLabels.app\\.kubernetes\\.io/name=other"),
             "ServiceMonitor")
    assert sm["metadata"]["labels"]["app.kubernetes.io/name"] == "acrpool-controller"

    # Each value brings its own object and nothing else.
    default = {key(o) for o in render_yaml(helm)}
    for v in MONITORING_VALUES:
        added = [key(o) for o in render_yaml(helm, f"monitoring.{v}.enabled=true") if key(o) not in default]
        assert len(added) == 1, (v, added)
        assert added[0] in ours, (v, added)


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
