"""Fixtures for the end-to-end suite: a real control plane on loopback.

The session starts etcd and kube-apiserver once through scripts/testenv.sh
(the same script the quick start and developers use), installs the CRDs and
stops everything at the end, also when the run is interrupted. Set
TESTENV_DIR to the directory of a control plane you already started to
reuse it instead.
"""
import os
import pathlib
import subprocess
import tempfile
import uuid

import pytest

from kubeenv import ROOT, TESTENV, Kube, _read_env


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
