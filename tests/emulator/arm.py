"""ARM operations of Microsoft.ContainerRegistry that the emulator serves.

Routes come from the swagger itself: every path template of the loaded specs
becomes a regex, and each operationId maps to one handler below. On top of the
spec operations the module serves the registry GET (registries are created
only via the control endpoint) and the two long-running-operation monitors
(`.../operationStatuses/{id}` for Azure-AsyncOperation, and
`.../agentPoolsOperationResults/{id}/status` for Location, the shape the 2025
delete example shows).

Per-version wire differences (reference/acr-arm-api.md §1.1) live in the
handlers, keyed on `ctx.v2025`. Error codes the public material does not name
are chosen here and listed in docs/emulator.md ("Error codes").

Handlers run with World.lock held (see ArmContext / handle()).
"""

import copy
import re
import time
import uuid
from urllib.parse import quote, urlencode

from specvalidator import ValidationError
from state import TIER_VCPU, ISOLATED_TIERS, Pool, Run, iso, system_data

REG_PREFIX = (r"/subscriptions/(?P<subscriptionId>[^/]+)/resourceGroups/(?P<resourceGroupName>[^/]+)"
              r"/providers/Microsoft\.ContainerRegistry/registries/(?P<registryName>[^/]+)")

# api-versions of the registries resource type itself; the operator may read
# the registry with a stable version rather than the Tasks preview ones.
REGISTRY_VERSIONS = {"2019-05-01", "2019-12-01-preview", "2021-09-01", "2022-12-01",
                     "2023-01-01-preview", "2023-07-01", "2023-11-01-preview",
                     "2024-11-01-preview", "2025-04-01", "2025-05-01-preview"}


