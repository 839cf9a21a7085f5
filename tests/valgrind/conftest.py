"""Fixtures for the valgrind pass: a control plane of its own and the
emulator. Helpers come from tests/e2e (never its conftest.py)."""
import os
import pathlib
import subprocess
import sys
import tempfile
import uuid

import pytest

E2E = pathlib.Path(__file__).resolve().parents[1] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

from emulator import Emulator  # noqa: E402
from kubeenv import ROOT, TESTENV, Kube, _read_env  # noqa: E402


@pytest.fixture(scope="session")
def kube():
    existing = os.environ.get("TESTENV_DIR")
    state = existing or tempfile.mkdtemp(prefix="acrpool-valgrind-")
    if not existing:
        subprocess.run([str(TESTENV), "start", state], check=True,
                       env=dict(os.environ, TESTENV_OWNER_PID=str(os.getpid())))
    try:
        k = Kube(_read_env(pathlib.Path(state) / "env"))
        k.run("apply", "-f", str(ROOT / "crds"))
        k.run("wait", "--for", "condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
        yield k
    finally:
        if not existing:
            subprocess.run([str(TESTENV), "stop", state], check=False)


@pytest.fixture
def namespace(kube):
    name = "v-" + uuid.uuid4().hex[:10]
    kube.run("create", "namespace", name)
    return name


@pytest.fixture
def emu(tmp_path):
    e = Emulator.start(tmp_path)
    yield e
    e.stop()
