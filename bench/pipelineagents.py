#!/usr/bin/env python3
"""bench/pipelineagents.py: what PipelineAgentPools cost Azure Resource
Manager, Azure DevOps and the API server, per instance (issue 14).

    make bench                                       # runs it after bench/scale.py
    ACRPOOL_BUILD_DIR=build-bench python3 bench/pipelineagents.py [--pools 5] [--count 4] [--passes 3]
        [--registration pat|entra] [--provisioning-delay S]

One real kube-apiserver + etcd (scripts/testenv.sh, with its audit log on),
the Azure emulator (tests/emulator: ACI container groups running the
simulated Azure Pipelines agent, and the Azure DevOps stand-in) and the
real operator binary ($ACRPOOL_BUILD_DIR/reconcilers/acrpool-controller,
build it without sanitizers: make bench does, build-bench, Release), as the
ServiceAccount acrpool-system/acrpool-controller with manifests/base's RBAC
(tests/e2e/harness.py), 4 workers, --queue-poll-interval 5s (how often a
Ready pool is read again; the default is 30 s, and the per-hour figures
below are worked out for it). POOLS PipelineAgentPools of COUNT instances
each (pre-registered mode with a PAT, or with --registration entra the
service principal's Entra token; a PAT Secret and a service principal
Secret each; cpu 1, memory 2 GB) are applied at once with one kubectl
apply. Each pool has its own Azure DevOps agent pool and its own resource
group, so that every request the emulator logs names the pool it is for (a
resource group shared by several pools costs the same number of requests:
each pass LISTs its resource group once, and the answer is longer). Prints, per instance and per pool:

- creation: every request of a pool from the apply until its first pass
  after it was Ready (that pass excluded), ARM and Azure DevOps by verb and
  kind, writes apart, and the API server requests of the operator's
  identity for that pool (audit log: its PipelineAgentPool, its Secrets,
  its Events; WATCH and LIST apart);
- one pass of a Ready pool: PASSES passes of each pool after it was Ready,
  each from the agents LIST that starts it to the one that starts the
  next, so a pass's status write and Events are inside it;
  the writes figure must be zero; the per-hour figures at the default 30 s
  interval are these times 120;
- a job: COUNT jobs of no duration queued per pool (one per instance),
  until every pool's status.jobsCompleted shows them and one more pass has
  run: the operator's writes per job (ARM, Azure DevOps, API server);
- deletion: every pool deleted, until the API server has none: requests
  per instance;
- the Entra token requests and anything else no one pool's, as totals
  (and per pass for the Ready passes).

Operator requests are told from the simulated agents' own (their sessions,
long polls and job updates, which real agents make too) by User-Agent: the
operator's is acrpool/<version>. Emulator provisioning delay 0 (set
--provisioning-delay to see what a slower ACI adds: a pass every 5 s while
Azure says Creating). The control plane, emulator and operator are
stopped at the end and their logs removed (kept when the run fails).
Figures are printed, never asserted.
"""
import argparse
import datetime
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("ACRPOOL_BUILD_DIR", str(ROOT / "build-bench"))

from emulator import CLIENT, SUB, TENANT, Emulator  # noqa: E402
from harness import OPERATOR, SP_SECRET, start_operator  # noqa: E402
from kubeenv import Kube, _read_env  # noqa: E402
from procs import wait_until  # noqa: E402
from scale import Admin, Tail, cpu_seconds, machine, operator_audit_events, status_kb, table  # noqa: E402

ORG = "contoso"
IMAGE = "example.azurecr.io/azp-agent:1"
LOCATION = "eastus"
POLL = "5s"
DEFAULT_POLL_S = 30
WORKERS = 4
PAPS = "/apis/acrpool.dev/v1alpha1/namespaces/{ns}/pipelineagentpools"
WRITES = ("PUT", "POST", "PATCH", "DELETE")
API_WRITES = ("create", "update", "patch", "delete", "deletecollection")


