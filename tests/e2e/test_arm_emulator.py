"""The ARM client and Azure identity (reconcilers/azure/: arm.c, acr.c,
blob.c, identity.c) end to end against the Azure emulator: a real peer that
follows the published swagger, its LRO shapes in both api-versions, its
token endpoint and IMDS.

Each test drives acrpool-armtool (tests/e2e/armtool/armtool.c), a thin
command-line driver over azure/arm.h, acr.h and blob.h, and checks two
views of the same calls: the tool's JSON (what the client understood,
including the HTTP attempts it made and how long it slept) and the
emulator's request log (what went over the wire: method, path,
api-version, body, x-ms-client-request-id, User-Agent).
No token, secret or SAS signature may appear in anything the tool prints,
and the sanitizers must have nothing to say.
"""
import base64
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
import uuid

import pytest

from emulator import CLIENT, RG, SUB, TENANT, Emulator
from procs import BUILD, wait_until

TOOL = BUILD / "tests" / "unit" / "acrpool-armtool"
REG = "myregistry"
V2019 = "2019-06-01-preview"
V2025 = "2025-03-01-preview"
VREG = "2023-07-01"
SECRET = "emu-secret-" + uuid.uuid4().hex  # distinctive, so a leak is findable
ISSUER = "https://oidc.acrpool.test/issuer"
SUBJECT = "system:serviceaccount:acrpool-system:acrpool-controller"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
REG_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{REG}"
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"
IMDS_PATH = "/metadata/identity/oauth2/token"
ARM_SCOPE = "https://management.azure.com/.default"

EXIT_CALL, EXIT_USAGE, EXIT_LRO_FAILED = 1, 2, 3
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def redacted(value):
    """How the emulator's request log stands in for a secret (same hash)."""
    return "<redacted sha256:%s>" % hashlib.sha256(value.encode()).hexdigest()[:12]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def federated_jwt(exp_in=3600, subject=SUBJECT):
    """A projected service-account token as the kubelet writes it: the
    emulator checks iss, sub, aud and exp, not the signature."""
    now = int(time.time())
    header = {"alg": "RS256", "kid": "test", "typ": "JWT"}
    claims = {"iss": ISSUER, "sub": subject, "aud": ["api://AzureADTokenExchange"], "iat": now,
              "nbf": now, "exp": now + exp_in, "jti": str(uuid.uuid4())}
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                     b64url(os.urandom(64))])


def assert_clean(text, secrets=()):
    """Nothing secret and no sanitizer report in the tool's output."""
    for marker in SANITIZER_MARKERS:
        assert marker not in text, f"sanitizer report:\n{text[-4000:]}"
    for s in (SECRET, *secrets):
        assert s not in text, "a secret leaked into the tool's output"
    # Every access token the emulator issues, and every federated
    # assertion, is a JWT: base64url of '{"' starts with eyJ.
    assert "eyJ" not in text, f"a token leaked into the tool's output:\n{text}"
    # SAS URLs carry their signature in the query.
    assert "sig=" not in text and "?sv=" not in text, f"a SAS URL leaked:\n{text}"


class Result:
    def __init__(self, rc, stdout, stderr, elapsed):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.lines = [json.loads(l) for l in stdout.splitlines() if l.strip()]

    @property
    def out(self):
        assert len(self.lines) == 1, self.stdout
        return self.lines[0]

    @property
    def error(self):
        assert "error" in self.out, self.stdout
        return self.out["error"]

    def statuses(self, line=0):
        return [h["status"] for h in self.lines[line]["http"]]

    def __repr__(self):
        return f"Result(rc={self.rc}, stdout={self.stdout!r}, stderr={self.stderr[-2000:]!r})"


class Az:
    """The emulator set up for one test, and the tool pointed at it."""

    def __init__(self, emu, tmp_path):
        self.emu = emu
        self.tmp = tmp_path
        self.token_file = tmp_path / "azure-identity-token"

    # -- emulator side ------------------------------------------------------------

    def setup(self, **registry):
        self.emu.registry(SUB, RG, REG, **registry)
        self.emu.client(TENANT, CLIENT, secret=SECRET,
                        federated=[{"issuer": ISSUER, "subject": SUBJECT}])

    def log(self, method=None, path_contains=None):
        return self.emu.requests(method=method, path_contains=path_contains)

    def arm_log(self):
        return [e for e in self.log() if e["path"].startswith("/subscriptions/")]

    def token_log(self):
        return [e for e in self.log() if e["path"] in (TOKEN_PATH, IMDS_PATH)]

    def wire(self):
        """The request log as (method, short path, status), tokens included."""
        out = []
        for e in self.log():
            p = e["path"]
            if p.startswith(REG_PATH):
                p = "REG" + p[len(REG_PATH):]
            elif p == TOKEN_PATH:
                p = "TOKEN"
            elif p == IMDS_PATH:
                p = "IMDS"
            out.append((e["method"], p, e["status"]))
        return out

    # -- tool side --------------------------------------------------------------------

    def argv(self, *args, credential="sp", api_version=None, extra=()):
        base = [str(TOOL), "--arm-endpoint", self.emu.url, "--authority-host", self.emu.url + "/",
                "--imds-endpoint", self.emu.url, "--credential", credential,
                "--subscription", SUB, "--resource-group", RG, "--registry", REG]
        if credential == "sp":
            base += ["--tenant", TENANT, "--client", CLIENT, "--secret-env", "ARMTOOL_SECRET"]
        elif credential == "workload":
            base += ["--tenant", TENANT, "--client", CLIENT, "--token-file", str(self.token_file)]
        if api_version:
            base += ["--api-version", api_version]
        # Options may be written among the arguments here; the tool wants
        # them before the command.
        opts, rest, it = [*extra], [], iter(args)
        for a in it:
            if a in ("--wait", "--step"):
                opts.append(a)
            elif a.startswith("--"):
                opts += [a, next(it)]
            else:
                rest.append(a)
        return [*base, *opts, *rest]

    def env(self, secret=SECRET):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        env["ARMTOOL_SECRET"] = secret
        # The emulator is on loopback: no proxy in between.
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                  "AZURE_AUTHORITY_HOST", "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
            env.pop(k, None)
        return env

    def run(self, *args, expect=0, secret=SECRET, secrets=(), timeout=120, **kw):
        argv = self.argv(*args, **kw)
        started = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, env=self.env(secret), timeout=timeout)
        r = Result(p.returncode, p.stdout, p.stderr, time.monotonic() - started)
        assert_clean(p.stdout + p.stderr, (secret, *secrets))
        assert r.rc == expect, r
        return r

    def start(self, *args, **kw):
        """The tool with --step: it reads a line from stdin before every
        repetition after the first. Returns the process."""
        return subprocess.Popen(self.argv(*args, **kw), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env())

    def write_json(self, name, obj):
        path = self.tmp / name
        path.write_text(json.dumps(obj))
        return str(path)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    assert TOOL.exists(), (f"{TOOL} is missing: build it with `ninja -C {BUILD} acrpool-armtool` "
                           "(or set ACRPOOL_BUILD_DIR)")
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


