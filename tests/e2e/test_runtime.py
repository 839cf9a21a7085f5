"""The operator runtime end to end: a tiny test controller (testctl, built
on controller/) against a real kube-apiserver and etcd. It copies each
Widget's spec.value to status.observedValue under a finalizer and records
an Event, so every promise of the runtime shows in objects a user can see."""
import base64
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

from harness import wait_events
from kubeenv import Kube, ROOT, TESTENV, _read_env
from procs import BUILD, Proc, wait_until

TESTCTL = BUILD / "tests" / "unit" / "acrpool-testctl"
WIDGETS_CRD = ROOT / "tests" / "e2e" / "testdata" / "widgets.yaml"


def widget(name, value):
    return {"apiVersion": "test.acrpool.dev/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"value": value}}


def observed(kube, ns, name):
    p = kube.run("get", "widget", name, "-n", ns, "-o", "jsonpath={.status.observedValue}", check=False)
    return p.stdout if p.returncode == 0 else None


def wait_observed(kube, ns, name, value, timeout=60):
    wait_until(f"widget {ns}/{name} to observe {value!r}", lambda: observed(kube, ns, name) == value, timeout)


def install_widgets(kube):
    kube.run("apply", "-f", str(WIDGETS_CRD))
    kube.run("wait", "--for", "condition=Established", "--timeout=60s", "crd/widgets.test.acrpool.dev")


@pytest.fixture
def testctl_factory(kube):
    install_widgets(kube)
    procs = []

    def start(*args, env=None, kubeconfig=True):
        base = ["--kubeconfig", kube.kubeconfig] if kubeconfig else []
        p = Proc(TESTCTL, [*base, *args], env=env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()


@pytest.fixture
def private_plane():
    """A control plane of this test's own, for tests that restart the API
    server or compact etcd."""
    state = tempfile.mkdtemp(prefix="acrpool-private-")
    env = dict(os.environ, TESTENV_OWNER_PID=str(os.getpid()))
    subprocess.run([str(TESTENV), "start", state], check=True, env=env)
    try:
        e = _read_env(pathlib.Path(state) / "env")
        k = Kube(e)
        install_widgets(k)
        yield state, e, k
    finally:
        subprocess.run([str(TESTENV), "stop", state], check=False)


def test_reconciles_with_finalizer_status_and_event_then_cleans_up(kube, namespace, testctl_factory):
    ctl = testctl_factory("--namespace", namespace)
    kube.apply(widget("w1", "hello"), namespace)
    wait_observed(kube, namespace, "w1", "hello")
    obj = kube.get("widget", "w1", namespace)
    assert obj["metadata"]["finalizers"] == ["test.acrpool.dev/cleanup"]
    ready = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "True" and ready["observedGeneration"] == obj["metadata"]["generation"]
    wait_events(kube, namespace, "w1", lambda ev: any(e["reason"] == "Reconciled" for e in ev))
    # readyz is ready once the cache synced
    assert ctl.get("/readyz")[0] == 200
    assert ctl.get("/healthz")[0] == 200
    kube.run("delete", "widget", "w1", "-n", namespace, "--timeout=60s")
    assert kube.run("get", "widget", "w1", "-n", namespace, check=False).returncode != 0
    assert ctl.stop() == 0
    ctl.assert_clean()


def test_status_written_only_when_changed(kube, namespace, testctl_factory):
    """A status write that changes nothing would wake the controller again:
    after the object settles, its resourceVersion must stay still even
    across a resync of every key."""
    ctl = testctl_factory("--namespace", namespace)
    kube.apply(widget("w1", "v1"), namespace)
    wait_observed(kube, namespace, "w1", "v1")
    rv = kube.get("widget", "w1", namespace)["metadata"]["resourceVersion"]
    # Touch an unrelated object to make sure the controller is busy and
    # watching, then check w1 did not change.
    kube.apply(widget("w2", "v2"), namespace)
    wait_observed(kube, namespace, "w2", "v2")
    assert kube.get("widget", "w1", namespace)["metadata"]["resourceVersion"] == rv
    total = ctl.metric("controller_runtime_reconcile_total", {"controller": "widget"})
    assert total is not None and total < 12, f"{total} reconciles for two objects: a self-triggered loop?"
    ctl.stop()
    ctl.assert_clean()


def test_no_event_lost_across_api_server_restart(private_plane):
    state, env, kube = private_plane
    ns = "r-" + uuid.uuid4().hex[:8]
    kube.run("create", "namespace", ns)
    ctl = Proc(TESTCTL, ["--kubeconfig", kube.kubeconfig, "--namespace", ns])
    try:
        for i in range(5):
            kube.apply(widget(f"w{i}", "before"), ns)
        for i in range(5):
            wait_observed(kube, ns, f"w{i}", "before")
        subprocess.run([str(TESTENV), "restart-apiserver", state], check=True)
        # Changes made while the controller is still reconnecting.
        for i in range(5):
            kube.apply(widget(f"w{i}", "after"), ns)
        kube.apply(widget("w5", "new"), ns)
        for i in range(5):
            wait_observed(kube, ns, f"w{i}", "after")
        wait_observed(kube, ns, "w5", "new")
        assert ctl.metric("acrpool_watch_restarts_total", {"resource": "widgets"}) >= 1
        assert ctl.stop() == 0
        ctl.assert_clean()
    finally:
        ctl.kill()


def _etcd(env, path, body):
    req = urllib.request.Request(env["TESTENV_ETCD"] + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_relist_after_410_when_etcd_compacted(private_plane):
    """While the API server is down, a Widget changes underneath (written
    straight into etcd) and etcd is compacted past the controller's
    resourceVersion. Its resumed watch must get 410 Gone, relist, and see
    the change."""
    state, env, kube = private_plane
    ns = "c-" + uuid.uuid4().hex[:8]
    kube.run("create", "namespace", ns)
    ctl = Proc(TESTCTL, ["--kubeconfig", kube.kubeconfig, "--namespace", ns])
    try:
        kube.apply(widget("w1", "before"), ns)
        wait_observed(kube, ns, "w1", "before")
        ctl.port()
        # Take the API server down (as a crash) so nothing can be watched
        # while etcd changes underneath.
        apiserver = int(pathlib.Path(state, "apiserver.pid").read_text())
        os.kill(apiserver, signal.SIGKILL)
        wait_until("kube-apiserver to exit", lambda: subprocess.run(
            ["kill", "-0", str(apiserver)], capture_output=True).returncode != 0)
        key = f"/registry/test.acrpool.dev/widgets/{ns}/w1"
        b64 = base64.b64encode(key.encode()).decode()
        kv = _etcd(env, "/v3/kv/range", {"key": b64})["kvs"][0]
        obj = json.loads(base64.b64decode(kv["value"]))
        obj["spec"]["value"] = "changed-in-etcd"
        put = _etcd(env, "/v3/kv/put", {"key": b64, "value": base64.b64encode(json.dumps(obj).encode()).decode()})
        # Compact past the change, not at it: a watch resumed from the
        # revision just before the change starts at the change's own
        # revision, which a compaction at that revision keeps (etcd drops
        # only what is older). One more write moves the compaction past it,
        # so the resumed watch is too old whether the API server serves it
        # from its cache or from etcd.
        _etcd(env, "/v3/kv/put", {"key": base64.b64encode(b"/acrpool-test/compaction-marker").decode(),
                                  "value": base64.b64encode(ns.encode()).decode()})
        rev = _etcd(env, "/v3/kv/range", {"key": b64})["header"]["revision"]
        assert rev > put["header"]["revision"]
        _etcd(env, "/v3/kv/compaction", {"revision": rev, "physical": True})
        subprocess.run([str(TESTENV), "restart-apiserver", state], check=True)
        wait_observed(kube, ns, "w1", "changed-in-etcd", timeout=90)
        assert ctl.metric("acrpool_watch_relists_total", {"resource": "widgets"}) >= 1
        assert ctl.stop() == 0
        ctl.assert_clean()
    finally:
        ctl.kill()


def _holder(kube, ns):
    p = kube.run("get", "lease", "testctl", "-n", ns, "-o", "jsonpath={.spec.holderIdentity}", check=False)
    return p.stdout if p.returncode == 0 else ""


def test_two_replicas_elect_one_leader_and_fail_over_after_kill(kube, namespace, testctl_factory):
    lease, renew = 6, 4
    args = ["--namespace", namespace, "--leader-elect", "--lease-namespace", namespace,
            "--lease-seconds", str(lease), "--renew-seconds", str(renew)]
    a = testctl_factory(*args, "--identity", "replica-a")
    b = testctl_factory(*args, "--identity", "replica-b")
    first = wait_until("a leader", lambda: _holder(kube, namespace), timeout=30)
    leader, standby = (a, b) if first == "replica-a" else (b, a)
    other = "replica-b" if first == "replica-a" else "replica-a"
    kube.apply(widget("w1", "one"), namespace)
    wait_observed(kube, namespace, "w1", "one")
    ev = wait_events(kube, namespace, "w1", lambda ev: any(f"(by {first})" in e["note"] for e in ev))
    assert not any(f"(by {other})" in e["note"] for e in ev)
    # Both report ready: the standby's cache is warm.
    assert standby.get("/readyz")[0] == 200
    leader.p.kill()
    leader.p.wait()
    # The standby must take over within lease duration + renew deadline.
    wait_until("the standby to take the lease", lambda: _holder(kube, namespace) == other,
               timeout=lease + renew + 2)
    kube.apply(widget("w2", "two"), namespace)
    wait_observed(kube, namespace, "w2", "two")
    assert standby.stop() == 0
    standby.assert_clean()
    # A clean stop releases the lease for the next replica at once.
    assert _holder(kube, namespace) == ""


def test_token_file_rotation_is_picked_up(kube, namespace, testctl_factory, controlplane, tmp_path):
    """In-cluster config: the token is read from the service account dir;
    after the ServiceAccount is recreated the old token is refused, and the
    controller must use the new token it finds in the file."""
    sa = "testctl"
    kube.run("create", "serviceaccount", sa, "-n", namespace)
    rules = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": f"testctl-{namespace}"},
        "rules": [{"apiGroups": ["test.acrpool.dev"], "resources": ["widgets", "widgets/status"],
                   "verbs": ["get", "list", "watch", "patch", "update"]},
                  {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}]}
    kube.apply(rules, namespace)
    kube.run("create", "clusterrolebinding", f"testctl-{namespace}", f"--clusterrole=testctl-{namespace}",
             f"--serviceaccount={namespace}:{sa}")
    sa_dir = tmp_path / "sa"
    sa_dir.mkdir()
    (sa_dir / "ca.crt").write_text(pathlib.Path(controlplane["TESTENV_DIR"], "ca.crt").read_text())
    (sa_dir / "namespace").write_text(namespace)

    def write_token():
        token = kube.run("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
        tmp = sa_dir / "token.tmp"
        tmp.write_text(token)
        os.replace(tmp, sa_dir / "token")   # the kubelet swaps the file atomically too

    write_token()
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": controlplane["TESTENV_APISERVER_PORT"],
           "ACRPOOL_SA_DIR": str(sa_dir), "KUBECONFIG": ""}
    ctl = testctl_factory("--namespace", namespace, env=env, kubeconfig=False)
    kube.apply(widget("w1", "first"), namespace)
    wait_observed(kube, namespace, "w1", "first")
    # Recreating the ServiceAccount invalidates every token issued for the
    # old one (the API server checks the ServiceAccount's uid).
    kube.run("delete", "serviceaccount", sa, "-n", namespace)
    kube.run("create", "serviceaccount", sa, "-n", namespace)
    write_token()
    kube.apply(widget("w2", "second"), namespace)
    wait_observed(kube, namespace, "w2", "second", timeout=90)
    assert "1h" not in ctl.text()  # nothing of the token setup leaks
    token = (sa_dir / "token").read_text()
    assert token not in ctl.text(), "the service account token appeared in the log"
    assert ctl.stop() == 0
    ctl.assert_clean()


def test_sigterm_exits_zero_with_nothing_leaked(kube, namespace, testctl_factory):
    ctl = testctl_factory("--namespace", namespace)
    kube.apply(widget("w1", "x"), namespace)
    wait_observed(kube, namespace, "w1", "x")
    assert ctl.stop(signal.SIGTERM) == 0
    assert ctl.find("exited"), "no clean shutdown line"
    ctl.assert_clean()
