"""Running our binaries in end-to-end tests: start with arguments, collect
the JSON log lines, find the ports they bound, stop with a signal, and
check that the sanitizers had nothing to say."""
import json
import os
import pathlib
import signal as signals
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("ACRPOOL_BUILD_DIR", ROOT / "build"))


def wait_until(what, predicate, timeout=60.0, interval=0.1):
    """Poll predicate until it returns something truthy; fail after timeout.
    This waits on a condition; the interval is only how often we look."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Proc:
    def __init__(self, exe, args, env=None):
        self.log_path = tempfile.mktemp(prefix=pathlib.Path(exe).name + "-", suffix=".log")
        self.log = open(self.log_path, "w")
        full_env = dict(os.environ)
        # Leak checking stays on; make ASan reports easy to find.
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        full_env.update(env or {})
        self.p = subprocess.Popen([str(exe), *args], stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    def lines(self):
        out = []
        for raw in pathlib.Path(self.log_path).read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"raw": raw})
        return out

    def text(self):
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def find(self, msg):
        return [l for l in self.lines() if l.get("msg") == msg]

    def port(self, msg="serving metrics"):
        entry = wait_until(f"'{msg}' in the log", lambda: self.find(msg), timeout=30)
        return int(entry[0]["port"])

    def get(self, path, port=None):
        port = port or self.port()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name, labels=None):
        _, body = self.get("/metrics")
        total = None
        for line in body.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if labels and not all(f'{k}="{v}"' in head for k, v in labels.items()):
                continue
            total = (total or 0) + float(value)
        return total

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, sig=signals.SIGTERM, timeout=60):
        self.signal(sig)
        try:
            return self.p.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()
        self.log.close()

    def assert_clean(self):
        text = self.text()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in text, f"sanitizer report in {self.log_path}:\n{text[-4000:]}"