@pytest.fixture
def az(emu, tmp_path):
    emu.reset()
    a = Az(emu, tmp_path)
    a.setup()
    return a


def gaps(entries):
    return [b["time"] - a["time"] for a, b in zip(entries, entries[1:])]


def assert_arm_headers(entries):
    """Every ARM request: a bearer token, a fresh client request id per
    attempt, and a User-Agent naming acrpool."""
    assert entries
    for e in entries:
        assert e["hasAuthorization"], e
        assert e["clientRequestId"] and UUID_RE.match(e["clientRequestId"]), e
        assert e["userAgent"] and e["userAgent"].startswith("acrpool/"), e
    ids = [e["clientRequestId"] for e in entries]
    assert len(set(ids)) == len(ids), "x-ms-client-request-id reused across attempts"


# ---- every operation ----------------------------------------------------------------------


def test_registry_get_and_service_principal_token_request(az):
    r = az.run("registry-get")
    g = r.out["registry"]
    assert g["id"] == REG_PATH and g["skuName"] == "Premium" and g["loginServer"] == f"{REG}.azurecr.io"
    assert g["provisioningState"] == "Succeeded" and g["location"] == "eastus"
    assert r.statuses() == [200] and r.out["sleptMs"] == 0
    assert az.wire() == [("POST", "TOKEN", 200), ("GET", "REG", 200)]
    tok, get = az.log()
    # The client-credentials form: the secret went in the body (the log
    # keeps its hash only), the scope is the ARM audience's /.default.
    assert tok["body"]["grant_type"] == "client_credentials"
    assert tok["body"]["client_id"] == CLIENT and tok["body"]["scope"] == ARM_SCOPE
    assert tok["body"]["client_secret"] == redacted(SECRET)
    assert tok["userAgent"].startswith("acrpool/") and not tok["hasAuthorization"]
    assert get["apiVersion"] == VREG and get["body"] is None
    assert_arm_headers([get])


@pytest.mark.parametrize("version", [V2019, V2025])
def test_every_agent_pool_operation(az, version):
    create = az.run("pool-create", "pool1", "S1", "1", "--wait", api_version=version)
    assert create.out["pool"]["name"] == "pool1" and create.out["pool"]["tier"] == "S1"
    if version == V2019:  # immediate provisioning, no LRO headers: done at once
        assert create.out["operation"] is None
    else:  # 201 + Azure-AsyncOperation even when it is already done
        assert create.out["operation"]["kind"] == "AzureAsyncOperation"
        assert create.out["lro"]["state"] == "Succeeded"
        assert create.out["lro"]["result"]["properties"]["provisioningState"] == "Succeeded"

    got = az.run("pool-get", "pool1", api_version=version).out["pool"]
    assert (got["tier"], got["os"], got["count"], got["provisioningState"]) == ("S1", "Linux", 1, "Succeeded")
    assert got["id"] == f"{REG_PATH}/agentPools/pool1"

    upd = az.run("pool-update", "pool1", "2", "team=build", "env=ci", api_version=version).out
    assert upd["pool"]["count"] == 2 and upd["pool"]["tags"] == {"team": "build", "env": "ci"}
    assert upd["operation"] is None  # no delay: 200, nothing to poll

    listed = az.run("pool-list", api_version=version).out["pools"]
    assert [(p["name"], p["count"]) for p in listed] == [("pool1", 2)]
    assert az.run("pool-queue", "pool1", api_version=version).out["count"] == 0

    delete = az.run("pool-delete", "pool1", "--wait", api_version=version).out
    if version == V2019:
        assert delete["operation"] is None  # 200 when immediate
    else:
        assert delete["operation"]["kind"] == "Location" and delete["lro"]["state"] == "Succeeded"
    assert az.emu.control("GET", f"registries/{SUB}/{RG}/{REG}")["agentPools"] == []

    arm = az.arm_log()
    assert_arm_headers(arm)
    calls = [(e["method"], e["path"][len(REG_PATH):], e["apiVersion"]) for e in arm]
    pool = "/agentPools/pool1"
    expected = [("PUT", pool, version)]
    if version == V2025:
        expected += [("GET", arm[1]["path"][len(REG_PATH):], version), ("GET", pool, version)]
        assert "/operationStatuses/" in arm[1]["path"]
    expected += [("GET", pool, version), ("PATCH", pool, version), ("GET", "/agentPools", version),
                 ("POST", pool + "/listQueueStatus", version), ("DELETE", pool, version)]
    if version == V2025:
        expected.append(("GET", arm[-1]["path"][len(REG_PATH):], version))
        assert "/agentPoolsOperationResults/" in arm[-1]["path"]
    assert calls == expected
    put = arm[0]
    assert put["body"] == {"location": "eastus", "properties": {"count": 1, "tier": "S1", "os": "Linux"}}
    patch = next(e for e in arm if e["method"] == "PATCH")
    assert patch["body"] == {"properties": {"count": 2}, "tags": {"team": "build", "env": "ci"}}
    for e in arm:
        if e["method"] in ("GET", "DELETE") or e["path"].endswith("/listQueueStatus"):
            assert e["body"] is None, e
    # One token per process: six processes, six tokens.
    assert len(az.token_log()) == 6