class ArmError(Exception):
    def __init__(self, status, code, message, target=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.target, self.headers = target, headers or {}

    def body(self):
        err = {"code": self.code, "message": self.message}
        if self.target:
            err["target"] = self.target
        return {"error": err}


class Reply:
    def __init__(self, status, body=None, headers=None):
        self.status, self.body, self.headers = status, body, headers or {}


def not_found(kind, name, rg):
    return ArmError(404, "ResourceNotFound",
                    f"The Resource 'Microsoft.ContainerRegistry/registries/{kind}{name}' under "
                    f"resource group '{rg}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix")


def _template_regex(template):
    rx = re.sub(r"\{([^}]+)\}", lambda m: f"(?P<{re.sub(r'[^A-Za-z0-9_]', '_', m.group(1))}>[^/]+)",
                re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
    return re.compile("^" + rx + "$", re.IGNORECASE)


class ArmContext:
    """One ARM request as the handlers see it."""

    def __init__(self, world, spec, req, version, params, reg):
        self.world, self.spec, self.req = world, spec, req
        self.version, self.params, self.reg = version, params, reg
        self.v2025 = version.startswith("2025")
        self.now = time.time()

    def body(self, def_name, fill=False):
        data = self.req.json_body()
        try:
            return self.spec.validate(def_name, data, fill_defaults=fill)
        except ValidationError as e:
            raise ArmError(400, e.code, e.message, e.path)

    def url(self, path, **query):
        query.setdefault("api-version", self.version)
        return f"{self.req.base_url}{path}?{urlencode(query)}"

    def retry_after(self):
        return str(int(self.world.settings["retryAfterSeconds"]))

    def async_headers(self, op_id):
        return {"Azure-AsyncOperation": self.url(f"{self.reg.id}/operationStatuses/{op_id}"),
                "Retry-After": self.retry_after()}

    def location_headers(self, op_id):
        return {"Location": self.url(f"{self.reg.id}/agentPoolsOperationResults/{op_id}/status"),
                "Retry-After": self.retry_after()}

    def page(self, items, view):
        """ARM pageable list: {value, nextLink} with an absolute nextLink.
        `items` is the whole list; only the page is rendered with `view`, so
        a page costs its size (plus one cheap list copy), not the list's."""
        size = max(1, int(self.world.settings["pageSize"]))
        try:
            skip = max(0, int(self.req.query.get("$skipToken", "0")))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The $skipToken is invalid.", "$skipToken")
        out = {"value": [view(item) for item in items[skip:skip + size]]}
        if skip + size < len(items):
            q = dict(self.req.query)
            q["$skipToken"] = str(skip + size)
            out["nextLink"] = f"{self.req.base_url}{self.req.path}?{urlencode(q)}"
        return out


class Arm:
    """Router plus handlers for every emulated ARM operation."""

    def __init__(self, world, specs):
        self.world = world
        self.specs = specs
        any_spec = next(iter(specs.values()))
        self.routes = []
        for op_id, op in any_spec.operations.items():
            handler = getattr(self, "op_" + op_id, None)
            if handler is None:
                raise RuntimeError(f"no handler for {op_id}")
            self.routes.append((op["method"], _template_regex(op["template"]), op_id))
        self.extra = [
            ("GET", re.compile("^" + REG_PREFIX + "$", re.IGNORECASE), "registry"),
            ("GET", re.compile("^" + REG_PREFIX + r"/operationStatuses/(?P<op>[^/]+)$", re.I), "opstatus"),
            ("GET", re.compile("^" + REG_PREFIX + r"/agentPoolsOperationResults/(?P<op>[^/]+)/status$",
                               re.I), "opresult"),
        ]

    # -- entry point ---------------------------------------------------------

    def handle(self, req):
        version = req.query.get("api-version")
        if not version:
            raise ArmError(400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) is required for all requests.")
        path = req.path.rstrip("/") or "/"
        matched_path = False
        for method, rx, name in self.extra + self.routes:
            m = rx.match(path)
            if not m:
                continue
            matched_path = True
            if method != req.method:
                continue
            return self._dispatch(req, version, name, m.groupdict())
        if matched_path:
            raise ArmError(405, "MethodNotAllowed",
                           f"The requested method '{req.method}' is not allowed for '{path}'.")
        raise ArmError(404, "InvalidResourceType",
                       f"The resource type could not be found for path '{path}' "
                       f"in the namespace 'Microsoft.ContainerRegistry' for api version '{version}'.")

    def _dispatch(self, req, version, name, params):
        registry_version_ok = name == "registry" and version in REGISTRY_VERSIONS
        if version not in self.specs and not registry_version_ok:
            supported = sorted(self.specs) + (sorted(REGISTRY_VERSIONS) if name == "registry" else [])
            raise ArmError(400, "InvalidApiVersionParameter",
                           f"The api-version '{version}' is invalid. The supported versions are "
                           f"'{','.join(supported)}'.")
        spec = self.specs.get(version) or next(iter(self.specs.values()))
        if name not in ("registry", "opstatus", "opresult"):
            for key, value in params.items():
                try:
                    spec.check_path_param(name, key, value)
                except ValidationError as e:
                    raise ArmError(400, e.code, e.message, e.path)
        sub, rg, regname = params["subscriptionId"], params["resourceGroupName"], params["registryName"]
        reg = self.world.registry(sub, rg, regname)
        if reg is None:
            if not self.world.subscription_exists(sub):
                raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
            if not self.world.resource_group_exists(sub, rg):
                raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource 'Microsoft.ContainerRegistry/registries/{regname}' under resource "
                           f"group '{rg}' was not found. For more details please go to "
                           "https://aka.ms/ARMResourceNotFoundFix")
        ctx = ArmContext(self.world, spec, req, version, params, reg)
        if name == "registry":
            return Reply(200, reg.to_arm())
        if name == "opstatus":
            return self.op_status(ctx)
        if name == "opresult":
            return self.op_result(ctx)
        return getattr(self, "op_" + name)(ctx)

    # -- LRO monitors -----------------------------------------------------------

    def _operation(self, ctx):
        op = self.world.operations.get(ctx.params["op"])
        if op is None or op["registry"] is not ctx.reg:
            raise ArmError(404, "OperationNotFound", f"The operation '{ctx.params['op']}' was not found.")
        return op

    def op_status(self, ctx):
        op = self._operation(ctx)
        body = {"id": f"{ctx.reg.id}/operationStatuses/{op['id']}", "name": op["id"],
                "status": op["status"], "startTime": iso(op["startTime"])}
        if op["endTime"]:
            body["endTime"] = iso(op["endTime"])
        if op["error"]:
            body["error"] = op["error"]
        headers = {"Retry-After": ctx.retry_after()} if op["status"] == "InProgress" else {}
        return Reply(200, body, headers)

    def op_result(self, ctx):
        op = self._operation(ctx)
        if op["status"] == "InProgress":
            return Reply(202, None, ctx.location_headers(op["id"]))
        if op["status"] == "Failed":
            raise ArmError(400, op["error"]["code"], op["error"]["message"])
        return Reply(204)

    # -- agent pools ---------------------------------------------------------------

    def _pool(self, ctx):
        pool = ctx.reg.pools.get(ctx.params["agentPoolName"].lower())
        if pool is None:
            raise not_found("agentPools/", ctx.params["agentPoolName"], ctx.params["resourceGroupName"])
        return pool

    @staticmethod
    def _refuse_if_busy(pool):
        if pool.busy:
            raise ArmError(409, "AnotherOperationInProgress",
                           f"The agent pool '{pool.name}' is in provisioning state "
                           f"'{pool.state}'. Retry after the current operation completes.")
        if pool.state == "Failed":
            raise ArmError(409, "RegistryStatusConflict",
                           f"The agent pool '{pool.name}' is in provisioning state 'Failed' "
                           "and cannot be updated. Delete and recreate it.")

    @staticmethod
    def _check_quota(reg, key, tier, count, old_need=0):
        need = TIER_VCPU[tier] * count
        if need <= old_need:
            return  # scaling down or unchanged is always allowed
        std, isolated = reg.vcpu_in_use(exclude=key)
        if tier in ISOLATED_TIERS:
            used, limit, kind = isolated, reg.quota["isolatedVCPU"], "isolated"
        else:
            used, limit, kind = std, reg.quota["standardVCPU"], "standard"
        if used + need > limit:
            raise ArmError(400, "QuotaExceeded",
                           f"Operation results in exceeding the {kind} agent pool vCPU quota of "
                           f"registry '{reg.name}'. Limit: {limit}, current usage: {used}, "
                           f"additional required: {need}.", "properties.count")

    def _start(self, ctx, pool, state):
        """Begin a provisioning operation on `pool`; returns the operation id."""
        delay = self.world.provisioning_delay(ctx.reg)
        pool.modified = ctx.now
        if delay <= 0:
            pool.state = "Failed" if ctx.reg.provisioning_outcome == "Failed" and state != "Deleting" \
                else "Succeeded"
            op_id = self.world.new_operation(ctx.reg, state, pool.id, done=True)
            if pool.state == "Failed":
                self.world.operations[op_id].update(status="Failed", error={
                    "code": "AgentPoolProvisioningFailed",
                    "message": f"Provisioning of agent pool '{pool.name}' failed (injected)."})
            return op_id
        op_id = self.world.new_operation(ctx.reg, state, pool.id)
        pool.state = state
        self.world.set_busy(pool, state, ctx.now + delay, op_id)
        return op_id

    def op_AgentPools_Get(self, ctx):
        return Reply(200, self._pool(ctx).to_arm(ctx.version))

    def op_AgentPools_List(self, ctx):
        return Reply(200, ctx.page(list(ctx.reg.pools.values()), lambda p: p.to_arm(ctx.version)))

    def op_AgentPools_GetQueueStatus(self, ctx):
        pool = self._pool(ctx)
        return Reply(200, {"count": self.world.queued_count(ctx.reg, pool.name.lower())})

    @staticmethod
    def _pool_fields(body):
        props = body.get("properties", {})
        tier = props.get("tier", "S1")
        if tier.upper() not in TIER_VCPU:
            raise ArmError(400, "InvalidInputValue",
                           f"The value '{tier}' of 'properties.tier' is not valid. Supported tiers: "
                           f"{', '.join(TIER_VCPU)}.", "properties.tier")
        os_ = props.get("os", "Linux")
        if os_ != "Linux":
            raise ArmError(400, "InvalidInputValue",
                           f"The value '{os_}' of 'properties.os' is not supported. Only 'Linux' agent "
                           "pools are supported.", "properties.os")
        count = props.get("count", 1)
        if count < 0:
            raise ArmError(400, "InvalidInputValue",
                           "The value of 'properties.count' must be 0 or greater.", "properties.count")
        return tier.upper(), os_, count, props.get("virtualNetworkSubnetResourceId")

    def op_AgentPools_Create(self, ctx):
        body = ctx.body("AgentPool")
        name = ctx.params["agentPoolName"]
        key = name.lower()
        reg = ctx.reg
        tier, os_, count, subnet = self._pool_fields(body)
        pool = reg.pools.get(key)
        if pool is None:
            if reg.sku.lower() != "premium":
                raise ArmError(400, "RegistrySkuNotSupported",
                               f"Agent pools are only supported for registries with the Premium SKU. "
                               f"Registry '{reg.name}' has SKU '{reg.sku}'.")
            self._check_quota(reg, key, tier, count)
            pool = Pool(reg, name, body["location"], tier, os_, count, subnet, body.get("tags"))
            reg.add_pool(key, pool)
            op_id = self._start(ctx, pool, "Creating")
            headers = ctx.async_headers(op_id) if ctx.v2025 else {}
            return Reply(201, pool.to_arm(ctx.version), headers)

        self._refuse_if_busy(pool)
        if _norm_location(body["location"]) != _norm_location(pool.location):
            raise ArmError(400, "InvalidResourceLocation",
                           f"The resource '{pool.name}' already exists in location '{pool.location}' in "
                           f"resource group '{ctx.params['resourceGroupName']}'. A resource with the same "
                           f"name cannot be created in location '{body['location']}'. Please select a new "
                           "resource name.", "location")
        for field, old, new in (("tier", pool.tier, tier), ("os", pool.os, os_),
                                ("virtualNetworkSubnetResourceId", pool.subnet or "", subnet or "")):
            if old.lower() != new.lower():
                raise ArmError(400, "PropertyChangeNotAllowed",
                               f"Changing property 'properties.{field}' of agent pool '{pool.name}' is not "
                               f"allowed (current: '{old}', requested: '{new}').", f"properties.{field}")
        self._check_quota(reg, key, tier, count, TIER_VCPU[pool.tier] * pool.count)
        changed = count != pool.count
        pool.count = count
        pool.tags = body.get("tags")
        pool.modified = ctx.now
        headers = {}
        if changed:
            op_id = self._start(ctx, pool, "Updating")
            if ctx.v2025:
                headers = ctx.async_headers(op_id)
        return Reply(200, pool.to_arm(ctx.version), headers)

    def op_AgentPools_Update(self, ctx):
        body = ctx.body("AgentPoolUpdateParameters")
        pool = self._pool(ctx)
        self._refuse_if_busy(pool)
        props = body.get("properties", {})
        count = props.get("count", pool.count)
        if count < 0:
            raise ArmError(400, "InvalidInputValue",
                           "The value of 'properties.count' must be 0 or greater.", "properties.count")
        self._check_quota(ctx.reg, pool.name.lower(), pool.tier, count, TIER_VCPU[pool.tier] * pool.count)
        if "tags" in body:
            pool.tags = body["tags"]  # a PATCH of tags replaces the whole set (ARM)
        pool.modified = ctx.now
        if count != pool.count:
            pool.count = count
            self._start(ctx, pool, "Updating")
        if pool.busy:
            headers = {"Retry-After": ctx.retry_after()} if ctx.v2025 else {}
            return Reply(201, pool.to_arm(ctx.version), headers)
        return Reply(200, pool.to_arm(ctx.version))

    def op_AgentPools_Delete(self, ctx):
        key = ctx.params["agentPoolName"].lower()
        pool = ctx.reg.pools.get(key)
        if pool is None:
            return Reply(204)
        if pool.busy and pool.busy["state"] == "Deleting":
            return Reply(202, None, ctx.location_headers(pool.busy["op"]))
        if pool.busy:
            self._refuse_if_busy(pool)
        op_id = self._start(ctx, pool, "Deleting")
        if not pool.busy:
            self.world.delete_pool(ctx.reg, key, ctx.now)
            if not ctx.v2025:
                return Reply(200)
        return Reply(202, None, ctx.location_headers(op_id))

    # -- tasks -----------------------------------------------------------------------

    def _task(self, ctx):
        task = ctx.reg.tasks.get(ctx.params["taskName"].lower())
        if task is None:
            raise not_found("tasks/", ctx.params["taskName"], ctx.params["resourceGroupName"])
        return task

    @staticmethod
    def _check_cpu(props, target="properties.agentConfiguration.cpu"):
        cpu = (props.get("agentConfiguration") or {}).get("cpu")
        if not props.get("agentPoolName") and cpu is not None and cpu != 2:
            raise ArmError(400, "InvalidInputValue",
                           "Some of the properties of 'taskCreateParameters' are invalid.. InnerErrors: "
                           "AgentProperties:Invalid value for CPU core count. The supported values are (2)",
                           target)

    def _task_view(self, ctx, task, secrets):
        out = copy.deepcopy(task)
        if not ctx.v2025:
            out.pop("systemData", None)
        if not secrets:
            redact_task(out["properties"])
        return out

    def op_Tasks_Get(self, ctx):
        return Reply(200, self._task_view(ctx, self._task(ctx), False))

    def op_Tasks_GetDetails(self, ctx):
        return Reply(200, self._task_view(ctx, self._task(ctx), True))

    def op_Tasks_List(self, ctx):
        return Reply(200, ctx.page(list(ctx.reg.tasks.values()), lambda t: self._task_view(ctx, t, False)))

    def op_Tasks_Create(self, ctx):
        body = ctx.body("Task", fill=True)
        name = ctx.params["taskName"]
        key = name.lower()
        old = ctx.reg.tasks.get(key)
        props = body.get("properties", {})
        self._check_cpu(props)
        if old is not None and _norm_location(old["location"]) != _norm_location(body["location"]):
            raise ArmError(400, "InvalidResourceLocation",
                           f"The resource '{old['name']}' already exists in location '{old['location']}'. "
                           f"A resource with the same name cannot be created in location "
                           f"'{body['location']}'.", "location")
        task = {"id": f"{ctx.reg.id}/tasks/{name}", "name": name,
                "type": "Microsoft.ContainerRegistry/registries/tasks",
                "location": body["location"]}
        if "tags" in body:
            task["tags"] = body["tags"]
        if "identity" in body:
            task["identity"] = _identity(body["identity"], old.get("identity") if old else None)
        props["provisioningState"] = "Succeeded"
        props["creationDate"] = old["properties"]["creationDate"] if old else iso(ctx.now)
        task["properties"] = props
        created = old["systemData"]["createdAt"] if old else None
        task["systemData"] = system_data(ctx.now, ctx.now)
        if created:
            task["systemData"]["createdAt"] = created
        ctx.reg.tasks[key] = task
        return Reply(200 if old else 201, self._task_view(ctx, task, False))

    def op_Tasks_Update(self, ctx):
        body = ctx.body("TaskUpdateParameters")
        task = self._task(ctx)
        merged = copy.deepcopy(task)
        if "tags" in body:
            merged["tags"] = body["tags"]
        if "identity" in body:
            merged["identity"] = _identity(body["identity"], task.get("identity"))
        merge_task_properties(merged["properties"], body.get("properties", {}))
        # The merged task must still be a valid Task (e.g. a step whose type
        # changed needs that type's required members).
        check = {k: v for k, v in merged.items() if k in ("location", "tags", "properties")}
        try:
            normal = ctx.spec.validate("Task", check, fill_defaults=True)
        except ValidationError as e:
            raise ArmError(400, e.code, e.message, e.path)
        # No CPU check here: the rule is observed for create (Azure/acr#321), and
        # every published Tasks_Update example sets cpu 3 on a shared-agent task.
        normal["properties"]["provisioningState"] = "Succeeded"
        normal["properties"]["creationDate"] = task["properties"]["creationDate"]
        merged["properties"] = normal["properties"]
        merged["systemData"]["lastModifiedAt"] = iso(ctx.now)
        ctx.reg.tasks[ctx.params["taskName"].lower()] = merged
        return Reply(200, self._task_view(ctx, merged, False))

    def op_Tasks_Delete(self, ctx):
        if ctx.reg.tasks.pop(ctx.params["taskName"].lower(), None) is None:
            return Reply(204)
        return Reply(200)

    # -- runs ----------------------------------------------------------------------------

    def schedule(self, ctx, request, task_override=None, timer=None):
        """Create a Run from a validated RunRequest (or a timer firing of
        `task_override`). Returns the Run."""
        reg = ctx.reg
        rtype = request["type"] if request else None
        task = task_override
        if rtype == "TaskRunRequest":
            task_name = request["taskId"].rstrip("/").rsplit("/", 1)[-1]
            task = reg.tasks.get(task_name.lower())
            if task is None:
                raise not_found("tasks/", task_name, ctx.params["resourceGroupName"])
        request = request or {}
        tprops = task["properties"] if task else {}
        pool_name = request.get("agentPoolName") or tprops.get("agentPoolName")
        agent_cfg = request.get("agentConfiguration") or tprops.get("agentConfiguration")
        self._check_cpu({"agentPoolName": pool_name, "agentConfiguration": agent_cfg},
                        "agentConfiguration.cpu")
        if pool_name and pool_name.lower() not in reg.pools:
            raise ArmError(400, "AgentPoolNotFound",
                           f"The agent pool '{pool_name}' was not found in registry '{reg.name}'.",
                           "agentPoolName")
        step = tprops.get("step") or {}
        if task:
            image_names = step.get("imageNames", []) if step.get("type") == "Docker" else []
            push = step.get("isPushEnabled", True)
            run_type = "AutoBuild" if step.get("type") == "Docker" else "AutoRun"
            source = step.get("contextPath")
            platform = tprops.get("platform")
            log_template = request.get("logTemplate") or tprops.get("logTemplate")
        else:
            image_names = request.get("imageNames", []) if rtype == "DockerBuildRequest" else []
            push = request.get("isPushEnabled", True)
            run_type = "QuickBuild" if rtype == "DockerBuildRequest" else "QuickRun"
            source = request.get("sourceLocation")
            platform = request.get("platform")
            log_template = request.get("logTemplate")
        run_id = reg.new_run_id()
        now = ctx.now
        props = {"runId": run_id, "status": "Queued", "lastUpdatedTime": iso(now), "runType": run_type,
                 "createTime": iso(now), "provisioningState": "Succeeded",
                 "isArchiveEnabled": bool(request.get("isArchiveEnabled", False))}
        if platform:
            props["platform"] = copy.deepcopy(platform)
        if pool_name:
            props["agentPoolName"] = reg.pools[pool_name.lower()].name
        else:
            props["agentConfiguration"] = copy.deepcopy(agent_cfg) if agent_cfg else {"cpu": 2}
        if task:
            props["task"] = task["name"]
        if timer:
            props["timerTrigger"] = timer
        fail = None
        if source and not re.match(r"^[a-z][a-z0-9+.-]*://", source, re.I) and source != "/dev/null":
            # A relative path must name a blob uploaded through listBuildSourceUploadUrl.
            if f"{reg.name.lower()}/{source.lstrip('/')}" not in self.world.blobs:
                fail = (f"failed to download context. Please check if the source location "
                        f"'{source}' exists and is accessible.")
        run = Run(reg, run_id, props, pool=pool_name.lower() if pool_name else None,
                  image_names=image_names, push=push, fail_message=fail)
        run.log_template = log_template
        run.say(now, f"Queued run {run_id}" + (f" on agent pool '{props['agentPoolName']}'" if pool_name
                                               else " on shared agents"))
        if source:
            run.say(now, f"Source: {source}")
        reg.add_run(run)
        # A shared-compute run (or a free pool slot) starts now, not one tick later.
        self.world.tick(now)
        return run

    def op_Registries_ScheduleRun(self, ctx):
        request = ctx.body("RunRequest", fill=True)
        run = self.schedule(ctx, request)
        return Reply(200, run.to_arm())

    def op_Registries_GetBuildSourceUploadUrl(self, ctx):
        stamp = time.strftime("%Y%m%d%H%M", time.gmtime(ctx.now))
        rel = f"source/{stamp}/{uuid.uuid4()}.tar.gz"
        return Reply(200, {"uploadUrl": blob_url(ctx.req.base_url, f"{ctx.reg.name.lower()}/{rel}", "cw"),
                           "relativePath": rel})

    def _run(self, ctx):
        run = ctx.reg.runs.get(ctx.params["runId"])
        if run is None:
            raise not_found("runs/", ctx.params["runId"], ctx.params["resourceGroupName"])
        return run

    def op_Runs_Get(self, ctx):
        return Reply(200, self._run(ctx).to_arm())

    def op_Runs_List(self, ctx):
        runs = sorted(ctx.reg.runs.values(), key=lambda r: r.props["createTime"], reverse=True)
        flt = ctx.req.query.get("$filter", "")
        if flt.strip():
            pred = parse_filter(flt)
            runs = [r for r in runs if pred(r.props)]
        top = ctx.req.query.get("$top")
        if top is not None:
            try:
                n = int(top)
                if n < 0:
                    raise ValueError
            except ValueError:
                raise ArmError(400, "InvalidInputValue", f"The value '{top}' of '$top' is not valid.", "$top")
            runs = runs[:n]
        return Reply(200, ctx.page(runs, Run.to_arm))

    def op_Runs_Update(self, ctx):
        body = ctx.body("RunUpdateParameters")
        run = self._run(ctx)
        if "isArchiveEnabled" in body:
            run.props["isArchiveEnabled"] = body["isArchiveEnabled"]
            run.props["lastUpdatedTime"] = iso(ctx.now)
        return Reply(200, run.to_arm())

    def op_Runs_Cancel(self, ctx):
        self.world.cancel_run(self._run(ctx), ctx.now)
        return Reply(200)

    def op_Runs_GetLogSasUrl(self, ctx):
        run = self._run(ctx)
        return Reply(200, {"logLink": blob_url(ctx.req.base_url,
                                               f"{ctx.reg.name.lower()}/logs/{run.run_id}/rawtext.log", "r")})

    # -- task runs -------------------------------------------------------------------------

    def _task_run(self, ctx):
        tr = ctx.reg.task_runs.get(ctx.params["taskRunName"].lower())
        if tr is None:
            raise not_found("taskRuns/", ctx.params["taskRunName"], ctx.params["resourceGroupName"])
        return tr

    def _task_run_view(self, ctx, tr, secrets):
        out = copy.deepcopy(tr["resource"])
        run = ctx.reg.runs.get(tr["runId"]) if tr["runId"] else None
        if run is not None:
            out["properties"]["runResult"] = run.to_arm()
        if not ctx.v2025:
            out.pop("systemData", None)
        if not secrets and "runRequest" in out["properties"]:
            redact_run_request(out["properties"]["runRequest"])
        return out

    def _apply_task_run(self, ctx, name, resource, old):
        """Store a task run; schedule a new run when the request or
        forceUpdateTag changed (the documented rerun trigger)."""
        props = resource["properties"]
        rerun = old is None or props.get("runRequest") != old["resource"]["properties"].get("runRequest") \
            or props.get("forceUpdateTag") != old["resource"]["properties"].get("forceUpdateTag")
        run_id = old["runId"] if old else None
        if rerun and props.get("runRequest"):
            run_id = self.schedule(ctx, props["runRequest"]).run_id
        props["provisioningState"] = "Succeeded"
        resource["systemData"] = system_data(ctx.now, ctx.now)
        ctx.reg.task_runs[name.lower()] = {"resource": resource, "runId": run_id}

    def op_TaskRuns_Get(self, ctx):
        return Reply(200, self._task_run_view(ctx, self._task_run(ctx), False))

    def op_TaskRuns_GetDetails(self, ctx):
        return Reply(200, self._task_run_view(ctx, self._task_run(ctx), True))

    def op_TaskRuns_List(self, ctx):
        return Reply(200, ctx.page(list(ctx.reg.task_runs.values()),
                                   lambda t: self._task_run_view(ctx, t, False)))

    def op_TaskRuns_Create(self, ctx):
        body = ctx.body("TaskRun", fill=True)
        name = ctx.params["taskRunName"]
        old = ctx.reg.task_runs.get(name.lower())
        resource = {"id": f"{ctx.reg.id}/taskRuns/{name}", "name": name,
                    "type": "Microsoft.ContainerRegistry/registries/taskRuns",
                    "properties": body.get("properties", {})}
        for k in ("location", "tags"):
            if k in body:
                resource[k] = body[k]
        if "identity" in body:
            resource["identity"] = _identity(body["identity"], None)
        self._apply_task_run(ctx, name, resource, old)
        view = self._task_run_view(ctx, ctx.reg.task_runs[name.lower()], False)
        if old:
            return Reply(200, view)
        headers = {}
        if ctx.v2025:
            headers = ctx.async_headers(self.world.new_operation(ctx.reg, "Creating", resource["id"], done=True))
        return Reply(201, view, headers)

    def op_TaskRuns_Update(self, ctx):
        body = ctx.body("TaskRunUpdateParameters", fill=True)
        old = self._task_run(ctx)
        resource = copy.deepcopy(old["resource"])
        for k in ("location", "tags"):
            if k in body:
                resource[k] = body[k]
        if "identity" in body:
            resource["identity"] = _identity(body["identity"], resource.get("identity"))
        resource["properties"].update(body.get("properties", {}))
        self._apply_task_run(ctx, resource["name"], resource, old)
        return Reply(200, self._task_run_view(ctx, ctx.reg.task_runs[resource["name"].lower()], False))

    def op_TaskRuns_Delete(self, ctx):
        if ctx.reg.task_runs.pop(ctx.params["taskRunName"].lower(), None) is None:
            return Reply(204)
        return Reply(200)


# -- helpers ---------------------------------------------------------------------------


def _norm_location(loc):
    return (loc or "").replace(" ", "").lower()


def _identity(requested, old):
    """Fill the read-only parts of a managed identity as the service does."""
    out = copy.deepcopy(requested)
    kind = (out.get("type") or "None").lower()
    if "systemassigned" in kind:
        out["principalId"] = (old or {}).get("principalId") or str(uuid.uuid4())
        out["tenantId"] = (old or {}).get("tenantId") or str(uuid.uuid4())
    if "userassigned" in kind:
        for rid, value in list((out.get("userAssignedIdentities") or {}).items()):
            prev = ((old or {}).get("userAssignedIdentities") or {}).get(rid) or {}
            out["userAssignedIdentities"][rid] = {
                "principalId": prev.get("principalId") or str(uuid.uuid4()),
                "clientId": prev.get("clientId") or str(uuid.uuid4())}
    return out


def redact_task(props):
    """Hide what Tasks_Get does not return but Tasks_GetDetails does (the
    published Get/GetDetails examples differ exactly so)."""
    step = props.get("step")
    if step:
        step.pop("contextAccessToken", None)
        for key in ("arguments", "values"):
            if key in step:
                step[key] = [a for a in step[key] if not a.get("isSecret")]
    trig = props.get("trigger") or {}
    for st in trig.get("sourceTriggers") or []:
        (st.get("sourceRepository") or {}).pop("sourceControlAuthProperties", None)
    if trig.get("baseImageTrigger") and "updateTriggerEndpoint" in trig["baseImageTrigger"]:
        trig["baseImageTrigger"]["updateTriggerEndpoint"] = None
    creds = props.get("credentials")
    if creds and creds.get("customRegistries"):
        creds["customRegistries"] = {k: None for k in creds["customRegistries"]}


def redact_run_request(rr):
    for key in ("arguments", "values"):
        if key in rr:
            rr[key] = [a for a in rr[key] if not a.get("isSecret")]
    ov = rr.get("overrideTaskStepProperties") or {}
    for key in ("arguments", "values"):
        if key in ov:
            ov[key] = [a for a in ov[key] if not a.get("isSecret")]
    creds = rr.get("credentials")
    if creds and creds.get("customRegistries"):
        creds["customRegistries"] = {k: None for k in creds["customRegistries"]}


def _merge_named(old_list, new_list):
    """Trigger arrays in a PATCH are matched by `name` (update models require it)."""
    out = [copy.deepcopy(x) for x in old_list or []]
    for item in new_list:
        for cur in out:
            if cur.get("name", "").lower() == item.get("name", "").lower():
                deep_merge(cur, item)
                break
        else:
            out.append(copy.deepcopy(item))
    return out


def deep_merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def merge_task_properties(props, patch):
    """Tasks_Update: members absent from the PATCH keep their value."""
    for key, value in patch.items():
        if key == "step":
            cur = props.get("step")
            if cur and cur.get("type") == value.get("type"):
                deep_merge(cur, value)
            else:
                props["step"] = copy.deepcopy(value)
        elif key == "trigger":
            trig = props.setdefault("trigger", {})
            for tkey, tval in value.items():
                if tkey in ("timerTriggers", "sourceTriggers"):
                    trig[tkey] = _merge_named(trig.get(tkey), tval)
                elif isinstance(tval, dict) and isinstance(trig.get(tkey), dict):
                    deep_merge(trig[tkey], tval)
                else:
                    trig[tkey] = copy.deepcopy(tval)
        elif key == "credentials":
            creds = props.setdefault("credentials", {})
            if "sourceRegistry" in value:
                creds["sourceRegistry"] = copy.deepcopy(value["sourceRegistry"])
            for login, entry in (value.get("customRegistries") or {}).items():
                regs = creds.setdefault("customRegistries", {})
                if entry is None:
                    regs.pop(login, None)
                else:
                    regs[login] = copy.deepcopy(entry)
        elif isinstance(value, dict) and isinstance(props.get(key), dict):
            deep_merge(props[key], value)
        else:
            props[key] = copy.deepcopy(value)


def blob_url(base, path, perms):
    """A SAS-looking URL on the emulator's blob endpoint. The signature is
    fake; the blob endpoint only checks that one is present."""
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    sig = uuid.uuid4().hex
    return (f"{base}/_blob/{quote(path)}?sv=2019-02-02&se={quote(exp)}&sr=b&sp={perms}"
            f"&sig={sig}")


_FILTER_FIELDS = {"runid": "runId", "runtype": "runType", "status": "status", "taskname": "task",
                  "agentpoolname": "agentPoolName", "isarchiveenabled": "isArchiveEnabled",
                  "createtime": "createTime", "finishtime": "finishTime"}
_CLAUSE = re.compile(r"\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+('(?:[^']|'')*'|true|false|\S+)\s*", re.I)


def parse_filter(text):
    """OData $filter subset for Runs_List: `field op value` clauses joined by
    `and` / `or` (and binds tighter), ops eq ne gt ge lt le. Fields are the
    RunFilter members; raises ArmError on anything else."""
    def bad(why):
        return ArmError(400, "InvalidFilter", f"The $filter '{text}' is not supported: {why}.", "$filter")

    ors = []
    for or_part in re.split(r"\s+or\s+", text.strip(), flags=re.I):
        ands = []
        for clause in re.split(r"\s+and\s+", or_part, flags=re.I):
            m = _CLAUSE.fullmatch(clause)
            if not m:
                raise bad(f"cannot parse '{clause.strip()}'")
            field, op, raw = m.group(1), m.group(2).lower(), m.group(3)
            member = _FILTER_FIELDS.get(field.lower())
            if member is None:
                raise bad(f"unknown field '{field}'")
            if raw.startswith("'"):
                value = raw[1:-1].replace("''", "'")
            elif raw.lower() in ("true", "false"):
                value = raw.lower() == "true"
            else:
                value = raw
            ands.append((member, op, value))
        ors.append(ands)

    def cmp(actual, op, value):
        if isinstance(value, str) and isinstance(actual, str):
            a, v = actual.lower(), value.lower()
        else:
            a, v = actual, value
        if op == "eq":
            return a == v
        if op == "ne":
            return a != v
        if a is None:
            return False
        return {"gt": a > v, "ge": a >= v, "lt": a < v, "le": a <= v}[op]

    return lambda props: any(all(cmp(props.get(f), op, v) for f, op, v in ands) for ands in ors)
