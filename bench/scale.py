#!/usr/bin/env python3
"""bench/scale.py: acrpool-controller and a controller-runtime peer at N
AgentPools over 10 registries, side by side (issues 9 and 13).

    make bench BENCH_POOLS="100 1000"
    ACRPOOL_BUILD_DIR=build-bench python3 bench/scale.py [--no-peer] [--without-policy] [N ...]   # default: 100 1000

One real kube-apiserver + etcd (scripts/testenv.sh, with its audit log on)
for the whole run. For each N, our operator and then the peer (bench/peer,
built by scripts/peer.sh: Go, sigs.k8s.io/controller-runtime, written the
usual kubebuilder way) each get a fresh namespace and a fresh Azure
emulator (zero provisioning delay); 10 registries (quota raised so nothing
is refused) and the service principal Secret are created with kubectl, the
operator is started and left to settle, then N S1 pools of count 1, spread
round robin over the registries, are created the way a GitOps controller
does at scale: server-side apply (PATCH application/apply-patch+yaml,
fieldManager, force=true) from 8 threads, each with its own persistent
HTTPS connection as the admin. Prints one table with, for each N, acrpool,
peer and peer/acrpool:

- objects created: first apply sent -> last apply answered; all Ready:
  from the first apply, and from the last object created, until every
  object shows Ready=True (read as the server-side Table, the printer
  columns only, every 0.2 s up to N = 1000 and every second above, so the
  polling does not load what it measures);
- operator CPU seconds (utime + stime, /proc/PID/stat) during the rollout
  (first apply -> all Ready) and over the whole run; kube-apiserver's and
  etcd's CPU seconds during the rollout (their PIDs from the testenv env
  file, read before and after);
- RSS: idle (VmRSS) with 0 pools once the informers are synced and no
  reconcile has run for 3 s; with N pools once settled; peak (VmHWM);
- ARM requests per pool created (every ARM request the emulator logged in
  requests.jsonl from the first apply until settled, token requests apart;
  a LIST counts once, its next pages apart) and ARM writes per pool;
- API server requests per pool: from the API server's audit log, every
  request the operator's identity made from the first apply until settled,
  WATCH and LIST apart, over N; and per reconcile
  (controller_runtime_reconcile_total{controller="agentpool"}, both export
  it); reconciles per pool, and reconcile errors
  (controller_runtime_reconcile_errors_total) during the rollout;
- watch event -> ARM call, unloaded p50/p99: after settling, PROBES pools
  are patched one at a time (spec.count 1 -> 2, a merge PATCH answered by
  the API server: committed, its watch event on its way) and the latency is
  the emulator's log time of that pool's ARM write minus that answer (both
  clocks are this machine's, so this slightly understates); and under
  load, each pool's create PUT minus the first apply;
- reconcile duration p50/p99 from controller_runtime_reconcile_time_seconds
  buckets (an upper bound; both use controller-runtime's buckets);
- deletion, the end of a pool's life: every pool deleted with a DELETE
  each from the same 8 connections (a GitOps prune), until the API server
  lists none: the time, operator, kube-apiserver and etcd CPU, and ARM and
  API server requests per pool. It also leaves the next run an API server
  without this run's pools.

Then "where every API server request of a pool's life goes": the audit
counts by verb and resource over N, for both, from creation until settled
and from deletion until gone, and the LISTs and WATCHes apart (at
start-up, before the first pool, during the rollout and the deletion).
Then the ARM requests by kind, and the steady state of our operator alone: the
ARM requests of one resync of every key (the peer has none: see below).

Both operators run as the ServiceAccount acrpool-system/acrpool-controller
with manifests/base's RBAC (tests/e2e/harness.py), one after the other, so
the audit log tells them apart by time (the offsets taken around each
run), user and user agent; the bench's own requests are the admin's.

The same for both: API server, etcd, emulator build and settings, N, pool
manifests and the way they are created, registries, Secret, identity and
RBAC, 4 workers, resync period 60 s (the peer's cache SyncPeriod), no
client-side API rate limit (ours has none; controller-runtime's GetConfig
sets QPS -1), the ARM request that creates a pool (PUT, api-version
2019-06-01-preview, location/tier/os/count), one registry GET per registry
for its location, a token fetched once and cached, requeue after Retry-After
or 5 s while Azure says Creating, the measurement code.

Not the same (the peer is a minimal operator, ours the product):
- the finalizer: ours is set by the API server when the bench creates the
  pool, through the optional manifests/finalizer-policy (installed for our
  run, bound to its namespace, removed before the peer's; its CEL runs in
  the API server, whose CPU is measured); the peer adds it with an Update,
  the usual way, as our operator does in the default install
  (--without-policy measures that);
- the peer writes no Events, reads no queue (listQueueStatus), keeps no
  registry snapshot (it PUTs every pool it reconciles; an idempotent PUT
  as Azure Service Operator does), and has no Registry, Task or TaskRun
  reconciler and no informers for Tasks and TaskRuns; it does no quota,
  schedule or autoscale planning, adoption, drift correction or Recreate;
- its status is a handful of fields (observedGeneration, azureName,
  azureResourceId, provisioningState, count, Ready) written with an Update;
  ours patches a larger status and writes Reconciling/Stalled too;
- it reads the Secret through controller-runtime's cache (a Secret
  informer in the namespace, started at the first read); ours GETs it when
  it builds a credential;
- GenerationChangedPredicate (the usual choice; it keeps the peer's own
  status and finalizer writes from waking it) also drops the informers'
  resync events, so the peer's SyncPeriod re-reads its cache but reconciles
  nothing: the peer has no periodic drift check, and the resync rows are
  ours only;
- its cache keeps managedFields (controller-runtime's default); ours drops
  them and the last-applied annotation;
- controller-runtime's default queue (the priority queue in v0.24) and
  rate limiter; Go's GC at its default GOGC=100, no GOMEMLIMIT.

The operator binary is $ACRPOOL_BUILD_DIR/reconcilers/acrpool-controller;
build it without sanitizers (make bench does: build-bench, Release).
Figures are printed, never asserted.
"""
import argparse
import http.client
import json
import os
import pathlib
import platform
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
os.environ.setdefault("ACRPOOL_BUILD_DIR", str(ROOT / "build-bench"))