def test_pool_create_with_subnet_and_tags_only_update(az):
    subnet = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
    r = az.run("pool-create", "pool2", "S2", "0", subnet)
    assert r.out["pool"]["subnetId"] == subnet and r.out["pool"]["count"] == 0
    assert az.arm_log()[0]["body"]["properties"]["virtualNetworkSubnetResourceId"] == subnet
    # COUNT "-" leaves the count out of the PATCH; "=" sends an empty tag set.
    az.emu.clear_requests()
    r = az.run("pool-update", "pool2", "-", "=")
    assert r.out["pool"]["tags"] == {} and r.out["pool"]["count"] == 0
    assert az.arm_log()[0]["body"] == {"tags": {}}


TASK = {"location": "eastus",
        "properties": {"platform": {"os": "Linux", "architecture": "amd64"}, "agentPoolName": "pool1",
                       "step": {"type": "Docker", "dockerFilePath": "Dockerfile", "imageNames": ["base:nightly"],
                                "contextPath": "https://github.com/org/repo.git"},
                       "trigger": {"timerTriggers": [{"name": "nightly", "schedule": "0 21 * * *"}]}}}


@pytest.mark.parametrize("version", [V2019, V2025])
def test_every_task_operation(az, version):
    az.emu.pool(SUB, RG, REG, "pool1", "PUT", {"tier": "S1", "count": 1})
    body = az.write_json("task.json", TASK)
    created = az.run("task-create", "nightly-build", body, api_version=version).out
    assert created["task"]["name"] == "nightly-build" and created["operation"] is None
    assert created["task"]["properties"]["provisioningState"] == "Succeeded"
    got = az.run("task-get", "nightly-build", api_version=version).out["task"]
    assert got["properties"]["step"]["imageNames"] == ["base:nightly"]
    patch = az.write_json("patch.json", {"properties": {"step": {"type": "Docker",
                                                                  "imageNames": ["base:weekly"]}}})
    updated = az.run("task-update", "nightly-build", patch, api_version=version).out
    assert updated["task"]["properties"]["step"]["imageNames"] == ["base:weekly"]
    assert updated["task"]["properties"]["step"]["dockerFilePath"] == "Dockerfile"  # merged
    listed = az.run("task-list", api_version=version).out["tasks"]
    assert [t["name"] for t in listed] == ["nightly-build"]
    assert az.run("task-delete", "nightly-build", api_version=version).out["operation"] is None
    # Deleting what is gone is success (204).
    assert az.run("task-delete", "nightly-build", api_version=version).out["operation"] is None

    arm = az.arm_log()
    assert_arm_headers(arm)
    task = "/tasks/nightly-build"
    assert [(e["method"], e["path"][len(REG_PATH):], e["apiVersion"], e["status"]) for e in arm] == [
        ("PUT", task, version, 201), ("GET", task, version, 200), ("PATCH", task, version, 200),
        ("GET", "/tasks", version, 200), ("DELETE", task, version, 200), ("DELETE", task, version, 204)]
    assert arm[0]["body"] == TASK  # sent as given
    assert arm[2]["body"] == {"properties": {"step": {"type": "Docker", "imageNames": ["base:weekly"]}}}


def make_tarball(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"FROM scratch\nCOPY . /\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def test_upload_schedule_and_every_run_operation(az):
    az.emu.settings(runDurationSeconds=0.5)
    url = az.run("upload-url").out
    assert url["relativePath"].startswith("source/") and url["relativePath"].endswith(".tar.gz")
    assert "/_blob/" in url["uploadUrlRedacted"] and "?" not in url["uploadUrlRedacted"]

    tgz = make_tarball(az.tmp / "context.tar.gz")
    up = az.run("upload", str(tgz)).out
    assert up["uploaded"] is True
    uploads = az.emu.control("GET", "uploads")["value"]
    assert any(u["sha256"] == hashlib.sha256(tgz.read_bytes()).hexdigest() and u["size"] == tgz.stat().st_size
               and u["path"].endswith(up["relativePath"]) for u in uploads), uploads
    blob = az.log(method="PUT", path_contains="/_blob/")
    assert len(blob) == 1 and blob[0]["status"] == 201
    # The SAS is the credential: the ARM bearer token never goes to storage.
    assert not blob[0]["hasAuthorization"]
    assert blob[0]["query"]["sig"].startswith("<redacted")

    request = az.write_json("run.json", {
        "type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "platform": {"os": "Linux"},
        "imageNames": ["app:{{.Run.ID}}"], "sourceLocation": up["relativePath"], "isPushEnabled": True})
    sched = az.run("run-schedule", request).out
    run_id = sched["run"]["runId"]
    assert sched["operation"] is None and sched["run"]["runType"] == "QuickBuild"

    def finished():
        run = az.run("run-get", run_id).out["run"]
        return run if run["terminal"] else None
    run = wait_until(f"run {run_id} to finish", finished, timeout=30, interval=0.2)
    assert run["status"] == "Succeeded", run  # the uploaded context was found
    assert run["outputImages"] and run["outputImages"][0]["tag"] == run_id

    # A second run that stays busy long enough to be cancelled.
    az.emu.settings(runDurationSeconds=60)
    second = az.run("run-schedule", request).out["run"]["runId"]
    assert az.run("run-cancel", second).out["operation"] is None
    assert az.run("run-get", second).out["run"]["status"] == "Canceled"

    runs = az.run("run-list").out["runs"]
    assert [r["runId"] for r in runs] == [second, run_id]  # newest first
    filtered = az.run("run-list", "status eq 'Succeeded'", "1").out["runs"]
    assert [r["runId"] for r in filtered] == [run_id]

    log_url = az.run("run-log-url", run_id).out
    assert log_url["hadQuery"] is True
    assert log_url["logUrlRedacted"].endswith(f"/_blob/{REG}/logs/{run_id}/rawtext.log")

    arm = az.arm_log()
    assert_arm_headers(arm)
    posts = [(e["path"][len(REG_PATH):], e["apiVersion"]) for e in arm if e["method"] == "POST"]
    assert posts == [("/listBuildSourceUploadUrl", V2019), ("/listBuildSourceUploadUrl", V2019),
                     ("/scheduleRun", V2019), ("/scheduleRun", V2019), (f"/runs/{second}/cancel", V2019),
                     (f"/runs/{run_id}/listLogSasUrl", V2019)]
    sched_body = next(e for e in arm if e["path"].endswith("/scheduleRun"))["body"]
    assert sched_body["sourceLocation"] == up["relativePath"] and sched_body["type"] == "DockerBuildRequest"
    lists = [e for e in arm if e["method"] == "GET" and e["path"].endswith("/runs")]
    assert lists[-1]["query"]["$filter"] == "status eq 'Succeeded'" and lists[-1]["query"]["$top"] == "1"
    assert all(e["status"] == 200 for e in arm)


# ---- LRO shapes -------------------------------------------------------------------------------


def test_create_2025_async_operation_honours_retry_after(az):
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=2.5)
    r = az.run("pool-create", "pool1", "S1", "1", "--wait", api_version=V2025)
    op, lro = r.out["operation"], r.out["lro"]
    assert op["kind"] == "AzureAsyncOperation" and op["method"] == "PUT"
    assert op["retryAfterMs"] == 1000 and "/operationStatuses/" in op["pollUrl"]
    assert r.out["pool"]["provisioningState"] == "Creating"
    assert lro["state"] == "Succeeded" and lro["errorCode"] is None
    assert lro["result"]["properties"]["provisioningState"] == "Succeeded"
    polls = az.log(method="GET", path_contains="/operationStatuses/")
    assert lro["polls"] == len(polls) >= 2
    assert [p["status"] for p in polls] == [200] * len(polls)
    # Retry-After: 1 was honoured before every poll: no hot loop.
    put = az.log(method="PUT")[0]
    assert all(g >= 0.95 for g in gaps([put, *polls])), gaps([put, *polls])
    assert lro["pollSleptMs"] == 1000 * len(polls)
    # Then one final GET of the resource.
    assert az.wire()[-1] == ("GET", "REG/agentPools/pool1", 200)


