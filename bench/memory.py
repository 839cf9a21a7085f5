#!/usr/bin/env python3
"""bench/memory.py: the operator's resident memory per cached object, per
kind: AgentPools, Tasks and TaskRuns (issue 13: "idle RSS ... at most
40 MiB with 10,000 AgentPools (4 KiB a pool or less), also with 10,000
Tasks and 10,000 TaskRuns in the cache ... with the memory per object
reported per kind").

    make bench BENCH_POOLS="100 1000"                # runs it after bench/scale.py, at the same N
    ACRPOOL_BUILD_DIR=build-bench python3 bench/memory.py [N ...]   # default: 100 1000

One real kube-apiserver + etcd (scripts/testenv.sh) for the whole run. For
each N, a fresh namespace and a fresh Azure emulator (zero provisioning
delay, runs that finish as soon as they start: runDurationSeconds 0), the
service principal Secret and 10 Premium registries (quota raised so nothing
is refused), made as bench/scale.py makes them (its setup_registries).
Then our operator (start_acrpool: the ServiceAccount with manifests/base's
RBAC, 4 workers, the default install: no manifests/finalizer-policy, so it
adds its finalizers itself; resync 10m, the chart's default, so that
"settled" is idle and not a resync in progress) and, one kind after the
other, N objects created with server-side apply from 8 connections (as
bench/scale.py's apply_all), each phase waited on and then settled:

1. idle: the operator started, informers synced, the 10 Registries Ready;
2. AgentPools: N S1 pools of count 1 (p00000 ...), round robin over the
   registries, until every one is Ready;
3. Tasks: N Tasks (t00000 ...), task i on pool i (so in its registry); the
   even ones the docs' scheduled Docker build
   (manifests/samples/task-scheduled.yaml: git context, Dockerfile, an
   image tagged with the run ID, a nightly timer), the odd ones an inline
   multi-step task (an encoded step: build, push and a test command in
   about 300 bytes of acr-task YAML, with a value); until every one is
   Ready;
4. TaskRuns: N TaskRuns (r00000 ...), run i of task i (taskRef), until
   every one has reached a final runStatus, and every Task's status.lastRun
   shows its run (the TaskRun's status change re-queues its Task, which
   writes lastRun). Asserted: every run Succeeded and Ready, every Task's
   last run Succeeded. This phase's delta is the TaskRuns' and what they
   add to their Tasks (status.lastRun, about 140 bytes a Task).

"Settled" is no reconcile of any controller for 6 s (longer than the
Registry reconciler's 5 s coalescing and the Task reconciler's 5 s poll of
a run in flight): a condition sampled from the reconcile counter, not a
fixed sleep. After each phase: VmRSS (/proc/PID/status) and where it lives
(/proc/PID/smaps, bench/scale.py's classes), and the operator's CPU seconds
(utime + stime) from the phase's first apply until settled. Prints one
table: per kind, the objects, RSS before and after, KiB per object (the
RSS delta over N: what the process holds for them, malloc's slack and
buffers kept after the phase included, not only the cache's records), the
bytes per object the cache of that kind holds by its own count
(acrpool_cache_bytes over acrpool_cache_objects, read from /metrics after
the phase), and the totals with all 3N objects; then the smaps classes after each phase;
then, per kind, what one object holds as the cache keeps it (compact JSON
without metadata.managedFields and the last-applied annotation, which the
informers drop), by part, read once after the last phase with one LIST per
kind (after the RSS was taken: it does not touch the operator).

The emulator's run logs are a few lines (about 340 bytes of
status.logTail); a real build's last 20 lines (the operator keeps at most
20, read from the last 4 KiB of the log) are longer, so real TaskRuns hold
more than these.

Then everything is deleted with a DELETE each from the same 8 connections
(TaskRuns, Tasks, AgentPools, then the Registries and the Secret), until
the API server lists none of them, with the operator running (its
finalizers); the deletion's CPU and the RSS after it are in the table.
The namespaces stay (the test control plane has no namespace controller);
the control plane is stopped at the end.

Asserted (correctness, never timings): every object reaches its state, the
operator is alive after every phase and exits cleanly on SIGTERM. Figures
are printed, never asserted.

Ours only: the controller-runtime peer (bench/peer) has no Task or TaskRun
kinds. Its memory with N AgentPools is in bench/scale.py's table, beside
ours, measured the same way.

The operator binary is $ACRPOOL_BUILD_DIR/reconcilers/acrpool-controller;
build it without sanitizers (make bench does: build-bench, Release).
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("ACRPOOL_BUILD_DIR", str(ROOT / "build-bench"))

from emulator import Emulator  # noqa: E402
from harness import OPERATOR  # noqa: E402
from kubeenv import Kube, _read_env  # noqa: E402
from procs import wait_until  # noqa: E402
from scale import (APPLY_THREADS, REGISTRIES, WORKERS, Admin, all_ready, apply_all, cpu_seconds,  # noqa: E402
                   delete_all, machine, metric_series, none_left, settle, setup_registries, smaps_classes,
                   start_acrpool, status_kb, table)

API = "/apis/acrpool.dev/v1alpha1/namespaces/{ns}/"
PATH = {kind: API + kind for kind in ("agentpools", "tasks", "taskruns", "registries")}
LABEL = {"agentpools": "AgentPools", "tasks": "Tasks", "taskruns": "TaskRuns"}
RESYNC = "10m"          # the operator's and the chart's default
QUIET_S = 6.0
TERMINAL = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
HELLO = "https://github.com/Azure-Samples/acr-build-helloworld-node.git#main"
MULTI_STEP = """version: v1.1.0
steps:
  - id: build
    build: -t {{{{.Run.Registry}}}}/app{i}:{{{{.Run.ID}}}} -f Dockerfile .
  - id: push
    push: ["{{{{.Run.Registry}}}}/app{i}:{{{{.Run.ID}}}}"]
  - id: test
    cmd: {{{{.Run.Registry}}}}/app{i}:{{{{.Run.ID}}}} npm test
    env: ["CI={{{{.Values.ci}}}}"]