from emulator import CLIENT, RG, SUB, TENANT, Emulator  # noqa: E402
from harness import (OPERATOR, OPERATOR_USER, SP_SECRET, finalizer_on_create, install_finalizer_policy,  # noqa: E402
                     operator_identity, registry_obj, remove_finalizer_policy, start_operator)
from kubeenv import Kube, _read_env  # noqa: E402
from procs import Proc, wait_until  # noqa: E402

REGISTRIES = 10
QUOTA = {"standardVCPU": 1000000}
RESYNC = "60s"
WORKERS = 4
PROBES = 50
APPLY_THREADS = 8
FIELD_MANAGER = "bench-gitops"
PER_REGISTRY = ("registry GET", "pool LIST", "pool LIST next page")
CLK_TCK = os.sysconf("SC_CLK_TCK")
POOLS = "/apis/acrpool.dev/v1alpha1/namespaces/{ns}/agentpools"
OPERATORS = ("acrpool", "peer")
# How each operator introduces itself to the API server (User-Agent).
USER_AGENT = {"acrpool": "acrpool/", "peer": "acrpool-peer/"}


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


def smaps_classes(pid):
    """Resident kB by where it lives (/proc/PID/smaps): the heap, anonymous
    mappings (thread stacks, further malloc arenas, large allocations, Go's
    heap), the binary itself, and each shared library's pages (file-backed:
    text mostly, shared with any other process using the same file)."""
    out, name = {}, None
    for line in pathlib.Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            path = head[5].strip() if len(head) > 5 else ""
            if path == "[heap]":
                name = "heap ([heap])"
            elif not path or path.startswith("[anon") or path.startswith("[stack"):
                name = "anonymous (stacks, arenas, mmap)"
            elif path.startswith("["):
                name = "other"
            elif "/lib" in path and ".so" in path:
                base = path.rsplit("/", 1)[-1].split(".so")[0]
                name = base if base in ("libcrypto", "libssl", "libc", "libcurl", "libgnutls",
                                         "libwebsockets", "libcjson") else "other shared libraries"
            else:
                name = "the binary"
        elif line.startswith("Rss:") and name:
            out[name] = out.get(name, 0) + int(line.split()[1])
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Operator:
    """One operator process under measurement: its Proc, and where its
    /metrics is (ours says in its log; the peer's port is given to it)."""

    def __init__(self, proc, metrics_port=None):
        self.proc = proc
        self.pid = proc.p.pid
        self.metrics_port = metrics_port

    def get(self, path):
        return self.proc.get(path, self.metrics_port)

    def stop(self):
        self.proc.stop()


