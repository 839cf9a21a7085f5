#!/usr/bin/env python3
"""bench/scale.py: the operator at N AgentPools over 10 registries (issue 9).

    ACRPOOL_BUILD_DIR=build-bench python3 bench/scale.py [N ...]   # default: 100 1000
    make bench BENCH_POOLS="100 1000"

Against a real kube-apiserver + etcd (scripts/testenv.sh) and the Azure
emulator with zero provisioning delay. For each N: a fresh namespace,
emulator and operator (started with --resync-period RESYNC); 10 registries
(quota raised so nothing is refused), N S1 pools of count 1 spread round
robin over them, applied with one `kubectl apply` (a List). Prints, per N:

- apply -> all Ready: from the start of the kubectl apply until every
  object shows Ready=True (read once a second as the server-side Table, the
  printer columns only, so the polling does not load the API server);
- operator CPU seconds (utime + stime from /proc/PID/stat) for the rollout
  and in total, and peak RSS (VmHWM from /proc/PID/status);
- idle RSS (VmRSS) after settling with 0 pools (registries only) and with
  N pools;
- ARM requests per pool created (every ARM request the emulator logged
  during the rollout, token requests apart, over N; the minimum is one PUT)
  and ARM writes per pool. Counted from the emulator's requests.jsonl
  (--state-dir), which holds every request;
- steady-state ARM requests during one resync of every key, by kind
  (registry GET, pool LIST = its first page, the LIST's next pages, pool
  GET, listQueueStatus), per registry and per pool;
- API server requests per reconcile during the rollout
  (rest_client_requests_total, WATCH excluded, over
  controller_runtime_reconcile_total{controller="agentpool"});
- reconcile latency from watch event to ARM call, p50/p99: PROBES pools
  are patched one at a time after settling (spec.count 1 -> 2) and the
  latency is the emulator's log time of the pool's PATCH (when the request
  reached the emulator) minus the moment the merge PATCH to the API server
  (sent directly, not through kubectl) was answered: the change is committed
  and its watch event sent by then, so this slightly understates it; and
  the same under load: each pool's create PUT time minus the start of the
  apply (so it includes the queueing of a rollout of N);
- controller_runtime_reconcile_time_seconds p50/p99 (from the histogram
  buckets: an upper bound) over the whole run.

The operator binary is $ACRPOOL_BUILD_DIR/reconcilers/acrpool-controller;
build it without sanitizers (make bench does: build-bench, Release).
Figures are printed, never asserted.
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
os.environ.setdefault("ACRPOOL_BUILD_DIR", str(ROOT / "build-bench"))

from emulator import CLIENT, RG, SUB, TENANT, Emulator  # noqa: E402
from harness import OPERATOR, SP_SECRET, registry_obj, start_operator  # noqa: E402
from kubeenv import Kube, _read_env  # noqa: E402
from procs import wait_until  # noqa: E402

REGISTRIES = 10
QUOTA = {"standardVCPU": 1000000}
RESYNC = "60s"
PROBES = 50
PER_REGISTRY = ("registry GET", "pool LIST", "pool LIST next page")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine():
    model = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    kb = int(open("/proc/meminfo").readline().split()[1])
    return (f"{platform.machine()} {model}, {os.cpu_count()} cores, {kb / 1048576:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime (fields 14, 15)


def status_kb(pid, key):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def metric_series(op, name):
    """{labels text: value} of one metric family."""
    _, body = op.get("/metrics")
    out = {}
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name:
            out[head[len(name):]] = float(value)
    return out


def reconciles(op):
    return sum(metric_series(op, "controller_runtime_reconcile_total").get(k, 0)
               for k in metric_series(op, "controller_runtime_reconcile_total") if 'controller="agentpool"' in k)


def rest_requests(op):
    s = metric_series(op, "rest_client_requests_total")
    return sum(v for k, v in s.items() if 'verb="WATCH"' not in k)


def histogram_quantiles(op, name, label, qs):
    buckets = {}
    for k, v in metric_series(op, name + "_bucket").items():
        if label not in k:
            continue
        le = k.split('le="')[1].split('"')[0]
        buckets[float("inf") if le == "+Inf" else float(le)] = v
    total = buckets.get(float("inf"), 0)
    out = []
    for q in qs:
        le = next((b for b in sorted(buckets) if buckets[b] >= q * total), float("inf")) if total else None
        out.append(le)
    return out


def settle(op, quiet_s=3.0, timeout=300):
    """Wait until the operator has done no reconcile for quiet_s seconds
    (the reconcile counter, sampled; a condition, not a fixed sleep)."""
    state = {"n": reconciles(op), "since": time.monotonic()}

    def quiet():
        n = reconciles(op)
        if n != state["n"]:
            state["n"], state["since"] = n, time.monotonic()
        return time.monotonic() - state["since"] >= quiet_s
    wait_until("the operator to settle", quiet, timeout=timeout, interval=0.5)


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def all_ready(api, ns, n):
    """Every pool Ready, read as the server-side Table (the printer
    columns only): a full JSON list of 10,000 objects every second would
    load the API server this measures."""
    table, _ = api("GET", f"/apis/acrpool.dev/v1alpha1/namespaces/{ns}/agentpools",
                   accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    col = [c["name"] for c in table["columnDefinitions"]].index("Ready")
    rows = table.get("rows") or []
    return len(rows) == n and all(r["cells"][col] == "True" for r in rows)


def api_client(kube):
    """Requests straight to the API server as the admin (no kubectl process
    in the way). api(method, path, body=None, accept=JSON) returns
    (answer JSON, wall time the answer arrived): for a PATCH the change is
    committed and its watch event on its way by then."""
    import ssl
    import urllib.request
    d = pathlib.Path(kube.env["TESTENV_DIR"])
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    ctx.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))
    base = kube.env["TESTENV_APISERVER"]

    def call(method, path, body=None, accept="application/json"):
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                     method=method, headers=headers)
        with urllib.request.urlopen(req, context=ctx, timeout=120) as r:
            out = json.loads(r.read())
        return out, time.time()
    return call


def arm_kind(r):
    p = r["path"].lower()
    if "oauth2" in p:
        return "token"
    if not p.startswith("/subscriptions/"):
        return "other"
    tail = p.split("/registries/", 1)[1].split("/")
    if len(tail) == 1:
        return "registry GET"
    if tail[1] == "agentpools" and len(tail) == 2:
        # A LIST is its first page; the pages after it carry a $skipToken.
        return "pool LIST next page" if "$skipToken" in (r.get("query") or {}) else "pool LIST"
    if tail[1] == "agentpools" and len(tail) >= 4 and tail[3] == "listqueuestatus":
        return "listQueueStatus"
    if tail[1] == "agentpools":
        return f"pool {r['method']}"
    return f"{tail[1]} {r['method']}"


class ArmLog:
    """The emulator's whole request log, read from its requests.jsonl (the
    in-memory log the control endpoint serves keeps only the newest
    entries, fewer than a rollout of 10,000 pools makes). mark() starts a
    window; since_mark() returns the requests made since."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def mark(self):
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        # A line still being written has no newline yet: leave it for later.
        return [json.loads(line) for line in data.split(b"\n")[:-1] if line]


