"""The emulator's world: registries, agent pools, tasks, runs, task runs,
long-running operations, uploaded blobs, and the clock-driven simulation that
moves them.

Everything here is guarded by one re-entrant lock (`World.lock`): requests are
few and small, and one lock makes the simulation trivially consistent (a run
cannot be dispatched twice, a pool cannot be deleted under a dispatch).
`World.tick()` advances the simulation to "now"; a background thread calls it
every TICK seconds and every request calls it first, so what a client reads is
never staler than one tick.

Because of that, a tick and a request must cost what is in flight, not what
exists: a scale benchmark holds 10,000 pools and piles up finished runs. So
the world keeps indexes next to the plain dicts (which stay the source of
truth and keep their order): a heap of pools with an operation in flight, by
due time; per registry, the runs not yet finished, in creation order and by
pool; and per registry, the vCPU the pools hold. Pools enter and leave a
registry only through Registry.add_pool/remove_pool, runs through
Registry.add_run and World.finish_run, and a pool's count is a property, so
those indexes cannot drift from the dicts.

Simulation rules (what "moves like the real service" means here):
  - a pool's Creating/Updating/Deleting lasts the registry's (or the global)
    provisioning delay, then becomes Succeeded (or Failed when the registry's
    provisioning outcome says so) / disappears;
  - every Succeeded (or Updating) pool instance runs one run at a time: free
    slots = count - running runs; Queued runs are dispatched oldest first;
  - a run on shared compute (no agentPoolName) starts at once;
  - a dispatched run is Started for the first 10 % of its duration, then
    Running, then ends with its outcome (default Succeeded). Duration and
    outcome come from per-run overrides, else global settings.
Times are real wall-clock times; every delay is configurable, 0 = immediate.
"""

import hashlib
import heapq
import itertools
import threading
import time
import uuid
import zlib
from datetime import datetime, timezone

TIER_VCPU = {"S1": 2, "S2": 4, "S3": 8, "I6": 64}
ISOLATED_TIERS = {"I6"}
TERMINAL_RUN = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}
TICK = 0.02


def iso(ts):
    """RFC 3339 UTC with 7 fractional digits, as ARM writes it."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%07dZ" % (dt.microsecond * 10)


def logstamp(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y/%m/%d %H:%M:%S")


def default_settings():
    return {
        "provisioningDelaySeconds": 0.0,
        "runDurationSeconds": 2.0,
        "runOutcome": "Succeeded",
        "pageSize": 100,
        "retryAfterSeconds": 1,
    }


class Registry:
    """One container registry (created only through the control endpoint)."""

    def __init__(self, sub, rg, name, location="eastus", sku="Premium",
                 standard_vcpu=16, isolated_vcpu=0):
        self.sub, self.rg, self.name = sub, rg, name
        self.location = location
        self.sku = sku
        self.quota = {"standardVCPU": standard_vcpu, "isolatedVCPU": isolated_vcpu}
        self.provisioning_delay = None      # None: use the global setting
        self.provisioning_outcome = "Succeeded"
        self.created = time.time()
        self.pools = {}      # lower(name) -> Pool; change through add_pool/remove_pool
        self.tasks = {}      # lower(name) -> dict (stored ARM resource, secrets included)
        self.task_runs = {}  # lower(name) -> dict
        self.runs = {}       # runId -> Run (insertion order = creation order); add through add_run
        # Indexes over the two dicts above (see the module docstring):
        self.active = {}     # runId -> Run not yet in a TERMINAL_RUN status, in self.runs order
        self.active_on = {}  # lower(pool name), None for shared compute -> {runId: Run}, same runs
        self.vcpu = {"standard": 0, "isolated": 0}  # summed over self.pools
        self._run_seq = itertools.count(1)
        # Run IDs look like the service's (`ca1`, `cb2`): a per-registry letter pair.
        self._run_prefix = "c" + "abcdefghijklmnopqrstuvwxyz"[zlib.crc32(name.lower().encode()) % 26]

    @property
    def id(self):
        return (f"/subscriptions/{self.sub}/resourceGroups/{self.rg}"
                f"/providers/Microsoft.ContainerRegistry/registries/{self.name}")

    @property
    def login_server(self):
        return f"{self.name.lower()}.azurecr.io"

    def new_run_id(self):
        while True:
            rid = f"{self._run_prefix}{next(self._run_seq)}"
            if rid not in self.runs:
                return rid

    @property
    def key(self):
        """This registry's key in World.registries."""
        return (self.sub.lower(), self.rg.lower(), self.name.lower())

    def vcpu_in_use(self, exclude=None):
        """(standard, isolated) vCPU over every pool but the one keyed
        `exclude`, as the quota counts it."""
        std, iso_ = self.vcpu["standard"], self.vcpu["isolated"]
        pool = self.pools.get(exclude) if exclude is not None else None
        if pool is not None:
            kind, v = pool.vcpu()
            if kind == "isolated":
                iso_ -= v
            else:
                std -= v
        return std, iso_

    def _count_vcpu(self, pool, sign):
        kind, v = pool.vcpu()
        self.vcpu[kind] += sign * v

    def add_pool(self, key, pool):
        """Store `pool` under `key`, replacing (in place: list order is kept)
        any pool there."""
        old = self.pools.get(key)
        if old is not None:
            self._count_vcpu(old, -1)
        self.pools[key] = pool
        self._count_vcpu(pool, +1)

    def remove_pool(self, key):
        """Forget the pool under `key`; returns it (None if there was none).
        Its runs are left alone: see World.delete_pool."""
        pool = self.pools.pop(key, None)
        if pool is not None:
            self._count_vcpu(pool, -1)
        return pool

    def add_run(self, run):
        """Store `run`; a run seeded through the control endpoint may replace
        one with the same id (keeping that one's place, as a dict does)."""
        replacing = run.run_id in self.runs
        self.runs[run.run_id] = run
        if replacing:
            # Rare, and the old run may have been finished: rebuild the
            # indexes so they keep self.runs order (dispatch is oldest first).
            self.active, self.active_on = {}, {}
            for r in self.runs.values():
                if r.status not in TERMINAL_RUN:
                    self._index_run(r)
        elif run.status not in TERMINAL_RUN:
            self._index_run(run)

    def _index_run(self, run):
        self.active[run.run_id] = run
        self.active_on.setdefault(run.pool, {})[run.run_id] = run

    def run_finished(self, run):
        """Drop `run` from the indexes of unfinished runs."""
        if self.active.get(run.run_id) is not run:
            return  # not indexed (already finished, or replaced by a seeded run)
        del self.active[run.run_id]
        on_pool = self.active_on[run.pool]
        del on_pool[run.run_id]
        if not on_pool:
            del self.active_on[run.pool]

    def to_arm(self):
        return {
            "id": self.id, "name": self.name, "type": "Microsoft.ContainerRegistry/registries",
            "location": self.location, "tags": {},
            "sku": {"name": self.sku, "tier": self.sku},
            "properties": {
                "loginServer": self.login_server, "provisioningState": "Succeeded",
                "creationDate": iso(self.created), "adminUserEnabled": False,
            },
        }


