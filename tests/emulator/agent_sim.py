"""A simulated Azure Pipelines agent container: the image's start script plus
`run.sh --once`, against the Azure DevOps stand-in (devops.py).

The ACI stand-in runs it as the program of a container whose image is the
agent image (`run_agent(ctx) -> exit code`, registered as
"azure-pipelines-agent"); tests may also call it directly. `ctx` has
group_id, group_name, container_name, image, env (every environment
variable, plain and secure), start (0-based count of this container's
starts), stop (threading.Event: return soon after it is set) and
emulator_url. Attribute or dict access both work.

Environment contract (shared with agents/azure-pipelines/start.sh):
  AZP_URL         organization URL: https://dev.azure.com/{org} (mapped onto
                  {emulator_url}/devops/{org}; https://{org}.visualstudio.com
                  too) or the emulator's own form
  AZP_POOL        agent pool name
  AZP_AGENT_NAME  agent name (stable per instance)
and one of two modes:
  token mode      AZP_TOKEN: a PAT (sent as Basic) or an Entra access token
                  (a JWT, sent as Bearer) with Agent Pools (read, manage).
                  The agent makes a new RSA key and registers itself as
                  `config.sh --unattended --replace` does: an agent of the same
                  name is replaced (PUT, its key changed), else added (POST).
  pre-registered  AZP_AGENT_ID, AZP_AGENT_CLIENT_ID, AZP_AGENT_AUTH_URL and
                  AZP_AGENT_KEY (base64 of the agent's .credentials_rsaparams
                  JSON: ContainerName, UseCng, d, dp, dq, exponent, inverseQ,
                  modulus, p, q). Optional AZP_POOL_ID saves the pool lookup.
                  No pool-admin credential is present at all.
Setting both AZP_TOKEN and AZP_AGENT_KEY is refused (ambiguous).
Optional AGENT_SIM_START_SECONDS (a number >= 0, default 0) is how long the
agent takes from the container's start to its first request (a real agent's
listener start, or its self-update): the agent stays offline meanwhile, as a
freshly started container's agent does. A stop during it ends the start.

Then, as the agent does: exchange a JWT client assertion signed with the key
for an OAuth token at the authorizationUrl, create a session (online), long-
poll for one job message, renew the job request's lock while the job "runs"
(for the job's duration, read from the message), finish it with its result,
delete the session (offline) and exit 0. The session reports which container
start it is (system capabilities emulator.*), which the stand-in records on
the job. The credential is dropped from the environment before the job starts;
the job sees only the remaining variable names (capability
emulator.jobEnvNames). Exit codes: 0 done (or stopped), 1 refused credential
or API error, 2 bad environment.
"""

import base64
import json
import os
import sys
import threading
import time
import uuid
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import Request, urlopen

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rsa_keys import RsaKey, jwt_sign  # noqa: E402

PROGRAM = "azure-pipelines-agent"
API = "api-version=7.1"
KEY_BITS = 2048           # the agent's RSACryptoServiceProvider(2048); tests may lower it
AGENT_VERSION = "4.258.1"
REQUIRED = ("AZP_URL", "AZP_POOL", "AZP_AGENT_NAME")
PRE_REGISTERED = ("AZP_AGENT_ID", "AZP_AGENT_CLIENT_ID", "AZP_AGENT_AUTH_URL", "AZP_AGENT_KEY")
SECRET_VARS = ("AZP_TOKEN", "AZP_AGENT_KEY")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SESSION_CONFLICT_RETRY_SECONDS = 60.0


