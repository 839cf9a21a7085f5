#!/usr/bin/env python3
"""bench/autoscale.py: what autoscaling saves, for a fixed run trace.

Runs the same trace of build runs twice against the Azure emulator (whose
pools run one run per instance at a time, like ACR's): once on an
autoscaled pool (min 0, max 4, runsPerInstance 1) driven by the real
operator, once on a fixed pool of 4. Prints, for each, the pool
instance-seconds used (what is billed: instances allocated x time) and the
queue wait of the runs (start - create), and the difference.

    python3 bench/autoscale.py [--scale S]   # S multiplies every duration (default 1)

It starts its own control plane (scripts/testenv.sh), emulator and
operator, and stops them at the end. Figures are printed, never asserted.
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from emulator import RG, SUB, Emulator  # noqa: E402
from harness import pool_obj, setup_azure, start_operator, wait_condition  # noqa: E402
from kubeenv import Kube, _read_env  # noqa: E402
from procs import wait_until  # noqa: E402

# (seconds after start, number of runs, seconds each run takes)
TRACE = [(0, 8, 10), (40, 4, 10), (90, 12, 10), (100, 2, 10)]


def run_trace(kube, emu, ns, name, scale):
    """Submit the trace; sample the pool's count until every run is done
    and the pool has settled. Returns (instance_seconds, waits, span)."""
    start = time.monotonic()
    pending = sorted(TRACE)
    ids = []
    samples = []
    settle_until = None
    while True:
        now = time.monotonic() - start
        while pending and pending[0][0] * scale <= now:
            t, n, dur = pending.pop(0)
            for i in range(n):
                rid = f"{name}-{int(t)}-{i}"
                emu.control("PUT", f"registries/{SUB}/{RG}/myregistry/runs/{rid}",
                            {"properties": {"agentPoolName": name, "status": "Queued"}, "durationSeconds": dur * scale})
                ids.append(rid)
        count = emu.pool(SUB, RG, "myregistry", name)["properties"]["count"]
        samples.append((now, count))
        done = not pending and all(
            emu.control("GET", f"registries/{SUB}/{RG}/myregistry/runs/{r}")["status"] == "Succeeded" for r in ids)
        if done and settle_until is None:
            settle_until = now + 30 * scale   # let a scale-down happen
        if settle_until is not None and now >= settle_until:
            break
        time.sleep(0.25)
    inst = sum((b[0] - a[0]) * a[1] for a, b in zip(samples, samples[1:]))
    waits = []
    for r in ids:
        p = emu.control("GET", f"registries/{SUB}/{RG}/myregistry/runs/{r}")["properties"]
        waits.append(iso(p["startTime"]) - iso(p["createTime"]))
    return inst, waits, samples[-1][0]


def iso(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="acrpool-bench-"))
    subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "start", str(tmp / "cp")], check=True,
                   env=dict(os.environ, TESTENV_OWNER_PID=str(os.getpid())))
    emu = op = None
    try:
        kube = Kube(_read_env(tmp / "cp" / "env"))
        kube.run("apply", "-f", str(ROOT / "crds"))
        kube.run("wait", "--for", "condition=Established", "-f", str(ROOT / "crds"))
        ns = "bench"
        kube.run("create", "namespace", ns)
        emu = Emulator.start(tmp)
        setup_azure(kube, emu, ns, quota={"standardVCPU": 64})
        emu.registry(SUB, RG, "myregistry", sku="Premium", quota={"standardVCPU": 64})
        op = start_operator(kube, emu, ns, "--queue-poll-interval", "2s")
        delay = int(15 * args.scale)
        kube.apply(pool_obj("auto", tier="S1", count=0, autoscale={
            "minCount": 0, "maxCount": 4, "runsPerInstance": 1, "scaleDownDelaySeconds": delay}), ns)
        kube.apply(pool_obj("fixed", tier="S1", count=4), ns)
        wait_condition(kube, "agentpool", "auto", ns, "Ready")
        wait_condition(kube, "agentpool", "fixed", ns, "Ready")
        auto = run_trace(kube, emu, ns, "auto", args.scale)
        fixed = run_trace(kube, emu, ns, "fixed", args.scale)
    finally:
        if op:
            op.stop()
        if emu:
            emu.stop()
        subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "stop", str(tmp / "cp")])

    def row(label, r):
        inst, waits, span = r
        return (f"| {label} | {inst:8.1f} | {4 * span:8.1f} | {sum(waits) / len(waits):6.1f} | "
                f"{max(waits):6.1f} |")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"trace: {sum(n for _, n, _ in TRACE)} runs in {len(TRACE)} bursts, {TRACE[0][2] * args.scale:.0f} s each; "
          f"autoscale min 0 max 4, scaleDownDelaySeconds {int(15 * args.scale)}, queue polled every 2 s")
    print("| pool | instance-s used | fixed-4 instance-s (same span) | mean wait s | max wait s |")
    print("|---|---|---|---|---|")
    print(row("autoscale 0..4", auto))
    print(row("fixed 4", fixed))
    saved = 1 - auto[0] / (4 * auto[2]) if auto[2] else 0
    added = sum(auto[1]) / len(auto[1]) - sum(fixed[1]) / len(fixed[1])
    print(f"autoscale used {auto[0]:.0f} instance-s where a fixed pool of 4 holds {4 * auto[2]:.0f} "
          f"over the same span ({saved:.0%} less); mean queue wait +{added:.1f} s per run")


if __name__ == "__main__":
    main()