class Pool:
    """One agent pool. `busy` holds the in-flight operation, if any:
    {"state": Creating|Updating|Deleting, "until": ts, "op": op id}."""

    def __init__(self, registry, name, location, tier, os_, count, subnet=None, tags=None):
        self.registry = registry
        self.name = name
        self.location = location
        self.tier = tier
        self.os = os_
        self._count = count
        self.subnet = subnet
        self.tags = tags
        self.state = "Succeeded"
        self.busy = None
        self.created = self.modified = time.time()

    @property
    def id(self):
        return f"{self.registry.id}/agentPools/{self.name}"

    @property
    def count(self):
        return self._count

    @count.setter
    def count(self, value):
        # Keep the registry's vCPU total right when a listed pool is scaled.
        listed = self.registry.pools.get(self.name.lower()) is self
        if listed:
            self.registry._count_vcpu(self, -1)
        self._count = value
        if listed:
            self.registry._count_vcpu(self, +1)

    def vcpu(self):
        """("standard" or "isolated", vCPU) this pool holds against the quota."""
        tier = self.tier.upper()
        return ("isolated" if tier in ISOLATED_TIERS else "standard"), TIER_VCPU.get(tier, 0) * self._count

    def capacity(self):
        # Agents exist (and take work) once created; during an update the
        # already-running instances keep working.
        return self.count if self.state in ("Succeeded", "Updating") else 0

    def to_arm(self, version):
        props = {"count": self.count, "tier": self.tier, "os": self.os,
                 "provisioningState": self.state}
        if self.subnet:
            props["virtualNetworkSubnetResourceId"] = self.subnet
        out = {"id": self.id, "name": self.name,
               "type": "Microsoft.ContainerRegistry/registries/agentPools",
               "location": self.location, "properties": props}
        if self.tags is not None:
            out["tags"] = dict(self.tags)
        if version.startswith("2025"):
            out["systemData"] = system_data(self.created, self.modified)
        return out


def system_data(created, modified):
    return {"createdBy": "acr-emulator", "createdByType": "Application", "createdAt": iso(created),
            "lastModifiedBy": "acr-emulator", "lastModifiedByType": "Application",
            "lastModifiedAt": iso(modified)}