def iso_ts(text):
    """An audit timestamp (RFC 3339, microseconds, Z) as seconds since the epoch."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Bench:
    def __init__(self, kube, emu, log, audit, ns, pools, count, registration):
        self.kube, self.emu, self.log, self.audit, self.ns = kube, emu, log, audit, ns
        self.n, self.count, self.registration = pools, count, registration
        self.names = [f"pap-{k}" for k in range(pools)]
        self.rgs = {f"rg-agents-{k}": k for k in range(pools)}
        self.devops_pools = {f"team-{k}": k for k in range(pools)}
        self.pool_ids = {}   # Azure DevOps pool id -> pool index
        self.admin = Admin(kube)

    # -- what each logged request is, and whose -------------------------------------------

    def arm_kind(self, r):
        p = r["path"].lower()
        if "/oauth2/" in p:
            scope = str((r.get("body") or {}).get("scope") or "")
            return None, "Entra token POST, " + ("Azure DevOps" if "499b84ac" in scope else "ARM")
        parts = p.strip("/").split("/")
        who = None
        if "resourcegroups" in parts:
            who = self.rgs.get(r["path"].strip("/").split("/")[parts.index("resourcegroups") + 1])
        if "containergroups" in parts:
            i = parts.index("containergroups")
            rest = parts[i + 1:]
            if not rest:
                page = " next page" if "$skipToken" in (r.get("query") or {}) else ""
                return who, f"container group LIST{page}"
            if len(rest) == 1:
                return who, f"container group {r['method']}"
            return who, f"container group {rest[1]} {r['method']}"
        if "operations" in parts:
            return who, "operation status GET"
        if "usages" in parts:
            return who, "usages GET"
        return who, f"other {r['method']}"

    def devops_kind(self, r):
        parts = [p for p in r["path"].split("/") if p]
        # /devops/{org}/_apis/distributedtask/pools[/{id}[/{kind}[/{id}]]]
        api = parts[3:]
        if api[:2] != ["distributedtask", "pools"]:
            return None, f"{'/'.join(api) or r['path']} {r['method']}"
        rest = api[2:]
        if not rest:
            return self.devops_pools.get((r.get("query") or {}).get("poolName")), f"pool by name {r['method']}"
        who = self.pool_ids.get(int(rest[0])) if rest[0].isdigit() else None
        if len(rest) == 1:
            return who, f"pool {r['method']}"
        kind = rest[1]
        if len(rest) == 2:
            return who, f"{kind} {'LIST' if r['method'] == 'GET' else r['method']}"
        return who, f"{kind} item {r['method']}"

    def classify(self, r):
        """(service, pool index or None, kind) of one emulator log entry;
        service None for what the simulated agents did themselves."""
        ua = r.get("userAgent") or ""
        if not ua.startswith("acrpool/"):
            return None, None, None
        if r["path"].startswith("/devops/"):
            return ("devops",) + self.devops_kind(r)
        return ("arm",) + self.arm_kind(r)

    def owner_of(self, e):
        """Which pool an audit event is about: its PipelineAgentPool, its
        PAT Secret or one of its Events; None when shared."""
        ref = e.get("objectRef") or {}
        name = ref.get("name") or ""
        res = ref.get("resource", "")
        for k, n in enumerate(self.names):
            if res == "pipelineagentpools" and name == n:
                return k
            if res == "secrets" and name in (f"pat-{k}", f"sp-{k}"):
                return k
            if res == "events" and name.startswith(n + "."):
                return k
        return None

    # -- reading the logs --------------------------------------------------------------------

    def requests(self):
        """Every operator request the emulator logged since the mark:
        (time, service, pool index, kind, method)."""
        out = []
        for r in self.log.since_mark():
            svc, who, kind = self.classify(r)
            if svc:
                out.append((r["time"], svc, who, kind, r["method"]))
        return out

    def audit_events(self):
        """The operator's API server requests since the audit mark:
        (received time, verb, resource, pool index or None), WATCH counted
        when its answer starts, anything else when complete."""
        return [(iso_ts(e["requestReceivedTimestamp"]), verb, res, self.owner_of(e),
                 (e.get("objectRef") or {}).get("name") or "")
                for e, verb, res in operator_audit_events(self.audit.raw(), "acrpool/")]

    # -- the pools ---------------------------------------------------------------------------

    def setup(self):
        emu, kube, ns = self.emu, self.kube, self.ns
        emu.client(TENANT, CLIENT, secret=SP_SECRET)
        emu.control("PUT", f"devops/orgs/{ORG}", {})
        for name, k in self.devops_pools.items():
            self.pool_ids[emu.control("PUT", f"devops/orgs/{ORG}/pools/{name}", {})["id"]] = k
        secrets_list = []
        for k in range(self.n):
            # A PAT per pool (per team), made here and never printed.
            token = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(52))
            emu.control("POST", f"devops/orgs/{ORG}/pats", {"token": token, "scopes": ["vso.agentpools_manage"]})
            secrets_list.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"pat-{k}"},
                                 "stringData": {"pat": token}})
            # The service principal's Secret, one per pool (per team) too.
            secrets_list.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"sp-{k}"},
                                 "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT,
                                                "AZURE_CLIENT_SECRET": SP_SECRET}})
        kube.run("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                  "items": secrets_list}))
        emu.control("PUT", "aci/images", {"image": IMAGE, "program": "azure-pipelines-agent"})
        # Room for every instance: the public default of 100 container
        # groups and 100 cores a region (the emulator's default cores are 10).
        emu.control("PUT", f"aci/quota/{SUB}/{LOCATION}",
                    {"maxContainerGroups": max(100, self.n * self.count),
                     "maxCores": max(100, self.n * self.count)})

    def objects(self):
        return [{"apiVersion": "acrpool.dev/v1alpha1", "kind": "PipelineAgentPool",
                 "metadata": {"name": name},
                 "spec": {"organizationUrl": f"https://dev.azure.com/{ORG}", "agentPool": f"team-{k}",
                          "registration": ({"patSecretRef": {"name": f"pat-{k}"}} if self.registration == "pat"
                                           else {"entra": {}}),
                          "credential": {"servicePrincipal": {"secretRef": {"name": f"sp-{k}"}}},
                          "count": self.count,
                          "aci": {"subscriptionId": SUB, "resourceGroup": f"rg-agents-{k}", "location": LOCATION,
                                  "image": IMAGE, "cpu": 1, "memoryInGB": 2}}}
                for k, name in enumerate(self.names)]

    def list_paps(self):
        body, _ = self.admin.call("GET", PAPS.format(ns=self.ns))
        return {o["metadata"]["name"]: o for o in body.get("items", [])}

    def ready(self, o):
        s = o.get("status") or {}
        return (any(c["type"] == "Ready" and c["status"] == "True"
                    and c.get("observedGeneration") == o["metadata"]["generation"]
                    for c in s.get("conditions", []))
                and s.get("count") == self.count and s.get("online") == self.count)

    def pass_starts(self, after):
        """Per pool, the times its passes started after `after`: a pass's
        first request to Azure DevOps is the LIST of its pool's agents (the
        client and its credential are kept across passes; the credential
        is read again at most once a minute, just before that LIST)."""
        starts = {k: [] for k in range(self.n)}
        for t, svc, who, kind, _ in self.requests():
            if svc == "devops" and kind == "agents LIST" and who is not None and t > after[who]:
                starts[who].append(t)
        return starts


def tally(items):
    out = {}
    for key in items:
        out[key] = out.get(key, 0) + 1
    return out


def run(args):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="acrpool-bench-pap-"))
    cp = tmp / "cp"
    t_start = time.monotonic()
    subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "start", str(cp)], check=True,
                   env=dict(os.environ, TESTENV_OWNER_PID=str(os.getpid()),
                            TESTENV_AUDIT_LOG=str(tmp / "audit.log")))
    emu = op = None
    res = {}
    try:
        kube = Kube(_read_env(cp / "env"))
        kube.run("apply", "-f", str(ROOT / "crds"))
        kube.run("wait", "--for", "condition=Established", "-f", str(ROOT / "crds"))
        ns = f"bench-pap-{int(time.time())}"
        kube.run("create", "namespace", ns)
        emu_dir = tmp / "emulator"
        emu_dir.mkdir()
        emu = Emulator.start(emu_dir, "--state-dir", str(emu_dir))
        if args.provisioning_delay:
            emu.control("PATCH", "aci/settings", {"provisioningDelaySeconds": args.provisioning_delay})
        b = Bench(kube, emu, Tail(emu_dir / "requests.jsonl"), Tail(kube.env["TESTENV_AUDIT_LOG"]), ns,
                  args.pools, args.count, args.registration)
        b.setup()
        op = start_operator(kube, emu, ns, "--queue-poll-interval", POLL, "--workers", str(WORKERS))
        wait_until("readyz", lambda: op.get("/readyz")[0] == 200, timeout=60)
        pid = op.p.pid

        # ---- creation ----
        b.log.mark()
        b.audit.mark()
        t_apply = time.time()
        cpu0 = cpu_seconds(pid)
        kube.run("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                  "items": b.objects()}))
        ready_at = {}

        def all_ready():
            now = time.time()
            for name, o in b.list_paps().items():
                k = b.names.index(name)
                if k not in ready_at and b.ready(o):
                    ready_at[k] = now
            return len(ready_at) == b.n
        wait_until("every PipelineAgentPool Ready", all_ready, timeout=300, interval=0.1)
        res["ready_s"] = max(ready_at.values()) - t_apply
        res["rollout_cpu_s"] = cpu_seconds(pid) - cpu0

        # ---- Ready passes: PASSES + 1 pass starts per pool after Ready ----
        cpu0 = cpu_seconds(pid)
        t0 = time.time()
        starts = wait_until(f"{args.passes + 1} passes of every pool after Ready",
                            lambda: (lambda s: s if all(len(v) > args.passes for v in s.values()) else None)(
                                b.pass_starts(ready_at)), timeout=120, interval=0.5)
        # Operator CPU over the wait, over the passes that started in it.
        n_passes = sum(1 for v in b.pass_starts({k: t0 for k in range(b.n)}).values() for _ in v)
        res["steady_cpu_ms_per_pass"] = (cpu_seconds(pid) - cpu0) * 1000 / n_passes if n_passes else None
        first = {k: v[0] for k, v in starts.items()}
        last = {k: v[args.passes] for k, v in starts.items()}
        reqs = b.requests()
        audit = b.audit_events()

        def window(t, who, lo, hi):
            return who is not None and lo[who] <= t < hi[who]
        t_apply_all = {k: t_apply for k in range(b.n)}
        res["create"] = tally((svc, kind, m) for t, svc, who, kind, m in reqs if window(t, who, t_apply_all, first))
        res["create_shared"] = tally((svc, kind, m) for t, svc, who, kind, m in reqs
                                     if who is None and t < max(first.values()))
        res["create_api"] = tally((verb, res_) for t, verb, res_, who, _ in audit
                                  if window(t, who, t_apply_all, first) and verb not in ("watch", "list"))
        res["create_api_shared"] = tally((verb, f"{res_}/{name}" if name else res_)
                                         for t, verb, res_, who, name in audit
                                         if who is None and t < max(first.values())
                                         and verb not in ("watch", "list"))
        res["pass"] = tally((svc, kind, m) for t, svc, who, kind, m in reqs if window(t, who, first, last))
        res["pass_api"] = tally((verb, res_) for t, verb, res_, who, _ in audit
                                if window(t, who, first, last) and verb not in ("watch", "list"))
        lo, hi = min(first.values()), max(last.values())
        res["pass_shared_passes"] = sum(1 for v in b.pass_starts(ready_at).values() for t in v if lo <= t < hi)
        res["pass_shared"] = tally((svc, kind, m) for t, svc, who, kind, m in reqs
                                   if who is None and min(first.values()) <= t < max(last.values()))
        res["pass_api_shared"] = tally((verb, f"{res_}/{name}" if name else res_)
                                       for t, verb, res_, who, name in audit
                                       if who is None and min(first.values()) <= t < max(last.values())
                                       and verb not in ("watch", "list"))
        res["rss_kb"] = status_kb(pid, "VmRSS")

        # ---- a job per instance ----
        b.log.mark()
        b.audit.mark()
        for name in b.devops_pools:
            emu.control("POST", f"devops/orgs/{ORG}/pools/{name}/jobs",
                        {"count": b.count, "durationSeconds": 0, "result": "succeeded"})
        done_at = {}

        def jobs_shown():
            now = time.time()
            for name, o in b.list_paps().items():
                k = b.names.index(name)
                if k not in done_at and (o.get("status") or {}).get("jobsCompleted") == b.count:
                    done_at[k] = now
            return len(done_at) == b.n
        wait_until("every pool's jobsCompleted", jobs_shown, timeout=120, interval=0.2)
        # One more pass of each pool after it showed them: the status it
        # writes then (if any) is part of what the jobs cost.
        after = wait_until("one pass of every pool after its jobs showed",
                           lambda: (lambda s: s if all(len(v) >= 2 for v in s.values()) else None)(
                               b.pass_starts(done_at)), timeout=60, interval=0.5)
        end = {k: v[1] for k, v in after.items()}
        reqs = b.requests()
        audit = b.audit_events()
        t_q = {k: 0.0 for k in range(b.n)}
        res["jobs_finished"] = sum(1 for j in emu.control("GET", "devops/jobs")["value"] if j["state"] == "finished")
        res["job"] = tally((svc, kind, m) for t, svc, who, kind, m in reqs if window(t, who, t_q, end))
        res["job_api"] = tally((verb, res_) for t, verb, res_, who, _ in audit
                               if window(t, who, t_q, end) and verb not in ("watch", "list"))
        res["job_passes"] = sum(len([t for t in v if t < end[k]]) for k, v in b.pass_starts(t_q).items())

        # ---- deletion ----
        b.log.mark()
        b.audit.mark()
        t_del = time.time()
        kube.run("delete", "pipelineagentpools", "--all", "-n", ns, "--wait=false")
        wait_until("every PipelineAgentPool gone", lambda: not b.list_paps(), timeout=300, interval=0.2)
        res["delete_s"] = time.time() - t_del
        res["delete"] = tally((svc, kind, m) for t, svc, who, kind, m in b.requests() if who is not None)
        res["delete_shared"] = tally((svc, kind, m) for t, svc, who, kind, m in b.requests() if who is None)
        res["delete_api"] = tally((verb, res_) for t, verb, res_, who, _ in b.audit_events()
                                  if who is not None and verb not in ("watch", "list"))
        res["groups_left"] = len(emu.control("GET", "aci/groups")["value"])
        res["agents_left"] = sum(len(p["agents"]) for p in emu.control("GET", f"devops/orgs/{ORG}")["pools"])
        res["total_cpu_s"] = cpu_seconds(pid)
        res["peak_rss_kb"] = status_kb(pid, "VmHWM")
    except BaseException:
        print(f"# failed; logs kept in {tmp}", file=sys.stderr)
        raise
    finally:
        if op:
            op.stop()
        if emu:
            emu.stop()
        subprocess.run([str(ROOT / "scripts" / "testenv.sh"), "stop", str(cp)])
    shutil.rmtree(tmp, ignore_errors=True)
    pathlib.Path(op.log_path).unlink(missing_ok=True)
    res["wall_s"] = time.monotonic() - t_start
    return res


# ---- printing ----

def by_kind(counts, div, svc=None, pick=None):
    """'kind verb x.xx' pairs of one service, each count over div."""
    items = sorted((k, v) for k, v in counts.items() if (svc is None or k[0] == svc) and (pick is None or pick(k)))
    return ", ".join(f"{k[1]} {v / div:.2f}" for k, v in items) or "none"


def total(counts, svc=None, writes=None):
    return sum(v for k, v in counts.items() if (svc is None or k[0] == svc)
               and (writes is None or (k[2] in WRITES) == writes))


def api_total(counts, writes=None):
    return sum(v for (verb, _), v in counts.items() if writes is None or (verb in API_WRITES) == writes)


def api_by_kind(counts, div):
    return ", ".join(f"{verb} {r} {v / div:.2f}" for (verb, r), v in sorted(counts.items())) or "none"


def report(res, args):
    n, c, passes = args.pools, args.count, args.passes
    inst = n * c
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}; acrpool: {OPERATOR} (no sanitizers); kube-apiserver v1.36.3 + "
          f"etcd v3.6.8 (scripts/testenv.sh, audit log on); emulator ACI provisioning delay "
          f"{args.provisioning_delay:g} s; {n} PipelineAgentPools x {c} instances, pre-registered with "
          f"{'a PAT' if args.registration == 'pat' else 'Entra (registration.entra)'}; a PAT Secret, service "
          f"principal Secret, Azure DevOps pool and resource group each, applied at once; {WORKERS} workers; "
          f"--queue-poll-interval {POLL}; whole run {res['wall_s']:.0f} s")
    p = n * passes
    # The four columns: a window of res and what its counts are divided by.
    cols = [("create", inst), ("pass", p), ("pass", p * c), ("delete", inst)]

    def figure(label, count, api=False):
        return [label] + [f"{count(res[k + ('_api' if api else '')]) / d:.2f}" for k, d in cols]

    def kinds(label, show, api=False):
        return [label] + [show(res[k + ('_api' if api else '')], d) for k, d in cols]
    rows = [
        figure("ARM requests", lambda r: total(r, "arm")),
        figure("ARM writes", lambda r: total(r, "arm", True)),
        kinds("ARM by kind", lambda r, d: by_kind(r, d, "arm")),
        figure("Azure DevOps requests", lambda r: total(r, "devops")),
        figure("Azure DevOps writes", lambda r: total(r, "devops", True)),
        kinds("Azure DevOps by kind", lambda r, d: by_kind(r, d, "devops")),
        figure("API server requests (LIST/WATCH apart)", api_total, api=True),
        figure("API server writes", lambda r: api_total(r, True), api=True),
        kinds("API server by kind", api_by_kind, api=True),
    ]
    table("Operator requests per instance created, per pass of a Ready pool, per instance deleted",
          ["figure", "per instance created", "per pass of a Ready pool", "per pass, per instance",
           "per instance deleted"], rows)

    per_hour = 3600 / DEFAULT_POLL_S
    rows = [
        ["ARM reads", f"{total(res['pass'], 'arm', False) / p * per_hour:.0f}",
         f"{total(res['pass'], 'arm', False) / p / c * per_hour:.0f}"],
        ["ARM writes", f"{total(res['pass'], 'arm', True) / p * per_hour:.0f}",
         f"{total(res['pass'], 'arm', True) / p / c * per_hour:.0f}"],
        ["Azure DevOps reads", f"{total(res['pass'], 'devops', False) / p * per_hour:.0f}",
         f"{total(res['pass'], 'devops', False) / p / c * per_hour:.0f}"],
        ["Azure DevOps writes", f"{total(res['pass'], 'devops', True) / p * per_hour:.0f}",
         f"{total(res['pass'], 'devops', True) / p / c * per_hour:.0f}"],
        ["API server requests (LIST/WATCH apart)", f"{api_total(res['pass_api']) / p * per_hour:.0f}",
         f"{api_total(res['pass_api']) / p / c * per_hour:.0f}"],
        ["API server writes", f"{api_total(res['pass_api'], True) / p * per_hour:.0f}",
         f"{api_total(res['pass_api'], True) / p / c * per_hour:.0f}"],
    ]
    table(f"Steady state: requests per hour of a Ready pool of {c} at the default --queue-poll-interval "
          f"({DEFAULT_POLL_S} s, {per_hour:.0f} passes an hour; measured per pass x {per_hour:.0f})",
          ["figure", "per pool per hour", "per instance per hour"], rows)

    jobs = n * c
    rows = [
        ["jobs finished (Azure DevOps stand-in)", str(res["jobs_finished"])],
        ["ARM writes per job", f"{total(res['job'], 'arm', True) / jobs:.2f}"],
        ["Azure DevOps writes per job", f"{total(res['job'], 'devops', True) / jobs:.2f}"],
        ["API server writes per job", f"{api_total(res['job_api'], True) / jobs:.2f}"
         f" ({api_by_kind({k: v for k, v in res['job_api'].items() if k[0] in API_WRITES}, jobs)})"],
        ["passes in the window (reads are a Ready pass's each)", str(res["job_passes"])],
    ]
    table(f"A job: {c} jobs of 0 s queued per pool until each pool's status.jobsCompleted shows them, plus "
          f"one pass", ["figure", "value"], rows)

    rows = [
        ["all Ready, from the apply (s)", f"{res['ready_s']:.1f}"],
        ["operator CPU, apply to all Ready (s)", f"{res['rollout_cpu_s']:.2f}"],
        ["operator CPU per pass of a Ready pool (ms)",
         f"{res['steady_cpu_ms_per_pass']:.1f}" if res["steady_cpu_ms_per_pass"] is not None else "n/a"],
        ["operator RSS with the pools Ready (MiB)", f"{res['rss_kb'] / 1024:.1f}"],
        ["operator peak RSS, VmHWM (MiB)", f"{res['peak_rss_kb'] / 1024:.1f}"],
        ["deletion: delete -> no PipelineAgentPool left (s)", f"{res['delete_s']:.1f}"],
        ["container groups / agents left after deletion", f"{res['groups_left']} / {res['agents_left']}"],
        ["not one pool's: creation, Azure", by_kind(res["create_shared"], 1)],
        ["not one pool's: creation, API server", api_by_kind(res["create_api_shared"], 1)],
        ["not one pool's: Ready passes, Azure (total; per pass)",
         f"{by_kind(res['pass_shared'], 1)}; {by_kind(res['pass_shared'], res['pass_shared_passes'])} "
         f"({res['pass_shared_passes']} passes in that window)"],
        ["not one pool's: Ready passes, API server", api_by_kind(res["pass_api_shared"], 1)],
        ["not one pool's: deletion, Azure", by_kind(res["delete_shared"], 1)],
    ]
    table("Times, CPU, memory, and the requests not attributable to one pool (totals)", ["figure", "value"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pools", type=int, default=5)
    ap.add_argument("--count", type=int, default=4, help="instances per pool")
    ap.add_argument("--passes", type=int, default=3, help="Ready passes measured per pool")
    ap.add_argument("--provisioning-delay", type=float, default=0.0, help="emulator ACI provisioning delay (s)")
    ap.add_argument("--registration", choices=("pat", "entra"), default="pat",
                    help="spec.registration: a PAT Secret (default) or entra: {} (the service principal's token)")
    args = ap.parse_args()
    report(run(args), args)


if __name__ == "__main__":
    main()
