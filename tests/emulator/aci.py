"""Azure Container Instances (Microsoft.ContainerInstance/containerGroups) for the emulator.

What it serves, with the published stable swagger as the contract
(spec/2025-09-01-containerInstance.json, validated by specvalidator.Spec):
  - ARM: containerGroups PUT (create or update, long-running), GET, PATCH
    (tags), DELETE (long-running), list by resource group and by
    subscription (pageable), POST restart/stop/start, the location usages
    (quota) list, and the Azure-AsyncOperation monitor
    .../locations/{location}/operations/{id} (the URL shape of the spec's
    delete and start examples);
  - a simulated container runtime: every container of a running group runs a
    "program" in a thread; when it returns, the group's restartPolicy decides
    whether it starts again (restartCount + 1, events counted), as ACI does;
  - the /_emulator/aci/... control endpoints (Control routes them here).

Programs are pluggable: register_program(name, fn), fn(ctx) -> int exit code.
ctx has group_id, group_name, container_name, image, env (every variable,
plain and secure), start (restartCount at this start), stop (a
threading.Event set on stop/delete/update/restart; return soon after) and
emulator_url. Which program an image runs is a rule set through
PUT /_emulator/aci/images; an image without a rule runs until stopped.

Secrets: a secureValue (and the other members the swagger marks x-ms-secret:
registry password, log analytics key, storage account key, secret volume
contents, extension protectedSettings) is stored to hand to the program but
never appears in an ARM answer, a control answer or a log; mask_body() is what
the request log uses.

Everything here is guarded by Aci.lock (never World.lock); a program runs
without any lock held, so it may call the emulator over HTTP.
Error codes: see docs/emulator.md ("Container groups").

Subnets (subnetIds): a subnet id is stored and echoed, never resolved (no
Microsoft.Network here), unless a test declares it through
PUT /_emulator/aci/subnets {"id": "...", "delegated": false}: a PUT naming a
subnet declared not delegated to Microsoft.ContainerInstance/containerGroups
is refused 400 SubnetMissingRequiredDelegation, "Subnet missing required
delegation 'Microsoft.ContainerInstance' for container group '{name}'." (the
code and wording ACI gives, as seen in public deployment logs).
"""

import copy
import fnmatch
import hashlib
import importlib
import json
import os
import re
import sys
import threading
import time
import uuid
from urllib.parse import urlencode

from arm import ArmError, Reply, _template_regex
from specvalidator import Spec, ValidationError
from state import iso

API_VERSION = "2025-09-01"
SPEC_FILE = f"{API_VERSION}-containerInstance.json"
PROVIDER = "Microsoft.ContainerInstance"
TYPE = "Microsoft.ContainerInstance/containerGroups"
TICK = 0.02
SERVED = {"ContainerGroups_List", "ContainerGroups_ListByResourceGroup", "ContainerGroups_Get",
          "ContainerGroups_CreateOrUpdate", "ContainerGroups_Update", "ContainerGroups_Delete",
          "ContainerGroups_Restart", "ContainerGroups_Stop", "ContainerGroups_Start", "Location_ListUsage"}
OP_STATUS = re.compile(r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?/providers/"
                       r"Microsoft\.ContainerInstance/locations/(?P<loc>[^/]+)/operations/(?P<op>[^/]+)$", re.I)
SECRET_KEYS = ("secureValue", "password", "workspaceKey", "storageAccountKey", "protectedSettings")

# -- programs -------------------------------------------------------------------------------

PROGRAMS = {}


def register_program(name, fn):
    """Make `fn(ctx) -> int` available as program `name` for image rules."""
    PROGRAMS[name] = fn


def _run_until_stopped(ctx):
    ctx.stop.wait()
    return 0


class ProgramContext:
    """What a program sees of its container (see module docstring)."""

    def __init__(self, group_id, group_name, container_name, image, env, start, stop, emulator_url):
        self.group_id, self.group_name, self.container_name = group_id, group_name, container_name
        self.image, self.env, self.start, self.stop = image, env, start, stop
        self.emulator_url = emulator_url

    def __getitem__(self, name):  # ctx["env"] works as well as ctx.env
        return getattr(self, name)

    def get(self, name, default=None):
        return getattr(self, name, default)

    def __repr__(self):  # never show env: it holds secure values
        return f"<ProgramContext {self.group_name}/{self.container_name} start={self.start}>"


def _env_exit_code(ctx):
    """Built-in test program: waits SLEEP_SECONDS (default 0, or until
    stopped), then exits with EXIT_CODE (default 0), both read from the
    environment, so a test can prove a secureValue reached the container."""
    ctx.stop.wait(float(ctx.env.get("SLEEP_SECONDS", "0") or 0))
    return int(ctx.env.get("EXIT_CODE", "0") or 0)


register_program("env-exit-code", _env_exit_code)