class Run:
    """One run. `props` is the ARM `properties` object; the rest is simulation."""

    def __init__(self, registry, run_id, props, pool=None, duration=None, outcome=None,
                 image_names=(), push=False, fail_message=None):
        self.registry = registry
        self.run_id = run_id
        self.props = props
        self.pool = pool            # lower(pool name) or None for shared compute
        self.duration = duration    # None: global setting at dispatch time
        self.outcome = outcome      # None: global setting at finish time
        self.image_names = list(image_names)
        self.push = push
        self.fail_message = fail_message  # forces Failed with this runErrorMessage
        self.started_at = None
        self.log_template = None
        self.log = []

    @property
    def status(self):
        return self.props["status"]

    def to_arm(self):
        return {"id": f"{self.registry.id}/runs/{self.run_id}", "name": self.run_id,
                "type": "Microsoft.ContainerRegistry/registries/runs",
                "properties": dict(self.props)}

    def say(self, ts, line):
        self.log.append(f"{logstamp(ts)} {line}")


class World:
    """All emulator state plus the simulation clock."""

    def __init__(self):
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        with self.lock:
            self.settings = default_settings()
            self.registries = {}   # (lower sub, lower rg, lower name) -> Registry
            self.operations = {}   # op id -> dict
            self.blobs = {}        # blob path (after /_blob/) -> {"sha256","size","data","contentType"}
            # Pools with an operation in flight: a heap of (due time, seq, pool,
            # pool.busy as set). An entry whose pool has since been removed, or
            # whose busy was cleared or replaced, is stale and dropped when due.
            self.busy_pools = []
            self._busy_seq = itertools.count()

    # -- lookups ----------------------------------------------------------

    def registry(self, sub, rg, name):
        return self.registries.get((sub.lower(), rg.lower(), name.lower()))

    def resource_group_exists(self, sub, rg):
        return any(k[0] == sub.lower() and k[1] == rg.lower() for k in self.registries)

    def subscription_exists(self, sub):
        return any(k[0] == sub.lower() for k in self.registries)

    def provisioning_delay(self, reg):
        if reg.provisioning_delay is not None:
            return reg.provisioning_delay
        return float(self.settings["provisioningDelaySeconds"])

    # -- long-running operations -------------------------------------------

    def new_operation(self, reg, kind, target_id, done=False):
        op_id = str(uuid.uuid4())
        now = time.time()
        self.operations[op_id] = {
            "id": op_id, "registry": reg, "kind": kind, "target": target_id,
            "status": "Succeeded" if done else "InProgress",
            "startTime": now, "endTime": now if done else None, "error": None,
        }
        return op_id

    def finish_operation(self, op_id, status="Succeeded", error=None):
        op = self.operations.get(op_id)
        if op and op["status"] == "InProgress":
            op["status"] = status
            op["endTime"] = time.time()
            op["error"] = error

    # -- pools ------------------------------------------------------------------

    def set_busy(self, pool, state, until, op_id):
        """Start `pool`'s in-flight operation; the tick ends it at `until`."""
        pool.busy = {"state": state, "until": until, "op": op_id}
        heapq.heappush(self.busy_pools, (until, next(self._busy_seq), pool, pool.busy))

    def delete_pool(self, reg, key, now):
        """The end of an ARM delete: the pool goes and its unfinished runs
        become Error."""
        pool = reg.remove_pool(key)
        for run in list(reg.active_on.get(key, {}).values()):
            self.finish_run(run, now, "Error", f"The agent pool '{pool.name}' was deleted.")

    # -- simulation -----------------------------------------------------------

    def tick(self, now=None):
        """Advance pools and runs to `now`. Costs the pools due plus the
        unfinished runs, so it is cheap when nothing is in flight."""
        now = now or time.time()
        with self.lock:
            self._tick_pools(now)
            for reg in self.registries.values():
                if reg.active:
                    self._tick_runs(reg, now)

    def _tick_pools(self, now):
        due = self.busy_pools
        while due and due[0][0] <= now:
            _, _, pool, busy = heapq.heappop(due)
            reg, key = pool.registry, pool.name.lower()
            if pool.busy is not busy or reg.pools.get(key) is not pool \
                    or self.registries.get(reg.key) is not reg:
                continue  # stale: see busy_pools
            pool.busy = None
            pool.modified = now
            if busy["state"] == "Deleting":
                self.delete_pool(reg, key, now)
                self.finish_operation(busy["op"])
            elif reg.provisioning_outcome == "Failed":
                pool.state = "Failed"
                err = {"code": "AgentPoolProvisioningFailed",
                       "message": f"Provisioning of agent pool '{pool.name}' failed (injected)."}
                self.finish_operation(busy["op"], "Failed", err)
            else:
                pool.state = "Succeeded"
                self.finish_operation(busy["op"])

    def _tick_runs(self, reg, now):
        # Only unfinished runs can move; finish_run drops runs from
        # reg.active as it goes, hence the copies.
        busy = {}
        for run in list(reg.active.values()):
            st = run.status
            if st == "Started" and now >= run.started_at + 0.1 * run.duration:
                run.props["status"] = "Running"
                run.props["lastUpdatedTime"] = iso(now)
                run.say(now, "Running ...")
                st = "Running"
            if st == "Running" and now >= run.started_at + run.duration:
                outcome = "Failed" if run.fail_message else (run.outcome or self.settings["runOutcome"])
                self.finish_run(run, now, outcome, run.fail_message)
                continue
            if st in ("Started", "Running") and run.pool:
                busy[run.pool] = busy.get(run.pool, 0) + 1
        # Dispatch in creation order; reg.active keeps it.
        for run in list(reg.active.values()):
            if run.status != "Queued":
                continue
            if run.pool is None:
                self.start_run(run, now)
                continue
            pool = reg.pools.get(run.pool)
            if pool is None:
                continue
            if busy.get(run.pool, 0) < pool.capacity():
                busy[run.pool] = busy.get(run.pool, 0) + 1
                self.start_run(run, now)

    def start_run(self, run, now):
        if run.duration is None:
            run.duration = float(self.settings["runDurationSeconds"])
        run.started_at = now
        run.props["status"] = "Started"
        run.props["startTime"] = iso(now)
        run.props["lastUpdatedTime"] = iso(now)
        where = f"agent pool '{run.props['agentPoolName']}'" if run.pool else "shared agent"
        run.say(now, f"Run ID: {run.run_id} started on {where}")
        if run.image_names:
            run.say(now, f"Step ID: build  Building images: {', '.join(run.image_names)}")
        if run.duration == 0:
            self._tick_finish_now(run, now)

    def _tick_finish_now(self, run, now):
        outcome = "Failed" if run.fail_message else (run.outcome or self.settings["runOutcome"])
        run.props["status"] = "Running"
        self.finish_run(run, now, outcome, run.fail_message)

    def finish_run(self, run, now, outcome, message=None):
        p = run.props
        p["status"] = outcome
        run.registry.run_finished(run)
        p["finishTime"] = iso(now)
        p["lastUpdatedTime"] = iso(now)
        if "startTime" not in p and outcome != "Canceled":
            p["startTime"] = iso(now)
        if outcome == "Succeeded":
            if run.push and run.image_names:
                p["outputImages"] = [self._image(run, name) for name in run.image_names]
                for img in p["outputImages"]:
                    run.say(now, f"Pushed {img['registry']}/{img['repository']}:{img['tag']} "
                                 f"digest: {img['digest']}")
            run.say(now, f"Run ID: {run.run_id} was successful after "
                         f"{int(round(now - (run.started_at or now)))}s")
        elif outcome == "Canceled":
            run.say(now, f"Run ID: {run.run_id} was canceled")
        else:
            p["runErrorMessage"] = message or {
                "Failed": "failed during run, err: exit status 1",
                "Error": "run failed with an internal error",
                "Timeout": f"run exceeded the timeout of {p.get('timeout', 3600)} seconds",
            }.get(outcome, "run failed")
            run.say(now, f"Run ID: {run.run_id} failed after "
                         f"{int(round(now - (run.started_at or now)))}s. Error: {p['runErrorMessage']}")
        if run.log_template:
            # Runs with a log template archive their log as an image (logArtifact).
            tmpl = run.log_template.replace("{{.Run.ID}}", run.run_id).replace(
                "{{.Run.OS}}", (p.get("platform") or {}).get("os", "linux").lower())
            repo, _, tag = tmpl.rpartition(":")
            p["logArtifact"] = self._image(run, f"{repo or tmpl}:{tag or run.run_id}")

    def _image(self, run, name):
        reg = run.registry
        name = name.replace("{{.Run.ID}}", run.run_id).replace("{{.Run.Registry}}", reg.login_server)
        if name.lower().startswith(reg.login_server + "/"):
            name = name[len(reg.login_server) + 1:]
        repo, _, tag = name.rpartition(":")
        if not repo or "/" in tag:
            repo, tag = name, "latest"
        digest = "sha256:" + hashlib.sha256(f"{reg.login_server}/{run.run_id}/{name}".encode()).hexdigest()
        return {"registry": reg.login_server, "repository": repo, "tag": tag, "digest": digest}

    def cancel_run(self, run, now=None):
        now = now or time.time()
        if run.status not in TERMINAL_RUN:
            self.finish_run(run, now, "Canceled")

    def queued_count(self, reg, pool_key):
        return sum(1 for r in reg.active_on.get(pool_key, {}).values() if r.status == "Queued")


class Ticker(threading.Thread):
    """Background clock: calls World.tick every TICK seconds until stopped."""

    def __init__(self, world):
        super().__init__(daemon=True, name="acr-emulator-ticker")
        self.world = world
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(TICK):
            self.world.tick()
