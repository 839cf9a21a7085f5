"""Azure DevOps stand-in: agent pools, agents, job requests, and the agent's side.

Served by the acr-emulator process under /devops/: the organization URL
`http://127.0.0.1:PORT/devops/{org}` stands for `https://dev.azure.com/{org}`
(an operator's DevOps endpoint override maps one onto the other). Shapes follow
the REST API 7.1 reference (Pools - Get Agent Pools / Get Agent Pool, Agents -
List / Get / Add / Replace Agent / Update / Delete, the TaskAgentJobRequest
contract the Job Requests list returns) and, for the agent side, the open-source
agent (microsoft/azure-pipelines-agent: ConfigurationManager, MessageListener,
JobDispatcher, OAuthCredential) with the TaskAgent HTTP client's contracts:

  GET    {org}/_apis/connectionData
  GET    {org}/_apis/distributedtask/pools[?poolName=]
  GET    {org}/_apis/distributedtask/pools/{poolId}
  GET    {org}/_apis/distributedtask/pools/{poolId}/agents[?agentName=&includeCapabilities=
                                            &includeAssignedRequest=&includeLastCompletedRequest=]
  POST   {org}/_apis/distributedtask/pools/{poolId}/agents             add (agent config)
  GET    {org}/_apis/distributedtask/pools/{poolId}/agents/{agentId}
  PUT    {org}/_apis/distributedtask/pools/{poolId}/agents/{agentId}   replace (config --replace)
  PATCH  {org}/_apis/distributedtask/pools/{poolId}/agents/{agentId}   update
  DELETE {org}/_apis/distributedtask/pools/{poolId}/agents/{agentId}
  GET    {org}/_apis/distributedtask/pools/{poolId}/jobrequests[?agentId=&completedRequestCount=&$top=]
  GET    {org}/_apis/distributedtask/pools/{poolId}/jobrequests/{requestId}
  PATCH  {org}/_apis/distributedtask/pools/{poolId}/jobrequests/{requestId}?lockToken=  renew / finish
  POST   {org}/_apis/distributedtask/pools/{poolId}/sessions
  DELETE {org}/_apis/distributedtask/pools/{poolId}/sessions/{sessionId}
  GET    {org}/_apis/distributedtask/pools/{poolId}/messages?sessionId=&lastMessageId=   (long poll)
  DELETE {org}/_apis/distributedtask/pools/{poolId}/messages/{messageId}?sessionId=
  POST   /devops/_vstoken/{orgId}/oauth2/token   the agent's authorizationUrl: client
         credentials with an RS256 JWT client assertion signed by the agent's key

Credentials: a PAT as HTTP Basic (any user name, the PAT as password) with
scopes (vso.agentpools = read, vso.agentpools_manage = read and manage,
app_token = full access); an Entra bearer token the emulator's own token
endpoint issued for the Azure DevOps resource 499b84ac-1321-427f-aa17-267ca6975798
(identity.py; a token for any other audience is refused); the agent's own
OAuth token (agent endpoints only). 401 without or with a wrong credential,
403 without the scope, 404 for an unknown pool / agent / request. Errors have
the service's body: {$id, innerException, message, typeName, typeKey,
errorCode, eventId}. See docs/emulator.md.

Everything is guarded by one condition variable (`DevOps.cond`): a message
long poll waits on it, and every change that can hand out a job notifies it.
Time-driven changes (lock expiry, idle sessions) are applied lazily, on the
next request or control call: only requests can observe them.
"""

import base64
import hashlib
import json
import re
import secrets
import string
import threading
import time
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit

from arm import ArmError, Reply
from identity import make_jwt
from rsa_keys import RsaKey, jwt_parse
from state import iso