def test_create_2019_201_creating_is_followed_by_reading_the_resource(az):
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=1.5)
    r = az.run("pool-create", "pool1", "S1", "1", "--wait", "--poll-cap-ms", "200", api_version=V2019)
    op, lro = r.out["operation"], r.out["lro"]
    # 2019: 201 with a Creating body and no LRO headers.
    assert op["kind"] == "ResourceBody" and op["pollUrl"] is None
    assert op["resourceUrl"].endswith(f"{REG_PATH}/agentPools/pool1?api-version={V2019}")
    assert r.out["pool"]["provisioningState"] == "Creating"
    assert lro["state"] == "Succeeded" and lro["result"]["properties"]["provisioningState"] == "Succeeded"
    gets = az.log(method="GET", path_contains="/agentPools/pool1")
    assert len(gets) == lro["polls"] >= 2 and all(g["apiVersion"] == V2019 for g in gets)
    # No Retry-After on a resource GET: the client's 30 s default, capped here.
    assert set(lro["retryAfterMs"]) == {30000}


def test_operation_rebuilt_from_status_is_polled_by_a_new_process(az):
    """A reconciler stores the operation in status and looks again after a
    restart: pool-op-poll rebuilds it from the strings the first process printed."""
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=2)
    op = az.run("pool-create", "pool1", "S1", "1", api_version=V2025).out["operation"]
    assert op["kind"] == "AzureAsyncOperation"
    r = az.run("pool-op-poll", op["kind"], op["method"], op["resourceUrl"], op["pollUrl"], api_version=V2025)
    assert r.out["state"] == "Succeeded" and r.out["result"]["properties"]["count"] == 1
    assert r.out["operation"]["pollUrl"] == op["pollUrl"]


@pytest.mark.parametrize("version", [V2019, V2025])
def test_delete_202_location_is_polled_until_done(az, version):
    az.emu.pool(SUB, RG, REG, "pool1", "PUT", {"tier": "S1", "count": 1})
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=2)
    r = az.run("pool-delete", "pool1", "--wait", api_version=version)
    op, lro = r.out["operation"], r.out["lro"]
    assert op["kind"] == "Location" and op["method"] == "DELETE" and op["retryAfterMs"] == 1000
    assert "/agentPoolsOperationResults/" in op["pollUrl"] and op["pollUrl"].endswith("/status?api-version=" + version)
    assert lro["state"] == "Succeeded"
    polls = az.log(method="GET", path_contains="/agentPoolsOperationResults/")
    assert [p["status"] for p in polls][-1] == 204 and set(p["status"] for p in polls[:-1]) <= {202}
    assert len(polls) == lro["polls"] >= 2
    delete = az.log(method="DELETE")
    assert [d["status"] for d in delete] == [202]
    assert all(g >= 0.95 for g in gaps([*delete, *polls]))
    assert az.emu.control("GET", f"registries/{SUB}/{RG}/{REG}")["agentPools"] == []


@pytest.mark.parametrize("version", [V2019, V2025])
def test_delete_of_a_missing_pool_is_204_and_done(az, version):
    r = az.run("pool-delete", "nosuchpool", "--wait", api_version=version)
    assert r.out["operation"] is None and "lro" not in r.out
    assert az.wire()[-1] == ("DELETE", "REG/agentPools/nosuchpool", 204)


@pytest.mark.parametrize("version", [V2019, V2025])
def test_failed_provisioning_is_reported_with_its_error_code(az, version):
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=1, provisioningOutcome="Failed")
    r = az.run("pool-create", "pool1", "S1", "1", "--wait", "--poll-cap-ms", "200", api_version=version,
               expect=EXIT_LRO_FAILED)
    lro = r.out["lro"]
    assert lro["state"] == "Failed"
    if version == V2025:  # the async operation's error object
        assert lro["errorCode"] == "AgentPoolProvisioningFailed"
        assert lro["errorMessage"] == "Provisioning of agent pool 'pool1' failed (injected)."
    else:  # body polling only sees provisioningState
        assert lro["errorCode"] == "ProvisioningFailed" and lro["errorMessage"] == "provisioningState is Failed"
    # The write itself was accepted: the failure is the operation's.
    assert r.out["operation"]["errorCode"] is None and r.out["pool"]["provisioningState"] == "Creating"
    # A Failed pool refuses updates; it can be deleted.
    err = az.run("pool-update", "pool1", "2", api_version=version, expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("conflict", "RegistryStatusConflict", 409)


@pytest.mark.parametrize("version", [V2019, V2025])
def test_patch_201_updating_follows_the_resource(az, version):
    az.emu.pool(SUB, RG, REG, "pool1", "PUT", {"tier": "S1", "count": 1})
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=1.5)
    r = az.run("pool-update", "pool1", "2", "--wait", "--poll-cap-ms", "300", api_version=version)
    op, lro = r.out["operation"], r.out["lro"]
    # 201 with an Updating body; 2025 adds Retry-After, 2019 has no header
    # at all (the client's default wait, capped at 300 ms here).
    assert op["kind"] == "ResourceBody" and op["method"] == "PATCH" and op["pollUrl"] is None
    assert op["retryAfterMs"] == (1000 if version == V2025 else 30000)
    assert r.out["pool"]["provisioningState"] == "Updating"
    assert lro["state"] == "Succeeded" and lro["result"]["properties"]["count"] == 2
    patch = az.log(method="PATCH")
    assert [p["status"] for p in patch] == [201]
    # The first look waits the PATCH's Retry-After (capped at 300 ms here).
    first_get = az.log(method="GET", path_contains="/agentPools/pool1")[0]
    assert first_get["time"] - patch[0]["time"] >= 0.28


