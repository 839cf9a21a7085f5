#!/usr/bin/env python3
"""acr-emulator: a local stand-in for the parts of Azure the acrpool operator calls.

One process, Python 3.11 standard library only, plain HTTP on 127.0.0.1. It serves
  - ARM for Microsoft.ContainerRegistry agentPools, tasks, runs, scheduleRun,
    taskRuns, the registry GET and LRO monitors (arm.py, validated against the
    swagger by specvalidator.py, simulated by state.py);
  - an Entra v2 token endpoint POST /{tenant}/oauth2/v2.0/token and an IMDS
    endpoint GET /metadata/identity/oauth2/token (identity.py);
  - a blob endpoint /_blob/... for source uploads (PUT) and run logs (GET);
  - an Azure DevOps stand-in under /devops/{org}/_apis/... (devops.py);
  - a JSON control endpoint /_emulator/... for tests (control.py).
This file owns the HTTP plumbing shared by all of them: request parsing, ARM
request-id headers, bearer-token checks, fault injection, the request log and
the one-line-per-request stderr log (secrets masked).

Usage: python3 tests/emulator/acr_emulator.py --port 0 --port-file PATH
       [--state-dir DIR] [--no-auth] [--spec-dir DIR]
See docs/emulator.md.
"""

import argparse
import base64
import collections
import hashlib
import json
import os
import random
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from aci import Aci, mask_body as aci_mask_body  # noqa: E402
from arm import Arm, ArmError, Reply  # noqa: E402
from control import Control  # noqa: E402
from devops import PREFIX as DEVOPS_PREFIX, DevOps  # noqa: E402
from identity import AADError, Identity  # noqa: E402
from specvalidator import load_specs  # noqa: E402
from state import Ticker, World  # noqa: E402

TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
SECRET_FORM_FIELDS = ("client_secret", "client_assertion", "assertion", "password", "refresh_token")
MAX_LOG = 20000


def redacted(value):
    """Stand-in for a secret in logs: equal secrets compare equal, none leaks."""
    return "<redacted sha256:%s>" % hashlib.sha256(value.encode()).hexdigest()[:12]


class Request:
    """An incoming request, parsed once."""

    def __init__(self, method, target, headers, body, host):
        parts = urlsplit(target)
        self.method = method
        self.raw_path = parts.path
        self.path = unquote(parts.path)
        self.query_string = parts.query
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers = headers
        self.body = body
        self.base_url = f"http://{host}"
        self._json = None

    def json_body(self):
        """The body as JSON; ARM 400 InvalidRequestContent if absent or malformed."""
        if self._json is None:
            if not self.body.strip():
                raise ArmError(400, "InvalidRequestContent",
                               "The request content was invalid and could not be deserialized: "
                               "the request body is empty.")
            try:
                self._json = json.loads(self.body)
            except ValueError as e:
                raise ArmError(400, "InvalidRequestContent",
                               f"The request content was invalid and could not be deserialized: {e}.")
        return self._json


