"""pytest fixtures for the acr-emulator tests.

One emulator process per test session, started on port 0 with --port-file (the
way any harness should start it); every test begins with a control-endpoint
reset, so tests are independent without paying a process start each. Waits
poll for a condition with a deadline; nothing sleeps to wait.
"""

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import urlencode, urlsplit

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(os.path.dirname(HERE), "acr_emulator.py")
SPEC_DIR = os.path.join(os.path.dirname(HERE), "spec")

V2019 = "2019-06-01-preview"
V2025 = "2025-03-01-preview"
SUB = "00000000-1111-2222-3333-444444444444"
RG = "rg-test"
REG = "testreg01"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cret-value-never-logged"


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll `predicate` until it returns a truthy value; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def start_emulator(tmp_dir, *extra):
    port_file = os.path.join(tmp_dir, f"port-{uuid.uuid4().hex}")
    proc = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", "--port-file", port_file, *extra],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp_dir, "emulator.log"), "ab"))
    try:
        wait_for(lambda: os.path.exists(port_file) or proc.poll() is not None, timeout=15,
                 what="emulator port file")
        if proc.poll() is not None:
            raise RuntimeError("emulator exited at start; see emulator.log")
        with open(port_file, encoding="utf-8") as f:
            port = int(f.read().strip())
    except Exception:
        proc.kill()
        raise
    return proc, port


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self):
        return json.loads(self.raw) if self.raw else None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<Response {self.status} {self.raw[:300]!r}>"


class Client:
    """A tiny HTTP client (http.client) bound to one emulator."""

    def __init__(self, port):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.token = None

    def request(self, method, url, body=None, headers=None, raw_body=None, timeout=10):
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = dict(headers or {})
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, target, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    # -- control endpoint --------------------------------------------------------------

    def control(self, method, path, body=None):
        r = self.request(method, f"/_emulator/{path}", body)
        assert r.status < 300, r
        return r.json

    def registry(self, name=REG, sub=SUB, rg=RG, **cfg):
        cfg.setdefault("location", "eastus")
        return self.control("PUT", f"registries/{sub}/{rg}/{name}", cfg)

    def login(self):
        self.control("POST", "identity/clients", {"tenantId": TENANT, "clientId": CLIENT, "clientSecret": SECRET})
        r = self.token_request({"grant_type": "client_credentials", "client_id": CLIENT,
                                "client_secret": SECRET, "scope": "https://management.azure.com/.default"})
        assert r.status == 200, r
        self.token = r.json["access_token"]

    def token_request(self, form, tenant=TENANT):
        return self.request("POST", f"/{tenant}/oauth2/v2.0/token", raw_body=urlencode(form).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    # -- ARM -------------------------------------------------------------------------------

    def arm(self, method, path, body=None, version=V2025, query=None, headers=None, auth=True, registry=None):
        """Call ARM. `path` is relative to the registry unless it starts with '/'."""
        if not path.startswith("/"):
            reg = registry or f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/" \
                              f"Microsoft.ContainerRegistry/registries/{REG}"
            path = f"{reg}/{path}" if path else reg
        q = dict(query or {})
        if version is not None:
            q["api-version"] = version
        url = path + (f"?{urlencode(q)}" if q else "")
        hdrs = dict(headers or {})
        if auth and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        return self.request(method, url, body, hdrs)

    def get_url(self, url, auth=True):
        hdrs = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        return self.request("GET", url, headers=hdrs)

    def pool(self, name, version=V2025):
        return self.arm("GET", f"agentPools/{name}", version=version)

    def queue(self, pool):
        r = self.arm("POST", f"agentPools/{pool}/listQueueStatus")
        assert r.status == 200, r
        return r.json["count"]

    def run(self, run_id):
        r = self.arm("GET", f"runs/{run_id}")
        assert r.status == 200, r
        return r.json["properties"]

    def wait_run(self, run_id, statuses, timeout=10):
        return wait_for(lambda: (lambda p: p if p["status"] in statuses else None)(self.run(run_id)),
                        timeout=timeout, what=f"run {run_id} in {statuses}")


@pytest.fixture(scope="session")
def emulator_port(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("emulator"))
    proc, port = start_emulator(tmp, "--state-dir", os.path.join(tmp, "state"))
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def client(emulator_port):
    """A logged-in client on a freshly reset emulator with one Premium registry
    and fast settings (no provisioning delay, short runs)."""
    c = Client(emulator_port)
    c.control("POST", "reset")
    c.control("PATCH", "settings", {"runDurationSeconds": 0.3, "retryAfterSeconds": 1})
    c.registry()
    c.login()
    return c