@pytest.mark.parametrize("version,kind", [(V2019, "ResourceBody"), (V2025, "AzureAsyncOperation")])
def test_put_of_an_existing_pool_with_a_new_count(az, version, kind):
    az.emu.pool(SUB, RG, REG, "pool1", "PUT", {"tier": "S1", "count": 1, "location": "eastus"})
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=1)
    r = az.run("pool-create", "pool1", "S1", "3", "--wait", "--poll-cap-ms", "300", api_version=version)
    assert r.out["pool"]["provisioningState"] == "Updating" and r.out["operation"]["kind"] == kind
    assert r.out["lro"]["state"] == "Succeeded" and r.out["lro"]["result"]["properties"]["count"] == 3
    assert [e["status"] for e in az.log(method="PUT")] == [200]


def test_mutations_while_provisioning_get_409(az):
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=30)
    assert az.run("pool-create", "pool1", "S1", "1", api_version=V2025).out["pool"]["provisioningState"] == "Creating"
    for args in (("pool-update", "pool1", "2"), ("pool-create", "pool1", "S1", "3"), ("pool-delete", "pool1")):
        err = az.run(*args, api_version=V2025, expect=EXIT_CALL).error
        assert (err["code"], err["reason"], err["httpStatus"]) == ("conflict", "AnotherOperationInProgress", 409)
        assert "Creating" in err["message"] and err["retryAfterMs"] == -1
        # 409 is not retried: one attempt, and the request id is the one the emulator logged.
        last = az.arm_log()[-1]
        assert last["status"] == 409 and err["requestId"] == last["requestId"]
    assert [e["status"] for e in az.arm_log()] == [201, 409, 409, 409]


# ---- throttling and server errors ----------------------------------------------------------------


def test_429_storm_keeps_retry_after_and_gives_up_bounded(az):
    az.emu.fault(status=429, method="GET", path="/agentPools", retryAfter=1)
    r = az.run("pool-list", expect=EXIT_CALL)
    err = r.error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("unavailable", "TooManyRequests", 429)
    assert err["retryAfterMs"] == 1000  # the caller requeues after this, it does not spin
    assert "throttled" in err["message"]
    attempts = az.log(method="GET", path_contains="/agentPools")
    # Bounded: max_attempts (4) and no more, each one Retry-After apart.
    assert len(attempts) == 4 and r.statuses() == [429] * 4
    assert all(g >= 0.95 for g in gaps(attempts)), gaps(attempts)
    assert r.out["sleptMs"] == 3000 and r.elapsed >= 2.9
    assert err["requestId"] == attempts[-1]["requestId"]
    assert_arm_headers(attempts)
    # Nothing more arrives once the tool has given up.
    assert len(az.log(method="GET", path_contains="/agentPools")) == 4


def test_429_with_a_retry_after_beyond_the_cap_gives_up_at_once(az):
    az.emu.fault(status=429, method="GET", path="/agentPools", retryAfter=120)
    r = az.run("pool-list", expect=EXIT_CALL)
    assert r.error["retryAfterMs"] == 120000 and r.error["httpStatus"] == 429
    assert r.statuses() == [429] and r.out["sleptMs"] == 0 and r.elapsed < 10
    assert len(az.log(method="GET", path_contains="/agentPools")) == 1


def test_429_storm_within_a_wait_budget(az):
    az.emu.fault(status=429, method="GET", path="/agentPools", retryAfter=1)
    r = az.run("pool-list", extra=["--budget-ms", "1500"], expect=EXIT_CALL)
    # 1 s waited, another 1 s would pass the 1.5 s budget: stop and say so.
    assert r.statuses() == [429, 429] and r.out["sleptMs"] == 1000 and r.error["retryAfterMs"] == 1000


def test_429_storm_while_polling_an_operation(az):
    az.emu.registry(SUB, RG, REG, provisioningDelaySeconds=5)
    op = az.run("pool-create", "pool1", "S1", "1", api_version=V2025).out["operation"]
    az.emu.fault(status=429, method="GET", path="/operationStatuses/", retryAfter=1)
    r = az.run("pool-op-poll", op["kind"], op["method"], op["resourceUrl"], op["pollUrl"],
               api_version=V2025, expect=EXIT_CALL)
    assert r.error["code"] == "unavailable" and r.error["retryAfterMs"] == 1000
    polls = az.log(method="GET", path_contains="/operationStatuses/")
    assert len(polls) == 4 and all(g >= 0.95 for g in gaps(polls))


def test_throttled_token_endpoint_is_not_hammered(az):
    """A throttled token endpoint fails the call with its Retry-After, and
    for the next few seconds the identity repeats that error instead of
    asking again."""
    az.emu.fault(status=429, method="POST", path="/oauth2/v2.0/token$", retryAfter=1)
    r = az.run("registry-get", extra=["--repeat", "3"], expect=EXIT_CALL)
    errs = [l["error"] for l in r.lines]
    assert len(errs) == 3 and all(e["code"] == "unavailable" for e in errs)
    assert errs[0]["httpStatus"] == 429 and errs[0]["retryAfterMs"] == 1000
    assert all(0 < e["retryAfterMs"] <= 5000 for e in errs[1:]), errs
    assert az.wire() == [("POST", "TOKEN", 429)]  # one request, no ARM call without a token