def start_peer(kube, emu, ns, peer_bin):
    """The peer with the same identity, namespace, emulator, workers and
    resync as start_operator gives ours."""
    port = free_port()
    args = ["--kubeconfig", operator_identity(kube).kubeconfig, "--namespace", ns,
            "--arm-endpoint", emu.url, "--authority-host", emu.url,
            "--metrics-bind-address", f"127.0.0.1:{port}", "--health-probe-bind-address", "0",
            "--workers", str(WORKERS), "--resync-period", RESYNC]
    return Operator(Proc(peer_bin, args), port)


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


def reconciles(op, controller="agentpool"):
    """Reconciles done so far by one controller, or by all with None."""
    return sum(v for k, v in metric_series(op, "controller_runtime_reconcile_total").items()
               if controller is None or f'controller="{controller}"' in k)


def reconcile_errors(op):
    return sum(v for k, v in metric_series(op, "controller_runtime_reconcile_errors_total").items()
               if 'controller="agentpool"' in k)


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


def settle(op, quiet_s=3.0, timeout=300, controller="agentpool"):
    """Wait until the operator has done no reconcile (of one controller, or
    of any with None) for quiet_s seconds (the reconcile counter, sampled;
    a condition, not a fixed sleep)."""
    state = {"n": reconciles(op, controller), "since": time.monotonic()}

    def quiet():
        n = reconciles(op, controller)
        if n != state["n"]:
            state["n"], state["since"] = n, time.monotonic()
        return time.monotonic() - state["since"] >= quiet_s
    wait_until("the operator to settle", quiet, timeout=timeout, interval=0.5)


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


