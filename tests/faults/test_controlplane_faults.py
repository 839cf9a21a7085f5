"""The API server goes away mid-rollout, and etcd is compacted underneath
the operator's watches so that they must relist. Each case has a control
plane of its own (private_plane)."""
import base64
import json
import os
import pathlib
import signal
import subprocess
import time
import urllib.request

import faultkit as fk
from kubeenv import TESTENV
from procs import wait_until


def test_apiserver_restart_mid_rollout(private_plane, emu, operators, report):
    state, env, kube = private_plane
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns)
    op = fk.start(kube, emu, ns, operators)
    pools = fk.declared()
    names = sorted(pools)
    first = {n: pools[n] for n in names[: len(names) // 2]}
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, first)
    fk.wait_created(emu, len(first) // 3)
    subprocess.run([str(TESTENV), "restart-apiserver", state], check=True)
    restarted = time.monotonic()
    # What changes while the operator is still reconnecting: the rest of
    # the rollout, and a new count for pools already under way.
    changed = dict(pools)
    for n in names[:10]:
        changed[n] = 2 if pools[n] != 2 else 1
    fk.apply_pools(kube, ns, changed)
    fk.wait_converged(kube, emu, ns, changed)
    report("rollout", time.monotonic() - t0,
           f"apiserver restarted {restarted - t0:.1f}s in; converged {time.monotonic() - restarted:.1f}s after; "
           f"watch restarts {op.metric('acrpool_watch_restarts_total', {'resource': 'agentpools'})}")
    assert op.metric("acrpool_watch_restarts_total", {"resource": "agentpools"}) >= 1
    fk.assert_no_duplicates(emu, changed)
    report("teardown", fk.delete_all(kube, emu, ns))
    assert op.alive()


def _etcd(env, path, body):
    req = urllib.request.Request(env["TESTENV_ETCD"] + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_etcd_compaction_forces_relist_mid_rollout(private_plane, emu, operators, report):
    """While the API server is down, pools change straight in etcd (a
    spec.count and a new generation) and etcd is compacted past every
    revision the operator saw: its watches resume with 410 Gone, relist,
    and the rollout must still converge on the changed counts."""
    state, env, kube = private_plane
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns)
    op = fk.start(kube, emu, ns, operators)
    pools = fk.declared()
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, pools)
    fk.wait_created(emu, len(pools) // 3)
    apiserver = int(pathlib.Path(state, "apiserver.pid").read_text())
    os.kill(apiserver, signal.SIGKILL)
    wait_until("kube-apiserver to exit",
               lambda: subprocess.run(["kill", "-0", str(apiserver)], capture_output=True).returncode != 0)
    changed = dict(pools)
    rev = None
    for name in sorted(pools)[:5] + sorted(pools)[-5:]:
        key = base64.b64encode(f"/registry/acrpool.dev/agentpools/{ns}/{name}".encode()).decode()
        kv = _etcd(env, "/v3/kv/range", {"key": key})["kvs"][0]
        obj = json.loads(base64.b64decode(kv["value"]))
        obj["spec"]["count"] = changed[name] = 4
        obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        rev = _etcd(env, "/v3/kv/put", {"key": key, "value": base64.b64encode(json.dumps(obj).encode()).decode()}
                    )["header"]["revision"]
    _etcd(env, "/v3/kv/compaction", {"revision": rev, "physical": True})
    subprocess.run([str(TESTENV), "restart-apiserver", state], check=True)
    restarted = time.monotonic()
    fk.wait_converged(kube, emu, ns, changed)
    relists = op.metric("acrpool_watch_relists_total", {"resource": "agentpools"})
    report("rollout", time.monotonic() - t0,
           f"converged {time.monotonic() - restarted:.1f}s after the API server came back; agentpools relists "
           f"{relists}")
    assert relists and relists >= 1, "the watch never relisted after compaction"
    for name in sorted(pools)[:5] + sorted(pools)[-5:]:
        assert fk.azure_pools(emu)[name]["properties"]["count"] == 4
    fk.assert_no_duplicates(emu, changed)
    report("teardown", fk.delete_all(kube, emu, ns))
    assert op.alive()
