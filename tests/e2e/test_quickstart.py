"""`make quickstart` is the README's first command: it must bring up the
whole demo (control plane, emulator, operator with workload identity, the
samples) and get the sample pools Ready."""
import os
import subprocess

from kubeenv import ROOT
from procs import BUILD


def test_quickstart_runs_the_whole_demo(tmp_path):
    env = dict(os.environ, QUICKSTART_EXIT="1", QUICKSTART_DIR=str(tmp_path / "qs"),
               ACRPOOL_BUILD_DIR=str(BUILD))
    p = subprocess.run([str(ROOT / "scripts" / "quickstart.sh")], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stdout.splitlines()
    pools = [l.split() for l in lines if l.startswith("agentpool.acrpool.dev/") and len(l.split()) >= 8]
    assert {r[0] for r in pools} == {"agentpool.acrpool.dev/myagentpool", "agentpool.acrpool.dev/myvnetpool"}
    assert all(r[7] == "True" for r in pools), "\n".join(lines)
    reg = [l.split() for l in lines if l.startswith("registry.acrpool.dev/") and len(l.split()) >= 6][0]
    assert reg[3] == "Premium" and reg[5] == "True"
    assert "Real Azure instead" in p.stdout
    log = (tmp_path / "qs" / "operator.log").read_text()
    token = (tmp_path / "qs" / "azure-identity-token").read_text().strip()
    assert token not in log, "the federated token appeared in the operator log"
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in log
    # Everything was stopped: nothing listens on the emulator's port.
    port = (tmp_path / "qs" / "emulator.port").read_text().strip()
    assert subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/_emulator/health"]).returncode != 0
