"""The emulator's control endpoint (/_emulator/...) and blob endpoint (/_blob/...).

The control endpoint is how tests arrange the world the operator will meet:
registries (the only way to create one), out-of-band pools (adoption,
conflict, `az acr agentpool update --count 5` drift), provisioning delays and
outcomes, run durations and outcomes, timer firings, principals for the token
endpoints, fault injection, and the request log. It needs no authentication
and is never subject to injected faults. Bodies and answers are JSON; errors
are {"error": {"code", "message"}}. The API is listed in docs/emulator.md.

The blob endpoint stands in for the storage account behind
listBuildSourceUploadUrl and listLogSasUrl: PUT stores a block blob (and, with
--state-dir, a copy on disk), GET serves a run log. Both want a `sig` query
parameter, as a SAS URL has, but do not check its value.
"""

import base64
import hashlib
import json
import os
import re
import time
import uuid
from urllib.parse import unquote

from arm import ArmContext, ArmError, Reply
from state import TIER_VCPU, Pool, Registry, Run, default_settings, iso


def bad(message, status=400, code="BadRequest"):
    return ArmError(status, code, message)


class Control:
    def __init__(self, emu):
        self.emu = emu
        self.world = emu.world

    # -- routing ------------------------------------------------------------------

    def handle(self, req):
        parts = [unquote(p) for p in req.raw_path.split("/")[2:] if p]
        body = {}
        if req.body.strip():
            try:
                body = json.loads(req.body)
            except ValueError as e:
                raise bad(f"invalid JSON: {e}")
            if not isinstance(body, dict):
                raise bad("the body must be a JSON object")
        m, n = req.method, len(parts)
        if parts and parts[0] == "aci":  # container groups: aci.py, its own lock
            return self.emu.aci.control(m, parts[1:], body, req.query)
        with self.world.lock:
            if parts == ["health"]:
                return Reply(200, {"ok": True})
            if parts == ["reset"] and m == "POST":
                self.emu.reset()
                return Reply(200, {"ok": True})
            if parts == ["settings"]:
                return self.settings(m, body)
            if parts == ["registries"] and m == "GET":
                return Reply(200, {"value": [self.describe(r) for r in self.world.registries.values()]})
            if n >= 4 and parts[0] == "registries":
                return self.registry_routes(req, m, parts[1:4], parts[4:], body)
            if parts == ["runs"] and m == "GET":
                runs = [self.describe_run(r) for reg in self.world.registries.values()
                        for r in reg.runs.values()]
                return Reply(200, {"value": runs})
            if parts and parts[0] == "faults":
                return self.fault_routes(m, parts[1:], body)
            if parts == ["requests"]:
                return self.request_log(m, req)
            if parts == ["uploads"] and m == "GET":
                return Reply(200, {"value": [
                    {"path": p, "sha256": b["sha256"], "size": b["size"], "time": b["time"]}
                    for p, b in self.world.blobs.items()]})
            if parts and parts[0] == "devops":
                return self.emu.devops.control(req, m, parts[1:], body)
            if parts and parts[0] == "identity":
                return self.identity_routes(m, parts[1:], body)
        raise bad(f"no control route {m} /{'/'.join(['_emulator'] + parts)}", 404, "NotFound")

    # -- settings -------------------------------------------------------------------

    def settings(self, method, body):
        s = self.world.settings
        ident = self.emu.identity
        if method in ("PUT", "PATCH"):
            known = set(default_settings()) | {"tokenLifetimeSeconds", "imdsTokenLifetimeSeconds"}
            unknown = set(body) - known
            if unknown:
                raise bad(f"unknown settings: {', '.join(sorted(unknown))}")
            if "runOutcome" in body:
                _check_outcome(body["runOutcome"])
            for k in default_settings():
                if k in body:
                    s[k] = body[k]
            if "tokenLifetimeSeconds" in body:
                ident.token_lifetime = int(body["tokenLifetimeSeconds"])
            if "imdsTokenLifetimeSeconds" in body:
                ident.imds_lifetime = int(body["imdsTokenLifetimeSeconds"])
        elif method != "GET":
            raise bad("use GET, PUT or PATCH", 405, "MethodNotAllowed")
        return Reply(200, dict(s, tokenLifetimeSeconds=ident.token_lifetime,
                               imdsTokenLifetimeSeconds=ident.imds_lifetime))

    # -- registries and what is in them ------------------------------------------------

    def describe(self, reg):
        std, isolated = reg.vcpu_in_use()
        return {"subscriptionId": reg.sub, "resourceGroup": reg.rg, "name": reg.name,
                "id": reg.id, "location": reg.location, "sku": reg.sku, "loginServer": reg.login_server,
                "quota": dict(reg.quota), "vcpuInUse": {"standard": std, "isolated": isolated},
                "provisioningDelaySeconds": reg.provisioning_delay,
                "provisioningOutcome": reg.provisioning_outcome,
                "agentPools": [p.to_arm("2025-03-01-preview") for p in reg.pools.values()],
                "tasks": sorted(t["name"] for t in reg.tasks.values())}

    def registry_routes(self, req, m, ident, rest, body):
        sub, rg, name = ident
        reg = self.world.registry(sub, rg, name)
        if not rest:
            if m == "PUT":
                return self.put_registry(sub, rg, name, reg, body)
            if reg is None:
                raise bad(f"registry {sub}/{rg}/{name} does not exist", 404, "NotFound")
            if m == "GET":
                return Reply(200, self.describe(reg))
            if m == "PATCH":
                self.configure_registry(reg, body)
                return Reply(200, self.describe(reg))
            if m == "DELETE":
                del self.world.registries[(sub.lower(), rg.lower(), name.lower())]
                return Reply(200, {"ok": True})
            raise bad("use GET, PUT, PATCH or DELETE", 405, "MethodNotAllowed")
        if reg is None:
            raise bad(f"registry {sub}/{rg}/{name} does not exist", 404, "NotFound")
        kind = rest[0]
        if kind == "agentPools" and len(rest) == 2:
            return self.pool_route(reg, m, rest[1], body)
        if kind == "runs" and len(rest) == 2:
            return self.run_route(req, reg, m, rest[1], body)
        if kind == "tasks" and len(rest) == 3 and rest[2] == "timer" and m == "POST":
            return self.fire_timer(req, reg, rest[1], body)
        raise bad(f"no control route under registry: {'/'.join(rest)}", 404, "NotFound")

    def put_registry(self, sub, rg, name, reg, body):
        if not re.fullmatch(r"[a-zA-Z0-9]{5,50}", name):
            raise bad("registry names are 5 to 50 alphanumerics")
        created = reg is None
        if created:
            reg = Registry(sub, rg, name)
            self.world.registries[(sub.lower(), rg.lower(), name.lower())] = reg
        self.configure_registry(reg, body)
        return Reply(201 if created else 200, self.describe(reg))

    def configure_registry(self, reg, body):
        if "location" in body:
            reg.location = body["location"]
        if "sku" in body:
            if body["sku"].lower() not in ("basic", "standard", "premium"):
                raise bad("sku must be Basic, Standard or Premium")
            reg.sku = body["sku"].capitalize()
        quota = body.get("quota") or {}
        for k in ("standardVCPU", "isolatedVCPU"):
            if k in quota:
                reg.quota[k] = int(quota[k])
        if "provisioningDelaySeconds" in body:
            d = body["provisioningDelaySeconds"]
            reg.provisioning_delay = None if d is None else float(d)
        if "provisioningOutcome" in body:
            if body["provisioningOutcome"] not in ("Succeeded", "Failed"):
                raise bad("provisioningOutcome must be Succeeded or Failed")
            reg.provisioning_outcome = body["provisioningOutcome"]

    def pool_route(self, reg, m, name, body):
        """Out-of-band pool changes: what the portal or `az acr agentpool`
        would do behind the operator's back. No quota, SKU or state checks,
        no provisioning delay."""
        key = name.lower()
        pool = reg.pools.get(key)
        if m == "DELETE":
            if reg.remove_pool(key) is None:
                raise bad(f"agent pool {name} does not exist", 404, "NotFound")
            return Reply(200, {"ok": True})
        if m == "PUT":
            tier = body.get("tier", "S1").upper()
            if tier not in TIER_VCPU:
                raise bad(f"tier must be one of {', '.join(TIER_VCPU)}")
            pool = Pool(reg, name, body.get("location", reg.location), tier, body.get("os", "Linux"),
                        int(body.get("count", 1)),
                        body.get("virtualNetworkSubnetResourceId") or body.get("subnetId"), body.get("tags"))
        elif pool is None:
            raise bad(f"agent pool {name} does not exist", 404, "NotFound")
        elif m == "PATCH":
            if "count" in body:
                pool.count = int(body["count"])
            if "tags" in body:
                pool.tags = body["tags"]
        elif m != "GET":
            raise bad("use GET, PUT, PATCH or DELETE", 405, "MethodNotAllowed")
        if m in ("PUT", "PATCH"):
            if "provisioningState" in body:
                pool.state = body["provisioningState"]
                pool.busy = None
            pool.modified = time.time()
            reg.add_pool(key, pool)
        return Reply(200, pool.to_arm("2025-03-01-preview"))

    def describe_run(self, run):
        return {"registry": run.registry.name, "runId": run.run_id, "status": run.status,
                "agentPoolName": run.props.get("agentPoolName"), "task": run.props.get("task"),
                "durationSeconds": run.duration, "outcome": run.outcome,
                "properties": run.props, "log": run.log}

    def run_route(self, req, reg, m, run_id, body):
        run = reg.runs.get(run_id)
        if m == "PUT":
            # Seed a run with given properties (e.g. one "scheduled before a crash").
            props = {"runId": run_id, "status": "Queued", "createTime": iso(time.time()),
                     "lastUpdatedTime": iso(time.time()), "provisioningState": "Succeeded"}
            props.update(body.get("properties") or {})
            props["runId"] = run_id
            pool = props.get("agentPoolName")
            run = Run(reg, run_id, props, pool=pool.lower() if pool else None,
                      duration=body.get("durationSeconds"), outcome=body.get("outcome"))
            if props["status"] in ("Started", "Running"):
                run.started_at = time.time()
                if run.duration is None:
                    run.duration = float(self.world.settings["runDurationSeconds"])
            reg.add_run(run)
            return Reply(200, self.describe_run(run))
        if run is None:
            raise bad(f"run {run_id} does not exist", 404, "NotFound")
        if m == "GET":
            return Reply(200, self.describe_run(run))
        if m == "PATCH":
            if "durationSeconds" in body:
                run.duration = float(body["durationSeconds"])
            if "outcome" in body:
                _check_outcome(body["outcome"])
                run.outcome = body["outcome"]
            return Reply(200, self.describe_run(run))
        raise bad("use GET, PUT or PATCH", 405, "MethodNotAllowed")

    def fire_timer(self, req, reg, task_name, body):
        task = reg.tasks.get(task_name.lower())
        if task is None:
            raise bad(f"task {task_name} does not exist", 404, "NotFound")
        timers = (task["properties"].get("trigger") or {}).get("timerTriggers") or []
        wanted = body.get("timerTriggerName") or (timers[0]["name"] if timers else None)
        if not any(t["name"] == wanted for t in timers):
            raise bad(f"task {task_name} has no timer trigger '{wanted}'")
        occurrence = body.get("scheduleOccurrence") or iso(time.time())
        ctx = ArmContext(self.world, next(iter(self.emu.specs.values())), req, "2025-03-01-preview",
                         {"resourceGroupName": reg.rg}, reg)
        run = self.emu.arm.schedule(ctx, None, task_override=task,
                                    timer={"timerTriggerName": wanted, "scheduleOccurrence": occurrence})
        if "durationSeconds" in body:
            run.duration = float(body["durationSeconds"])
        if "outcome" in body:
            run.outcome = body["outcome"]
        return Reply(201, run.to_arm())

    # -- faults, request log, identity -------------------------------------------------------

    def fault_routes(self, m, rest, body):
        faults = self.emu.faults
        if not rest and m == "POST":
            try:
                return Reply(201, faults.add(body))
            except (ValueError, re.error) as e:
                raise bad(str(e))
        if not rest and m == "GET":
            return Reply(200, {"value": faults.list()})
        if m == "DELETE":
            faults.clear(int(rest[0]) if rest else None)
            return Reply(200, {"ok": True})
        raise bad("use GET, POST or DELETE", 405, "MethodNotAllowed")

    def request_log(self, m, req):
        if m == "DELETE":
            with self.emu.log_lock:
                self.emu.requests.clear()
            return Reply(200, {"ok": True})
        since = int(req.query.get("since", "0") or 0)
        with self.emu.log_lock:
            entries = [e for e in self.emu.requests if e["seq"] > since]
        return Reply(200, {"value": entries})

    def identity_routes(self, m, rest, body):
        ident = self.emu.identity
        if not rest and m == "GET":
            return Reply(200, ident.describe())
        if rest == ["clients"] and m == "POST":
            if not body.get("clientId") or not body.get("tenantId"):
                raise bad("clientId and tenantId are required")
            fed = body.get("federatedCredentials") or []
            if any(not f.get("issuer") or not f.get("subject") for f in fed):
                raise bad("each federated credential needs issuer and subject")
            ident.add_client(body["tenantId"], body["clientId"], body.get("clientSecret"), fed)
            return Reply(201, ident.describe())
        if rest == ["managed"] and m == "POST":
            ident.add_managed_identity(body.get("clientId", ""), bool(body.get("default")))
            return Reply(201, ident.describe())
        raise bad("no such identity route", 404, "NotFound")

    # -- blob endpoint -------------------------------------------------------------------------

    def blob(self, req):
        path = req.path[len("/_blob/"):]
        if not req.query.get("sig"):
            return Reply(403, _blob_error("AuthenticationFailed",
                                          "Server failed to authenticate the request: no SAS signature."))
        if req.method == "PUT":
            if req.headers.get("x-ms-blob-type") != "BlockBlob":
                return Reply(400, _blob_error("MissingRequiredHeader",
                                              "An HTTP header that's mandatory for this request is not "
                                              "specified: x-ms-blob-type (BlockBlob)."))
            digest = hashlib.sha256(req.body).hexdigest()
            with self.world.lock:
                self.world.blobs[path] = {"sha256": digest, "size": len(req.body), "time": time.time(),
                                          "data": req.body}
            if self.emu.state_dir:
                dest = os.path.join(self.emu.state_dir, "blobs", *path.split("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "wb") as f:
                    f.write(req.body)
            md5 = hashlib.md5(req.body).digest()
            return Reply(201, None, {"ETag": f'"0x{uuid.uuid4().hex[:15].upper()}"',
                                     "Content-MD5": base64.b64encode(md5).decode(),
                                     "x-ms-request-server-encrypted": "true",
                                     "x-ms-version": req.headers.get("x-ms-version", "2019-02-02")})
        if req.method in ("GET", "HEAD"):
            m = re.fullmatch(r"([^/]+)/logs/([^/]+)/rawtext\.log", path)
            with self.world.lock:
                if m:
                    for reg in self.world.registries.values():
                        if reg.name.lower() == m.group(1) and m.group(2) in reg.runs:
                            text = "\n".join(reg.runs[m.group(2)].log) + "\n"
                            return Reply(200, text, {"x-ms-blob-type": "AppendBlob"})
                if path in self.world.blobs:
                    return Reply(200, self.world.blobs[path]["data"],
                                 {"Content-Type": "application/octet-stream", "x-ms-blob-type": "BlockBlob"})
            return Reply(404, _blob_error("BlobNotFound", "The specified blob does not exist."))
        return Reply(405, _blob_error("UnsupportedHttpVerb", "The resource doesn't support the verb."))


def _blob_error(code, message):
    # Storage answers errors in XML; clients only need the code.
    return (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>")


def _check_outcome(outcome):
    if outcome not in ("Succeeded", "Failed", "Error", "Timeout", "Canceled"):
        raise bad("outcome must be Succeeded, Failed, Error, Timeout or Canceled")