def test_imds_retries_honour_retry_after(az):
    az.emu.control("POST", "identity/managed", {"default": True})
    az.emu.fault(status=503, count=2, method="GET", path="^/metadata/identity/", retryAfter=1)
    r = az.run("pool-list", credential="managed")
    assert r.out["pools"] == []
    assert az.wire()[:3] == [("GET", "IMDS", 503)] * 2 + [("GET", "IMDS", 200)]
    # IMDS backoff is 200 ms and 600 ms here; the server's 1 s wins both times.
    assert r.out["sleptMs"] == 2000
    assert all(g >= 0.95 for g in gaps(az.token_log()))


def test_attempt_timeout_is_retried(az):
    az.emu.fault(latencyMs=1500, count=1, method="GET", path=f"/registries/{REG}$")
    r = az.run("registry-get", extra=["--timeout-ms", "500", "--retry-delay-ms", "100"])
    assert r.out["registry"]["id"] == REG_PATH and r.statuses() == [0, 200]


def test_blob_upload_is_retried_without_the_bearer_token(az):
    az.emu.fault(status=503, count=1, method="PUT", path="^/_blob/", retryAfter=1)
    tgz = make_tarball(az.tmp / "ctx.tar.gz")
    r = az.run("upload", str(tgz))
    assert r.out["uploaded"] is True and r.out["sleptMs"] == 1000
    blob = az.log(method="PUT", path_contains="/_blob/")
    assert [b["status"] for b in blob] == [503, 201] and not any(b["hasAuthorization"] for b in blob)


def test_storage_error_does_not_quote_the_sas_url(az):
    az.emu.fault(status=403, count=1, method="PUT", path="^/_blob/", code="AuthenticationFailed")
    tgz = make_tarball(az.tmp / "ctx.tar.gz")
    err = az.run("upload", str(tgz), expect=EXIT_CALL).error
    assert err["code"] == "auth" and err["httpStatus"] == 403
    assert "/_blob/" not in err["message"]


def test_lists_follow_next_link(az):
    az.emu.settings(pageSize=2)
    for i in range(5):
        az.emu.pool(SUB, RG, REG, f"pool{i}", "PUT", {"tier": "S1", "count": 0})
    pools = az.run("pool-list").out["pools"]
    assert sorted(p["name"] for p in pools) == [f"pool{i}" for i in range(5)]
    pages = az.log(method="GET", path_contains="/agentPools")
    assert len(pages) == 3 and all(p["apiVersion"] == V2019 and p["status"] == 200 for p in pages)
    assert_arm_headers(pages)
    # $top stops paging once it has enough.
    az.emu.clear_requests()
    for i in range(5):
        az.emu.control("PUT", f"registries/{SUB}/{RG}/{REG}/runs/cx{i + 1}",
                       {"properties": {"status": "Succeeded", "runType": "QuickRun"}})
    runs = az.run("run-list", "", "3").out["runs"]
    assert len(runs) == 3
    assert len(az.log(method="GET", path_contains="/runs")) == 2


def test_503_twice_then_success(az):
    az.emu.fault(status=503, count=2, method="GET", path="/agentPools/pool1")
    az.emu.pool(SUB, RG, REG, "pool1", "PUT", {"tier": "S1", "count": 1})
    r = az.run("pool-get", "pool1")
    assert r.out["pool"]["count"] == 1
    assert r.statuses() == [503, 503, 200] and r.out["sleptMs"] == 2000  # Retry-After: 1, twice
    attempts = az.log(method="GET", path_contains="/agentPools/pool1")
    assert [a["status"] for a in attempts] == [503, 503, 200]
    assert [a["fault"] is not None for a in attempts] == [True, True, False]
    assert all(g >= 0.95 for g in gaps(attempts))
    assert_arm_headers(attempts)  # a fresh client request id per attempt
    # One token served all three attempts.
    assert len(az.token_log()) == 1


def test_500_without_retry_after_backs_off_exponentially(az):
    az.emu.fault(status=500, count=2, method="PUT", path="/agentPools/pool1")
    r = az.run("pool-create", "pool1", "S1", "1", extra=["--retry-delay-ms", "100"])
    assert r.out["pool"]["provisioningState"] == "Succeeded"
    assert r.statuses() == [500, 500, 201]
    # (2^1 - 1) x 100 + (2^2 - 1) x 100, each with jitter [0.8, 1.3).
    assert 320 <= r.out["sleptMs"] < 520, r.out
    puts = az.log(method="PUT")
    assert len(puts) == 3 and all(p["body"] == puts[0]["body"] for p in puts)


def test_dropped_connection_is_retried(az):
    az.emu.fault(drop=True, count=1, method="GET", path=f"/registries/{REG}$")
    r = az.run("registry-get", extra=["--retry-delay-ms", "100"])
    assert r.out["registry"]["skuName"] == "Premium"
    assert r.statuses() == [0, 200]
    assert [e["status"] for e in az.arm_log()] == ["dropped", 200]


# ---- tokens: cache, refresh, expiry ---------------------------------------------------------------


def test_token_cache_serves_repeated_calls(az):
    r = az.run("token-twice")
    assert r.out["secondFromCache"] is True and r.out["tokenLength"] > 100
    r = az.run("registry-get", extra=["--repeat", "3"])
    assert len(r.lines) == 3 and all(l["registry"]["id"] == REG_PATH for l in r.lines)
    assert az.wire()[-4:] == [("POST", "TOKEN", 200)] + [("GET", "REG", 200)] * 3


def test_concurrent_callers_share_one_token_fetch(az):
    """Eight workers meet at a cold cache while the token endpoint is slow:
    one fetches, the others wait for it rather than fetch too."""
    az.emu.fault(latencyMs=700, count=1, method="POST", path="/oauth2/v2.0/token$")
    r = az.run("registry-get", extra=["--parallel", "8"])
    assert len(r.lines) == 8 and all(l["registry"]["id"] == REG_PATH for l in r.lines)
    assert [e[1] for e in az.wire()].count("TOKEN") == 1
    assert len(az.arm_log()) == 8
    assert_arm_headers(az.arm_log())


def test_concurrent_callers_share_one_token_failure(az):
    az.emu.fault(status=401, latencyMs=500, method="POST", path="/oauth2/v2.0/token$")
    r = az.run("registry-get", extra=["--parallel", "6"], expect=EXIT_CALL)
    assert len(r.lines) == 6 and all(l["error"]["code"] == "auth" for l in r.lines)
    assert az.wire() == [("POST", "TOKEN", 401)]


