"""Delivery: what a platform team installs.

- manifests/base and the single-namespace overlay are accepted by a real API
  server (server-side dry run), and the pod template passes the restricted
  Pod Security Standard as the API server enforces it;
- the RBAC, applied for real, gives the controller's ServiceAccount exactly
  what the operator uses and refuses the rest (kubectl auth can-i);
- the Dockerfile cannot rot silently: its runtime packages cover every
  shared library the built binary loads, and its build stage runs the same
  dependency script and CMake build as CI.

The image itself is not built here (no container engine on the test
machines).
"""
import json
import os
import pathlib
import re
import shlex
import subprocess
import uuid

import pytest

from kubeenv import ROOT

BASE = ROOT / "manifests" / "base"
OVERLAY = ROOT / "manifests" / "overlays" / "single-namespace"
FINALIZER_POLICY = ROOT / "manifests" / "finalizer-policy"
DOCKERFILE = ROOT / "Dockerfile"
SA = "system:serviceaccount:acrpool-system:acrpool-controller"
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# --- helpers -----------------------------------------------------------------

def json_stream(text):
    """The objects of concatenated JSON documents (kubectl -o json of several)."""
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.extend(obj["items"] if obj.get("kind") == "List" else [obj])


def build(kube, path):
    """kustomize build of path, as a list of objects (kubectl's kustomize,
    YAML turned into JSON by kubectl so no YAML library is needed)."""
    yaml_text = kube.run("kustomize", str(path)).stdout
    out = kube.run("create", "--dry-run=client", "--validate=false", "-o", "json", "-f", "-", input=yaml_text).stdout
    return json_stream(out)


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def apply_objects(kube, objs):
    return kube.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))


