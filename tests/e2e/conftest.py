"""Fixtures for the end-to-end suite: a real control plane on loopback.

The session starts etcd and kube-apiserver once through scripts/testenv.sh
(the same script the quick start and developers use), installs the CRDs and
stops everything at the end, also when the run is interrupted. Set
TESTENV_DIR to the directory of a control plane you already started to
reuse it instead.
"""
import json
import os
import pathlib
import subprocess
import tempfile
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTENV = ROOT / "scripts" / "testenv.sh"


def _read_env(path):
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


class Kube:
    """kubectl against the test control plane, as the admin user."""

    def __init__(self, env):
        self.env = env
        self.kubeconfig = env["KUBECONFIG"]
        self.kubectl_bin = os.path.join(env["TESTENV_BIN"], "kubectl")

    def run(self, *args, input=None, check=True, timeout=120):
        cmd = [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args]
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {p.stderr.strip()}")
        return p

    def apply(self, obj, namespace, check=True):
        """kubectl apply of one object given as a dict (JSON, so no YAML
        surprises such as `y` turning into a boolean)."""
        return self.run("apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=check)

    def get(self, kind, name, namespace):
        return json.loads(self.run("get", kind, name, "-n", namespace, "-o", "json").stdout)


@pytest.fixture(scope="session")
def controlplane():
    existing = os.environ.get("TESTENV_DIR")
    if existing:
        yield _read_env(pathlib.Path(existing) / "env")
        return
    state = tempfile.mkdtemp(prefix="acrpool-testenv-")
    env = dict(os.environ, TESTENV_OWNER_PID=str(os.getpid()))
    subprocess.run([str(TESTENV), "start", state], check=True, env=env)
    try:
        yield _read_env(pathlib.Path(state) / "env")
    finally:
        subprocess.run([str(TESTENV), "stop", state], check=False)


@pytest.fixture(scope="session")
def kube(controlplane):
    k = Kube(controlplane)
    k.run("apply", "-f", str(ROOT / "crds"))
    k.run("wait", "--for", "condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
    return k


@pytest.fixture
def namespace(kube):
    """A fresh namespace per test. There is no namespace controller without
    kube-controller-manager, so a deleted namespace would stay Terminating;
    unique names keep tests apart instead."""
    name = "t-" + uuid.uuid4().hex[:10]
    kube.run("create", "namespace", name)
    return name