class Faults:
    """Injected failures. A rule matches on method and path regexes, lets its
    first `after` matches pass (default 0), then fires for its next `count`
    matches (or forever), with probability `rate`. Rules are tried in the
    order they were added; a request that one rule lets pass goes on to the
    next, so two rules make two bursts in sequence."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.seq = 0

    def add(self, spec):
        rule = {
            "status": spec.get("status"),
            "count": spec.get("count"),
            "rate": float(spec.get("rate", 1.0)),
            "method": spec.get("method") or ".*",
            "path": spec.get("path") or ".*",
            "latencyMs": int(spec.get("latencyMs", 0)),
            "drop": bool(spec.get("drop", False)),
            "retryAfter": spec.get("retryAfter", 1),
            "code": spec.get("code"),
            "message": spec.get("message"),
            "after": int(spec.get("after", 0)),
        }
        if rule["status"] is None and not rule["drop"] and not rule["latencyMs"]:
            raise ValueError("a fault needs status, drop or latencyMs")
        re.compile(rule["method"])
        re.compile(rule["path"])
        with self.lock:
            self.seq += 1
            rule["id"] = self.seq
            rule["fired"] = 0
            self.rules.append(rule)
        return rule

    def pick(self, method, path):
        with self.lock:
            for rule in self.rules:
                if not re.fullmatch(rule["method"], method, re.I) or not re.search(rule["path"], path):
                    continue
                if rule["count"] is not None and rule["count"] <= 0:
                    continue
                if rule["after"] > 0:
                    rule["after"] -= 1
                    continue
                if rule["rate"] < 1.0 and random.random() >= rule["rate"]:
                    continue
                if rule["count"] is not None:
                    rule["count"] -= 1
                rule["fired"] += 1
                return dict(rule)
        return None

    def list(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def clear(self, rule_id=None):
        with self.lock:
            self.rules = [r for r in self.rules if rule_id is not None and r["id"] != rule_id]


class Emulator:
    """Everything one server instance owns."""

    def __init__(self, spec_dir, auth=True, state_dir=None):
        self.world = World()
        self.specs = load_specs(spec_dir)
        self.arm = Arm(self.world, self.specs)
        self.aci = Aci(spec_dir)  # Microsoft.ContainerInstance (aci.py)
        self.identity = Identity()
        self.devops = DevOps(self.identity)
        self.faults = Faults()
        self.auth = auth
        self.state_dir = state_dir
        self.log_lock = threading.Lock()
        self.requests = collections.deque(maxlen=MAX_LOG)  # the newest MAX_LOG entries
        self.request_seq = 0
        # Opened once (line-buffered, so every entry is on disk when its
        # answer leaves), not once per request.
        self.request_file = open(os.path.join(state_dir, "requests.jsonl"), "a", buffering=1,
                                 encoding="utf-8") if state_dir else None
        self.control = Control(self)

    def reset(self):
        self.world.reset()
        self.aci.reset()
        self.identity.reset()
        self.devops.reset()
        self.faults.clear()
        with self.log_lock:
            self.requests.clear()

    def record(self, entry):
        with self.log_lock:
            self.request_seq += 1
            entry["seq"] = self.request_seq
            self.requests.append(entry)
            if self.request_file:
                self.request_file.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "acr-emulator/1.0"
    # An answer goes out as two writes (headers, then body). With Nagle on, the
    # body waits for the client to ACK the headers, which a client on a kept-
    # alive connection delays by up to 40 ms: every request would take 40 ms.
    disable_nagle_algorithm = True
    emu = None  # set by serve()

    def log_message(self, fmt, *args):  # the default would print every request twice
        pass

    def do_GET(self):
        self._handle()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_GET

    # -- plumbing ---------------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        started = time.time()
        emu = self.emu
        body = self._read_body()
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        req = Request(self.command, self.path, self.headers, body, host)
        request_id = str(uuid.uuid4())
        headers = {"x-ms-request-id": request_id,
                   "x-ms-correlation-request-id": self.headers.get("x-ms-correlation-request-id")
                   or str(uuid.uuid4()),
                   "x-ms-routing-request-id": "EMULATOR:%s:%s" % (
                       time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), request_id)}
        if self.headers.get("x-ms-client-request-id"):
            headers["x-ms-client-request-id"] = self.headers["x-ms-client-request-id"]
        control = req.path.startswith("/_emulator/") or req.path == "/_emulator"
        fault = None if control else emu.faults.pick(req.method, req.path)
        if fault and fault["latencyMs"]:
            time.sleep(fault["latencyMs"] / 1000.0)
        if fault and fault["drop"]:
            self._log(req, "dropped", started, request_id, fault, control)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault and fault["status"]:
            reply = self._fault_reply(fault)
        else:
            emu.world.tick()
            reply = self._route(req)
        headers.update(reply.headers)
        # Log before answering: a client that reads the request log right
        # after this answer must find this request in it.
        self._log(req, reply.status, started, request_id, fault, control)
        self._send(reply.status, reply.body, headers)

    def _route(self, req):
        emu = self.emu
        path = req.path
        try:
            if path.startswith("/_emulator"):
                return emu.control.handle(req)
            if path.startswith("/_blob/"):
                return emu.control.blob(req)
            if path == "/metadata/identity/oauth2/token":
                if req.method != "GET":
                    return Reply(405, {"error": "invalid_request", "error_description": "Use GET"})
                status, body = emu.identity.imds_request(req.query, req.headers.get("Metadata"))
                return Reply(status, body)
            m = TOKEN_PATH.match(path)
            if m:
                return self._token(req, m.group(1))
            if path.startswith(DEVOPS_PREFIX):
                return emu.devops.handle(req)
            if path.lower().startswith("/subscriptions/"):
                if emu.auth:
                    problem = emu.identity.check_bearer(req.headers.get("Authorization"))
                    if problem:
                        code, message = problem
                        raise ArmError(401, code, message, headers={
                            "WWW-Authenticate": 'Bearer authorization_uri="%s/common/oauth2/authorize", '
                                                'error="invalid_token", error_description="%s"'
                                                % (req.base_url, message)})
                if emu.aci.owns(path):
                    return emu.aci.handle(req)
                with emu.world.lock:
                    return emu.arm.handle(req)
            raise ArmError(404, "NotFound", f"No route for '{path}'.")
        except ArmError as e:
            return Reply(e.status, e.body(), e.headers)
        except Exception:  # an emulator bug: answer like ARM would, keep serving
            traceback.print_exc(file=sys.stderr)
            return Reply(500, {"error": {"code": "InternalServerError",
                                         "message": "The emulator failed to process the request."}})

    def _token(self, req, tenant):
        if req.method != "POST":
            return Reply(405, {"error": "invalid_request", "error_description": "AADSTS900561: The endpoint "
                               "only accepts POST requests."})
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        basic = None
        auth = req.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                basic = (unquote(user), unquote(pw))
            except ValueError:
                basic = None
        try:
            return Reply(200, self.emu.identity.token_request(tenant, form, basic),
                         {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})
        except AADError as e:
            return Reply(e.status, e.body())

    def _fault_reply(self, fault):
        if self.path.startswith(DEVOPS_PREFIX):
            return self.emu.devops.fault_reply(fault)
        status = int(fault["status"])
        code = fault["code"] or {429: "TooManyRequests", 500: "InternalServerError",
                                 502: "BadGateway", 503: "ServiceUnavailable",
                                 504: "GatewayTimeout"}.get(status, "InjectedFault")
        message = fault["message"] or {
            429: "The request is being throttled as the limit has been reached for operation type "
                 "- Read_ObservationWindow_00:05:00. Please try again later (injected).",
        }.get(status, f"Injected fault {status}.")
        headers = {}
        if status in (429, 503) and fault["retryAfter"] is not None:
            headers["Retry-After"] = str(fault["retryAfter"])
        if status == 429:
            headers["x-ms-ratelimit-remaining-subscription-reads"] = "0"
            headers["x-ms-ratelimit-remaining-subscription-writes"] = "0"
        return Reply(status, {"error": {"code": code, "message": message}}, headers)

    def _send(self, status, body, headers):
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(body, str):
            data = body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        elif isinstance(body, bytes):
            data = body
        else:
            data = b""
        if status in (200, 201, 202, 204) and self.path.lower().startswith("/subscriptions/"):
            # ARM reports the caller's remaining budget on every answer.
            kind = "reads" if self.command == "GET" else "writes"
            headers.setdefault(f"x-ms-ratelimit-remaining-subscription-{kind}", "249" if kind == "reads" else "199")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 204 and not (100 <= status < 200):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            self.wfile.write(data)

    def _log(self, req, status, started, request_id, fault, control):
        ms = int((time.time() - started) * 1000)
        query = "&".join(
            f"{k}={'***' if k.lower() in ('sig', 'code', 'client_secret') else v}" for k, v in req.query.items())
        target = req.raw_path + (f"?{query}" if query else "")
        sys.stderr.write(f"acr-emulator {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                         f"{req.method} {target} {status} {ms}ms req={request_id}"
                         f"{' fault=' + str(fault['id']) if fault else ''}\n")
        if control:
            return
        self.emu.record({
            "time": started, "method": req.method, "path": req.path, "query": _mask_query(req.query),
            "apiVersion": req.query.get("api-version"), "body": _log_body(req),
            "status": status, "requestId": request_id, "durationMs": ms,
            "clientRequestId": req.headers.get("x-ms-client-request-id"),
            "correlationRequestId": req.headers.get("x-ms-correlation-request-id"),
            "userAgent": req.headers.get("User-Agent"),
            "hasAuthorization": bool(req.headers.get("Authorization")),
            "fault": fault["id"] if fault else None,
        })


def _mask_query(query):
    return {k: (redacted(v) if k.lower() == "sig" else v) for k, v in query.items()}


def _log_body(req):
    """The body as the request log keeps it: JSON parsed, token-request form
    fields parsed with secrets replaced by a hash, blobs summarised."""
    if not req.body:
        return None
    if req.path.startswith(DEVOPS_PREFIX):
        return DevOps.log_body(req)
    if req.path.startswith("/_blob/"):
        return {"size": len(req.body), "sha256": hashlib.sha256(req.body).hexdigest()}
    if TOKEN_PATH.match(req.path):
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        return {k: (redacted(v) if k in SECRET_FORM_FIELDS else v) for k, v in form.items()}
    try:
        body = json.loads(req.body)
    except ValueError:
        return {"unparsed": len(req.body)}
    # Container-group secrets (secureValue, ...) never reach a log.
    return aci_mask_body(body) if Aci.owns(req.path) else body


def serve(port=0, port_file=None, spec_dir=None, auth=True, state_dir=None):
    """Build an emulator and its server (not yet serving). Returns (server, emulator)."""
    emu = Emulator(spec_dir or os.path.join(HERE, "spec"), auth=auth, state_dir=state_dir)
    handler = type("BoundHandler", (Handler,), {"emu": emu})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    emu.aci.emulator_url = f"http://127.0.0.1:{server.server_address[1]}"
    server.daemon_threads = True
    if port_file:
        # Write then rename, so a harness polling the file never reads half a number.
        tmp = f"{port_file}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(tmp, port_file)
    return server, emu


def main(argv=None):
    ap = argparse.ArgumentParser(description="Azure Container Registry Tasks / agent pool emulator")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--port-file", help="write the chosen port to this file once listening")
    ap.add_argument("--state-dir", help="directory for uploaded blobs and requests.jsonl")
    ap.add_argument("--spec-dir", help="directory holding <api-version>-containerregistry_build.json")
    ap.add_argument("--no-auth", action="store_true", help="accept ARM calls without a bearer token")
    args = ap.parse_args(argv)
    if args.state_dir:
        os.makedirs(args.state_dir, exist_ok=True)
    server, emu = serve(args.port, args.port_file, args.spec_dir, not args.no_auth, args.state_dir)
    ticker = Ticker(emu.world)
    ticker.start()
    sys.stderr.write(f"acr-emulator listening on http://127.0.0.1:{server.server_address[1]} "
                     f"(auth {'on' if emu.auth else 'off'}, api-versions {', '.join(sorted(emu.specs))})\n")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        ticker.stopped.set()
        server.server_close()


if __name__ == "__main__":
    main()