def can_i(kube, user, verb, resource, namespace=None, subresource=None):
    args = ["auth", "can-i", verb, resource, f"--as={user}"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    if subresource:
        args.append(f"--subresource={subresource}")
    p = kube.run(*args, check=False)
    answer = p.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {p.stdout} {p.stderr}"
    return answer == "yes"


def ensure_namespaces(kube, objs):
    """Create for real the Namespace objects of a build, and the namespaces
    its objects live in. A server-side dry run does not persist the Namespace
    it creates, so without this every object inside it is refused with
    NotFound; a real `kubectl apply -k` creates it first."""
    for o in objs:
        if o["kind"] == "Namespace":
            apply_objects(kube, [o])
    wanted = {o["metadata"].get("namespace") for o in objs} - {None}
    for ns in sorted(wanted):
        if kube.run("get", "namespace", ns, check=False).returncode != 0:
            kube.run("create", "namespace", ns)


# --- the manifests against the API server --------------------------------------

@pytest.mark.parametrize("path", [BASE, OVERLAY], ids=["base", "single-namespace"])
def test_kustomization_accepted_by_api_server(kube, path):
    objs = build(kube, path)
    ensure_namespaces(kube, objs)
    p = kube.run("apply", "--dry-run=server", "-k", str(path))
    kinds = {o["kind"] for o in objs}
    assert {"CustomResourceDefinition", "Namespace", "ServiceAccount", "Deployment",
            "PodDisruptionBudget", "Service", "Role", "RoleBinding", "ClusterRole"} <= kinds
    assert "(server dry run)" in p.stdout
    assert "deployment.apps/acrpool-controller" in p.stdout
    # PodSecurity warns at admission of a Deployment whose pods would be refused.
    assert "would violate PodSecurity" not in p.stderr, p.stderr
    crds = {o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"}
    assert crds == {"registries.acrpool.dev", "agentpools.acrpool.dev", "tasks.acrpool.dev", "taskruns.acrpool.dev",
                    "pipelineagentpools.acrpool.dev"}


def test_finalizer_policy_accepted_by_api_server_and_not_in_the_base(kube):
    """manifests/finalizer-policy is the policy and its binding, which the
    API server accepts (a server-side dry run compiles the CEL); the base
    and the single-namespace overlay leave it out (it is opt-in)."""
    objs = build(kube, FINALIZER_POLICY)
    assert sorted(o["kind"] for o in objs) == ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]
    p = kube.run("apply", "--dry-run=server", "-k", str(FINALIZER_POLICY))
    assert "mutatingadmissionpolicy.admissionregistration.k8s.io/acrpool-finalizer" in p.stdout, p.stdout
    for path in (BASE, OVERLAY):
        assert not [o for o in build(kube, path) if o["kind"].startswith("MutatingAdmissionPolicy")]


def test_crds_kustomization_lists_every_crd():
    """crds/Kustomization is what `kubectl apply -k manifests/base` installs;
    a CRD added to crds/ but not listed there would silently be missing."""
    text = (ROOT / "crds" / "Kustomization").read_text()
    listed = set(re.findall(r"^\s*-\s*(\S+\.yaml)\s*$", text, re.M))
    assert listed == {p.name for p in (ROOT / "crds").glob("*.yaml")}


def test_pod_template_admitted_under_restricted_pod_security(kube):
    """acrpool-system enforces the restricted Pod Security Standard; a pod
    made from the Deployment's template must be admitted there."""
    objs = build(kube, BASE)
    ensure_namespaces(kube, objs)
    ns = one(objs, "Namespace", "acrpool-system")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    tmpl = one(objs, "Deployment", "acrpool-controller")["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "acrpool-controller-psa-check", "namespace": "acrpool-system",
                        "labels": tmpl["metadata"]["labels"]},
           "spec": tmpl["spec"]}
    p = kube.run("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert p.returncode == 0, p.stderr
    # And the check is real: the same pod as root is refused.
    root = json.loads(json.dumps(pod))
    root["spec"]["securityContext"]["runAsUser"] = 0
    root["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = False
    root["spec"]["securityContext"]["runAsNonRoot"] = False
    p = kube.run("create", "--dry-run=server", "-f", "-", input=json.dumps(root), check=False)
    assert p.returncode != 0 and "PodSecurity" in p.stderr, p.stderr


def known_flags():
    """Flag names and ACRPOOL_* variables from the table in reconcilers/options.c."""
    src = (ROOT / "reconcilers" / "options.c").read_text()
    rows = re.findall(r'\{"([a-z-]+)",\s*"(ACRPOOL_[A-Z_]+)",\s*(?:"([A-Z_]+)"|NULL)', src)
    assert rows, "flag table not found in reconcilers/options.c"
    return {r[0] for r in rows}, {r[1] for r in rows} | {r[2] for r in rows if r[2]}


def test_deployment_hardened_and_wired(kube):
    objs = build(kube, BASE)
    dep = one(objs, "Deployment", "acrpool-controller")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert spec["replicas"] == 2 and "--leader-elect" in c["args"]
    assert pod["serviceAccountName"] == "acrpool-controller"
    assert pod["automountServiceAccountToken"] is True
    assert spec["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    sa = one(objs, "ServiceAccount", "acrpool-controller")
    assert "azure.workload.identity/client-id" in sa["metadata"]["annotations"]

    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8443, "health": 8081}
    # Secure metrics are the binary's default: nothing turns them off.
    assert not [a for a in c["args"] if a.startswith("--metrics-secure")]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert ports.get(probe["httpGet"]["port"], probe["httpGet"]["port"]) == 8081
    for k in ("requests", "limits"):
        assert set(c["resources"][k]) == {"cpu", "memory"}

    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    # Every flag and ACRPOOL_* variable is one the binary knows.
    flags, envs = known_flags()
    for o in (objs, build(kube, OVERLAY)):
        (cc,) = one(o, "Deployment", "acrpool-controller")["spec"]["template"]["spec"]["containers"]
        for a in cc["args"]:
            assert a.startswith("--") and a[2:].split("=")[0] in flags, f"unknown flag {a}"
        for e in cc["env"]:
            assert not e["name"].startswith("ACRPOOL_") or e["name"] in envs, f"unknown variable {e['name']}"

    pod_labels = spec["template"]["metadata"]["labels"]
    pdb = one(objs, "PodDisruptionBudget", "acrpool-controller")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    svc = one(objs, "Service")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8443, "metrics")]
    ann = svc["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8443"
    assert ann["prometheus.io/scheme"] == "https"


def test_metrics_rbac(kube):
    """The operator may ask the API server to review a scraper (cluster-wide,
    also in the single-namespace overlay), and acrpool-metrics-reader grants
    get on /metrics and nothing else."""
    for path in (BASE, OVERLAY):
        objs = build(kube, path)
        auth = one(objs, "ClusterRole", "acrpool-controller-metrics-auth")
        assert sorted((r["apiGroups"][0], r["resources"][0], tuple(r["verbs"])) for r in auth["rules"]) == [
            ("authentication.k8s.io", "tokenreviews", ("create",)),
            ("authorization.k8s.io", "subjectaccessreviews", ("create",))]
        crb = one(objs, "ClusterRoleBinding", "acrpool-controller-metrics-auth")
        assert crb["roleRef"]["name"] == "acrpool-controller-metrics-auth"
        assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "acrpool-controller",
                                    "namespace": "acrpool-system"}]
        reader = one(objs, "ClusterRole", "acrpool-metrics-reader")
        assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