class AgentExit(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _ctx(ctx, name, default=None):
    if isinstance(ctx, dict):
        return ctx.get(name, default)
    return getattr(ctx, name, default)


def map_org_url(url, emulator_url):
    """https://dev.azure.com/{org} or https://{org}.visualstudio.com -> the
    emulator's {emulator_url}/devops/{org}; anything else unchanged."""
    u = url.strip().rstrip("/")
    p = urlsplit(u)
    host = (p.hostname or "").lower()
    if host == "dev.azure.com":
        org = p.path.strip("/").split("/")[0]
        return f"{emulator_url.rstrip('/')}/devops/{org}"
    if host.endswith(".visualstudio.com") and host.count(".") == 2:
        return f"{emulator_url.rstrip('/')}/devops/{host.split('.')[0]}"
    return u


def map_auth_url(url, emulator_url):
    p = urlsplit(url.strip())
    if (p.hostname or "").lower() == "vstoken.dev.azure.com":
        return f"{emulator_url.rstrip('/')}/devops/_vstoken{p.path}"
    return url.strip()


class Http:
    """Tiny JSON client. Never logs a header or body."""

    def __init__(self, log, stop):
        self.log = log
        self.stop = stop

    def call(self, method, url, auth=None, body=None, form=None, timeout=30.0, retry=True):
        """(status, json-or-None, headers). Retries 429/5xx honouring
        Retry-After until `stop` is set."""
        while True:
            headers = {"Accept": "application/json", "User-Agent": f"VSServices/{AGENT_VERSION} (agent_sim)"}
            data = None
            if auth:
                headers["Authorization"] = auth
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            elif form is not None:
                data = urlencode(form).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            try:
                with urlopen(Request(url, data=data, method=method, headers=headers), timeout=timeout) as r:
                    status, raw, rh = r.status, r.read(), r.headers
            except HTTPError as e:
                status, raw, rh = e.code, e.read(), e.headers
            except (URLError, OSError) as e:
                if not retry or self.stop.is_set():
                    raise AgentExit(1, f"error: cannot reach {urlsplit(url).netloc}: {e}") from None
                self.log(f"connection error ({e}); retrying")
                if self.stop.wait(1.0):
                    raise AgentExit(0, "stopped") from None
                continue
            if retry and (status == 429 or status >= 500):
                delay = float(rh.get("Retry-After") or 1)
                self.log(f"{method} {urlsplit(url).path} answered {status}; retrying in {delay:g}s")
                if self.stop.wait(min(delay, 30.0)):
                    raise AgentExit(0, "stopped")
                continue
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return status, parsed, rh


def _error_text(status, body):
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error_description") or body.get("error")
        if msg:
            return f"{status}: {msg}"
    return str(status)


def run_agent(ctx):
    """Run one simulated agent container start to its end. Returns the exit code."""
    stop = _ctx(ctx, "stop") or threading.Event()
    where = f"{_ctx(ctx, 'group_name', '?')}/{_ctx(ctx, 'container_name', '?')}#{_ctx(ctx, 'start', 0)}"
    sink = _ctx(ctx, "log")

    def log(line):
        text = f"agent_sim {where}: {line}"
        if callable(sink):
            sink(text)
        else:
            sys.stderr.write(text + "\n")

    try:
        return _run(ctx, stop, log)
    except AgentExit as e:
        if e.code:
            log(str(e))
        return e.code


def _run(ctx, stop, log):
    env = dict(_ctx(ctx, "env") or {})
    emulator_url = _ctx(ctx, "emulator_url") or ""
    missing = [k for k in REQUIRED if not env.get(k)]
    token = env.get("AZP_TOKEN") or None
    have_pre = [k for k in PRE_REGISTERED if env.get(k)]
    if token and env.get("AZP_AGENT_KEY"):
        raise AgentExit(2, "error: set either AZP_TOKEN or the AZP_AGENT_* variables, not both")
    if not token:
        if have_pre:
            missing += [k for k in PRE_REGISTERED if not env.get(k)]
        else:
            missing.append("AZP_TOKEN (or AZP_AGENT_ID, AZP_AGENT_CLIENT_ID, AZP_AGENT_AUTH_URL, AZP_AGENT_KEY)")
    if missing:
        raise AgentExit(2, "error: missing environment variable(s): " + ", ".join(missing))
    if not emulator_url and "/devops/" not in env["AZP_URL"]:
        raise AgentExit(2, "error: no emulator_url to map AZP_URL onto")
    try:
        start_seconds = float(env.get("AGENT_SIM_START_SECONDS") or 0)
    except ValueError:
        raise AgentExit(2, "error: AGENT_SIM_START_SECONDS is not a number") from None
    if start_seconds < 0 or start_seconds != start_seconds:
        raise AgentExit(2, "error: AGENT_SIM_START_SECONDS is not a number >= 0")
    org_url = map_org_url(env["AZP_URL"], emulator_url)
    pool_name, agent_name = env["AZP_POOL"], env["AZP_AGENT_NAME"]
    http = Http(log, stop)
    # The start script drops the credential before the agent runs a job.
    job_env_names = sorted(k for k in env if k not in SECRET_VARS)

    if start_seconds and stop.wait(start_seconds):
        raise AgentExit(0, "stopped")
    if token:
        auth = f"Bearer {token}" if token.count(".") == 2 else \
            "Basic " + base64.b64encode(f"agent:{token}".encode()).decode()
        del token
        pool_id, agent_id, client_id, auth_url, key = _configure(http, log, org_url, pool_name, agent_name, auth)
        del auth
    else:
        try:
            key = RsaKey.from_rsaparams_json(base64.b64decode(env["AZP_AGENT_KEY"]).decode("utf-8"))
            agent_id = int(env["AZP_AGENT_ID"])
        except (ValueError, UnicodeDecodeError) as e:
            raise AgentExit(2, f"error: AZP_AGENT_KEY or AZP_AGENT_ID is not valid: {e}") from None
        client_id = env["AZP_AGENT_CLIENT_ID"]
        auth_url = map_auth_url(env["AZP_AGENT_AUTH_URL"], emulator_url)
        pool_id = int(env["AZP_POOL_ID"]) if env.get("AZP_POOL_ID", "").isdigit() else None
    env = None  # nothing below reads the container environment again
    if stop.is_set():
        raise AgentExit(0, "stopped")
    bearer = _agent_token(http, auth_url, client_id, key)
    log(f"authenticated as agent {agent_name} (id {agent_id})")
    if pool_id is None:
        status, body, _ = http.call("GET", f"{org_url}/_apis/distributedtask/pools?poolName={quote(pool_name)}&{API}",
                                    auth=bearer)
        _check(status, body, "looking up the pool")
        if not body.get("value"):
            raise AgentExit(1, f"error: agent pool '{pool_name}' not found")
        pool_id = body["value"][0]["id"]
    base = f"{org_url}/_apis/distributedtask/pools/{pool_id}"
    caps = {"Agent.Name": agent_name, "Agent.Version": AGENT_VERSION, "Agent.OS": "Linux",
            "Agent.ComputerName": str(_ctx(ctx, "group_name", "")),
            "emulator.containerGroupId": str(_ctx(ctx, "group_id", "")),
            "emulator.containerGroup": str(_ctx(ctx, "group_name", "")),
            "emulator.container": str(_ctx(ctx, "container_name", "")),
            "emulator.start": str(_ctx(ctx, "start", 0)),
            "emulator.image": str(_ctx(ctx, "image", "")),
            "emulator.jobEnvNames": ",".join(job_env_names)}
    if stop.is_set():
        raise AgentExit(0, "stopped")
    session_id = _create_session(http, log, stop, base, bearer, agent_id, agent_name, caps)
    log("listening for jobs")
    try:
        return _listen_once(http, log, stop, base, bearer, session_id)
    finally:
        http.call("DELETE", f"{base}/sessions/{session_id}?{API}", auth=bearer, timeout=5.0, retry=False)
        log("session closed; agent offline")


def _check(status, body, what):
    if status == 401:
        raise AgentExit(1, f"error: the credential was refused while {what} ({_error_text(status, body)})")
    if status == 403:
        raise AgentExit(1, f"error: access denied while {what} ({_error_text(status, body)})")
    if status >= 300:
        raise AgentExit(1, f"error: {what} failed ({_error_text(status, body)})")


def _configure(http, log, org_url, pool_name, agent_name, auth):
    """config.sh --unattended --replace: find the pool, make a key, add or
    replace the agent. Returns (poolId, agentId, clientId, authorizationUrl, key)."""
    status, body, _ = http.call("GET", f"{org_url}/_apis/connectionData?{API}", auth=auth)
    _check(status, body, "connecting to the organization")
    status, body, _ = http.call("GET", f"{org_url}/_apis/distributedtask/pools?poolName={quote(pool_name)}&{API}",
                                auth=auth)
    _check(status, body, "looking up the pool")
    if not body.get("value"):
        raise AgentExit(1, f"error: agent pool '{pool_name}' not found")
    pool_id = body["value"][0]["id"]
    base = f"{org_url}/_apis/distributedtask/pools/{pool_id}"
    key = RsaKey.generate(KEY_BITS)
    status, body, _ = http.call("GET", f"{base}/agents?agentName={quote(agent_name)}&{API}", auth=auth)
    _check(status, body, "looking for an existing agent")
    existing = (body or {}).get("value") or []
    agent = {"name": agent_name, "version": AGENT_VERSION, "osDescription": "Linux (agent_sim)",
             "maxParallelism": 1, "provisioningState": "Provisioned", "enabled": True,
             "authorization": {"publicKey": key.public_key_json()},
             "systemCapabilities": {"Agent.Name": agent_name, "Agent.OS": "Linux"}}
    if existing:
        agent["id"] = existing[0]["id"]
        status, body, _ = http.call("PUT", f"{base}/agents/{agent['id']}?{API}", auth=auth, body=agent)
        _check(status, body, "replacing the agent")
        log(f"replaced agent {agent_name} (id {body['id']})")
    else:
        status, body, _ = http.call("POST", f"{base}/agents?{API}", auth=auth, body=agent)
        _check(status, body, "adding the agent")
        log(f"added agent {agent_name} (id {body['id']})")
    authz = body.get("authorization") or {}
    if not authz.get("clientId") or not authz.get("authorizationUrl"):
        raise AgentExit(1, "error: the service returned no agent authorization")
    return pool_id, body["id"], authz["clientId"], authz["authorizationUrl"], key


def _agent_token(http, auth_url, client_id, key):
    now = int(time.time())
    assertion = jwt_sign(key, {"iss": client_id, "sub": client_id, "aud": auth_url, "nbf": now,
                               "exp": now + 300, "jti": str(uuid.uuid4())})
    status, body, _ = http.call("POST", auth_url, form={"grant_type": "client_credentials",
                                                        "client_assertion_type": ASSERTION_TYPE,
                                                        "client_assertion": assertion})
    if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
        raise AgentExit(1, f"error: the agent's credential was refused ({_error_text(status, body)})")
    return f"Bearer {body['access_token']}"


def _create_session(http, log, stop, base, bearer, agent_id, agent_name, caps):
    deadline = time.monotonic() + SESSION_CONFLICT_RETRY_SECONDS
    body = {"ownerName": caps["Agent.ComputerName"] or agent_name,
            "agent": {"id": agent_id, "name": agent_name, "version": AGENT_VERSION, "osDescription": "Linux"},
            "systemCapabilities": caps, "useFipsEncryption": False}
    while True:
        status, answer, _ = http.call("POST", f"{base}/sessions?{API}", auth=bearer, body=body)
        if status == 409 and time.monotonic() < deadline:
            log("a session for this agent already exists; retrying")
            if stop.wait(1.0):
                raise AgentExit(0, "stopped")
            continue
        _check(status, answer, "creating a session")
        return answer["sessionId"]


def _poll(http, url, bearer, stop):
    """GET messages in a helper thread so a set `stop` is honoured at once."""
    box = {}

    def work():
        try:
            box["answer"] = http.call("GET", url, auth=bearer, timeout=120.0)
        except AgentExit as e:
            box["error"] = e

    t = threading.Thread(target=work, daemon=True, name="agent-sim-poll")
    t.start()
    while t.is_alive():
        if stop.wait(0.05):
            return None
    if "error" in box:
        raise box["error"]
    return box["answer"]


def _listen_once(http, log, stop, base, bearer, session_id):
    last = None
    while True:
        if stop.is_set():
            return 0
        url = f"{base}/messages?sessionId={session_id}&{API}" + (f"&lastMessageId={last}" if last else "")
        got = _poll(http, url, bearer, stop)
        if got is None:
            return 0
        status, msg, _ = got
        if status in (202, 204) or (status == 200 and not msg):
            continue
        _check(status, msg, "getting a message")
        last = msg["messageId"]
        http.call("DELETE", f"{base}/messages/{last}?sessionId={session_id}&{API}", auth=bearer)
        if msg.get("messageType") not in ("PipelineAgentJobRequest", "JobRequest"):
            log(f"ignoring message type {msg.get('messageType')}")
            continue
        return _run_job(http, log, stop, base, bearer, json.loads(msg["body"]))


def _run_job(http, log, stop, base, bearer, job):
    request_id = job["requestId"]
    variables = job.get("variables") or {}
    duration = float((variables.get("emulator.durationSeconds") or {}).get("value") or 0)
    result = (variables.get("emulator.result") or {}).get("value") or "succeeded"
    url = f"{base}/jobrequests/{request_id}?lockToken=00000000-0000-0000-0000-000000000000&{API}"
    log(f"running job request {request_id} ({job.get('jobDisplayName')}) for {duration:g}s")
    status, answer, _ = http.call("PATCH", url, auth=bearer, body={"requestId": request_id})
    _check(status, answer, "renewing the job request")
    ends = time.monotonic() + duration
    renew_every = 30.0
    canceled = False
    while True:
        left = ends - time.monotonic()
        if left <= 0:
            break
        if stop.wait(min(left, renew_every)):
            canceled = True
            break
        if ends - time.monotonic() > 0:
            status, answer, _ = http.call("PATCH", url, auth=bearer, body={"requestId": request_id})
            _check(status, answer, "renewing the job request")
            if answer.get("result"):
                log(f"job request {request_id} ended on the server ({answer['result']})")
                return 0
    final = "canceled" if canceled else result
    status, answer, _ = http.call("PATCH", url, auth=bearer, retry=not canceled,
                                  body={"requestId": request_id, "result": final,
                                        "finishTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    if not canceled:
        _check(status, answer, "finishing the job request")
    elif status >= 300:
        # Stopping: say why the service did not take the result, and go on.
        log(f"job request {request_id}: finishing as canceled answered {status}")
    log(f"job request {request_id} finished: {final}")
    return 0


def register_with_aci():
    """Make this the program of the agent image in the ACI stand-in (aci.py,
    written alongside): aci.register_program("azure-pipelines-agent", run_agent).
    Returns False if aci.py (or its register_program) does not exist."""
    try:
        import aci  # noqa: WPS433 (optional sibling module)
    except ImportError:
        return False
    register = getattr(aci, "register_program", None)
    if register is None:
        return False
    register(PROGRAM, run_agent)
    return True


# aci.py imports this module (aci._load_known_programs) so that images whose
# rule names "azure-pipelines-agent" run this program.
register_with_aci()
