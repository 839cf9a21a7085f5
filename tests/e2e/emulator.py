"""The Azure emulator as the end-to-end suite uses it: a process on a
loopback port, its control endpoint, and its request log.

    emu = Emulator.start(tmpdir)
    emu.registry(SUB, RG, "myregistry", sku="Premium")
    emu.client(TENANT, CLIENT, secret="...")   # a service principal
    emu.requests(method="PUT", path_contains="/agentPools/")
"""
import json
import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

from procs import ROOT, wait_until

EMULATOR = ROOT / "tests" / "emulator" / "acr_emulator.py"

SUB = "00000000-0000-0000-0000-000000000000"
RG = "myresourcegroup"
TENANT = "22222222-2222-2222-2222-222222222222"
CLIENT = "11111111-1111-1111-1111-111111111111"


class Emulator:
    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    @classmethod
    def start(cls, tmp_dir, *extra):
        tmp_dir = pathlib.Path(tmp_dir)
        port_file = tmp_dir / "emulator.port"
        log_path = tmp_dir / "emulator.log"
        proc = subprocess.Popen([sys.executable, str(EMULATOR), "--port", "0", "--port-file", str(port_file), *extra],
                                stdout=subprocess.DEVNULL, stderr=open(log_path, "ab"))
        wait_until("the emulator's port file", lambda: port_file.exists() or proc.poll() is not None, timeout=20)
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited at start; see {log_path}")
        return cls(proc, int(port_file.read_text().strip()), log_path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raise AssertionError(f"emulator control {method} {path}: {e.code} {e.read()!r}") from None

    def reset(self):
        self.control("POST", "reset")

    def settings(self, **kw):
        return self.control("PATCH", "settings", kw)

    def registry(self, sub, rg, name, location="eastus", sku="Premium", **kw):
        return self.control("PUT", f"registries/{sub}/{rg}/{name}", {"location": location, "sku": sku, **kw})

    def pool(self, sub, rg, reg, name, method="GET", body=None):
        return self.control(method, f"registries/{sub}/{rg}/{reg}/agentPools/{name}", body)

    def client(self, tenant, client_id, secret=None, federated=None):
        body = {"tenantId": tenant, "clientId": client_id}
        if secret:
            body["clientSecret"] = secret
        if federated:
            body["federatedCredentials"] = federated
        return self.control("POST", "identity/clients", body)

    def fault(self, **kw):
        return self.control("POST", "faults", kw)

    def clear_faults(self):
        self.control("DELETE", "faults")

    def requests(self, method=None, path_contains=None, since=None):
        q = f"requests?since={since}" if since is not None else "requests"
        entries = self.control("GET", q)
        entries = entries["value"]
        return [e for e in entries
                if (method is None or e["method"] == method)
                and (path_contains is None or path_contains.lower() in e["path"].lower())]

    def clear_requests(self):
        self.control("DELETE", "requests")