def test_network_policy_admits_only_metrics_and_probes(kube):
    """The pods accept only the ports the Deployment serves metrics and probes
    on, and reach only DNS, HTTPS and the instance metadata endpoint."""
    for path in (BASE, OVERLAY):
        objs = build(kube, path)
        pod = one(objs, "Deployment", "acrpool-controller")["spec"]["template"]
        (c,) = pod["spec"]["containers"]
        served = {p["name"] for p in c["ports"]} | {c[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe")}
        pol = one(objs, "NetworkPolicy", "acrpool-controller")["spec"]
        assert pol["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert sorted(pol["policyTypes"]) == ["Egress", "Ingress"]
        (ingress,) = pol["ingress"]
        assert "from" not in ingress  # Prometheus and the kubelet may sit anywhere
        assert {p["port"] for p in ingress["ports"]} == served == {"metrics", "health"}
        egress = sorted((r.get("to", [{}])[0].get("ipBlock", {}).get("cidr", "*"), p["port"], p["protocol"])
                        for r in pol["egress"] for p in r["ports"])
        assert egress == [("*", 53, "TCP"), ("*", 53, "UDP"), ("*", 443, "TCP"), ("169.254.169.254/32", 80, "TCP")]


def test_single_namespace_overlay_watches_the_namespace_it_may_read(kube):
    objs = build(kube, OVERLAY)
    # The one cluster-wide binding left lets the operator review scrapers of
    # /metrics (TokenReview, SubjectAccessReview) and nothing else.
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "ClusterRoleBinding"] == \
        ["acrpool-controller-metrics-auth"], "overlay still binds cluster-wide"
    rb = one(objs, "RoleBinding", "acrpool-controller")
    (c,) = one(objs, "Deployment", "acrpool-controller")["spec"]["template"]["spec"]["containers"]
    assert f"--namespaces={rb['metadata']['namespace']}" in c["args"]


# --- RBAC, applied for real -------------------------------------------------------

BASE_ALLOWED = [
    ("list", "agentpools.acrpool.dev", "default", None),
    ("watch", "taskruns.acrpool.dev", None, None),
    ("patch", "agentpools.acrpool.dev", "default", "status"),
    ("update", "registries.acrpool.dev", "default", "status"),
    ("update", "agentpools.acrpool.dev", "default", "finalizers"),
    ("watch", "pipelineagentpools.acrpool.dev", None, None),
    ("patch", "pipelineagentpools.acrpool.dev", "default", "status"),
    ("update", "pipelineagentpools.acrpool.dev", "default", "finalizers"),
    ("create", "events.events.k8s.io", "default", None),
    ("get", "secrets", "default", None),
    ("list", "configmaps", "default", None),
    ("update", "leases.coordination.k8s.io", "acrpool-system", None),
    ("create", "leases.coordination.k8s.io", "acrpool-system", None),
    ("create", "tokenreviews.authentication.k8s.io", None, None),
    ("create", "subjectaccessreviews.authorization.k8s.io", None, None),
]
BASE_DENIED = [
    ("delete", "secrets", "default", None),
    ("create", "secrets", "default", None),
    ("update", "configmaps", "default", None),
    ("create", "pods", "acrpool-system", None),
    ("update", "leases.coordination.k8s.io", "default", None),
    ("create", "clusterroles.rbac.authorization.k8s.io", None, None),
    ("get", "nodes", None, None),
    ("delete", "agentpools.acrpool.dev", "default", None),
    ("create", "events", "default", None),  # core/v1 Events: the operator uses events.k8s.io
    ("get", "tokenreviews.authentication.k8s.io", None, None),
    ("create", "localsubjectaccessreviews.authorization.k8s.io", "default", None),
    ("*", "*", None, None),
]


@pytest.fixture(scope="module")
def base_rbac(kube):
    objs = [o for o in build(kube, BASE) if o["kind"] in RBAC_KINDS]
    apply_objects(kube, objs)
    return objs


@pytest.mark.parametrize("verb,resource,ns,sub", BASE_ALLOWED,
                         ids=[" ".join(filter(None, c)) for c in BASE_ALLOWED])
def test_controller_may(kube, base_rbac, verb, resource, ns, sub):
    assert can_i(kube, SA, verb, resource, ns, sub), f"{SA} may not {verb} {resource} {sub or ''} in {ns}"


@pytest.mark.parametrize("verb,resource,ns,sub", BASE_DENIED,
                         ids=[" ".join(filter(None, c)) for c in BASE_DENIED])
def test_controller_may_not(kube, base_rbac, verb, resource, ns, sub):
    assert not can_i(kube, SA, verb, resource, ns, sub), f"{SA} may {verb} {resource} in {ns or 'any namespace'}"


def test_single_namespace_rbac_confined_to_watched_namespace(kube):
    """The overlay's RBAC, applied for real under fresh names (so the base's
    cluster-wide binding, applied by other tests, does not answer for it):
    the operator's ServiceAccount reads Secrets and its kinds in the watched
    namespace and nowhere else."""
    tag = uuid.uuid4().hex[:8]
    op_ns, watch_ns, other_ns = f"op-{tag}", f"watch-{tag}", f"other-{tag}"
    objs = [o for o in build(kube, OVERLAY) if o["kind"] in RBAC_KINDS]
    watched = one(objs, "RoleBinding", "acrpool-controller")["metadata"]["namespace"]
    rename_ns = {"acrpool-system": op_ns, watched: watch_ns}
    for o in objs:
        md = o["metadata"]
        if o["kind"] == "Namespace":
            md["name"] = rename_ns[md["name"]]
        if "namespace" in md:
            md["namespace"] = rename_ns[md["namespace"]]
        if o["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            md["name"] += "-" + tag
        for s in o.get("subjects", []):
            s["namespace"] = rename_ns[s["namespace"]]
        if o.get("roleRef", {}).get("kind") == "ClusterRole":
            o["roleRef"]["name"] += "-" + tag
    for ns in (watch_ns, other_ns):
        kube.run("create", "namespace", ns)
    apply_objects(kube, objs)
    sa = f"system:serviceaccount:{op_ns}:acrpool-controller"

    for verb, res, ns, sub in [("get", "secrets", watch_ns, None), ("watch", "configmaps", watch_ns, None),
                               ("list", "agentpools.acrpool.dev", watch_ns, None),
                               ("patch", "taskruns.acrpool.dev", watch_ns, "status"),
                               ("create", "events.events.k8s.io", watch_ns, None),
                               ("update", "leases.coordination.k8s.io", op_ns, None),
                               ("create", "tokenreviews.authentication.k8s.io", None, None),
                               ("create", "subjectaccessreviews.authorization.k8s.io", None, None)]:
        assert can_i(kube, sa, verb, res, ns, sub), f"may not {verb} {res} in {ns}"
    for verb, res, ns in [("get", "secrets", other_ns), ("list", "secrets", None),
                          ("list", "agentpools.acrpool.dev", other_ns), ("watch", "tasks.acrpool.dev", None),
                          ("get", "configmaps", "kube-system"), ("update", "leases.coordination.k8s.io", watch_ns)]:
        assert not can_i(kube, sa, verb, res, ns), f"may {verb} {res} in {ns or 'any namespace'}"


# --- the Dockerfile -------------------------------------------------------------

def dockerfile_stages(path=DOCKERFILE):
    """[(from_line, [(instruction, args)])] with continuations joined and
    comments dropped."""
    lines, cur = [], ""
    for raw in path.read_text().splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    stages = []
    for line in lines:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append((args.strip(), []))
        elif stages:
            stages[-1][1].append((instr, args.strip()))
    return stages


def commands(stage):
    """The shell commands of a stage's RUN instructions, split at && and ;."""
    out = []
    for instr, args in stage[1]:
        if instr == "RUN":
            out += [shlex.split(c) for c in re.split(r"&&|;", args) if c.strip()]
    return out


def apt_packages(stage):
    pkgs = set()
    for cmd in commands(stage):
        words = [w for w in cmd if "=" not in w or w.startswith("-")]
        if words[:2] == ["apt-get", "install"]:
            pkgs |= {w for w in words[2:] if not w.startswith("-")}
    return pkgs


def dpkg_owner(path):
    """Debian package owning a file, trying the /usr-merged spellings."""
    candidates = [path, os.path.realpath(path)]
    for c in list(candidates):
        candidates.append(c[4:] if c.startswith("/usr/") else "/usr" + c)
    for c in candidates:
        p = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.split(":")[0].split(",")[0].strip()
    raise AssertionError(f"no Debian package owns {path}")


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def depends_closure(pkgs):
    """pkgs and everything they depend on (Depends, Pre-Depends), as
    installed on this machine (the same Debian release as the image)."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        q = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p],
                           capture_output=True, text=True)
        if q.returncode != 0:
            continue
        for dep in q.stdout.split(","):
            for alt in dep.split("|"):
                name = alt.strip().split(" ")[0].split(":")[0]
                if name and subprocess.run(["dpkg-query", "-W", name], capture_output=True).returncode == 0:
                    todo.append(name)
                    break
    return seen


# debian:bookworm-slim's own C runtime (Priority: required), not installed by us.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1"}
# Runtime packages that are data, not libraries the binary links.
DATA_PACKAGES = {"ca-certificates", "tzdata"}


@pytest.fixture(scope="module")
def binary():
    build_dir = pathlib.Path(os.environ.get("ACRPOOL_BUILD_DIR", ROOT / "build"))
    exe = build_dir / "reconcilers" / "acrpool-controller"
    if not exe.is_file():
        pytest.skip(f"{exe} is absent: build it (make build, or set ACRPOOL_BUILD_DIR) to check "
                    "the Dockerfile's runtime packages against the libraries it loads")
    cache = (build_dir / "CMakeCache.txt")
    sanitized = cache.is_file() and "ACRPOOL_SANITIZE:BOOL=ON" in cache.read_text()
    return exe, sanitized


def test_runtime_stage_installs_every_library_the_binary_loads(binary):
    exe, sanitized = binary
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True).stdout
    where = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
    # The image is built with -DACRPOOL_SANITIZE=OFF; a sanitized test build
    # also loads the ASan/UBSan runtimes (and what they need), which the
    # image must not carry. Walk the NEEDED graph from the binary without them.
    skip = re.compile(r"^lib(asan|ubsan)\.so") if sanitized else re.compile(r"^$")
    direct = [n for n in needed(str(exe)) if not skip.match(n)]
    for n in direct:
        assert n in where, f"ldd does not resolve {n}: {ldd}"
    libs, todo = {}, list(direct)
    while todo:
        n = todo.pop()
        if n in libs or n not in where:
            continue  # the dynamic loader itself has no "=>" line
        libs[n] = dpkg_owner(where[n])
        todo += needed(where[n])

    stages = dockerfile_stages()
    runtime = stages[-1]
    assert runtime[0].split()[0] == "debian:bookworm-slim"
    installed = apt_packages(runtime)
    provided = depends_closure(installed | BASE_IMAGE_PACKAGES)

    missing = {n: pkg for n, pkg in libs.items() if pkg not in provided}
    assert not missing, f"the runtime stage does not install the packages of {missing}: add them to the Dockerfile"
    # What the binary links directly is named, not left to another package's Depends.
    implicit = {n: libs[n] for n in direct if libs[n] not in installed | BASE_IMAGE_PACKAGES}
    assert not implicit, f"linked directly but installed only as a dependency: {implicit}; list them"
    stale = installed - DATA_PACKAGES - set(libs.values())
    assert not stale, f"the runtime stage installs {stale}, which the binary does not load: remove them"
    assert DATA_PACKAGES <= installed, "CA certificates (TLS to Azure) and tzdata (countSchedule timeZone) are needed"


def test_runtime_stage_runs_the_binary_as_non_root():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "the Dockerfile is not multi-stage"
    runtime = dict(stages[-1][1])
    assert runtime["USER"] == "65532:65532"
    (copy,) = [a for i, a in stages[-1][1] if i == "COPY"]
    src_dst = copy.split()
    assert src_dst[0].startswith("--from="), "the runtime stage copies only the built binary"
    assert json.loads(runtime["ENTRYPOINT"]) == [src_dst[-1]]


def test_build_stage_runs_the_ci_build():
    build_stage = dockerfile_stages()[0]
    assert build_stage[0].split()[0] == "debian:bookworm-slim" and build_stage[0].split()[-1] == "build"
    cmds = commands(build_stage)
    assert ["scripts/deps.sh"] in cmds, "the build stage must install its dependencies with scripts/deps.sh"

    # The Makefile's `build` target is what CI runs.
    mk = (ROOT / "Makefile").read_text()
    target = re.search(r"^build:.*\n((?:\t.*\n)+)", mk, re.M).group(1)
    make_cfg = [shlex.split(l.strip()) for l in target.splitlines() if "-S ." in l][0]
    make_defs = {a.split("=")[0]: a for a in make_cfg if a.startswith("-D")}

    configures = [c for c in cmds if c[:3] == ["cmake", "-S", "."]]
    builds = [c for c in cmds if c[:2] == ["cmake", "--build"]]
    assert len(configures) == 1 and len(builds) == 1, cmds
    cfg = configures[0]
    bdir = cfg[cfg.index("-B") + 1]
    assert cfg[cfg.index("-G") + 1] == make_cfg[make_cfg.index("-G") + 1] == "Ninja"
    assert "-DACRPOOL_SANITIZE=OFF" in cfg and "-DACRPOOL_TESTS=OFF" in cfg
    for name, arg in make_defs.items():
        if name != "-DACRPOOL_SANITIZE":
            assert arg in cfg, f"the Makefile configures with {arg}, the Dockerfile does not"
    assert builds[0][2] == bdir

    # Everything the build needs is copied, and the build context sends it.
    copied = [a.split()[0] for i, a in build_stage[1] if i == "COPY"]
    cml = (ROOT / "CMakeLists.txt").read_text()
    for sub in re.findall(r"^add_subdirectory\((\w+)\)", cml, re.M):
        assert any(c.rstrip("/") == sub for c in copied), f"the build stage does not copy {sub}/"
    allowed = [l[1:].rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines() if l.startswith("!")]
    for c in copied:
        assert (ROOT / c).exists(), c
        assert c.rstrip("/") in allowed, f".dockerignore keeps {c} out of the build context"
