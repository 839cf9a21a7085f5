"""GitOps health on what the operator really writes: pools driven into
Ready, Reconciling and Stalled by the real operator and the emulator, read
back from the API server, and judged by the Argo CD health check
(docs/argocd-health.lua) and by kstatus' rules, which Flux applies."""
import json

import pytest

from emulator import Emulator
from harness import pool_obj, setup_azure, start_operator, wait_condition
from test_argocd_health import health


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


def kstatus_of(obj):
    """kstatus' reading (sigs.k8s.io/cli-utils): a stale observedGeneration
    is InProgress; Stalled True is Failed; Reconciling True is InProgress;
    Ready True is Current."""
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"]["generation"]:
        return "InProgress"
    conds = {c["type"]: c for c in st.get("conditions", [])}
    if conds.get("Stalled", {}).get("status") == "True":
        return "Failed"
    if conds.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    return "Current" if conds.get("Ready", {}).get("status") == "True" else "InProgress"


def test_health_of_real_objects(kube, namespace, emu):
    emu.reset()
    setup_azure(kube, emu, namespace)
    emu.settings(provisioningDelaySeconds=600)
    op = start_operator(kube, emu, namespace)
    try:
        kube.apply(pool_obj("slowpool", tier="S1"), namespace)          # stays Creating
        kube.apply(pool_obj("toobig", tier="S3", count=3), namespace)   # over quota
        slow = wait_condition(kube, "agentpool", "slowpool", namespace, "Reconciling", reason="Creating")
        big = wait_condition(kube, "agentpool", "toobig", namespace, "Stalled", reason="QuotaExceeded")
        emu.settings(provisioningDelaySeconds=0)
        kube.apply(pool_obj("fine", tier="S1"), namespace)
        fine = wait_condition(kube, "agentpool", "fine", namespace, "Ready")
        reg = wait_condition(kube, "registry", "myregistry", namespace, "Ready")
    finally:
        op.stop()
        op.assert_clean()
    for obj, argo, flux in ((slow, "Progressing", "InProgress"), (big, "Degraded", "Failed"),
                            (fine, "Healthy", "Current"), (reg, "Healthy", "Current")):
        status, message = health(obj)
        assert status == argo, f"{obj['metadata']['name']}: Argo CD says {status}: {message}\n{json.dumps(obj['status'])}"
        assert kstatus_of(obj) == flux
    assert "QuotaExceeded" in health(big)[1] or "vCPU" in health(big)[1]
