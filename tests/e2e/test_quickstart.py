"""`make quickstart` is the README's first command: it must bring up the
whole demo (control plane, emulator, operator with workload identity, the
samples) and get the sample pools Ready, then two Azure Pipelines agents
(a PipelineAgentPool in the emulator's container groups and Azure DevOps
stand-in) that run the jobs it queues."""
import os
import re
import subprocess

from kubeenv import ROOT
from procs import BUILD


def tables(lines, *first_columns):
    """Every `kubectl get` table whose header starts with first_columns, as
    lists of rows, each a dict by header."""
    out = []
    for i, line in enumerate(lines):
        if line.split()[:len(first_columns)] == list(first_columns):
            header = line.split()
            rows = []
            for row in lines[i + 1:]:
                if not row.strip() or len(row.split()) != len(header):
                    break
                rows.append(dict(zip(header, row.split())))
            out.append(rows)
    return out


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

    # The PipelineAgentPool as `kubectl get pipelineagentpools` shows it once
    # the jobs ran: 2 agents in 2 container groups, online, the 3 jobs done.
    # It is printed twice: after the jobs, and in the final listing of every
    # kind (where kubectl names it pipelineagentpool.acrpool.dev/ci-agents).
    shown = [r for t in tables(lines, "NAME", "POOL", "COUNT") for r in t]
    assert [r["NAME"] for r in shown] == ["ci-agents", "pipelineagentpool.acrpool.dev/ci-agents"], \
        "\n".join(lines)
    for row in shown:
        assert (row["POOL"], row["COUNT"], row["DESIRED"], row["ONLINE"], row["QUEUED"], row["JOBS"],
                row["READY"]) == ("aci", "2", "2", "2", "0", "3", "True"), row
    # The jobs, as the Azure DevOps stand-in reports them: each succeeded, on
    # one of the two agents, each in a container start of its own.
    jobs = re.findall(r"job (\d+) \(quickstart build\): (\w+), (\w+), on agent (\S+), container start (\d+)",
                      p.stdout)
    assert len(jobs) == 3, p.stdout
    assert all(state == "finished" and result == "succeeded" for _, state, result, _, _ in jobs), jobs
    assert {agent for _, _, _, agent, _ in jobs} <= {"ci-agents-0", "ci-agents-1"}, jobs
    assert len({(agent, start) for _, _, _, agent, start in jobs}) == 3, "a container start ran two jobs"

    log = (tmp_path / "qs" / "operator.log").read_text()
    token = (tmp_path / "qs" / "azure-identity-token").read_text().strip()
    assert token not in log, "the federated token appeared in the operator log"
    # The PAT the quick start made is in no output and no log.
    pat = (tmp_path / "qs" / "azdo-pat").read_text().strip()
    assert len(pat) >= 52
    emulator_log = (tmp_path / "qs" / "emulator.log").read_text()
    for text in (p.stdout, p.stderr, log, emulator_log):
        assert pat not in text, "the PAT appeared in the output or a log"
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in log
    # Everything was stopped: nothing listens on the emulator's port.
    port = (tmp_path / "qs" / "emulator.port").read_text().strip()
    assert subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/_emulator/health"]).returncode != 0