def _load_known_programs():
    """Programs written beside this file register themselves on import."""
    for mod in ("agent_sim",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


# -- helpers -------------------------------------------------------------------------------

def redacted(value):
    return "<redacted sha256:%s>" % hashlib.sha256(str(value).encode()).hexdigest()[:12]


def mask_body(body):
    """A copy of a request body with every secret member replaced by a hash
    (what the request log keeps for container-group requests)."""
    if isinstance(body, dict):
        return {k: (redacted(json.dumps(v)) if k in SECRET_KEYS and v is not None
                    else {sk: redacted(sv) for sk, sv in v.items()} if k == "secret" and isinstance(v, dict)
                    else mask_body(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [mask_body(v) for v in body]
    return body


def norm_location(loc):
    return (loc or "").replace(" ", "").lower()


def default_settings():
    return {"provisioningDelaySeconds": 0.0, "deleteDelaySeconds": 0.0, "restartDelaySeconds": 0.1,
            "pageSize": 100, "retryAfterSeconds": 1}


def default_quota():
    # Public defaults: 100 container groups per region per subscription; the
    # core quota varies by offer (10 for pay-as-you-go). 4 CPU / 16 GB per
    # group is the common regional capability.
    return {"maxContainerGroups": 100, "maxCores": 10, "maxCpuPerGroup": 4, "maxMemoryInGBPerGroup": 16}


def not_found(name, rg):
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{TYPE}/{name}' under resource group '{rg}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def transitioning(name):
    return ArmError(409, "ContainerGroupTransitioning",
                    f"The container group '{name}' is still transitioning, please retry later.")


class Container:
    """Runtime state of one container of a group."""

    def __init__(self, name):
        self.name = name
        self.restart_count = 0
        self.current = {"state": "Waiting", "detailStatus": ""}
        self.previous = None
        self.events = []

    def event(self, now, name, message, type_="Normal"):
        for ev in self.events:  # ACI counts repeated events
            if ev["name"] == name and ev["message"] == message:
                ev["count"] += 1
                ev["lastTimestamp"] = iso(now)
                return
        self.events.append({"count": 1, "firstTimestamp": iso(now), "lastTimestamp": iso(now),
                            "name": name, "message": message, "type": type_})

    def view(self):
        out = {"restartCount": self.restart_count, "currentState": dict(self.current),
               "events": [dict(e) for e in self.events]}
        if self.previous:
            out["previousState"] = dict(self.previous)
        return out


class Group:
    def __init__(self, sub, rg, name, body, now):
        self.sub, self.rg, self.name = sub, rg, name
        self.created = now
        self.apply(body)
        self.provisioning = "Pending"
        self.busy = None            # {"kind", "start", "until", "op"} while an operation runs
        self.stopped = False
        self.generation = 0         # bumped whenever running programs must stop
        self.stop_event = threading.Event()
        self.containers = {}
        self.events = []
        self.reset_containers()

    @property
    def id(self):
        return f"/subscriptions/{self.sub}/resourceGroups/{self.rg}/providers/{TYPE}/{self.name}"

    def apply(self, body):
        self.location = body["location"]
        self.tags = body.get("tags")
        self.zones = body.get("zones")
        self.identity = body.get("identity")
        self.props = body["properties"]
        self.props.setdefault("restartPolicy", "Always")

    def reset_containers(self):
        self.containers = {c["name"]: Container(c["name"]) for c in self.props["containers"]}

    def cores(self):
        return sum(float(c["properties"]["resources"]["requests"]["cpu"]) for c in self.props["containers"])

    def memory(self):
        return sum(float(c["properties"]["resources"]["requests"]["memoryInGB"]) for c in self.props["containers"])

    def state(self):
        if self.provisioning in ("Pending", "Creating", "Updating") or self.busy and self.busy["kind"] != "Deleting":
            return "Pending"
        if self.provisioning == "Deleting":
            return "Stopped"
        if self.stopped:
            return "Stopped"
        states = [c.current["state"] for c in self.containers.values()]
        if states and all(s == "Terminated" for s in states):
            ok = all(c.current.get("exitCode") == 0 for c in self.containers.values())
            return "Succeeded" if ok else "Failed"
        return "Running"


def _view_props(props):
    """Stored properties as ARM returns them: no secret members."""
    out = copy.deepcopy(props)
    for c in out.get("containers", []) + out.get("initContainers", []):
        p = c.get("properties", {})
        for ev in p.get("environmentVariables", []) or []:
            ev.pop("secureValue", None)
    for cred in out.get("imageRegistryCredentials", []) or []:
        cred.pop("password", None)
    for vol in out.get("volumes", []) or []:
        if "secret" in vol:
            vol["secret"] = {}
        if "azureFile" in vol:
            vol["azureFile"].pop("storageAccountKey", None)
    la = (out.get("diagnostics") or {}).get("logAnalytics")
    if la:
        for k in ("workspaceKey", "workspaceResourceId"):
            la.pop(k, None)
    for ext in out.get("extensions", []) or []:
        (ext.get("properties") or {}).pop("protectedSettings", None)
    return out


def _spec_without_tags(body):
    """The part of a group definition whose change restarts the group."""
    return json.dumps({"properties": body["properties"], "identity": body.get("identity"),
                       "zones": body.get("zones")}, sort_keys=True)


# -- the service -------------------------------------------------------------------------------

class Aci:
    def __init__(self, spec_dir):
        self.spec = Spec(os.path.join(spec_dir, SPEC_FILE))
        self.lock = threading.RLock()
        self.emulator_url = None
        self.routes = []
        for op_id, op in self.spec.operations.items():
            self.routes.append((op["method"], _template_regex(op["template"]), op_id))
        _load_known_programs()
        self.reset()
        self.stopped = threading.Event()
        threading.Thread(target=self._ticker, name="aci-ticker", daemon=True).start()

    def reset(self):
        with self.lock:
            for g in getattr(self, "groups", {}).values():
                self._stop_programs(g)
            self.settings = default_settings()
            self.groups = {}        # (sub, rg, name) lowered -> Group
            self.ops = {}           # op id -> {"status", "startTime", "endTime", "error"}
            self.quotas = {}        # (sub lower, location) -> quota dict
            self.images = []        # rules in the order set; the first match wins
            self.starts = []        # record of every container start
            self.subnets = {}       # subnet id lowered -> {"id", "delegated"} (declared by tests)

    @staticmethod
    def owns(path):
        return f"/providers/{PROVIDER.lower()}/" in path.lower() or path.lower().endswith(
            f"/providers/{PROVIDER.lower()}")

    # -- clock ------------------------------------------------------------------------

    def _ticker(self):
        while not self.stopped.wait(TICK):
            try:
                self.tick()
            except Exception:  # keep ticking; an emulator bug must not stop the clock
                import traceback
                traceback.print_exc(file=sys.stderr)

    def tick(self, now=None):
        now = now or time.time()
        with self.lock:
            for key, g in list(self.groups.items()):
                busy = g.busy
                if not busy:
                    continue
                if busy["kind"] in ("Creating", "Updating") and now >= busy["start"] + (busy["until"] - busy["start"]) / 2:
                    g.provisioning = busy["kind"]
                if now < busy["until"]:
                    continue
                g.busy = None
                self._finish_op(busy["op"])
                if busy["kind"] == "Deleting":
                    del self.groups[key]
                    continue
                g.provisioning = "Succeeded"
                if busy["kind"] in ("Creating", "Updating", "Starting"):
                    g.stopped = False
                    self._start_programs(g, now)

    def _new_op(self, done=False):
        op_id = str(uuid.uuid4())
        now = time.time()
        self.ops[op_id] = {"status": "Succeeded" if done else "InProgress", "startTime": now,
                           "endTime": now if done else None, "error": None}
        return op_id

    def _finish_op(self, op_id, status="Succeeded", error=None):
        op = self.ops.get(op_id)
        if op and op["status"] == "InProgress":
            op.update(status=status, endTime=time.time(), error=error)

    def _begin(self, g, kind, now, delay=None):
        if delay is None:
            key = "deleteDelaySeconds" if kind == "Deleting" else "provisioningDelaySeconds"
            delay = float(self.settings[key])
        op_id = self._new_op()
        g.busy = {"kind": kind, "start": now, "until": now + max(0.0, delay), "op": op_id}
        return op_id

    # -- runtime ------------------------------------------------------------------------

    def _program_for(self, image):
        for rule in self.images:
            if fnmatch.fnmatchcase(image, rule["image"]):
                return rule
        return None

    def _stop_programs(self, g):
        g.generation += 1
        g.stop_event.set()
        g.stop_event = threading.Event()

    def _start_programs(self, g, now):
        self._stop_programs(g)
        gen = g.generation
        for c in g.props["containers"]:
            state = g.containers.setdefault(c["name"], Container(c["name"]))
            self._launch(g, gen, c, state, now)

    def _launch(self, g, gen, spec, state, now):
        image = spec["properties"].get("image", "")
        state.event(now, "Pulling", f'pulling image "{image}"')
        state.event(now, "Pulled", f'Successfully pulled image "{image}"')
        state.event(now, "Started", "Started container")
        state.current = {"state": "Running", "startTime": iso(now), "detailStatus": ""}
        env = {}
        for ev in spec["properties"].get("environmentVariables", []) or []:
            env[ev["name"]] = ev.get("value", ev.get("secureValue", ""))
        rule = self._program_for(image)
        record = {"groupId": g.id, "group": g.name, "container": state.name, "start": state.restart_count,
                  "image": image, "program": (rule or {}).get("program") or _builtin_name(rule),
                  "startTime": iso(now), "finishTime": None, "exitCode": None, "stopped": False}
        self.starts.append(record)
        ctx = ProgramContext(g.id, g.name, state.name, image, env, state.restart_count, g.stop_event,
                             self.emulator_url)
        threading.Thread(target=self._run, args=(g, gen, spec, state, rule, ctx, record),
                         name=f"aci-{g.name}-{state.name}-{state.restart_count}", daemon=True).start()

    def _run(self, g, gen, spec, state, rule, ctx, record):
        fn = _program_fn(rule)
        try:
            code = fn(ctx)
            code = int(code or 0)
        except Exception as e:  # a program bug is a crashed container; never log its env
            sys.stderr.write(f"aci: program for {g.name}/{state.name} raised {type(e).__name__}\n")
            code = 1
        now = time.time()
        with self.lock:
            record["finishTime"] = iso(now)
            record["exitCode"] = code
            if g.generation != gen or self.groups.get(_key(g.sub, g.rg, g.name)) is not g:
                record["stopped"] = True
                return  # stopped, deleted or restarted meanwhile: nothing more to do
            state.current = {"state": "Terminated", "startTime": state.current.get("startTime"),
                             "exitCode": code, "finishTime": iso(now),
                             "detailStatus": "Completed" if code == 0 else "Error"}
            policy = g.props.get("restartPolicy", "Always")
            again = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not again:
                return
            delay = float(self.settings["restartDelaySeconds"])
            stop = ctx.stop
        if stop.wait(delay):
            with self.lock:
                record["stopped"] = True
            return
        with self.lock:
            if g.generation != gen or self.groups.get(_key(g.sub, g.rg, g.name)) is not g:
                return
            state.previous = state.current
            state.restart_count += 1
            self._launch(g, gen, spec, state, time.time())

    # -- entry point ----------------------------------------------------------------------

    def handle(self, req):
        path = req.path.rstrip("/")
        version = req.query.get("api-version")
        if not version:
            raise ArmError(400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) is required for all requests.")
        m = OP_STATUS.match(path)
        op_id, params, matched = None, None, False
        if m:
            matched = True
            if req.method == "GET":
                op_id, params = "opstatus", m.groupdict()
        else:
            for method, rx, name in self.routes:
                mm = rx.match(path)
                if not mm:
                    continue
                matched = True
                if method == req.method:
                    op_id, params = name, mm.groupdict()
                    break
        if op_id is None:
            if matched:
                raise ArmError(405, "MethodNotAllowed",
                               f"The requested method '{req.method}' is not allowed for '{path}'.")
            raise ArmError(404, "InvalidResourceType",
                           f"The resource type could not be found for path '{path}' in the namespace "
                           f"'{PROVIDER}' for api version '{version}'.")
        if version != API_VERSION:
            raise ArmError(400, "InvalidApiVersionParameter",
                           f"The api-version '{version}' is invalid. The supported versions are '{API_VERSION}'.")
        if op_id != "opstatus" and op_id not in SERVED:
            raise ArmError(501, "NotImplemented", f"The emulator does not implement {op_id}.")
        for key, value in params.items():
            if op_id != "opstatus" and value is not None:
                try:
                    self.spec.check_path_param(op_id, key, value)
                except ValidationError as e:
                    raise ArmError(400, e.code, e.message, e.path)
        if self.emulator_url is None:
            self.emulator_url = req.base_url
        with self.lock:
            self.tick()
            return getattr(self, "op_" + op_id)(req, params, time.time())

    # -- ARM helpers --------------------------------------------------------------------------

    def _body(self, req, def_name):
        data = req.json_body()
        try:
            return self.spec.validate(def_name, data, fill_defaults=True)
        except ValidationError as e:
            message = e.message
            if any(e.path.endswith(k) for k in SECRET_KEYS):
                message = f"The value of '{e.path}' is not valid. Path '{e.path}'."  # never echo a secret
            raise ArmError(400, e.code, message, e.path)

    def _url(self, req, path, **query):
        query.setdefault("api-version", API_VERSION)
        return f"{req.base_url}{path}?{urlencode(query)}"

    def _async_headers(self, req, g, op_id):
        path = (f"/subscriptions/{g.sub}/resourceGroups/{g.rg}/providers/{PROVIDER}/locations/"
                f"{norm_location(g.location)}/operations/{op_id}")
        return {"Azure-AsyncOperation": self._url(req, path),
                "Retry-After": str(int(self.settings["retryAfterSeconds"]))}

    def _group(self, params):
        g = self.groups.get(_key(params["subscriptionId"], params["resourceGroupName"],
                                 params["containerGroupName"]))
        if g is None:
            raise not_found(params["containerGroupName"], params["resourceGroupName"])
        return g

    def view(self, g, listing=False):
        props = _view_props(g.props)
        props["provisioningState"] = g.provisioning
        props.setdefault("isCreatedFromStandbyPool", False)
        ip = props.get("ipAddress")
        if ip:
            ip.setdefault("ip", "10.0.%d.%d" % (len(g.name) % 250, (len(g.rg) * 7) % 250 + 4))
            if ip.get("dnsNameLabel"):
                ip["fqdn"] = f"{ip['dnsNameLabel']}.{norm_location(g.location)}.azurecontainer.io"
        if not listing:
            for c in props["containers"]:
                state = g.containers.get(c["name"])
                if state:
                    c["properties"]["instanceView"] = state.view()
            props["instanceView"] = {"events": [dict(e) for e in g.events], "state": g.state()}
        out = {"id": g.id, "name": g.name, "type": TYPE, "location": g.location, "properties": props}
        if g.tags is not None:
            out["tags"] = dict(g.tags)
        if g.zones:
            out["zones"] = list(g.zones)
        if g.identity:
            out["identity"] = copy.deepcopy(g.identity)
        return out

    def _page(self, req, items, view):
        size = max(1, int(self.settings["pageSize"]))
        try:
            skip = max(0, int(req.query.get("$skipToken", "0")))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The $skipToken is invalid.", "$skipToken")
        out = {"value": [view(i) for i in items[skip:skip + size]]}
        if skip + size < len(items):
            q = dict(req.query)
            q["$skipToken"] = str(skip + size)
            out["nextLink"] = f"{req.base_url}{req.path}?{urlencode(q)}"
        return out

    def quota(self, sub, location):
        return self.quotas.setdefault((sub.lower(), norm_location(location)), default_quota())

    def usage(self, sub, location, exclude=None):
        groups = [g for k, g in self.groups.items() if k[0] == sub.lower()
                  and norm_location(g.location) == norm_location(location) and g is not exclude]
        cores = sum(g.cores() for g in groups if not g.stopped)
        return len(groups), cores

    # -- checks ---------------------------------------------------------------------------------

    def _check_definition(self, body, name):
        if not body.get("location"):
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        props = body["properties"]
        if not props["containers"]:
            raise ArmError(400, "NoContainersInContainerGroup",
                           f"The container group '{name}' must have at least one container.",
                           "properties.containers")
        seen = set()
        for i, c in enumerate(props["containers"]):
            p = c["properties"]
            if c["name"].lower() in seen:
                raise ArmError(400, "DuplicateContainerName",
                               f"The container name '{c['name']}' in container group '{name}' is used "
                               "more than once.", f"properties.containers[{i}].name")
            seen.add(c["name"].lower())
            for key in ("image", "resources"):
                if key not in p:
                    raise ArmError(400, "InvalidRequestContent",
                                   f"Required property '{key}' not found in JSON. Path "
                                   f"'properties.containers[{i}].properties'.",
                                   f"properties.containers[{i}].properties.{key}")
            req = p["resources"]["requests"]
            if req["cpu"] <= 0 or req["memoryInGB"] <= 0:
                raise ArmError(400, "InvalidContainerResourceRequests",
                               f"The resource requests '{json.dumps(req)}' of container '{c['name']}' in "
                               f"container group '{name}' are invalid. The CPU and memory requests must "
                               "be greater than 0.", f"properties.containers[{i}].properties.resources")
            for j, ev in enumerate(p.get("environmentVariables", []) or []):
                if "value" in ev and "secureValue" in ev:
                    raise ArmError(400, "InvalidEnvironmentVariable",
                                   f"The environment variable '{ev['name']}' of container '{c['name']}' sets "
                                   "both 'value' and 'secureValue'.",
                                   f"properties.containers[{i}].properties.environmentVariables[{j}]")

    def _check_subnets(self, props, name):
        for sn in props.get("subnetIds") or []:
            rule = self.subnets.get(str(sn.get("id", "")).lower())
            if rule and not rule["delegated"]:
                raise ArmError(400, "SubnetMissingRequiredDelegation",
                               f"Subnet missing required delegation 'Microsoft.ContainerInstance' for container "
                               f"group '{name}'.")

    def _check_images(self, props, name):
        for c in props["containers"] + (props.get("initContainers") or []):
            image = c["properties"].get("image", "")
            rule = self._program_for(image)
            if rule and rule.get("pullError"):
                raise ArmError(400, "InaccessibleImage",
                               f"The image '{image}' in container group '{name}' is not accessible. "
                               "Please check the image and registry credential.")

    def _check_capacity(self, sub, g_cores, g_memory, location):
        q = self.quota(sub, location)
        if g_cores > q["maxCpuPerGroup"] or g_memory > q["maxMemoryInGBPerGroup"]:
            raise ArmError(409, "ServiceUnavailable",
                           f"The requested resource is not available in the location '{norm_location(location)}' "
                           "at this moment. Please retry with a different resource request or in another "
                           f"location. Resource requested: '{_num(g_cores)}' CPU '{_num(g_memory)}' GB memory "
                           "'Linux' OS")

    def _check_quota(self, sub, location, cores, new_group, exclude=None):
        q = self.quota(sub, location)
        count, used = self.usage(sub, location, exclude)
        loc = norm_location(location)
        if new_group and count + 1 > q["maxContainerGroups"]:
            raise ArmError(400, "ContainerGroupQuotaReached",
                           f"Resource type '{TYPE}' container group quota 'ContainerGroups' exceeded in region "
                           f"'{loc}'. Limit: '{q['maxContainerGroups']}', Usage: '{count}' Requested: '1'.")
        if used + cores > q["maxCores"]:
            raise ArmError(400, "ContainerGroupQuotaReached",
                           f"Resource type '{TYPE}' container group quota 'StandardCores' exceeded in region "
                           f"'{loc}'. Limit: '{_num(q['maxCores'])}', Usage: '{_num(used)}' Requested: "
                           f"'{_num(cores)}'.")

    # -- operations ---------------------------------------------------------------------------------

    def op_opstatus(self, req, params, now):
        op = self.ops.get(params["op"])
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{params['op']}' was not found.")
        body = {"id": req.path, "name": params["op"], "status": op["status"], "startTime": iso(op["startTime"])}
        if op["endTime"]:
            body["endTime"] = iso(op["endTime"])
        if op["error"]:
            body["error"] = op["error"]
        headers = {"Retry-After": str(int(self.settings["retryAfterSeconds"]))} if op["status"] == "InProgress" else {}
        return Reply(200, body, headers)

    def op_ContainerGroups_Get(self, req, params, now):
        return Reply(200, self.view(self._group(params)))

    def op_ContainerGroups_ListByResourceGroup(self, req, params, now):
        sub, rg = params["subscriptionId"].lower(), params["resourceGroupName"].lower()
        items = [g for k, g in self.groups.items() if k[0] == sub and k[1] == rg]
        return Reply(200, self._page(req, items, lambda g: self.view(g, listing=True)))

    def op_ContainerGroups_List(self, req, params, now):
        sub = params["subscriptionId"].lower()
        items = [g for k, g in self.groups.items() if k[0] == sub]
        return Reply(200, self._page(req, items, lambda g: self.view(g, listing=True)))

    def op_ContainerGroups_CreateOrUpdate(self, req, params, now):
        body = self._body(req, "ContainerGroup")
        sub, rg, name = params["subscriptionId"], params["resourceGroupName"], params["containerGroupName"]
        self._check_definition(body, name)
        props = body["properties"]
        props.setdefault("restartPolicy", "Always")
        cores = sum(float(c["properties"]["resources"]["requests"]["cpu"]) for c in props["containers"])
        memory = sum(float(c["properties"]["resources"]["requests"]["memoryInGB"]) for c in props["containers"])
        key = _key(sub, rg, name)
        g = self.groups.get(key)
        if g is not None and g.busy:
            raise transitioning(g.name)
        if g is not None and norm_location(g.location) != norm_location(body["location"]):
            raise ArmError(400, "InvalidResourceLocation",
                           f"The resource '{g.name}' already exists in location '{g.location}' in resource "
                           f"group '{g.rg}'. A resource with the same name cannot be created in location "
                           f"'{body['location']}'. Please select a new resource name.")
        self._check_capacity(sub, cores, memory, body["location"])
        self._check_images(props, name)
        self._check_subnets(props, name)
        self._check_quota(sub, body["location"], cores, g is None, exclude=g)
        _fill_identity(body.get("identity"), g.identity if g else None)
        if g is None:
            g = Group(sub, rg, name, body, now)
            self.groups[key] = g
            op_id = self._begin(g, "Creating", now)
            return Reply(201, self.view(g), self._async_headers(req, g, op_id))
        changed = _spec_without_tags(body) != _spec_without_tags(
            {"properties": g.props, "identity": g.identity, "zones": g.zones})
        g.apply(body)
        if changed or g.stopped:
            # ACI re-creates the containers with the new definition.
            self._stop_programs(g)
            g.reset_containers()
            g.provisioning = "Updating"
            op_id = self._begin(g, "Updating", now)
        else:
            op_id = self._new_op(done=True)
        return Reply(200, self.view(g), self._async_headers(req, g, op_id))

    def op_ContainerGroups_Update(self, req, params, now):
        body = self._body(req, "Resource")
        g = self._group(params)
        if g.busy:
            raise transitioning(g.name)
        if "location" in body and norm_location(body["location"]) != norm_location(g.location):
            raise ArmError(400, "InvalidResourceLocation",
                           f"The location '{body['location']}' of the request does not match the location "
                           f"'{g.location}' of container group '{g.name}'.", "location")
        if "tags" in body:
            g.tags = body["tags"]
        return Reply(200, self.view(g))

    def op_ContainerGroups_Delete(self, req, params, now):
        key = _key(params["subscriptionId"], params["resourceGroupName"], params["containerGroupName"])
        g = self.groups.get(key)
        if g is None:
            return Reply(204)
        if g.busy and g.busy["kind"] == "Deleting":
            return Reply(202, None, self._async_headers(req, g, g.busy["op"]))
        if g.busy:
            self._finish_op(g.busy["op"], "Canceled", {"code": "Canceled",
                                                        "message": "The operation was canceled by a delete."})
        self._stop_programs(g)
        g.provisioning = "Deleting"
        op_id = self._begin(g, "Deleting", now)
        return Reply(202, None, self._async_headers(req, g, op_id))

    def op_ContainerGroups_Restart(self, req, params, now):
        g = self._group(params)
        if g.busy:
            raise transitioning(g.name)
        self._stop_programs(g)
        gen = g.generation
        g.stopped = False
        for c in g.props["containers"]:
            state = g.containers.setdefault(c["name"], Container(c["name"]))
            if state.current["state"] != "Waiting":
                state.previous = dict(state.current, state="Terminated", finishTime=iso(now),
                                      detailStatus="Killing")
                state.restart_count += 1
            state.event(now, "Killing", "Killing container")
            self._launch(g, gen, c, state, now)
        return Reply(204)

    def op_ContainerGroups_Stop(self, req, params, now):
        g = self._group(params)
        if g.busy:
            raise transitioning(g.name)
        self._stop_programs(g)
        g.stopped = True
        for state in g.containers.values():
            if state.current["state"] == "Running":
                state.current = {"state": "Terminated", "startTime": state.current.get("startTime"),
                                 "exitCode": 0, "finishTime": iso(now), "detailStatus": "Stopped"}
        return Reply(204)

    def op_ContainerGroups_Start(self, req, params, now):
        g = self._group(params)
        if g.busy:
            raise transitioning(g.name)
        if not g.stopped:
            return Reply(204)
        self._check_quota(g.sub, g.location, g.cores(), False, exclude=g)
        g.reset_containers()
        op_id = self._begin(g, "Starting", now)
        return Reply(202, None, self._async_headers(req, g, op_id))

    def op_Location_ListUsage(self, req, params, now):
        sub, loc = params["subscriptionId"], params["location"]
        q = self.quota(sub, loc)
        count, cores = self.usage(sub, loc)
        values = [("ContainerGroups", "Container Groups", count, q["maxContainerGroups"]),
                  ("StandardCores", "Standard Cores", cores, q["maxCores"])]
        return Reply(200, {"value": [
            {"id": f"/subscriptions/{sub}/providers/{PROVIDER}/locations/{norm_location(loc)}/usages/{n}",
             "unit": "Count", "currentValue": int(round(cur)), "limit": int(lim),
             "name": {"value": n, "localizedValue": label}} for n, label, cur, lim in values]})

    # -- control endpoint (/_emulator/aci/...) -------------------------------------------------

    def control(self, method, parts, body, query):
        def bad(message, status=400, code="BadRequest"):
            return ArmError(status, code, message)

        with self.lock:
            self.tick()
            if parts == ["settings"]:
                if method in ("PUT", "PATCH"):
                    unknown = set(body) - set(default_settings())
                    if unknown:
                        raise bad(f"unknown settings: {', '.join(sorted(unknown))}")
                    self.settings.update(body)
                elif method != "GET":
                    raise bad("use GET, PUT or PATCH", 405, "MethodNotAllowed")
                return Reply(200, dict(self.settings))
            if parts == ["images"]:
                if method == "GET":
                    return Reply(200, {"value": [dict(r) for r in self.images]})
                if method == "DELETE":
                    image = query.get("image")
                    self.images = [r for r in self.images if image is not None and r["image"] != image]
                    return Reply(200, {"value": [dict(r) for r in self.images]})
                if method == "PUT":
                    rule = _image_rule(body, bad)
                    self.images = [r for r in self.images if r["image"] != rule["image"]] + [rule]
                    return Reply(200, rule)
                raise bad("use GET, PUT or DELETE", 405, "MethodNotAllowed")
            if len(parts) == 3 and parts[0] == "quota":
                q = self.quota(parts[1], parts[2])
                if method in ("PUT", "PATCH"):
                    unknown = set(body) - set(default_quota())
                    if unknown:
                        raise bad(f"unknown quota members: {', '.join(sorted(unknown))}")
                    for k, v in body.items():
                        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                            raise bad(f"{k} must be a number >= 0")
                        q[k] = v
                elif method != "GET":
                    raise bad("use GET, PUT or PATCH", 405, "MethodNotAllowed")
                count, cores = self.usage(parts[1], parts[2])
                return Reply(200, dict(q, usage={"containerGroups": count, "cores": cores}))
            if parts == ["starts"] and method == "GET":
                group = query.get("group")
                return Reply(200, {"value": [dict(s) for s in self.starts
                                             if group is None or s["group"].lower() == group.lower()]})
            if parts == ["subnets"]:
                if method == "GET":
                    return Reply(200, {"value": [dict(r) for r in self.subnets.values()]})
                if method == "PUT":
                    sid = (body or {}).get("id")
                    unknown = set(body or {}) - {"id", "delegated"}
                    if not isinstance(sid, str) or "/subnets/" not in sid.lower() or unknown:
                        raise bad('give {"id": "/subscriptions/.../virtualNetworks/V/subnets/S", '
                                  '"delegated": true|false}')
                    delegated = body.get("delegated", True)
                    if not isinstance(delegated, bool):
                        raise bad("delegated is true or false")
                    self.subnets[sid.lower()] = {"id": sid, "delegated": delegated}
                    return Reply(200, dict(self.subnets[sid.lower()]))
                if method == "DELETE":
                    sid = query.get("id")
                    self.subnets = {k: v for k, v in self.subnets.items() if sid is not None and k != sid.lower()}
                    return Reply(200, {"value": [dict(r) for r in self.subnets.values()]})
                raise bad("use GET, PUT or DELETE", 405, "MethodNotAllowed")
            if parts == ["programs"] and method == "GET":
                return Reply(200, {"value": sorted(PROGRAMS)})
            if parts == ["groups"] and method == "GET":
                return Reply(200, {"value": [self.describe(g) for g in self.groups.values()]})
            if len(parts) == 4 and parts[0] == "groups":
                g = self.groups.get(_key(*parts[1:4]))
                if g is None:
                    raise bad(f"container group {'/'.join(parts[1:4])} does not exist", 404, "NotFound")
                if method == "GET":
                    return Reply(200, self.describe(g))
                if method == "DELETE":  # deleted behind the operator's back: at once, no LRO
                    self._stop_programs(g)
                    del self.groups[_key(*parts[1:4])]
                    return Reply(200, {"ok": True})
                if method == "PATCH":  # changed behind the operator's back (the portal, a script)
                    image = (body or {}).get("image")
                    if not isinstance(image, str) or not image:
                        raise bad('give {"image": "..."}', 400, "InvalidRequest")
                    for c in g.props.get("containers", []):
                        c["properties"]["image"] = image
                    return Reply(200, self.describe(g))
                raise bad("use GET, PATCH or DELETE", 405, "MethodNotAllowed")
        raise bad(f"no control route {method} /_emulator/aci/{'/'.join(parts)}", 404, "NotFound")

    def describe(self, g):
        return {"id": g.id, "provisioningState": g.provisioning, "state": g.state(), "stopped": g.stopped,
                "busy": g.busy["kind"] if g.busy else None, "cores": g.cores(), "memoryInGB": g.memory(),
                "restartPolicy": g.props.get("restartPolicy"),
                "containers": [{"name": n, "restartCount": c.restart_count, "currentState": dict(c.current),
                                "previousState": dict(c.previous) if c.previous else None}
                               for n, c in g.containers.items()]}


# -- module helpers ------------------------------------------------------------------------------

def _key(sub, rg, name):
    return (sub.lower(), rg.lower(), name.lower())


def _num(x):
    return str(int(x)) if float(x).is_integer() else str(x)


def _builtin_name(rule):
    if rule is None:
        return "(default: run until stopped)"
    if "exitAfterSeconds" in rule:
        return f"(exit {rule.get('exitCode', 0)} after {rule['exitAfterSeconds']}s)"
    return "(pull error)"


def _program_fn(rule):
    if rule is None:
        return _run_until_stopped
    if rule.get("program"):
        return PROGRAMS[rule["program"]]
    if "exitAfterSeconds" in rule:
        seconds, code = float(rule["exitAfterSeconds"]), int(rule.get("exitCode", 0))

        def exit_after(ctx):
            ctx.stop.wait(seconds)
            return code
        return exit_after
    return _run_until_stopped


def _image_rule(body, bad):
    image = body.get("image")
    if not isinstance(image, str) or not image:
        raise bad("image is required (exact name, or a glob with *)")
    unknown = set(body) - {"image", "program", "exitAfterSeconds", "exitCode", "pullError"}
    if unknown:
        raise bad(f"unknown image rule members: {', '.join(sorted(unknown))}")
    kinds = [k for k in ("program", "exitAfterSeconds", "pullError") if body.get(k) is not None
             and body.get(k) is not False]
    if len(kinds) != 1:
        raise bad("give exactly one of program, exitAfterSeconds (with exitCode) or pullError: true")
    if "program" in kinds and body["program"] not in PROGRAMS:
        raise bad(f"unknown program '{body['program']}'; registered: {', '.join(sorted(PROGRAMS)) or 'none'}")
    rule = {"image": image}
    if "program" in kinds:
        rule["program"] = body["program"]
    elif "pullError" in kinds:
        rule["pullError"] = True
    else:
        rule["exitAfterSeconds"] = float(body["exitAfterSeconds"])
        rule["exitCode"] = int(body.get("exitCode", 0))
    return rule


def _fill_identity(identity, old):
    """Read-only identity members as the service fills them. A user-assigned
    identity keeps the same ids wherever it is used (derived from its id)."""
    if not identity:
        return
    kind = identity.get("type", "None")
    if "SystemAssigned" in kind:
        identity["principalId"] = (old or {}).get("principalId") or str(uuid.uuid4())
        identity["tenantId"] = (old or {}).get("tenantId") or str(uuid.uuid4())
    for rid in list((identity.get("userAssignedIdentities") or {})):
        identity["userAssignedIdentities"][rid] = {
            "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, "principal:" + rid.lower())),
            "clientId": str(uuid.uuid5(uuid.NAMESPACE_URL, "client:" + rid.lower()))}