def run_one(kube, tmp, n):
    ns = f"bench-{n}-{int(time.time())}"
    kube.run("create", "namespace", ns)
    emu_dir = pathlib.Path(tempfile.mkdtemp(dir=tmp))
    emu = Emulator.start(emu_dir, "--state-dir", str(emu_dir))
    log = ArmLog(emu_dir / "requests.jsonl")
    api = api_client(kube)
    op = None
    res = {"N": n}
    try:
        emu.client(TENANT, CLIENT, secret=SP_SECRET)
        kube.run("create", "secret", "generic", "sp", "-n", ns, f"--from-literal=AZURE_TENANT_ID={TENANT}",
                 f"--from-literal=AZURE_CLIENT_ID={CLIENT}", f"--from-literal=AZURE_CLIENT_SECRET={SP_SECRET}")
        regs = [f"registry{i}" for i in range(REGISTRIES)]
        for r in regs:
            emu.registry(SUB, RG, r, sku="Premium", quota=QUOTA)
        kube.run("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            registry_obj(name=r, azure_name=r, quota=QUOTA) for r in regs]}))
        op = start_operator(kube, emu, ns, "--resync-period", RESYNC)
        pid = op.p.pid
        wait_until("readyz", lambda: op.get("/readyz")[0] == 200, timeout=60)
        wait_until("registries Ready", lambda: all(
            any(c["type"] == "Ready" and c["status"] == "True"
                for c in (o.get("status") or {}).get("conditions", []))
            for o in json.loads(kube.run("get", "registries", "-n", ns, "-o", "json").stdout)["items"]), timeout=60)
        settle(op)
        res["idle_rss_0_kb"] = status_kb(pid, "VmRSS")

        items = [{"apiVersion": "acrpool.dev/v1alpha1", "kind": "AgentPool", "metadata": {"name": f"p{i:05d}"},
                  "spec": {"registryRef": {"name": regs[i % REGISTRIES]}, "tier": "S1", "count": 1}}
                 for i in range(n)]
        log.mark()
        cpu0, rec0, rest0 = cpu_seconds(pid), reconciles(op), rest_requests(op)
        t_apply_wall, t0 = time.time(), time.monotonic()
        kube.run("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
                 timeout=1800)
        res["apply_s"] = time.monotonic() - t0
        wait_until("every pool Ready", lambda: all_ready(api, ns, n), timeout=3600, interval=1.0)
        res["ready_s"] = time.monotonic() - t0
        res["rollout_cpu_s"] = cpu_seconds(pid) - cpu0
        res["emu_cpu_s"] = cpu_seconds(emu.proc.pid)
        reqs = log.since_mark()
        arm = [r for r in reqs if arm_kind(r) not in ("token", "other")]
        res["arm_per_pool"] = len(arm) / n
        res["arm_writes_per_pool"] = sum(1 for r in arm if r["method"] in ("PUT", "PATCH", "DELETE")) / n
        res["arm_by_kind_rollout"] = {}
        for r in arm:
            res["arm_by_kind_rollout"][arm_kind(r)] = res["arm_by_kind_rollout"].get(arm_kind(r), 0) + 1
        first_put = {}
        for r in arm:
            if r["method"] == "PUT" and arm_kind(r) == "pool PUT":
                name = r["path"].rsplit("/", 1)[-1]
                first_put.setdefault(name, r["time"])
        loaded = [t - t_apply_wall for t in first_put.values()]
        res["loaded_p50"], res["loaded_p99"] = pct(loaded, 0.5), pct(loaded, 0.99)
        settle(op)
        rec1, rest1 = reconciles(op), rest_requests(op)
        res["api_per_reconcile"] = (rest1 - rest0) / max(1, rec1 - rec0)
        res["reconciles_per_pool"] = (rec1 - rec0) / n
        res["idle_rss_n_kb"] = status_kb(pid, "VmRSS")

        # One resync of every key: clear the log, wait for >= N + registries
        # reconciles and quiet, then count ARM requests by kind.
        log.mark()
        base = reconciles(op)
        t_rs = time.monotonic()
        wait_until("a resync of every pool", lambda: reconciles(op) >= base + n, timeout=600, interval=1.0)
        settle(op)
        res["resync_wait_s"] = time.monotonic() - t_rs
        kinds = {}
        for r in log.since_mark():
            k = arm_kind(r)
            if k not in ("token", "other"):
                kinds[k] = kinds.get(k, 0) + 1
        res["resync_by_kind"] = kinds

        # Unloaded latency probes: watch event -> ARM call.
        log.mark()
        lat = []
        for i in range(min(PROBES, n)):
            name = f"p{i:05d}"
            _, t = api("PATCH", f"/apis/acrpool.dev/v1alpha1/namespaces/{ns}/agentpools/{name}",
                       {"spec": {"count": 2}})
            hit = wait_until(f"ARM write to {name}", lambda: [
                r for r in log.since_mark() if r["method"] in ("PATCH", "PUT")
                and r["path"].lower().endswith("/agentpools/" + name)], timeout=60, interval=0.01)
            lat.append(max(0.0, hit[0]["time"] - t))
        res["probe_p50"], res["probe_p99"] = pct(lat, 0.5), pct(lat, 0.99)
        res["reconcile_p50"], res["reconcile_p99"] = histogram_quantiles(
            op, "controller_runtime_reconcile_time_seconds", 'controller="agentpool"', (0.5, 0.99))
        res["total_cpu_s"] = cpu_seconds(pid)
        res["peak_rss_kb"] = status_kb(pid, "VmHWM")
    finally:
        if op:
            op.stop()
        emu.stop()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="*", type=int, default=[100, 1000])
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="acrpool-scale-"))
    cp = tmp / "cp"
    subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "start", str(cp)], check=True,
                   env=dict(os.environ, TESTENV_OWNER_PID=str(os.getpid())))
    results = []
    try:
        kube = Kube(_read_env(cp / "env"))
        kube.run("apply", "-f", str(ROOT / "crds"))
        kube.run("wait", "--for", "condition=Established", "-f", str(ROOT / "crds"))
        for n in args.n:
            print(f"# N={n} ...", file=sys.stderr, flush=True)
            results.append(run_one(kube, tmp, n))
    finally:
        subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "stop", str(cp)])

    def mib(kb):
        return f"{kb / 1024:.1f}"
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}; operator {OPERATOR} (no sanitizers); kube-apiserver v1.36.3 + "
          f"etcd v3.6.8 (scripts/testenv.sh); emulator provisioning delay 0; {REGISTRIES} registries; S1 pools of "
          f"count 1; --workers 4 (default), --resync-period {RESYNC}")
    cols = [r["N"] for r in results]
    rows = [
        ("kubectl apply of N pools (s)", lambda r: f"{r['apply_s']:.1f}"),
        ("apply -> all Ready (s)", lambda r: f"{r['ready_s']:.1f}"),
        ("operator CPU during rollout (s)", lambda r: f"{r['rollout_cpu_s']:.2f}"),
        ("operator CPU, whole run (s)", lambda r: f"{r['total_cpu_s']:.2f}"),
        ("emulator CPU, whole run (s)", lambda r: f"{r['emu_cpu_s']:.1f}"),
        ("peak RSS, VmHWM (MiB)", lambda r: mib(r["peak_rss_kb"])),
        ("idle RSS, 0 pools (MiB)", lambda r: mib(r["idle_rss_0_kb"])),
        ("idle RSS, N pools (MiB)", lambda r: mib(r["idle_rss_n_kb"])),
        ("ARM requests per pool created", lambda r: f"{r['arm_per_pool']:.2f}"),
        ("ARM writes per pool created (min 1)", lambda r: f"{r['arm_writes_per_pool']:.2f}"),
        ("rollout ARM requests by kind", lambda r: ", ".join(f"{k} {v}" for k, v in
                                                             sorted(r["arm_by_kind_rollout"].items()))),
        ("reconciles per pool (rollout)", lambda r: f"{r['reconciles_per_pool']:.2f}"),
        ("API server requests per reconcile", lambda r: f"{r['api_per_reconcile']:.2f}"),
        ("one resync: ARM requests by kind", lambda r: ", ".join(f"{k} {v}" for k, v in
                                                                 sorted(r["resync_by_kind"].items()))),
        ("one resync: registry GETs per registry", lambda r: f"{r['resync_by_kind'].get('registry GET', 0) / REGISTRIES:.1f}"),
        ("one resync: pool LISTs per registry (pages)", lambda r: f"{r['resync_by_kind'].get('pool LIST', 0) / REGISTRIES:.1f} ({(r['resync_by_kind'].get('pool LIST', 0) + r['resync_by_kind'].get('pool LIST next page', 0)) / REGISTRIES:.1f})"),
        ("one resync: per-pool ARM requests per pool", lambda r: f"{sum(v for k, v in r['resync_by_kind'].items() if k not in PER_REGISTRY) / r['N']:.3f}"),
        ("watch event -> ARM call, unloaded p50/p99 (ms)",
         lambda r: f"{r['probe_p50'] * 1000:.0f} / {r['probe_p99'] * 1000:.0f}"),
        ("apply start -> pool's create PUT, p50/p99 (s)",
         lambda r: f"{r['loaded_p50']:.2f} / {r['loaded_p99']:.2f}"),
        ("reconcile duration p50/p99 (histogram bound, s)",
         lambda r: f"{r['reconcile_p50']} / {r['reconcile_p99']}"),
    ]
    print("| N | " + " | ".join(str(c) for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, fn in rows:
        print(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")


if __name__ == "__main__":
    main()