PREFIX = "/devops/"
DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
DEVOPS_AUDIENCES = {DEVOPS_RESOURCE, "api://" + DEVOPS_RESOURCE, "https://app.vssps.visualstudio.com"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SERVICE_OWNER = "00025394-6065-48ca-87d9-7f5672854ef7"  # Azure Pipelines' service id, as job requests carry
AGENT_VERSION = "4.258.1"
READ_SCOPES = {"vso.agentpools", "vso.agentpools_manage", "app_token"}
MANAGE_SCOPES = {"vso.agentpools_manage", "app_token"}
KNOWN_SCOPES = READ_SCOPES | {"vso.agentpools_listen", "vso.build", "vso.build_execute", "vso.code"}
TASK_RESULTS = ("succeeded", "succeededWithIssues", "failed", "canceled", "skipped", "abandoned")
DT = "Microsoft.TeamFoundation.DistributedTask.WebApi"
FRAMEWORK = "Microsoft.TeamFoundation.Framework.Server"
VSS = "Microsoft.VisualStudio.Services.WebApi"
API_VERSION = re.compile(r"^(\d+)\.(\d+)(-preview(\.\d+)?)?$")
PAT_ALPHABET = string.ascii_lowercase + "234567"
SECRET_FORM_FIELDS = ("client_assertion", "client_secret", "assertion", "password", "refresh_token")


def default_settings():
    return {
        "longPollSeconds": 20.0,       # the service holds GET messages ~50 s; shorter here
        "jobLockSeconds": 300.0,       # lockedUntil after assignment and after each renew
        "sessionTimeoutSeconds": 120.0,  # a session not polled for this long is dropped (agent offline)
        "agentTokenLifetimeSeconds": 3600,
        "jobDurationSeconds": 2.0,     # default for queued jobs
        "jobResult": "succeeded",      # default for queued jobs
        # The service fails a job at once in a pool with no agent at all.
        "failJobsWithoutAgent": True,
    }


class DevOpsError(Exception):
    """An Azure DevOps error answer."""

    def __init__(self, status, type_key, message, namespace=DT, headers=None, event_id=3000):
        super().__init__(message)
        self.status = status
        self.type_key = type_key
        self.message = message
        self.namespace = namespace
        self.headers = headers or {}
        self.event_id = event_id

    def body(self):
        return {"$id": "1", "innerException": None, "message": self.message,
                "typeName": f"{self.namespace}.{self.type_key}, {self.namespace}",
                "typeKey": self.type_key, "errorCode": 0, "eventId": self.event_id}


def redacted(value):
    """As acr_emulator.redacted: equal secrets compare equal, none leaks."""
    return "<redacted sha256:%s>" % hashlib.sha256(value.encode()).hexdigest()[:12]


def _oauth_error(status, error, description):
    return Reply(status, {"error": error, "error_description": description})


def _flag(query, name):
    return str(query.get(name, "")).lower() == "true"


def _int(text, what):
    try:
        return int(text)
    except (TypeError, ValueError):
        raise DevOpsError(400, "ArgumentException", f"The value '{text}' is not valid for {what}.",
                          namespace="System") from None


def _identity_ref(name, ident):
    return {"displayName": name, "id": ident, "uniqueName": name}


# -- the world ------------------------------------------------------------------------------------

class Org:
    def __init__(self, name):
        self.name = name
        self.id = str(uuid.uuid4())           # the organization (collection) host id
        self.project_id = str(uuid.uuid4())   # one project, for scopeId
        self.created = time.time()
        self.pools = {}        # id -> Pool
        self.agents = {}       # id -> Agent (all pools)
        self.jobs = {}         # requestId -> Job (all pools), creation order
        self.pats = {}         # pat id -> {"token","name","scopes","expires","revoked"}
        self.entra_clients = None  # None: any Entra principal; else the list allowed
        self.next_pool = 10
        self.next_agent = 1
        self.next_request = 1
        self.next_message = 1

    def pool_by_name(self, name):
        for p in self.pools.values():
            if p.name.lower() == name.lower():
                return p
        return None


class Pool:
    def __init__(self, org, pool_id, name, hosted=False):
        self.org = org
        self.id = pool_id
        self.name = name
        self.hosted = hosted
        self.scope = str(uuid.uuid4())
        self.created = time.time()

    def agents(self):
        return [a for a in self.org.agents.values() if a.pool is self]


class Agent:
    def __init__(self, pool, agent_id, name):
        self.pool = pool
        self.id = agent_id
        self.name = name
        self.client_id = str(uuid.uuid4())
        self.key = None            # RsaKey (public)
        self.version = AGENT_VERSION
        self.os = "Linux"
        self.enabled = True
        self.max_parallelism = 1
        self.system_caps = {}
        self.user_caps = {}
        self.created = self.status_changed = time.time()
        self.session = None        # Session
        self.assigned = None       # Job
        self.last_completed = None  # Job
        self.key_generation = 0    # bumped when the key changes (replace/update)

    @property
    def status(self):
        return "online" if self.session is not None else "offline"


class Session:
    def __init__(self, agent, owner_name, caps):
        self.id = str(uuid.uuid4())
        self.agent = agent
        self.owner_name = owner_name
        self.caps = caps
        self.created = self.last_poll = time.time()
        self.polling = 0
        self.message = None        # pending message (dict) until deleted


class Job:
    def __init__(self, pool, request_id, name, duration, result, run_number):
        self.pool = pool
        self.request_id = request_id
        self.name = name
        self.duration = duration
        self.planned_result = result
        self.run_number = run_number
        self.plan_id = str(uuid.uuid4())
        self.job_id = str(uuid.uuid4())
        self.queue_time = time.time()
        self.assign_time = self.receive_time = self.finish_time = None
        self.locked_until = None
        self.result = None
        self.agent = None          # Agent it was assigned to (kept after the agent goes)
        self.agent_ref = None      # {"id","name"} snapshot
        self.ran_in = None         # container the assigned session reported
        self.session_id = None
        self.renewals = 0
        self.error = None          # why the service failed it without an agent

    @property
    def state(self):
        if self.result is not None:
            return "finished"
        return "queued" if self.agent is None else "assigned"


# -- the service -----------------------------------------------------------------------------------

class DevOps:
    """The Azure DevOps stand-in. Thread-safe (own condition variable)."""

    def __init__(self, identity):
        self.identity = identity
        self.cond = threading.Condition(threading.RLock())
        self.reset()

    def reset(self):
        with self.cond:
            self.settings = default_settings()
            self.orgs = {}           # lower(name) -> Org
            self.agent_tokens = {}   # token -> {"org", "agent", "generation", "exp"}
            self.cond.notify_all()

    # -- plumbing -----------------------------------------------------------------------------------

    @staticmethod
    def fault_reply(fault):
        """An injected fault answered the way Azure DevOps answers (429 with
        Retry-After and the X-RateLimit-* headers)."""
        status = int(fault["status"])
        headers = {"ActivityId": str(uuid.uuid4())}
        if status == 429:
            err = DevOpsError(429, "RequestBlockedException", fault.get("message") or
                              "TF400733: The request has been canceled: Request was blocked due to "
                              "exceeding usage of resource 'Core' in namespace 'User' (injected).",
                              namespace=FRAMEWORK)
            headers.update({"X-RateLimit-Resource": "Core", "X-RateLimit-Delay": "0",
                            "X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": str(int(time.time()) + int(fault.get("retryAfter") or 1))})
        else:
            err = DevOpsError(status, fault.get("code") or "InjectedFaultException",
                              fault.get("message") or f"Injected fault {status}.", namespace=FRAMEWORK)
        if status in (429, 503) and fault.get("retryAfter") is not None:
            headers["Retry-After"] = str(fault["retryAfter"])
        return Reply(status, err.body(), headers)

    @staticmethod
    def log_body(req):
        """The body as the request log keeps it: the token form with the
        client assertion replaced by a hash; JSON as sent (public keys only)."""
        if not req.body:
            return None
        if "/_vstoken/" in req.path:
            form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
            return {k: (redacted(v) if k in SECRET_FORM_FIELDS else v) for k, v in form.items()}
        try:
            return json.loads(req.body)
        except ValueError:
            return {"unparsed": len(req.body)}

    def handle(self, req):
        try:
            with self.cond:
                self._tick(time.time())
                reply = self._route(req)
        except DevOpsError as e:
            reply = Reply(e.status, e.body(), e.headers)
        reply.headers.setdefault("ActivityId", str(uuid.uuid4()))
        reply.headers.setdefault("x-vss-e2eid", str(uuid.uuid4()))
        return reply

    def _route(self, req):
        rest = req.path[len(PREFIX):]
        parts = [unquote(p) for p in req.raw_path[len(PREFIX):].split("/") if p]
        if rest.startswith("_vstoken/"):
            if len(parts) == 4 and parts[2:] == ["oauth2", "token"]:
                return self.agent_token(req, parts[1])
            raise DevOpsError(404, "NotFoundException", f"No route for '{req.path}'.", namespace=VSS)
        if not parts:
            raise DevOpsError(404, "NotFoundException", "No organization in the URL.", namespace=VSS)
        org = self.orgs.get(parts[0].lower())
        if org is None:
            raise DevOpsError(404, "HostNotFoundException",
                              f"VS800075: The project collection with name '{parts[0]}' does not exist.",
                              namespace=FRAMEWORK)
        api = parts[1:]
        if api[:1] != ["_apis"]:
            raise DevOpsError(404, "NotFoundException", f"No route for '{req.path}'.", namespace=VSS)
        self._check_version(req)
        who = self._authenticate(req, org)
        m = req.method
        if who["kind"] != "agent" and api[1:3] == ["distributedtask", "pools"]:
            # Scope before existence: a PAT without Agent Pools (read) learns nothing.
            self._require(who, READ_SCOPES, "GET", allow_agent=False)
        if api == ["_apis", "connectionData"] and m == "GET":
            return self.connection_data(org, who)
        if api[1:3] != ["distributedtask", "pools"]:
            raise DevOpsError(404, "NotFoundException", f"No route for '{req.path}'.", namespace=VSS)
        sub = api[3:]
        if not sub:
            if who["kind"] != "agent":
                self._require(who, READ_SCOPES, m, allow_agent=False)
            if m == "GET":
                return self.list_pools(req, org, who)
            raise self._method(m)
        pool = self._pool(org, sub[0], who)
        kind, rest_ = (sub[1] if len(sub) > 1 else None), sub[2:]
        if kind is None:
            self._require(who, READ_SCOPES, m, allow_agent=True, pool=pool)
            if m == "GET":
                return Reply(200, self.pool_json(pool))
            raise self._method(m)
        if kind == "agents":
            return self.agents_route(req, org, pool, who, rest_)
        if kind == "jobrequests":
            return self.jobs_route(req, org, pool, who, rest_)
        if kind == "sessions":
            return self.sessions_route(req, org, pool, who, rest_)
        if kind == "messages":
            return self.messages_route(req, org, pool, who, rest_)
        raise DevOpsError(404, "NotFoundException", f"No route for '{req.path}'.", namespace=VSS)

    @staticmethod
    def _method(m):
        return DevOpsError(405, "MethodNotAllowedException", f"The requested resource does not support "
                           f"http method '{m}'.", namespace=VSS)

    @staticmethod
    def _check_version(req):
        version = req.query.get("api-version")
        if version is None:
            accept = req.headers.get("Accept") or ""
            mm = re.search(r"api-version=([0-9][^;,\s]*)", accept)
            version = mm.group(1) if mm else None
        if version is None:
            if req.method != "GET":
                raise DevOpsError(400, "VssVersionNotSpecifiedException",
                                  f'No api-version was supplied for the "{req.method}" request. The version '
                                  'must be supplied either as part of the Accept header (e.g. "application/json; '
                                  'api-version=1.0") or as a query parameter (e.g. "?api-version=1.0").',
                                  namespace=VSS)
            return
        mm = API_VERSION.match(version)
        if not mm:
            raise DevOpsError(400, "VssInvalidApiVersionException",
                              f"The requested api-version '{version}' is not in a valid format.", namespace=VSS)
        if (int(mm.group(1)), int(mm.group(2))) > (7, 2):
            raise DevOpsError(400, "VssVersionOutOfRangeException",
                              f"The requested REST API version of {version} is out of range for this server. "
                              "The latest REST API version for this server is 7.2.", namespace=VSS)

    # -- authentication -------------------------------------------------------------------------

    def _unauthorized(self, req, org, why):
        return DevOpsError(401, "UnauthorizedRequestException",
                           f"TF400813: The user '' is not authorized to access this resource. ({why})",
                           namespace=FRAMEWORK, headers={
                               "WWW-Authenticate": 'Bearer authorization_uri=%s/common/oauth2/authorize, '
                                                   'Basic realm="%s/devops/%s/"' % (req.base_url, req.base_url,
                                                                                     org.name),
                               "X-TFS-FedAuthRealm": f"{req.base_url}/devops/{org.name}/",
                               "X-VSS-ResourceTenant": "00000000-0000-0000-0000-000000000000"})

    def _authenticate(self, req, org):
        """Who is calling: {"kind": "pat"|"entra"|"agent", ...}; raise 401."""
        header = req.headers.get("Authorization")
        if not header:
            raise self._unauthorized(req, org, "no credential")
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        now = time.time()
        if scheme.lower() == "basic":
            try:
                _, _, secret = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise self._unauthorized(req, org, "malformed Basic credential") from None
            for pat_id, pat in org.pats.items():
                if secrets.compare_digest(pat["token"].encode(), secret.encode()):
                    if pat["revoked"]:
                        raise self._unauthorized(req, org, "the personal access token has been revoked")
                    if pat["expires"] is not None and pat["expires"] <= now:
                        raise self._unauthorized(req, org, "the personal access token has expired")
                    return {"kind": "pat", "id": pat_id, "name": pat["name"], "scopes": set(pat["scopes"])}
            raise self._unauthorized(req, org, "the personal access token is not valid for this organization")
        if scheme.lower() != "bearer" or not value:
            raise self._unauthorized(req, org, "unsupported Authorization scheme")
        info = self.agent_tokens.get(value)
        if info is not None:
            agent = info["agent"]
            if info["org"] is not org or info["exp"] <= now or org.agents.get(agent.id) is not agent \
                    or agent.key_generation != info["generation"]:
                raise self._unauthorized(req, org, "the agent's access token is no longer valid")
            return {"kind": "agent", "agent": agent, "scopes": set()}
        token = self.identity.token_info(value) if hasattr(self.identity, "token_info") else None
        if token is None:
            raise self._unauthorized(req, org, "the access token is not valid")
        if token.get("aud") not in DEVOPS_AUDIENCES:
            raise self._unauthorized(req, org, f"the access token's audience '{token.get('aud')}' is not "
                                               f"Azure DevOps ({DEVOPS_RESOURCE})")
        if token["exp"] <= now:
            raise self._unauthorized(req, org, "the access token has expired")
        if org.entra_clients is not None and token.get("appid") not in org.entra_clients:
            raise self._unauthorized(req, org, "the service principal is not a member of this organization")
        return {"kind": "entra", "appid": token.get("appid"), "scopes": set(MANAGE_SCOPES)}

    @staticmethod
    def _require(who, scopes, method, allow_agent, pool=None, agent=None):
        """403 unless `who` may do this. Agents may read their own pool and
        agent only (and use the agent endpoints, checked where they are)."""
        if who["kind"] == "agent":
            if allow_agent and method == "GET" and (pool is None or who["agent"].pool is pool) \
                    and (agent is None or agent is who["agent"]):
                return
            raise DevOpsError(403, "AccessCheckException",
                              "Access denied. The agent's credential may only be used by that agent.",
                              namespace=FRAMEWORK)
        if not (who["scopes"] & scopes):
            need = "Agent Pools (read, manage)" if scopes == MANAGE_SCOPES else "Agent Pools (read)"
            raise DevOpsError(403, "UnauthorizedRequestException",
                              f"Access denied: the personal access token needs the scope {need} "
                              f"({' or '.join(sorted(s for s in scopes if s != 'app_token'))}) to perform "
                              "this action.", namespace=FRAMEWORK, event_id=3000)

    def _pool(self, org, text, who):
        pool = org.pools.get(_int(text, "poolId"))
        if pool is None:
            raise DevOpsError(404, "TaskAgentPoolNotFoundException", f"Agent pool {text} could not be found.")
        return pool

    # -- JSON shapes ----------------------------------------------------------------------------

    def pool_json(self, pool):
        owner = _identity_ref("Project Collection Build Service", pool.org.id)
        return {"createdOn": iso(pool.created), "autoProvision": False, "autoUpdate": True,
                "autoSize": True, "targetSize": None, "agentCloudId": None,
                "createdBy": owner, "owner": owner, "id": pool.id, "scope": pool.scope, "name": pool.name,
                "isHosted": pool.hosted, "poolType": "automation", "size": len(pool.agents()),
                "isLegacy": False, "options": "none"}

    def agent_ref(self, agent, base):
        org = agent.pool.org
        return {"_links": {"self": {"href": f"{base}/devops/{org.name}/_apis/distributedtask/pools/"
                                            f"{agent.pool.id}/agents/{agent.id}"},
                           "web": {"href": f"{base}/devops/{org.name}/_settings/agentpools?agentId="
                                           f"{agent.id}&poolId={agent.pool.id}"}},
                "id": agent.id, "name": agent.name, "version": agent.version, "osDescription": agent.os,
                "enabled": agent.enabled, "status": agent.status, "provisioningState": "Provisioned",
                "accessPoint": "CodexAccessMapping"}

    def authorization_url(self, org, base):
        return f"{base}/devops/_vstoken/{org.id}/oauth2/token"

    def agent_json(self, agent, base, caps=False, assigned=False, last=False):
        out = self.agent_ref(agent, base)
        out.update({"maxParallelism": agent.max_parallelism, "createdOn": iso(agent.created),
                    "statusChangedOn": iso(agent.status_changed),
                    "authorization": {"authorizationUrl": self.authorization_url(agent.pool.org, base),
                                      "clientId": agent.client_id}})
        if agent.key is not None:
            out["authorization"]["publicKey"] = agent.key.public_key_json()
        if caps:
            out["systemCapabilities"] = dict(agent.system_caps)
            out["userCapabilities"] = dict(agent.user_caps)
        if assigned and agent.assigned is not None:
            out["assignedRequest"] = self.job_json(agent.assigned, base)
        if last and agent.last_completed is not None:
            out["lastCompletedRequest"] = self.job_json(agent.last_completed, base)
        return out

    def job_json(self, job, base, matched=True):
        org = job.pool.org
        out = {"requestId": job.request_id, "queueTime": iso(job.queue_time)}
        if job.assign_time is not None:
            out["assignTime"] = iso(job.assign_time)
        if job.receive_time is not None:
            out["receiveTime"] = iso(job.receive_time)
        if job.finish_time is not None:
            out["finishTime"] = iso(job.finish_time)
        if job.result is not None:
            out["result"] = job.result
        if job.locked_until is not None and job.result is None:
            out["lockedUntil"] = iso(job.locked_until)
        out.update({"serviceOwner": SERVICE_OWNER, "hostId": org.id, "scopeId": org.project_id,
                    "planType": "Build", "planId": job.plan_id, "jobId": job.job_id,
                    "demands": ["Agent.Version -gtVersion 2.163.1"]})
        if job.agent_ref is not None:
            agent = org.agents.get(job.agent_ref["id"])
            if agent is not None:
                out["reservedAgent"] = self.agent_ref(agent, base)
            else:
                out["reservedAgent"] = {"id": job.agent_ref["id"], "name": job.agent_ref["name"]}
        if matched:
            out["matchedAgents"] = [self.agent_ref(a, base) for a in job.pool.agents() if a.enabled]
        web = f"{base}/devops/{org.name}/_build/results?buildId={job.run_number}"
        out["definition"] = {"_links": {"web": {"href": web}, "self": {"href": web}}, "id": 1,
                             "name": "pipeline"}
        out["owner"] = {"_links": {"web": {"href": web}, "self": {"href": web}}, "id": job.run_number,
                        "name": f"{time.strftime('%Y%m%d', time.gmtime(job.queue_time))}.{job.run_number}"}
        out["data"] = {"ParallelismTag": "Private", "IsScheduledKey": "false"}
        out.update({"poolId": job.pool.id, "orchestrationId": f"{job.plan_id}.job.__default",
                    "matchesAllAgentsInPool": True, "priority": 0, "jobName": job.name})
        return out

    # -- pools -----------------------------------------------------------------------------------------

    def connection_data(self, org, who):
        if who["kind"] == "pat":
            user = _identity_ref(f"pat:{who['name']}", who["id"])
        elif who["kind"] == "entra":
            user = _identity_ref(who["appid"], who["appid"])
        else:
            user = _identity_ref(f"Agent Pool Service ({who['agent'].pool.id})", who["agent"].client_id)
        return Reply(200, {"authenticatedUser": user, "authorizedUser": user, "instanceId": org.id,
                           "deploymentId": org.id, "deploymentType": "hosted",
                           "locationServiceData": {"serviceOwner": SERVICE_OWNER}})

    def list_pools(self, req, org, who):
        pools = list(org.pools.values())
        if who["kind"] == "agent":
            pools = [who["agent"].pool]  # an agent's token sees its own pool only
        name = req.query.get("poolName")
        if name:
            pools = [p for p in pools if p.name.lower() == name.lower()]
        if req.query.get("poolType"):
            pools = [p for p in pools if req.query["poolType"].lower() == "automation"]
        if req.query.get("poolIds"):
            ids = {_int(i, "poolIds") for i in req.query["poolIds"].split(",") if i}
            pools = [p for p in pools if p.id in ids]
        return Reply(200, {"count": len(pools), "value": [self.pool_json(p) for p in pools]})

    # -- agents ------------------------------------------------------------------------------------------

    def agents_route(self, req, org, pool, who, rest):
        m, base = req.method, req.base_url
        q = req.query
        if not rest:
            if m == "GET":
                self._require(who, READ_SCOPES, m, allow_agent=True, pool=pool)
                agents = pool.agents()
                if q.get("agentName"):
                    agents = [a for a in agents if a.name.lower() == q["agentName"].lower()]
                if who["kind"] == "agent":
                    agents = [a for a in agents if a is who["agent"]]
                value = [self.agent_json(a, base, _flag(q, "includeCapabilities"), _flag(q, "includeAssignedRequest"),
                                         _flag(q, "includeLastCompletedRequest")) for a in agents]
                return Reply(200, {"count": len(value), "value": value})
            if m == "POST":
                self._require(who, MANAGE_SCOPES, m, allow_agent=False)
                return self.add_agent(req, org, pool)
            raise self._method(m)
        if len(rest) != 1:
            raise DevOpsError(404, "NotFoundException", f"No route for '{req.path}'.", namespace=VSS)
        agent = org.agents.get(_int(rest[0], "agentId"))
        if agent is None or agent.pool is not pool:
            if m == "DELETE":
                self._require(who, MANAGE_SCOPES, m, allow_agent=False)
            raise DevOpsError(404, "TaskAgentNotFoundException",
                              f"No agent found in pool {pool.name} which has ID {rest[0]}.")
        if m == "GET":
            self._require(who, READ_SCOPES, m, allow_agent=True, pool=pool, agent=agent)
            return Reply(200, self.agent_json(agent, base, _flag(q, "includeCapabilities"),
                                              _flag(q, "includeAssignedRequest"),
                                              _flag(q, "includeLastCompletedRequest")))
        self._require(who, MANAGE_SCOPES, m, allow_agent=False)
        if m in ("PUT", "PATCH"):
            return self.change_agent(req, org, pool, agent, replace=(m == "PUT"))
        if m == "DELETE":
            self.delete_agent(org, agent, "The agent was deleted from the pool.")
            return Reply(204, None)
        raise self._method(m)

    @staticmethod
    def _body(req):
        if not req.body.strip():
            raise DevOpsError(400, "ArgumentNullException", "Value cannot be null.\r\nParameter name: agent",
                              namespace="System")
        try:
            body = json.loads(req.body)
        except ValueError as e:
            raise DevOpsError(400, "VssRequestContentException", f"The request content is not valid JSON: {e}",
                              namespace=VSS) from None
        if not isinstance(body, dict):
            raise DevOpsError(400, "VssRequestContentException", "The request content must be a JSON object.",
                              namespace=VSS)
        return body

    @staticmethod
    def _public_key(body, required):
        auth = body.get("authorization") or {}
        pk = auth.get("publicKey") if isinstance(auth, dict) else None
        if pk is None:
            if required:
                raise DevOpsError(400, "ArgumentNullException",
                                  "Value cannot be null.\r\nParameter name: agent.Authorization.PublicKey",
                                  namespace="System")
            return None
        try:
            return RsaKey.from_public_key_json(pk)
        except ValueError as e:
            raise DevOpsError(400, "ArgumentException", f"agent.Authorization.PublicKey: {e}",
                              namespace="System") from None

    @staticmethod
    def _apply_fields(agent, body, replace):
        if "enabled" in body or replace:
            agent.enabled = bool(body.get("enabled", True))
        for field, attr in (("version", "version"), ("osDescription", "os")):
            if body.get(field):
                setattr(agent, attr, str(body[field]))
        if body.get("maxParallelism"):
            agent.max_parallelism = int(body["maxParallelism"])
        for field, attr in (("systemCapabilities", "system_caps"), ("userCapabilities", "user_caps")):
            if isinstance(body.get(field), dict):
                setattr(agent, attr, {str(k): "" if v is None else str(v) for k, v in body[field].items()})
            elif replace and field == "systemCapabilities":
                setattr(agent, attr, {})

    def add_agent(self, req, org, pool):
        body = self._body(req)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DevOpsError(400, "ArgumentNullException", "Value cannot be null.\r\nParameter name: agent.Name",
                              namespace="System")
        if len(name) > 64 or re.search(r'[\\/:*?"<>|]', name):
            raise DevOpsError(400, "ArgumentException", f"The agent name '{name}' is not valid.",
                              namespace="System")
        if pool.hosted:
            raise DevOpsError(400, "InvalidTaskAgentPoolException",
                              f"Agent pool {pool.name} is a hosted pool; agents cannot be added to it.")
        if any(a.name.lower() == name.lower() for a in pool.agents()):
            raise DevOpsError(409, "TaskAgentExistsException",
                              f"An agent named {name} already exists in the pool {pool.name}.")
        key = self._public_key(body, required=True)
        agent = Agent(pool, org.next_agent, name)
        org.next_agent += 1
        agent.key = key
        self._apply_fields(agent, body, replace=True)
        org.agents[agent.id] = agent
        self.cond.notify_all()
        return Reply(200, self.agent_json(agent, req.base_url, caps=True))

    def change_agent(self, req, org, pool, agent, replace):
        body = self._body(req)
        if "id" in body and body["id"] not in (None, 0, agent.id):
            raise DevOpsError(400, "ArgumentException",
                              f"The agent ID {body['id']} in the body does not match the URL ({agent.id}).",
                              namespace="System")
        name = body.get("name")
        if isinstance(name, str) and name and name.lower() != agent.name.lower():
            if any(a.name.lower() == name.lower() for a in pool.agents() if a is not agent):
                raise DevOpsError(409, "TaskAgentExistsException",
                                  f"An agent named {name} already exists in the pool {pool.name}.")
            agent.name = name
        key = self._public_key(body, required=replace)
        if key is not None and (agent.key is None or key.n != agent.key.n or key.e != agent.key.e):
            # A new key: the old one (and tokens and sessions got with it) is dead.
            agent.key = key
            agent.key_generation += 1
            self._drop_session(agent)
            self._revoke_tokens(agent)
            if agent.assigned is not None and agent.assigned.result is None:
                self._finish(agent.assigned, "abandoned", time.time())
        self._apply_fields(agent, body, replace)
        self.cond.notify_all()
        return Reply(200, self.agent_json(agent, req.base_url, caps=True))

    def delete_agent(self, org, agent, why):
        self._drop_session(agent)
        self._revoke_tokens(agent)
        if agent.assigned is not None and agent.assigned.result is None:
            self._finish(agent.assigned, "abandoned", time.time())
        pool = agent.pool
        del org.agents[agent.id]
        self._fail_if_no_agent(pool)
        self.cond.notify_all()

    def _fail_if_no_agent(self, pool):
        """Azure Pipelines fails a job at once when its pool has no agent at
        all ("No agent found in pool ... which satisfies the specified
        demands"); an offline or disabled agent is enough for it to wait
        ("All eligible agents are disabled or offline"). Scaling to zero
        therefore has to leave one agent registered (KEDA's placeholder)."""
        if pool.agents() or not self.settings["failJobsWithoutAgent"]:
            return
        now = time.time()
        for job in pool.org.jobs.values():
            if job.pool is pool and job.agent is None and job.result is None:
                job.error = f"No agent found in pool {pool.name} which satisfies the specified demands"
                self._finish(job, "failed", now)

    def _revoke_tokens(self, agent):
        for tok in [t for t, i in self.agent_tokens.items() if i["agent"] is agent]:
            del self.agent_tokens[tok]

    def _drop_session(self, agent):
        if agent.session is not None:
            agent.session = None
            agent.status_changed = time.time()
            self.cond.notify_all()

    # -- the agent's OAuth token -----------------------------------------------------------------

    def agent_token(self, req, org_id):
        if req.method != "POST":
            return _oauth_error(405, "invalid_request", "Use POST.")
        org = next((o for o in self.orgs.values() if o.id == org_id), None)
        if org is None:
            return _oauth_error(404, "invalid_request", f"Unknown organization id '{org_id}'.")
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type",
                                f"The grant type '{form.get('grant_type', '')}' is not supported.")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return _oauth_error(400, "invalid_request", f"client_assertion_type must be '{ASSERTION_TYPE}'.")
        parsed = jwt_parse(form.get("client_assertion") or "")
        if parsed is None:
            return _oauth_error(400, "invalid_request", "client_assertion is not a compact JWT.")
        header, claims, signing_input, signature = parsed
        if header.get("alg") != "RS256":
            return _oauth_error(400, "invalid_request", f"Unsupported assertion algorithm '{header.get('alg')}'.")
        client_id = claims.get("iss")
        agent = next((a for a in org.agents.values() if a.client_id == client_id), None)
        if agent is None or claims.get("sub") != client_id:
            return _oauth_error(401, "invalid_client", f"Unknown client '{client_id}'.")
        aud = claims.get("aud")
        if not isinstance(aud, str) or urlsplit(aud).path != urlsplit(self.authorization_url(org, "")).path:
            return _oauth_error(401, "invalid_client", f"The assertion audience '{aud}' is not this token endpoint.")
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, (int, float)) or exp <= now or not isinstance(nbf, (int, float)) \
                or nbf > now + 300:
            return _oauth_error(401, "invalid_client", "The assertion is not within its valid time range.")
        if agent.key is None or not agent.key.verify(signing_input, signature):
            return _oauth_error(401, "invalid_client",
                                "The assertion's signature does not match the agent's registered public key.")
        lifetime = int(self.settings["agentTokenLifetimeSeconds"])
        token = make_jwt({"aud": f"urn:ms.distributedtask:{org.id}", "sub": client_id, "iss": "app.vstoken",
                          "nbf": int(now), "exp": int(now) + lifetime, "agentId": agent.id, "poolId": agent.pool.id})
        self.agent_tokens[token] = {"org": org, "agent": agent, "generation": agent.key_generation,
                                    "exp": now + lifetime}
        return Reply(200, {"access_token": token, "token_type": "jwt-bearer", "expires_in": lifetime,
                           "scope": "/"}, {"Cache-Control": "no-store"})

    # -- sessions and messages (agent token only) -----------------------------------------------------

    @staticmethod
    def _agent_only(who, pool):
        if who["kind"] != "agent":
            raise DevOpsError(403, "AccessCheckException",
                              "Access denied. Sessions, messages and job request updates need the agent's "
                              "own credential.", namespace=FRAMEWORK)
        if who["agent"].pool is not pool:
            raise DevOpsError(403, "AccessCheckException",
                              f"Access denied. Agent {who['agent'].name} is not in pool {pool.name}.",
                              namespace=FRAMEWORK)
        return who["agent"]

    def sessions_route(self, req, org, pool, who, rest):
        agent = self._agent_only(who, pool)
        m = req.method
        if not rest and m == "POST":
            body = self._body(req)
            ref = body.get("agent") or {}
            if not isinstance(ref, dict) or ref.get("id") != agent.id:
                raise DevOpsError(400, "ArgumentException",
                                  "session.Agent.Id must be the ID of the calling agent.", namespace="System")
            if agent.session is not None:
                raise DevOpsError(409, "TaskAgentSessionConflictException",
                                  f"A session for agent {agent.name} already exists.")
            caps = body.get("systemCapabilities") if isinstance(body.get("systemCapabilities"), dict) else {}
            if agent.assigned is not None and agent.assigned.result is None:
                # A new agent process: the one the job went to is gone. (The
                # service would wait out the lock; here it is abandoned at once.)
                self._finish(agent.assigned, "abandoned", time.time())
            session = Session(agent, str(body.get("ownerName") or ""), {str(k): str(v) for k, v in caps.items()})
            agent.session = session
            agent.status_changed = time.time()
            if caps:
                agent.system_caps.update(session.caps)
            self.cond.notify_all()
            return Reply(200, {"sessionId": session.id, "ownerName": session.owner_name,
                               "agent": self.agent_ref(agent, req.base_url), "useFipsEncryption": False})
        if len(rest) == 1 and m == "DELETE":
            if agent.session is not None and agent.session.id == rest[0]:
                self._drop_session(agent)
            return Reply(204, None)
        raise self._method(m)

    def _session(self, agent, session_id):
        s = agent.session
        if s is None or s.id != session_id:
            raise DevOpsError(404, "TaskAgentSessionExpiredException",
                              f"The session '{session_id}' has expired or does not exist.")
        return s

    def messages_route(self, req, org, pool, who, rest):
        agent = self._agent_only(who, pool)
        m = req.method
        session = self._session(agent, req.query.get("sessionId") or "")
        if len(rest) == 1 and m == "DELETE":
            if session.message is not None and str(session.message["messageId"]) == rest[0]:
                session.message = None
            return Reply(204, None)
        if rest or m != "GET":
            raise self._method(m)
        last = req.query.get("lastMessageId")
        last = _int(last, "lastMessageId") if last not in (None, "") else None
        deadline = time.time() + float(self.settings["longPollSeconds"])
        session.polling += 1
        try:
            while True:
                now = time.time()
                self._tick(now)
                if agent.session is not session:
                    raise DevOpsError(404, "TaskAgentSessionExpiredException",
                                      f"The session '{session.id}' has expired or does not exist.")
                session.last_poll = now
                msg = session.message
                if msg is not None and (last is None or msg["messageId"] > last):
                    return Reply(200, msg)
                if msg is None or (last is not None and msg["messageId"] <= last):
                    if last is not None and msg is not None:
                        session.message = None  # acknowledged by lastMessageId
                    job = self._next_job(agent)
                    if job is not None:
                        return Reply(200, self._assign(job, agent, session, req.base_url, now))
                remaining = deadline - now
                if remaining <= 0:
                    return Reply(202, None)  # no message within the poll: an empty answer
                self.cond.wait(min(remaining, 1.0))
        finally:
            session.polling -= 1

    def _next_job(self, agent):
        if not agent.enabled or (agent.assigned is not None and agent.assigned.result is None):
            return None
        for job in agent.pool.org.jobs.values():
            if job.pool is agent.pool and job.agent is None and job.result is None:
                return job
        return None

    def _assign(self, job, agent, session, base, now):
        org = agent.pool.org
        job.agent = agent
        job.agent_ref = {"id": agent.id, "name": agent.name}
        job.session_id = session.id
        job.assign_time = job.receive_time = now
        job.locked_until = now + float(self.settings["jobLockSeconds"])
        caps = session.caps
        job.ran_in = {"ownerName": session.owner_name,
                      "containerGroupId": caps.get("emulator.containerGroupId"),
                      "containerGroup": caps.get("emulator.containerGroup"),
                      "container": caps.get("emulator.container"),
                      "start": int(caps["emulator.start"]) if str(caps.get("emulator.start", "")).isdigit()
                      else None}
        agent.assigned = job
        collection = f"{base}/devops/{org.name}/"
        body = {
            "messageType": "PipelineAgentJobRequest",
            "plan": {"scopeIdentifier": org.project_id, "planType": "Build", "version": 9,
                     "planId": job.plan_id, "planGroup": f"Build:{org.project_id}:{job.run_number}",
                     "artifactUri": f"vstfs:///Build/Build/{job.run_number}", "artifactLocation": None},
            "timeline": {"id": job.plan_id, "changeId": 1, "location": None},
            "jobId": job.job_id, "jobDisplayName": job.name, "jobName": "__default",
            "requestId": job.request_id, "lockedUntil": iso(job.locked_until),
            "resources": {"endpoints": [{"name": "SystemVssConnection", "url": collection,
                                         "authorization": {"scheme": "OAuth",
                                                           "parameters": {"AccessToken": "***"}}}]},
            "variables": {"system.collectionUri": {"value": collection},
                          "system.teamProjectId": {"value": org.project_id},
                          "build.buildId": {"value": str(job.run_number)},
                          "emulator.durationSeconds": {"value": str(job.duration)},
                          "emulator.result": {"value": job.planned_result}},
            "steps": [{"type": "action", "reference": {"type": "script"}, "name": "CmdLine",
                       "displayName": "Simulated step",
                       "inputs": {"script": f"sleep {job.duration}"}}],
        }
        msg = {"messageId": org.next_message, "messageType": "PipelineAgentJobRequest",
               "body": json.dumps(body)}
        org.next_message += 1
        session.message = msg
        return msg

    # -- job requests ---------------------------------------------------------------------------

    def jobs_route(self, req, org, pool, who, rest):
        m, q, base = req.method, req.query, req.base_url
        if not rest and m == "GET":
            self._require(who, READ_SCOPES, m, allow_agent=False)
            jobs = [j for j in org.jobs.values() if j.pool is pool]
            if q.get("agentId"):
                aid = _int(q["agentId"], "agentId")
                jobs = [j for j in jobs if j.agent_ref and j.agent_ref["id"] == aid]
            unfinished = [j for j in jobs if j.result is None]
            finished = sorted((j for j in jobs if j.result is not None),
                              key=lambda j: (j.finish_time, j.request_id), reverse=True)
            if q.get("completedRequestCount") not in (None, ""):
                finished = finished[:max(0, _int(q["completedRequestCount"], "completedRequestCount"))]
            jobs = unfinished + finished
            if q.get("$top") not in (None, ""):
                jobs = jobs[:max(0, _int(q["$top"], "$top"))]
            return Reply(200, {"count": len(jobs), "value": [self.job_json(j, base) for j in jobs]})
        if len(rest) != 1:
            raise self._method(m)
        job = org.jobs.get(_int(rest[0], "requestId"))
        if job is None or job.pool is not pool:
            raise DevOpsError(404, "TaskAgentJobRequestNotFoundException",
                              f"The job request {rest[0]} could not be found in pool {pool.name}.")
        if m == "GET":
            if who["kind"] == "agent":
                self._agent_only(who, pool)
            else:
                self._require(who, READ_SCOPES, m, allow_agent=False)
            return Reply(200, self.job_json(job, base))
        if m != "PATCH":
            raise self._method(m)
        agent = self._agent_only(who, pool)
        if job.agent is not agent:
            raise DevOpsError(409, "TaskAgentJobTokenExpiredException",
                              f"The job request {job.request_id} is not assigned to agent {agent.name}.")
        if "lockToken" not in q:
            raise DevOpsError(400, "ArgumentNullException", "Value cannot be null.\r\nParameter name: lockToken",
                              namespace="System")
        body = self._body(req)
        now = time.time()
        if agent.session is not None:
            agent.session.last_poll = now  # a busy agent renews instead of polling
        if job.result is None:
            result = body.get("result")
            if result is not None or body.get("finishTime"):
                canon = {r.lower(): r for r in TASK_RESULTS}.get(str(result).lower()) \
                    if result is not None else "succeeded"
                if canon is None:
                    raise DevOpsError(400, "ArgumentException", f"'{result}' is not a valid TaskResult.",
                                      namespace="System")
                self._finish(job, canon, now)
            else:
                job.locked_until = now + float(self.settings["jobLockSeconds"])
                job.renewals += 1
        return Reply(200, self.job_json(job, base))

    def _finish(self, job, result, now):
        job.result = result
        job.finish_time = now
        job.locked_until = None
        agent = job.agent
        if agent is not None and agent.assigned is job:
            agent.assigned = None
            agent.last_completed = job
        self.cond.notify_all()

    # -- time -------------------------------------------------------------------------------------------

    def _tick(self, now):
        timeout = float(self.settings["sessionTimeoutSeconds"])
        for org in self.orgs.values():
            for agent in org.agents.values():
                s = agent.session
                if s is not None and s.polling == 0 and now - s.last_poll > timeout:
                    self._drop_session(agent)
                job = agent.assigned
                if job is not None and job.result is None and job.locked_until is not None \
                        and now > job.locked_until:
                    self._finish(job, "abandoned", job.locked_until)

    # -- control endpoint (/_emulator/devops/...) ---------------------------------------------------

    def control(self, req, m, parts, body):
        with self.cond:
            self._tick(time.time())
            if parts == ["settings"]:
                if m in ("PUT", "PATCH"):
                    unknown = set(body) - set(default_settings())
                    if unknown:
                        raise ArmError(400, "BadRequest", f"unknown settings: {', '.join(sorted(unknown))}")
                    if "jobResult" in body and body["jobResult"] not in TASK_RESULTS:
                        raise ArmError(400, "BadRequest", f"jobResult must be one of {', '.join(TASK_RESULTS)}")
                    self.settings.update(body)
                elif m != "GET":
                    raise ArmError(405, "MethodNotAllowed", "use GET, PUT or PATCH")
                return Reply(200, dict(self.settings))
            if parts == ["jobs"] and m == "GET":
                return Reply(200, {"value": self.describe_jobs(req.query.get("org"), req.query.get("pool"))})
            if parts == ["orgs"] and m == "GET":
                return Reply(200, {"value": [self.describe_org(o, req.base_url) for o in self.orgs.values()]})
            if len(parts) >= 2 and parts[0] == "orgs":
                return self._control_org(req, m, parts[1], parts[2:], body)
        raise ArmError(404, "NotFound", f"no control route {m} /_emulator/devops/{'/'.join(parts)}")

    def _control_org(self, req, m, name, rest, body):
        key = name.lower()
        org = self.orgs.get(key)
        if not rest:
            if m == "PUT":
                created = org is None
                if created:
                    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,48}[A-Za-z0-9]?", name):
                        raise ArmError(400, "BadRequest", "organization names are 1-50 letters, digits and '-'")
                    org = self.orgs[key] = Org(name)
                    if body.get("defaultPools", True):
                        org.pools[1] = Pool(org, 1, "Default")
                        org.pools[2] = Pool(org, 2, "Azure Pipelines", hosted=True)
                if "entraClients" in body:
                    ec = body["entraClients"]
                    org.entra_clients = None if ec is None else [str(c) for c in ec]
                return Reply(201 if created else 200, self.describe_org(org, req.base_url))
            if org is None:
                raise ArmError(404, "NotFound", f"organization {name} does not exist")
            if m == "GET":
                return Reply(200, self.describe_org(org, req.base_url))
            if m == "DELETE":
                for agent in list(org.agents.values()):
                    self.delete_agent(org, agent, "organization deleted")
                del self.orgs[key]
                return Reply(200, {"ok": True})
            raise ArmError(405, "MethodNotAllowed", "use GET, PUT or DELETE")
        if org is None:
            raise ArmError(404, "NotFound", f"organization {name} does not exist")
        if rest == ["pats"] and m == "POST":
            return self._create_pat(org, body)
        if len(rest) == 2 and rest[0] == "pats" and m == "DELETE":
            pat = org.pats.get(rest[1])
            if pat is None:
                raise ArmError(404, "NotFound", f"PAT {rest[1]} does not exist")
            pat["revoked"] = True
            return Reply(200, {"ok": True})
        if rest[0] == "pools" and len(rest) >= 2:
            pool = org.pool_by_name(rest[1])
            if len(rest) == 2:
                if m == "PUT":
                    if pool is None:
                        pool = Pool(org, org.next_pool, rest[1])
                        org.pools[pool.id] = pool
                        org.next_pool += 1
                        return Reply(201, self.describe_pool(pool, req.base_url))
                    return Reply(200, self.describe_pool(pool, req.base_url))
                if pool is None:
                    raise ArmError(404, "NotFound", f"pool {rest[1]} does not exist")
                if m == "GET":
                    return Reply(200, self.describe_pool(pool, req.base_url))
                if m == "DELETE":
                    for agent in pool.agents():
                        self.delete_agent(org, agent, "pool deleted")
                    for job in org.jobs.values():
                        if job.pool is pool and job.result is None:
                            self._finish(job, "canceled", time.time())
                    del org.pools[pool.id]
                    return Reply(200, {"ok": True})
                raise ArmError(405, "MethodNotAllowed", "use GET, PUT or DELETE")
            if pool is None:
                raise ArmError(404, "NotFound", f"pool {rest[1]} does not exist")
            if rest[2:] == ["jobs"] and m == "POST":
                return self._queue_jobs(org, pool, body)
            if rest[2:] == ["jobs"] and m == "GET":
                return Reply(200, {"value": self.describe_jobs(org.name, pool.name)})
        raise ArmError(404, "NotFound", f"no control route {m} under organization {name}: {'/'.join(rest)}")

    def _create_pat(self, org, body):
        scopes = body.get("scopes")
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or not scopes:
            raise ArmError(400, "BadRequest", "scopes is a non-empty list, e.g. [\"vso.agentpools_manage\"]")
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            raise ArmError(400, "BadRequest", f"unknown scopes {unknown}; known: {sorted(KNOWN_SCOPES)}")
        token = body.get("token")
        generated = token is None
        if generated:
            token = "".join(secrets.choice(PAT_ALPHABET) for _ in range(52))
        if not isinstance(token, str) or len(token) < 8:
            raise ArmError(400, "BadRequest", "token must be a string of at least 8 characters")
        pat_id = str(uuid.uuid4())
        expires = body.get("expiresInSeconds")
        org.pats[pat_id] = {"token": token, "name": str(body.get("name") or f"pat-{len(org.pats) + 1}"),
                            "scopes": list(scopes), "revoked": False,
                            "expires": None if expires is None else time.time() + float(expires)}
        out = {"id": pat_id, "name": org.pats[pat_id]["name"], "scopes": list(scopes)}
        if generated:
            out["token"] = token  # shown once, as the portal does; never logged
        return Reply(201, out)

    def _queue_jobs(self, org, pool, body):
        count = int(body.get("count", 1))
        if count < 1 or count > 10000:
            raise ArmError(400, "BadRequest", "count must be 1..10000")
        duration = float(body.get("durationSeconds", self.settings["jobDurationSeconds"]))
        result = body.get("result", self.settings["jobResult"])
        if result not in TASK_RESULTS:
            raise ArmError(400, "BadRequest", f"result must be one of {', '.join(TASK_RESULTS)}")
        made = []
        for _ in range(count):
            rid = org.next_request
            org.next_request += 1
            job = Job(pool, rid, str(body.get("name") or f"Job {rid}"), duration, result, rid)
            org.jobs[rid] = job
            made.append(job)
        self._fail_if_no_agent(pool)
        self.cond.notify_all()
        return Reply(201, {"value": [self._describe_job(j) for j in made]})

    # -- descriptions -----------------------------------------------------------------------------

    def describe_org(self, org, base):
        return {"name": org.name, "id": org.id, "url": f"{base}/devops/{org.name}",
                "authorizationUrl": self.authorization_url(org, base),
                "entraClients": org.entra_clients,
                "pats": [{"id": i, "name": p["name"], "scopes": p["scopes"], "revoked": p["revoked"]}
                         for i, p in org.pats.items()],
                "pools": [self.describe_pool(p, base) for p in org.pools.values()]}

    def describe_pool(self, pool, base):
        return {"id": pool.id, "name": pool.name, "isHosted": pool.hosted,
                "agents": [{"id": a.id, "name": a.name, "status": a.status, "enabled": a.enabled,
                            "clientId": a.client_id, "keyFingerprint": a.key.fingerprint() if a.key else None,
                            "keyGeneration": a.key_generation,
                            "session": None if a.session is None else {
                                "ownerName": a.session.owner_name,
                                "container": a.session.caps.get("emulator.container"),
                                "containerGroup": a.session.caps.get("emulator.containerGroup"),
                                "start": a.session.caps.get("emulator.start")},
                            "assignedRequestId": a.assigned.request_id if a.assigned else None}
                           for a in pool.agents()],
                "queued": sum(1 for j in pool.org.jobs.values() if j.pool is pool and j.state == "queued"),
                "running": sum(1 for j in pool.org.jobs.values() if j.pool is pool and j.state == "assigned")}

    @staticmethod
    def _describe_job(job):
        return {"org": job.pool.org.name, "pool": job.pool.name, "poolId": job.pool.id,
                "requestId": job.request_id, "name": job.name, "state": job.state, "result": job.result,
                "durationSeconds": job.duration, "plannedResult": job.planned_result,
                "queueTime": iso(job.queue_time),
                "assignTime": iso(job.assign_time) if job.assign_time else None,
                "finishTime": iso(job.finish_time) if job.finish_time else None,
                "renewals": job.renewals, "error": job.error,
                "agent": dict(job.agent_ref) if job.agent_ref else None,
                "ranIn": dict(job.ran_in) if job.ran_in else None}

    def describe_jobs(self, org_name=None, pool_name=None):
        out = []
        for org in self.orgs.values():
            if org_name and org.name.lower() != org_name.lower():
                continue
            for job in org.jobs.values():
                if pool_name and job.pool.name.lower() != pool_name.lower():
                    continue
                out.append(self._describe_job(job))
        return out
