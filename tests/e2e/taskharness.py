"""What the Task and TaskRun end-to-end tests share: the fixtures of
test_agentpool.py (an emulator per module, a registry per test, the
operator started per test and checked for sanitizer reports and leaked
secrets when the test ends), object builders, and views of the emulator's
runs and request log."""
import json

import pytest

from emulator import RG, SUB, Emulator
from harness import SP_SECRET, events, pool_obj, setup_azure, start_operator, wait_condition
from procs import wait_until

REG_PATH = f"registries/{SUB}/{RG}/myregistry"
HELLO = "https://github.com/Azure-Samples/acr-build-helloworld-node.git#main"
SUBNET = (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
          "virtualNetworks/myvnet/subnets/mysubnetname")

# Values that must never show up anywhere but in Azure's request bodies.
_forbidden = []


def forbid(value):
    """Register a secret value: the operator fixture fails the test when it
    shows up in the operator's log."""
    _forbidden.append(value)
    return value


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
        p.kill() if not p.alive() else p.stop()
        p.assert_clean()
        text = p.text()
        assert SP_SECRET not in text, "the client secret appeared in the operator's log"
        for v in _forbidden:
            assert v not in text, "a secret value appeared in the operator's log"
        assert "sig=" not in text, "a SAS URL appeared in the operator's log"
    _forbidden.clear()


def task_obj(name, step=None, pool="mypool", registry="myregistry", **spec):
    s = {"registryRef": {"name": registry},
         "step": step or {"docker": {"contextPath": HELLO, "dockerFilePath": "Dockerfile",
                                     "imageNames": ["myimage:mytag"]}},
         **spec}
    if pool:
        s["agentPoolRef"] = {"name": pool}
    return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "Task", "metadata": {"name": name}, "spec": s}


def taskrun_obj(name, registry="myregistry", **spec):
    return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "TaskRun", "metadata": {"name": name},
            "spec": {"registryRef": {"name": registry}, **spec}}


def ready_pool(kube, namespace, name="mypool", **kw):
    kube.apply(pool_obj(name, **kw), namespace)
    return wait_condition(kube, "agentpool", name, namespace, "Ready")


def azure_task(emu, name):
    """The task as Azure holds it, secrets included (listDetails)."""
    from harness import arm
    try:
        return arm(emu, "POST", f"/tasks/{name}/listDetails")
    except Exception:
        return None


def task_puts(emu, name):
    return [r for r in emu.requests(path_contains=f"/tasks/{name}") if r["method"] in ("PUT", "PATCH")
            and not r["path"].endswith("/listDetails")]


def runs(emu, task=None, pool=None):
    out = emu.control("GET", "runs")["value"]
    return [r for r in out if (task is None or (r.get("task") or "").lower() == task.lower())
            and (pool is None or (r.get("agentPoolName") or "").lower() == pool.lower())]


def schedule_requests(emu):
    return [r for r in emu.requests(method="POST", path_contains="/scheduleRun")]


def get(kube, kind, name, namespace):
    return kube.get(kind, name, namespace)


def status(kube, kind, name, namespace):
    return get(kube, kind, name, namespace).get("status") or {}


def wait_status(kube, kind, name, namespace, what, pred, timeout=60):
    def check():
        st = status(kube, kind, name, namespace)
        return st if pred(st) else None
    return wait_until(what, check, timeout)


def event_reasons(kube, namespace, name):
    return [e["reason"] for e in events(kube, namespace, name)]


def all_text(kube, namespace, kind, name):
    """Everything a user can read about an object: the object and its Events."""
    return json.dumps(get(kube, kind, name, namespace)) + json.dumps(events(kube, namespace, name))