class Admin:
    """Requests straight to the API server as the admin (the testenv's
    client certificate and CA), no kubectl process in the way."""

    def __init__(self, kube):
        d = pathlib.Path(kube.env["TESTENV_DIR"])
        self.ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        self.ctx.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))
        u = urllib.parse.urlsplit(kube.env["TESTENV_APISERVER"])
        self.host, self.port = u.hostname, u.port
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=120)
        return c

    def call(self, method, path, body=None, content_type="application/merge-patch+json",
             accept="application/json"):
        """(answer JSON, wall time the answer arrived): for a PATCH the
        change is committed and its watch event on its way by then. One
        persistent connection per thread."""
        headers = {"Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError) as e:
                c.close()
                self.local.conn = None
                # The API server may close a kept-alive connection under
                # load (seen at 30,000 pools): a GET goes again on a new
                # one; a write might have landed, so it does not.
                if attempt == 2 or method != "GET" or not isinstance(
                        e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    raise
        if r.status >= 300:
            raise AssertionError(f"{method} {path}: {r.status} {raw[:300]!r}")
        return json.loads(raw), time.time()

    def close(self):
        c = getattr(self.local, "conn", None)
        if c is not None:
            c.close()
            self.local.conn = None


def send_all(admin, calls, threads=APPLY_THREADS):
    """Send calls, (method, path, body, content type), from threads
    workers, each with its own kept-alive HTTPS connection and its share
    of the calls. Returns (monotonic time of the first request, of the
    last answer)."""
    ends, errors = [], []

    def work(share):
        try:
            for method, path, body, ctype in share:
                admin.call(method, path, body, content_type=ctype)
            ends.append(time.monotonic())
        except Exception as e:   # reported after the join
            errors.append(e)
        finally:
            admin.close()
    workers = [threading.Thread(target=work, args=(calls[i::threads],)) for i in range(threads)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return t0, max(ends)


def apply_all(admin, ns, items, path=POOLS):
    """Create items with server-side apply, as a GitOps controller does at
    scale (force=true: the bench owns these fields). path: the collection
    (AgentPools unless told)."""
    base = path.format(ns=ns)
    q = f"?fieldManager={FIELD_MANAGER}&force=true"
    return send_all(admin, [("PATCH", f"{base}/{obj['metadata']['name']}{q}", obj, "application/apply-patch+yaml")
                            for obj in items])


def delete_all(admin, ns, names, path=POOLS):
    """Delete every pool (or object of path), one DELETE each, as a GitOps
    prune does."""
    base = path.format(ns=ns)
    return send_all(admin, [("DELETE", f"{base}/{name}", None, None) for name in names])


def none_left(admin, ns, path=POOLS):
    table, _ = admin.call("GET", path.format(ns=ns) + "?limit=1",
                          accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    return not table.get("rows")


def all_ready(admin, ns, n, path=POOLS):
    """Every pool (or object of path) Ready, read as the server-side Table
    (the printer columns only): a full JSON list of 10,000 objects every
    second would load the API server this measures."""
    table, _ = admin.call("GET", path.format(ns=ns), accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    col = [c["name"] for c in table["columnDefinitions"]].index("Ready")
    rows = table.get("rows") or []
    return len(rows) == n and all(r["cells"][col] == "True" for r in rows)


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


class Tail:
    """A JSON-lines file read from a mark: the emulator's requests.jsonl
    (the in-memory log its control endpoint serves keeps only the newest
    entries, fewer than a rollout of 10,000 pools makes) or the API
    server's audit log. mark() returns and sets the current end;
    since(offset, until) returns the lines in between (raw bytes, so the
    caller can skip lines before parsing them)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.offset = 0

    def end(self):
        return self.path.stat().st_size if self.path.exists() else 0

    def mark(self):
        self.offset = self.end()
        return self.offset

    def raw(self, start=None, stop=None):
        start = self.offset if start is None else start
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read() if stop is None else f.read(max(0, stop - start))
        # A line still being written has no newline yet: leave it for later.
        return [line for line in data.split(b"\n")[:-1] if line]

    def since_mark(self):
        return [json.loads(line) for line in self.raw()]


def operator_audit_events(lines, user_agent):
    """The operator's requests among audit log lines, as (event, verb,
    resource[/subresource]). A WATCH is taken when its answer starts (it
    may still be open), anything else when its answer is complete; the
    policy logs no other stage."""
    user = OPERATOR_USER.encode()
    for line in lines:
        if user not in line:
            continue
        e = json.loads(line)
        if e["user"]["username"] != OPERATOR_USER or not e.get("userAgent", "").startswith(user_agent):
            continue
        verb = e["verb"]
        if (verb == "watch") != (e["stage"] == "ResponseStarted"):
            continue
        ref = e.get("objectRef") or {}
        res = ref.get("resource", e["requestURI"].split("?")[0])
        if ref.get("subresource"):
            res += "/" + ref["subresource"]
        yield e, verb, res


def audit_requests(audit, start, stop, user_agent):
    """The operator's requests in the audit log between two offsets, as
    (verb, resource[/subresource], namespace) -> count."""
    out = {}
    for e, verb, res in operator_audit_events(audit.raw(start, stop), user_agent):
        key = (verb, res, (e.get("objectRef") or {}).get("namespace", ""))
        out[key] = out.get(key, 0) + 1
    return out


def setup_registries(kube, emu, ns):
    """The service principal (in the emulator and as the Secret "sp") and
    REGISTRIES Premium registries with QUOTA, in the emulator and as
    Registry objects in ns. Returns their names."""
    emu.client(TENANT, CLIENT, secret=SP_SECRET)
    kube.run("create", "secret", "generic", "sp", "-n", ns, f"--from-literal=AZURE_TENANT_ID={TENANT}",
             f"--from-literal=AZURE_CLIENT_ID={CLIENT}", f"--from-literal=AZURE_CLIENT_SECRET={SP_SECRET}")
    regs = [f"registry{i}" for i in range(REGISTRIES)]
    for r in regs:
        emu.registry(SUB, RG, r, sku="Premium", quota=QUOTA)
    kube.run("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        registry_obj(name=r, azure_name=r, quota=QUOTA) for r in regs]}))
    return regs


def start_acrpool(kube, emu, ns, resync=RESYNC):
    """Our operator on ns (WORKERS workers), once it is ready and every
    Registry of ns is Ready."""
    op = Operator(start_operator(kube, emu, ns, "--resync-period", resync, "--workers", str(WORKERS)))
    wait_until("readyz", lambda: op.get("/readyz")[0] == 200, timeout=60)
    wait_until("registries Ready", lambda: all(
        any(c["type"] == "Ready" and c["status"] == "True"
            for c in (o.get("status") or {}).get("conditions", []))
        for o in json.loads(kube.run("get", "registries", "-n", ns, "-o", "json").stdout)["items"]),
        timeout=60)
    return op


def run_one(kube, audit, tmp, n, which, peer_bin, policy):
    ns = f"bench-{which}-{n}-{int(time.time())}"
    kube.run("create", "namespace", ns)
    emu_dir = pathlib.Path(tempfile.mkdtemp(dir=tmp))
    emu = Emulator.start(emu_dir, "--state-dir", str(emu_dir))
    log = Tail(emu_dir / "requests.jsonl")
    admin = Admin(kube)
    api_pid, etcd_pid = int(kube.env["TESTENV_APISERVER_PID"]), int(kube.env["TESTENV_ETCD_PID"])
    op = None
    res = {"N": n, "op": which, "ns": ns}
    try:
        regs = setup_registries(kube, emu, ns)
        if which == "acrpool":
            # manifests/finalizer-policy, as a user who opts in installs it,
            # but bound to this namespace only, and gone before the peer's run.
            if policy:
                install_finalizer_policy(kube, ns, namespaces=[ns])
        else:
            assert finalizer_on_create(kube, ns) is False, "the peer's pools would get the finalizer from our policy"
        a_start = audit.end()
        if which == "acrpool":
            op = start_acrpool(kube, emu, ns)
        else:
            op = start_peer(kube, emu, ns, peer_bin)
            # Logged once every watch (AgentPools, Registries) has synced.
            wait_until("the peer's workers", lambda: op.proc.find("Starting workers") or not op.proc.alive(),
                       timeout=60)
            assert op.proc.alive(), f"the peer exited: {op.proc.text()[-2000:]}"
        pid = op.pid
        settle(op)
        res["idle_rss_0_kb"] = status_kb(pid, "VmRSS")
        res["smaps_0"] = smaps_classes(pid)

        items = [{"apiVersion": "acrpool.dev/v1alpha1", "kind": "AgentPool",
                  "metadata": {"name": f"p{i:05d}", "namespace": ns},
                  "spec": {"registryRef": {"name": regs[i % REGISTRIES]}, "tier": "S1", "count": 1}}
                 for i in range(n)]
        log.mark()
        a_rollout = audit.end()
        cpu0, rec0, err0 = cpu_seconds(pid), reconciles(op), reconcile_errors(op)
        api0, etcd0 = cpu_seconds(api_pid), cpu_seconds(etcd_pid)
        t_wall = time.time()
        t0, t_created = apply_all(admin, ns, items)
        res["created_s"] = t_created - t0
        wait_until("every pool Ready", lambda: all_ready(admin, ns, n), timeout=3600,
                   interval=0.2 if n <= 1000 else 1.0)
        t_ready = time.monotonic()
        res["ready_s"], res["ready_after_created_s"] = t_ready - t0, t_ready - t_created
        res["rollout_cpu_s"] = cpu_seconds(pid) - cpu0
        res["apiserver_cpu_s"] = cpu_seconds(api_pid) - api0
        res["etcd_cpu_s"] = cpu_seconds(etcd_pid) - etcd0
        settle(op)
        a_settled = audit.end()
        reqs = log.since_mark()
        arm = [r for r in reqs if arm_kind(r) not in ("token", "other")]
        res["arm_per_pool"] = len(arm) / n
        res["arm_writes_per_pool"] = sum(1 for r in arm if r["method"] in ("PUT", "PATCH", "DELETE")) / n
        res["arm_by_kind_rollout"] = {}
        for r in arm:
            res["arm_by_kind_rollout"][arm_kind(r)] = res["arm_by_kind_rollout"].get(arm_kind(r), 0) + 1
        first_put = {}
        for r in arm:
            if arm_kind(r) == "pool PUT":
                first_put.setdefault(r["path"].rsplit("/", 1)[-1], r["time"])
        loaded = [t - t_wall for t in first_put.values()]
        res["loaded_p50"], res["loaded_p99"] = pct(loaded, 0.5), pct(loaded, 0.99)
        rec1 = reconciles(op)
        res["reconciles_per_pool"] = (rec1 - rec0) / n
        res["reconcile_errors"] = reconcile_errors(op) - err0
        res["idle_rss_n_kb"] = status_kb(pid, "VmRSS")
        res["smaps_n"] = smaps_classes(pid)
        res["audit_startup"] = audit_requests(audit, a_start, a_rollout, USER_AGENT[which])
        res["audit_rollout"] = audit_requests(audit, a_rollout, a_settled, USER_AGENT[which])
        calls = sum(v for (verb, _, _), v in res["audit_rollout"].items() if verb not in ("watch", "list"))
        res["api_per_pool"] = calls / n
        res["api_per_reconcile"] = calls / max(1, rec1 - rec0)

        if which == "acrpool":
            # One resync of every key: wait for >= N more reconciles and
            # quiet, then count ARM requests by kind.
            log.mark()
            base = reconciles(op)
            wait_until("a resync of every pool", lambda: reconciles(op) >= base + n, timeout=600, interval=1.0)
            settle(op)
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
            _, t = admin.call("PATCH", f"{POOLS.format(ns=ns)}/{name}", {"spec": {"count": 2}})
            hit = wait_until(f"ARM write to {name}", lambda: [
                r for r in log.since_mark() if r["method"] in ("PATCH", "PUT")
                and r["path"].lower().endswith("/agentpools/" + name)], timeout=60, interval=0.01)
            lat.append(max(0.0, hit[0]["time"] - t))
        res["probe_p50"], res["probe_p99"] = pct(lat, 0.5), pct(lat, 0.99)
        settle(op)

        # The end of a pool's life: every pool deleted (a DELETE each, from
        # the same connections), until the API server holds none. This also
        # leaves the next run an API server without this run's pools.
        log.mark()
        a_delete = audit.end()
        cpu0, api0, etcd0 = cpu_seconds(pid), cpu_seconds(api_pid), cpu_seconds(etcd_pid)
        t0, t_sent = delete_all(admin, ns, [o["metadata"]["name"] for o in items])
        wait_until("every pool gone", lambda: none_left(admin, ns), timeout=3600,
                   interval=0.2 if n <= 1000 else 1.0)
        res["deleted_s"] = time.monotonic() - t0
        res["delete_cpu_s"] = cpu_seconds(pid) - cpu0
        res["delete_apiserver_cpu_s"] = cpu_seconds(api_pid) - api0
        res["delete_etcd_cpu_s"] = cpu_seconds(etcd_pid) - etcd0
        settle(op)
        arm = [r for r in log.since_mark() if arm_kind(r) not in ("token", "other")]
        res["arm_per_pool_deleted"] = len(arm) / n
        res["arm_by_kind_delete"] = {}
        for r in arm:
            res["arm_by_kind_delete"][arm_kind(r)] = res["arm_by_kind_delete"].get(arm_kind(r), 0) + 1
        res["audit_delete"] = audit_requests(audit, a_delete, audit.end(), USER_AGENT[which])
        res["api_per_pool_deleted"] = sum(v for k, v in res["audit_delete"].items()
                                          if k[0] not in ("watch", "list")) / n
        res["reconcile_p50"], res["reconcile_p99"] = histogram_quantiles(
            op, "controller_runtime_reconcile_time_seconds", 'controller="agentpool"', (0.5, 0.99))
        res["total_cpu_s"] = cpu_seconds(pid)
        res["peak_rss_kb"] = status_kb(pid, "VmHWM")
        res["emu_cpu_s"] = cpu_seconds(emu.proc.pid)
    finally:
        admin.close()
        if op:
            op.stop()
        emu.stop()
        if which == "acrpool" and policy:
            remove_finalizer_policy(kube, ns)
    return res


# ---- printing ----

def ratio(a, b):
    if a is None or b is None or not a:
        return "n/a"
    return f"{b / a:.1f}x" if b / a >= 10 else f"{b / a:.2f}x"


def table(title, header, rows):
    print()
    print(f"### {title}")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


def side_by_side(results, ns_list, figures):
    """Rows of (label, fmt, value fn): per N, acrpool, peer, ratio. A value
    fn returns a number or None (not measured)."""
    has_peer = any("peer" in results[n] for n in ns_list)
    header = ["figure"]
    for n in ns_list:
        header += [f"N={n} acrpool"] + ([f"N={n} peer", "peer/acrpool"] if has_peer else [])
    rows = []
    for label, fmt, fn in figures:
        row = [label]
        for n in ns_list:
            a = fn(results[n]["acrpool"])
            row.append("n/a" if a is None else fmt(a))
            if has_peer:
                p = fn(results[n]["peer"]) if "peer" in results[n] else None
                row += ["n/a" if p is None else fmt(p), ratio(a, p)]
        rows.append(row)
    return header, rows


def by_kind(counts):
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def audit_label(key, ns):
    verb, res, where = key
    return f"{verb} {res}" + ("" if where in ("", ns) else f" ({where})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="*", type=int, default=[100, 1000])
    ap.add_argument("--no-peer", action="store_true", help="our operator alone")
    ap.add_argument("--without-policy", action="store_true",
                    help="our operator as installed by default: no manifests/finalizer-policy")
    args = ap.parse_args()
    peer_bin = None
    if not args.no_peer:
        peer_bin = subprocess.run([str(ROOT / "scripts" / "peer.sh"), "build"], check=True,
                                  stdout=subprocess.PIPE, text=True).stdout.strip()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="acrpool-scale-"))
    cp = tmp / "cp"
    subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "start", str(cp)], check=True,
                   env=dict(os.environ, TESTENV_OWNER_PID=str(os.getpid()),
                            TESTENV_AUDIT_LOG=str(tmp / "audit.log")))
    results = {}
    try:
        kube = Kube(_read_env(cp / "env"))
        audit = Tail(kube.env["TESTENV_AUDIT_LOG"])
        kube.run("apply", "-f", str(ROOT / "crds"))
        kube.run("wait", "--for", "condition=Established", "-f", str(ROOT / "crds"))
        for n in args.n:
            results[n] = {}
            for which in OPERATORS if peer_bin else OPERATORS[:1]:
                print(f"# N={n} {which} ...", file=sys.stderr, flush=True)
                results[n][which] = run_one(kube, audit, tmp, n, which, peer_bin, not args.without_policy)
    finally:
        subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "stop", str(cp)])
    report(results, args.n, peer_bin, not args.without_policy)


def report(results, ns_list, peer_bin, policy):
    def mib(kb):
        return f"{kb / 1024:.1f}"

    def f2(x):
        return f"{x:.2f}"

    def f1(x):
        return f"{x:.1f}"

    def ms(x):
        return f"{x * 1000:.0f}"
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}; acrpool: {OPERATOR} (no sanitizers), "
          f"{'with manifests/finalizer-policy' if policy else 'without manifests/finalizer-policy'}; peer: "
          f"{'bench/peer (controller-runtime v0.24.1, client-go v0.36.3, Go)' if peer_bin else 'not run'}; "
          f"kube-apiserver v1.36.3 + etcd v3.6.8 (scripts/testenv.sh, audit log on); emulator provisioning "
          f"delay 0; {REGISTRIES} registries; S1 pools of count 1 created by server-side apply from "
          f"{APPLY_THREADS} connections; {WORKERS} workers each; resync {RESYNC}")
    figures = [
        ("objects created: first -> last apply answered (s)", f1, lambda r: r["created_s"]),
        ("all Ready, from the first apply (s)", f1, lambda r: r["ready_s"]),
        ("all Ready, from the last object created (s)", f2, lambda r: r["ready_after_created_s"]),
        ("operator CPU during rollout (s)", f2, lambda r: r["rollout_cpu_s"]),
        ("operator CPU, whole run (s)", f2, lambda r: r["total_cpu_s"]),
        ("kube-apiserver CPU during rollout (s)", f2, lambda r: r["apiserver_cpu_s"]),
        ("etcd CPU during rollout (s)", f2, lambda r: r["etcd_cpu_s"]),
        ("emulator CPU, whole run (s)", f1, lambda r: r["emu_cpu_s"]),
        ("idle RSS, 0 pools, informers synced (MiB)", mib, lambda r: r["idle_rss_0_kb"]),
        ("RSS at N pools, settled (MiB)", mib, lambda r: r["idle_rss_n_kb"]),
        ("peak RSS, VmHWM (MiB)", mib, lambda r: r["peak_rss_kb"]),
        ("ARM requests per pool created", f2, lambda r: r["arm_per_pool"]),
        ("ARM writes per pool created (min 1)", f2, lambda r: r["arm_writes_per_pool"]),
        ("API server requests per pool (audit, LIST/WATCH apart)", f2, lambda r: r["api_per_pool"]),
        ("API server requests per reconcile", f2, lambda r: r["api_per_reconcile"]),
        ("reconciles per pool (rollout)", f2, lambda r: r["reconciles_per_pool"]),
        ("reconcile errors (rollout)", lambda x: f"{x:.0f}", lambda r: r["reconcile_errors"]),
        ("watch event -> ARM call, unloaded p50 (ms)", ms, lambda r: r["probe_p50"]),
        ("watch event -> ARM call, unloaded p99 (ms)", ms, lambda r: r["probe_p99"]),
        ("first apply -> pool's create PUT, p50 (s)", f2, lambda r: r["loaded_p50"]),
        ("first apply -> pool's create PUT, p99 (s)", f2, lambda r: r["loaded_p99"]),
        ("reconcile duration p50 (histogram bound, s)", str, lambda r: r["reconcile_p50"]),
        ("reconcile duration p99 (histogram bound, s)", str, lambda r: r["reconcile_p99"]),
        ("deletion: first DELETE -> no pool left (s)", f1, lambda r: r["deleted_s"]),
        ("deletion: operator CPU (s)", f2, lambda r: r["delete_cpu_s"]),
        ("deletion: kube-apiserver CPU (s)", f2, lambda r: r["delete_apiserver_cpu_s"]),
        ("deletion: etcd CPU (s)", f2, lambda r: r["delete_etcd_cpu_s"]),
        ("deletion: ARM requests per pool", f2, lambda r: r["arm_per_pool_deleted"]),
        ("deletion: API server requests per pool", f2, lambda r: r["api_per_pool_deleted"]),
    ]
    table("acrpool-controller and the controller-runtime peer", *side_by_side(results, ns_list, figures))

    # Where every API server request of a pool's life goes.
    def per_pool(phase, label):
        def fn(r):
            return sum(v for k, v in r[phase].items()
                       if k[0] not in ("watch", "list") and audit_label(k, r["ns"]) == label) / r["N"]
        return fn
    for phase, title in (("audit_rollout", "created until settled"), ("audit_delete", "deleted until gone")):
        labels = sorted({audit_label(k, r["ns"]) for n in ns_list for r in results[n].values()
                         for k in r[phase] if k[0] not in ("watch", "list")})
        figures = [(label, f2, per_pool(phase, label)) for label in labels]
        figures.append(("all of them", f2, lambda r, phase=phase: sum(
            v for k, v in r[phase].items() if k[0] not in ("watch", "list")) / r["N"]))
        header, rows = side_by_side(results, ns_list, figures)
        table(f"Where every API server request of a pool's life goes: {title} (audit log, per pool)",
              header, rows)

    classes = sorted({c for n in ns_list for r in results[n].values() for k in ("smaps_0", "smaps_n")
                      for c in r[k]})
    figures = [(f"{c}, {when} (MiB)", mib, lambda r, c=c, k=k: r[k].get(c, 0))
               for k, when in (("smaps_0", "idle with 0 pools"), ("smaps_n", "with N pools"))
               for c in classes]
    table("Where the resident bytes go (/proc/PID/smaps, Rss by mapping)", *side_by_side(results, ns_list, figures))

    rows = []
    for n in ns_list:
        for which, r in results[n].items():
            lw = {k: v for k, v in r["audit_rollout"].items() if k[0] in ("watch", "list")}
            ld = {k: v for k, v in r["audit_delete"].items() if k[0] in ("watch", "list")}
            rows.append([str(n), which,
                         ", ".join(f"{audit_label(k, r['ns'])} {v}" for k, v in sorted(r["audit_startup"].items()))
                         or "none",
                         ", ".join(f"{audit_label(k, r['ns'])} {v}" for k, v in sorted(lw.items())) or "none",
                         ", ".join(f"{audit_label(k, r['ns'])} {v}" for k, v in sorted(ld.items())) or "none"])
    table("LIST and WATCH, apart from the per-pool costs (requests, not per pool)",
          ["N", "operator", "start-up, before the first pool (every request)", "during the rollout",
           "during the deletion"], rows)

    rows = []
    for n in ns_list:
        for which, r in results[n].items():
            rows.append([str(n), which, by_kind(r["arm_by_kind_rollout"]), by_kind(r["arm_by_kind_delete"])])
    table("ARM requests by kind", ["N", "operator", "rollout", "deletion"], rows)

    def rs(r, k):
        return r["resync_by_kind"].get(k, 0)
    figures = [
        ("one resync: ARM requests by kind", str, lambda r: by_kind(r["resync_by_kind"])),
        ("one resync: registry GETs per registry", f1, lambda r: rs(r, "registry GET") / REGISTRIES),
        ("one resync: pool LISTs per registry", f1, lambda r: rs(r, "pool LIST") / REGISTRIES),
        ("one resync: pool LIST pages per registry", f1,
         lambda r: (rs(r, "pool LIST") + rs(r, "pool LIST next page")) / REGISTRIES),
        ("one resync: per-pool ARM requests per pool", lambda x: f"{x:.3f}",
         lambda r: sum(v for k, v in r["resync_by_kind"].items() if k not in PER_REGISTRY) / r["N"]),
    ]
    header = ["figure"] + [f"N={n} acrpool" for n in ns_list]
    rows = [[label] + [fmt(fn(results[n]["acrpool"])) for n in ns_list] for label, fmt, fn in figures]
    table(f"Steady state, acrpool only (the peer's GenerationChangedPredicate drops resync events; "
          f"resync {RESYNC})", header, rows)


if __name__ == "__main__":
    main()
