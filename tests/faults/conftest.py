"""Fixtures for the fault suite (issue 9): the real operator, a real
kube-apiserver + etcd and the Azure emulator, with something going wrong
in the middle of a rollout of N_POOLS AgentPools (tests/faults/faultkit.py).

The helpers come from tests/e2e (kubeenv, procs, emulator, harness), put on
sys.path here. tests/e2e has a conftest.py of its own; this suite never
imports it (pytest keeps one module named `conftest`), so the control plane
fixtures below are this suite's own.

Every case records how long it took to converge; the table is printed at
the end of the run (pytest_terminal_summary). Timings are printed, never
asserted.
"""
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

E2E = pathlib.Path(__file__).resolve().parents[1] / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))
HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from emulator import Emulator  # noqa: E402
from kubeenv import ROOT, TESTENV, Kube, _read_env  # noqa: E402

import faultkit  # noqa: E402


def _start_plane(prefix):
    state = tempfile.mkdtemp(prefix=prefix)
    env = dict(os.environ, TESTENV_OWNER_PID=str(os.getpid()))
    subprocess.run([str(TESTENV), "start", state], check=True, env=env)
    return state


def _install_crds(k):
    k.run("apply", "-f", str(ROOT / "crds"))
    k.run("wait", "--for", "condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))


@pytest.fixture(scope="session")
def controlplane():
    existing = os.environ.get("TESTENV_DIR")
    if existing:
        yield existing, _read_env(pathlib.Path(existing) / "env")
        return
    state = _start_plane("acrpool-faults-")
    try:
        yield state, _read_env(pathlib.Path(state) / "env")
    finally:
        subprocess.run([str(TESTENV), "stop", state], check=False)


@pytest.fixture(scope="session")
def kube(controlplane):
    k = Kube(controlplane[1])
    _install_crds(k)
    return k


@pytest.fixture
def private_plane():
    """A control plane of the test's own, for cases that kill the API
    server or compact etcd: (state dir, env, Kube)."""
    state = _start_plane("acrpool-faults-private-")
    try:
        env = _read_env(pathlib.Path(state) / "env")
        k = Kube(env)
        _install_crds(k)
        yield state, env, k
    finally:
        subprocess.run([str(TESTENV), "stop", state], check=False)


@pytest.fixture
def emu(tmp_path):
    e = Emulator.start(tmp_path)
    yield e
    e.stop()


@pytest.fixture
def operators():
    """Operators started by a test; every one is stopped (or was killed)
    at the end, and none may have a sanitizer report."""
    procs = []
    yield procs
    for p in procs:
        if p.alive():
            p.stop()
        else:
            p.kill()   # closes its log
    for p in procs:
        p.assert_clean()


_RESULTS = []


@pytest.fixture
def report(request):
    """report(phase, seconds, note=""): one row of the summary table."""
    case = request.node.name

    def add(phase, seconds, note=""):
        _RESULTS.append((case, phase, seconds, note))
        print(f"[faults] {case}: {phase} {seconds:.1f}s {note}", flush=True)
    return add


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section(f"fault suite: time to converge ({faultkit.N_POOLS} pools; printed, not asserted)")
    tr.write_line(faultkit.machine())
    tr.write_line("| case | phase | seconds | note |")
    tr.write_line("|---|---|---|---|")
    for case, phase, seconds, note in _RESULTS:
        tr.write_line(f"| {case} | {phase} | {seconds:.1f} | {note} |")