"""


def pool(i, ns, regs):
    return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "AgentPool",
            "metadata": {"name": f"p{i:05d}", "namespace": ns},
            "spec": {"registryRef": {"name": regs[i % REGISTRIES]}, "tier": "S1", "count": 1}}


def task(i, ns, regs):
    if i % 2 == 0:
        spec = {"step": {"docker": {"contextPath": HELLO, "dockerFilePath": "Dockerfile",
                                    "imageNames": [f"app{i}:{{{{.Run.ID}}}}"]}},
                "timers": [{"name": "nightly", "schedule": "0 21 * * *"}]}
    else:
        spec = {"step": {"encoded": {"taskContent": MULTI_STEP.format(i=i),
                                     "values": [{"name": "ci", "value": "true"}]}}}
    return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "Task",
            "metadata": {"name": f"t{i:05d}", "namespace": ns},
            "spec": {"registryRef": {"name": regs[i % REGISTRIES]}, "agentPoolRef": {"name": f"p{i:05d}"},
                     **spec}}


def taskrun(i, ns, regs):
    return {"apiVersion": "acrpool.dev/v1alpha1", "kind": "TaskRun",
            "metadata": {"name": f"r{i:05d}", "namespace": ns},
            "spec": {"registryRef": {"name": regs[i % REGISTRIES]}, "taskRef": {"name": f"t{i:05d}"}}}


def columns(admin, ns, kind, *names):
    """Every object of a kind as a tuple of printer columns (the
    server-side Table, not the objects)."""
    t, _ = admin.call("GET", PATH[kind].format(ns=ns), accept=TABLE)
    idx = [[c["name"] for c in t["columnDefinitions"]].index(n) for n in names]
    return [tuple(r["cells"][i] for i in idx) for r in t.get("rows") or []]


def runs_final(admin, ns, n):
    rows = columns(admin, ns, "taskruns", "Status")
    return len(rows) == n and all(s in TERMINAL for (s,) in rows)


def last_runs_in(admin, ns, n):
    rows = columns(admin, ns, "tasks", "Last-Run", "Run-Status")
    return len(rows) == n and all(r and s in TERMINAL for r, s in rows)


def reconcile_errors(op):
    return sum(metric_series(op, "controller_runtime_reconcile_errors_total").values())


def cached_form(obj):
    """The object as the operator's informers keep it."""
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    (meta.get("annotations") or {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if meta.get("annotations") == {}:
        del meta["annotations"]
    return obj


def size(x):
    return len(json.dumps(x, separators=(",", ":")))


def object_sizes(admin, ns, kind):
    """Mean bytes of one object as cached (compact JSON), and by part:
    apiVersion and kind, metadata, spec, each status field."""
    items = admin.call("GET", PATH[kind].format(ns=ns))[0]["items"]
    total, parts = 0, {}
    for o in items:
        o = cached_form(o)
        total += size(o)
        named = {"apiVersion + kind": size({"apiVersion": o.get("apiVersion"), "kind": o.get("kind")}),
                 "metadata": size(o.get("metadata")), "spec": size(o.get("spec"))}
        for k, v in (o.get("status") or {}).items():
            named[f"status.{k}"] = size(v)
        for k, v in named.items():
            parts[k] = parts.get(k, 0) + v
    n = max(1, len(items))
    return total / n, {k: v / n for k, v in parts.items()}


def cache_bytes(op, kind):
    """The operator's own count of what its cache of kind holds
    (acrpool_cache_objects and acrpool_cache_bytes): objects, bytes."""
    label = f'{{resource="{kind}"}}'
    return (metric_series(op, "acrpool_cache_objects").get(label, 0),
            metric_series(op, "acrpool_cache_bytes").get(label, 0))


def alive(op, when):
    assert op.proc.alive(), f"the operator exited {when}: {op.proc.text()[-3000:]}"


def run_one(kube, tmp, n):
    ns = f"bench-memory-{n}-{int(time.time())}"
    kube.run("create", "namespace", ns)
    emu_dir = pathlib.Path(tempfile.mkdtemp(dir=tmp))
    emu = Emulator.start(emu_dir)
    admin = Admin(kube)
    interval = 0.2 if n <= 1000 else 1.0
    op = None
    res = {"N": n, "phases": [], "sizes": {}}
    try:
        emu.settings(runDurationSeconds=0)
        regs = setup_registries(kube, emu, ns)
        t0 = time.monotonic()
        op = start_acrpool(kube, emu, ns, resync=RESYNC)
        pid = op.pid
        settle(op, quiet_s=QUIET_S, controller=None)
        alive(op, "at start-up")
        rss = status_kb(pid, "VmRSS")
        res["phases"].append({"name": "idle", "objects": REGISTRIES, "before_kb": None, "after_kb": rss,
                              "cpu_s": cpu_seconds(pid), "wall_s": time.monotonic() - t0,
                              "smaps": smaps_classes(pid), "errors": reconcile_errors(op)})

        def phase(kind, build, wait, what):
            before, cpu0, err0, t0 = status_kb(pid, "VmRSS"), cpu_seconds(pid), reconcile_errors(op), \
                time.monotonic()
            apply_all(admin, ns, [build(i, ns, regs) for i in range(n)], path=PATH[kind])
            wait_until(what, wait, timeout=3600, interval=interval)
            settle(op, quiet_s=QUIET_S, timeout=1800, controller=None)
            alive(op, f"with {n} {LABEL[kind]}")
            res["phases"].append({"name": LABEL[kind], "objects": n, "before_kb": before,
                                  "after_kb": status_kb(pid, "VmRSS"), "cpu_s": cpu_seconds(pid) - cpu0,
                                  "wall_s": time.monotonic() - t0, "smaps": smaps_classes(pid),
                                  "errors": reconcile_errors(op) - err0, "cache": cache_bytes(op, kind)})
            print(f"#   {LABEL[kind]}: {res['phases'][-1]['after_kb'] / 1024:.1f} MiB", file=sys.stderr, flush=True)

        phase("agentpools", pool, lambda: all_ready(admin, ns, n, path=PATH["agentpools"]), "every AgentPool Ready")
        phase("tasks", task, lambda: all_ready(admin, ns, n, path=PATH["tasks"]), "every Task Ready")

        def runs_done():
            return runs_final(admin, ns, n) and last_runs_in(admin, ns, n)
        phase("taskruns", taskrun, runs_done, "every TaskRun's run final and in its Task's lastRun")
        bad = [r for r in columns(admin, ns, "taskruns", "Status", "Ready") if r != ("Succeeded", "True")]
        assert not bad, f"{len(bad)} TaskRuns did not succeed, e.g. {bad[:5]}"
        bad = [r for r in columns(admin, ns, "tasks", "Run-Status", "Ready") if r != ("Succeeded", "True")]
        assert not bad, f"{len(bad)} Tasks do not show a succeeded last run, e.g. {bad[:5]}"
        for kind in ("agentpools", "tasks", "taskruns"):
            res["sizes"][kind] = object_sizes(admin, ns, kind)

        # Everything deleted, the operator running (its finalizers), until
        # the API server lists none.
        before, cpu0, t0 = status_kb(pid, "VmRSS"), cpu_seconds(pid), time.monotonic()
        for kind, prefix in (("taskruns", "r"), ("tasks", "t"), ("agentpools", "p")):
            delete_all(admin, ns, [f"{prefix}{i:05d}" for i in range(n)], path=PATH[kind])
            wait_until(f"every {LABEL[kind][:-1]} gone", lambda: none_left(admin, ns, path=PATH[kind]),
                       timeout=3600, interval=interval)
        delete_all(admin, ns, regs, path=PATH["registries"])
        wait_until("every Registry gone", lambda: none_left(admin, ns, path=PATH["registries"]), timeout=120)
        kube.run("delete", "secret", "sp", "-n", ns)
        settle(op, quiet_s=QUIET_S, timeout=1800, controller=None)
        alive(op, "after the deletion")
        res["phases"].append({"name": "deletion (all gone)", "objects": 3 * n + REGISTRIES, "before_kb": before,
                              "after_kb": status_kb(pid, "VmRSS"), "cpu_s": cpu_seconds(pid) - cpu0,
                              "wall_s": time.monotonic() - t0, "smaps": smaps_classes(pid), "errors": None})
        res["total_cpu_s"] = cpu_seconds(pid)
        res["peak_kb"] = status_kb(pid, "VmHWM")
        rc = op.proc.stop()
        assert rc == 0, f"the operator exited {rc} on SIGTERM: {op.proc.text()[-3000:]}"
        os.unlink(op.proc.log_path)
        op = None
    except BaseException:
        if op:
            print(f"# the operator's log: {op.proc.log_path}", file=sys.stderr)
        raise
    finally:
        admin.close()
        if op:
            op.stop()
        emu.stop()
    return res


def report(results, ns_list):
    def mib(kb):
        return "" if kb is None else f"{kb / 1024:.1f}"

    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}; acrpool: {OPERATOR} (no sanitizers), the default install "
          f"(no finalizer policy); kube-apiserver v1.36.3 + etcd v3.6.8 (scripts/testenv.sh); emulator "
          f"provisioning delay 0, run duration 0; {REGISTRIES} registries; objects created by server-side "
          f"apply from {APPLY_THREADS} connections, one kind after the other; {WORKERS} workers; resync {RESYNC}; "
          f"settled: no reconcile for {QUIET_S:.0f} s")

    rows = []
    for n in ns_list:
        r = results[n]
        ph = r["phases"]
        for p in ph:
            per = "" if p["before_kb"] is None or p["name"].startswith("deletion") else \
                f"{(p['after_kb'] - p['before_kb']) / p['objects']:.2f}"
            cached = p.get("cache")
            rows.append([str(n), p["name"], f"{p['objects']:,}", mib(p["before_kb"]), mib(p["after_kb"]), per,
                         f"{cached[1] / cached[0]:,.0f}" if cached and cached[0] else "",
                         f"{p['cpu_s']:.2f}", f"{p['wall_s']:.1f}",
                         "" if p["errors"] is None else f"{p['errors']:.0f}"])
            if p["name"] == "TaskRuns":
                idle, full = ph[0]["after_kb"], p["after_kb"]
                rows.append([str(n), f"**all {3 * n:,} objects**", f"{3 * n:,}", mib(idle), mib(full),
                             f"{(full - idle) / (3 * n):.2f}", "",
                             f"{sum(q['cpu_s'] for q in ph[1:4]):.2f}",
                             f"{sum(q['wall_s'] for q in ph[1:4]):.1f}", ""])
        rows.append([str(n), "whole run: peak RSS (VmHWM), operator CPU", "", "", mib(r["peak_kb"]), "", "",
                     f"{r['total_cpu_s']:.2f}", "", ""])
    table("acrpool-controller's RSS per kind (each phase: first apply -> every object in its state -> settled)",
          ["N", "phase", "objects", "RSS before (MiB)", "RSS after (MiB)", "KiB per object",
           "cache bytes per object (its own count)", "operator CPU (s)", "wall (s)", "reconcile errors"], rows)

    order = ["idle", "AgentPools", "Tasks", "TaskRuns", "deletion (all gone)"]
    classes = sorted({c for n in ns_list for p in results[n]["phases"] for c in p["smaps"]})
    header = ["class"] + [f"N={n} {o}" for n in ns_list for o in order]
    rows = []
    for c in classes + ["total"]:
        row = [c]
        for n in ns_list:
            by = {p["name"]: p["smaps"] for p in results[n]["phases"]}
            for o in order:
                sm = by.get(o, {})
                row.append(mib(sum(sm.values()) if c == "total" else sm.get(c, 0)))
        rows.append(row)
    table("Where the resident bytes go after each phase (/proc/PID/smaps, Rss by mapping, MiB)", header, rows)

    rows = []
    for n in ns_list:
        for kind in ("agentpools", "tasks", "taskruns"):
            mean, parts = results[n]["sizes"][kind]
            top = sorted(parts.items(), key=lambda kv: -kv[1])
            rows.append([str(n), LABEL[kind], f"{mean:,.0f}", ", ".join(f"{k} {v:,.0f}" for k, v in top)])
    table("One object as the cache keeps it (compact JSON without managedFields and the last-applied "
          "annotation; mean bytes, after the TaskRuns phase)", ["N", "kind", "bytes", "by part (bytes)"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="*", type=int, default=[100, 1000])
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="acrpool-memory-"))
    cp = tmp / "cp"
    subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "start", str(cp)], check=True,
                   env=dict(os.environ, TESTENV_OWNER_PID=str(os.getpid())))
    results = {}
    ok = False
    try:
        kube = Kube(_read_env(cp / "env"))
        kube.run("apply", "-f", str(ROOT / "crds"))
        kube.run("wait", "--for", "condition=Established", "-f", str(ROOT / "crds"))
        for n in args.n:
            print(f"# N={n} ...", file=sys.stderr, flush=True)
            results[n] = run_one(kube, tmp, n)
        ok = True
    finally:
        subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "stop", str(cp)])
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"# kept for a look: {tmp}", file=sys.stderr)
    report(results, args.n)


if __name__ == "__main__":
    main()