def test_expired_token_gets_401_then_refresh_then_retry(az):
    """The 401 path: a token that expires on its way to ARM. With a 2 s
    lifetime the client still uses the token it has just fetched; a 2.5 s
    delay in front of ARM makes the emulator see it expired
    (ExpiredAuthenticationToken). The client must drop it, fetch a new one
    and repeat the call, once, outside the retry count."""
    az.emu.settings(tokenLifetimeSeconds=2)
    az.emu.fault(latencyMs=2500, count=1, method="GET", path=f"/registries/{REG}$")
    r = az.run("registry-get")
    assert r.out["registry"]["id"] == REG_PATH
    assert r.statuses() == [401, 200] and r.out["sleptMs"] == 0
    assert az.wire() == [("POST", "TOKEN", 200), ("GET", "REG", 401),
                         ("POST", "TOKEN", 200), ("GET", "REG", 200)]


def test_token_refused_twice_is_an_auth_error_not_a_loop(az):
    """Tokens that are dead on arrival (lifetime 0): one refresh after the
    first 401, then the second 401 is the caller's error."""
    az.emu.settings(tokenLifetimeSeconds=0)
    r = az.run("registry-get", expect=EXIT_CALL)
    err = r.error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("auth", "ExpiredAuthenticationToken", 401)
    assert r.statuses() == [401, 401]
    assert az.wire() == [("POST", "TOKEN", 200), ("GET", "REG", 401)] * 2


def test_cached_token_refused_by_arm_is_refreshed(az):
    """The 401 path with a cached token: between two calls of one process
    the emulator forgets every token it issued (a reset), so the cached
    token, still fresh in the client's eyes, is refused."""
    p = az.start("registry-get", extra=["--repeat", "2", "--step"])
    try:
        first = json.loads(p.stdout.readline())
        assert first["registry"]["id"] == REG_PATH
        az.emu.reset()
        az.setup()
        out, err = p.communicate("\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_clean(out + err)
    assert p.returncode == 0, err
    second = json.loads(out)
    assert second["registry"]["id"] == REG_PATH and [h["status"] for h in second["http"]] == [401, 200]
    # After the reset: the cached token first (401), then a new one.
    assert az.wire() == [("GET", "REG", 401), ("POST", "TOKEN", 200), ("GET", "REG", 200)]


def test_proactive_refresh_before_expiry(az):
    """The proactive path: a 1 h token is refreshed 5 min before it
    expires. The tool's identity clock jumps 3400 s ahead for the second
    call: the token is still valid, but due for refresh, so a new one is
    fetched before the call and ARM never answers 401."""
    r = az.run("registry-get", extra=["--repeat", "2", "--advance-clock", "3400"])
    assert [l["http"][0]["status"] for l in r.lines] == [200, 200]
    assert az.wire() == [("POST", "TOKEN", 200), ("GET", "REG", 200),
                         ("POST", "TOKEN", 200), ("GET", "REG", 200)]


def test_failed_proactive_refresh_keeps_the_valid_token(az):
    p = az.start("registry-get", extra=["--repeat", "2", "--step", "--advance-clock", "3400"])
    try:
        assert "registry" in json.loads(p.stdout.readline())
        az.emu.fault(status=503, method="POST", path="/oauth2/v2.0/token$")
        out, err = p.communicate("\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_clean(out + err)
    assert p.returncode == 0, out + err
    assert json.loads(out)["registry"]["id"] == REG_PATH
    assert az.wire() == [("POST", "TOKEN", 200), ("GET", "REG", 200),
                         ("POST", "TOKEN", 503), ("GET", "REG", 200)]


def test_token_past_its_usable_life_is_not_sent(az):
    """Past expiry minus the 30 s skew (clock +3580 s of 3600) the client
    refetches; if the token endpoint fails it reports that, and sends no
    ARM request with the stale token."""
    p = az.start("registry-get", extra=["--repeat", "2", "--step", "--advance-clock", "3580"])
    try:
        assert "registry" in json.loads(p.stdout.readline())
        az.emu.fault(status=503, method="POST", path="/oauth2/v2.0/token$", retryAfter=7)
        out, err = p.communicate("\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_clean(out + err)
    assert p.returncode == EXIT_CALL, out + err
    e = json.loads(out)["error"]
    assert e["code"] == "unavailable" and e["httpStatus"] == 503 and e["retryAfterMs"] == 7000
    assert az.wire() == [("POST", "TOKEN", 200), ("GET", "REG", 200), ("POST", "TOKEN", 503)]


def test_short_token_lifetime_is_never_served_from_cache(az):
    """A token living less than the 30 s expiry skew is used for the call
    it was fetched for and never cached: each call fetches (no 401)."""
    az.emu.settings(tokenLifetimeSeconds=20)
    r = az.run("registry-get", extra=["--repeat", "2"])
    assert [l["http"][0]["status"] for l in r.lines] == [200, 200]
    assert az.wire() == [("POST", "TOKEN", 200), ("GET", "REG", 200)] * 2
    assert az.run("token-twice").out["secondFromCache"] is False


# ---- identity flows ----------------------------------------------------------------------------


def test_wrong_secret_is_a_clean_auth_error(az):
    wrong = "wrong-" + uuid.uuid4().hex
    r = az.run("registry-get", secret=wrong, expect=EXIT_CALL)
    err = r.error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("auth", "AADSTS7000215", 401)
    assert "invalid_client" in err["message"] and "Invalid client secret provided" in err["message"]
    assert "Trace ID" not in err["message"]
    assert r.statuses() == []  # no ARM call without a token
    assert az.wire() == [("POST", "TOKEN", 401)]
    assert az.log()[0]["body"]["client_secret"] == redacted(wrong)


def test_unknown_client_is_an_auth_error(az):
    r = az.run("registry-get", expect=EXIT_CALL,
               extra=["--client", "33333333-3333-3333-3333-333333333333"])
    assert r.error["code"] == "auth" and r.error["reason"] == "AADSTS700016"


def test_workload_identity_rereads_the_rotated_token_file(az):
    first, second = federated_jwt(), federated_jwt()
    az.token_file.write_text(first + "\n")
    p = az.start("pool-list", credential="workload", extra=["--repeat", "2", "--step", "--advance-clock", "3580"])
    try:
        assert json.loads(p.stdout.readline())["pools"] == []
        # The kubelet rotates the projected token in place.
        az.token_file.write_text(second)
        out, err = p.communicate("\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_clean(out + err, (first, second))
    assert p.returncode == 0, out + err
    assert json.loads(out)["pools"] == []
    tokens = az.token_log()
    assert len(tokens) == 2
    for t, jwt in zip(tokens, (first, second)):
        assert t["status"] == 200
        assert t["body"]["client_assertion"] == redacted(jwt)
        assert t["body"]["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        assert t["body"]["client_id"] == CLIENT and t["body"]["scope"] == ARM_SCOPE
        assert "client_secret" not in t["body"]
    assert_arm_headers(az.arm_log())


def test_workload_identity_errors(az):
    expired = federated_jwt(exp_in=-60)
    az.token_file.write_text(expired)
    err = az.run("registry-get", credential="workload", expect=EXIT_CALL, secrets=(expired,)).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("auth", "AADSTS700024", 400)
    stranger = federated_jwt(subject="system:serviceaccount:other:other")
    az.token_file.write_text(stranger)
    err = az.run("registry-get", credential="workload", expect=EXIT_CALL, secrets=(stranger,)).error
    assert err["reason"] == "AADSTS70021" and "No matching federated identity record" in err["message"]
    az.token_file.unlink()
    err = az.run("registry-get", credential="workload", expect=EXIT_CALL).error
    assert (err["code"], err["reason"]) == ("invalid", "FederatedTokenUnreadable")


def test_managed_identity_through_imds(az):
    az.emu.control("POST", "identity/managed", {"default": True})
    r = az.run("registry-get", credential="managed")
    assert r.out["registry"]["id"] == REG_PATH
    assert az.wire() == [("GET", "IMDS", 200), ("GET", "REG", 200)]
    imds = az.log()[0]
    assert imds["query"]["resource"] == "https://management.azure.com/" and imds["query"]["api-version"]
    assert "client_id" not in imds["query"] and imds["userAgent"].startswith("acrpool/")
    assert_arm_headers(az.arm_log())


def test_user_assigned_managed_identity(az):
    uami = "44444444-4444-4444-4444-444444444444"
    az.emu.control("POST", "identity/managed", {"clientId": uami})
    r = az.run("pool-list", credential="managed", extra=["--client", uami])
    assert r.out["pools"] == []
    assert az.token_log()[0]["query"]["client_id"] == uami
    # An identity IMDS does not know: 400, not retried, an auth error.
    r = az.run("pool-list", credential="managed", extra=["--client", "55555555-5555-5555-5555-555555555555"],
               expect=EXIT_CALL)
    assert r.error["code"] == "auth" and r.error["httpStatus"] == 400 and "Identity not found" in r.error["message"]
    assert len(az.token_log()) == 2


# ---- ARM errors -----------------------------------------------------------------------------------


def test_quota_exceeded(az):
    az.emu.registry(SUB, RG, REG, quota={"standardVCPU": 4, "isolatedVCPU": 0})
    r = az.run("pool-create", "pool1", "S2", "2", expect=EXIT_CALL)
    err = r.error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("terminal", "QuotaExceeded", 400)
    assert err["message"].startswith("Operation results in exceeding the standard agent pool vCPU quota")
    assert "Limit: 4" in err["message"]
    put = az.log(method="PUT")
    assert len(put) == 1 and err["requestId"] == put[0]["requestId"]


def test_non_premium_registry(az):
    az.emu.registry(SUB, RG, REG, sku="Standard")
    err = az.run("pool-create", "pool1", "S1", "1", expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("terminal", "RegistrySkuNotSupported", 400)
    assert "Premium" in err["message"]
    g = az.run("registry-get").out["registry"]
    assert g["skuName"] == "Standard"


def test_tier_is_immutable(az):
    az.run("pool-create", "pool1", "S1", "1")
    err = az.run("pool-create", "pool1", "S2", "1", expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("terminal", "PropertyChangeNotAllowed", 400)
    assert "properties.tier" in err["message"]


def test_missing_pool_and_bad_api_version(az):
    err = az.run("pool-get", "nosuchpool", expect=EXIT_CALL).error
    assert (err["code"], err["reason"], err["httpStatus"]) == ("not_found", "ResourceNotFound", 404)
    err = az.run("pool-list", api_version="2099-01-01", expect=EXIT_CALL).error
    assert (err["reason"], err["httpStatus"]) == ("InvalidApiVersionParameter", 400)
    assert V2019 in err["message"] and V2025 in err["message"]
    err = az.run("run-schedule", az.write_json("r.json", {
        "type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "platform": {"os": "Linux"},
        "sourceLocation": "https://github.com/org/repo.git", "agentPoolName": "ghost"}), expect=EXIT_CALL).error
    assert (err["reason"], err["httpStatus"]) == ("AgentPoolNotFound", 400)


def test_poll_url_on_another_host_is_refused(az):
    """The bearer token only goes to the ARM endpoint: an operation whose
    poll URL names another host is refused before anything is sent."""
    foreign = f"http://127.0.0.2:{az.emu.port}{REG_PATH}/operationStatuses/x?api-version={V2025}"
    resource = f"{az.emu.url}{REG_PATH}/agentPools/pool1?api-version={V2025}"
    err = az.run("pool-op-poll", "AzureAsyncOperation", "PUT", resource, foreign, expect=EXIT_CALL).error
    assert (err["code"], err["reason"]) == ("invalid", "ForeignPollUrl")
    assert az.arm_log() == []


def test_usage_errors_are_clean(az):
    for args, kw in ((("no-such-command",), {}), (("pool-update", "pool1", "2", "notatag"), {}),
                     (("pool-create", "pool1", "S1"), {}), (("registry-get",), {"extra": ["--bogus", "1"]})):
        r = az.run(*args, expect=EXIT_USAGE, **kw)
        assert r.stdout == "" and r.stderr.startswith("acrpool-armtool: ")
    # The secret's variable unset: refused before any request.
    argv = az.argv("registry-get")
    env = az.env()
    del env["ARMTOOL_SECRET"]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == EXIT_USAGE and "ARMTOOL_SECRET" in p.stderr
    assert_clean(p.stdout + p.stderr)
    assert az.log() == []
