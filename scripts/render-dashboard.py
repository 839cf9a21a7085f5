#!/usr/bin/env python3
"""render-dashboard.py: a picture of the Grafana dashboard of
manifests/monitoring (docs/dashboard.png), from a short real run.

Grafana is not packaged here, so this draws the same panels with matplotlib
from the same PromQL: it starts the test control plane (scripts/testenv.sh),
the Azure emulator and the operator (as tests/e2e/harness.py does), has a
real Prometheus (Debian's `prometheus` package) scrape the operator's
/metrics every 2 s (through a loopback relay that reads it with the
harness's Proc.get, so it follows however /metrics is served), plays a few
minutes of pool life (create, scale, runs queued on a pool at zero, a burst
of ARM throttling, a delete), then asks Prometheus for every panel's query
over the run and draws each panel at its place on the dashboard's grid.
Grafana's $__rate_interval and $__range become 30s and the run's length.

Not part of any test: run by hand when the dashboard changes
(needs python3-matplotlib and prometheus):

    ACRPOOL_BUILD_DIR=build scripts/render-dashboard.py [docs/dashboard.png]
"""
import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "monitoring"))

from emulator import RG, SUB, Emulator  # noqa: E402
from harness import pool_obj, setup_azure, start_operator, wait_condition  # noqa: E402
from kubeenv import TESTENV, Kube, _read_env  # noqa: E402
import promql_names as pn  # noqa: E402

SCRAPE_S = 2
RATE_INTERVAL = "30s"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relay(op):
    """A loopback HTTP server answering /metrics with the operator's, read
    through the harness. Returns its port."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = op.get("/metrics")
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def start_prometheus(tmp, target_port):
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(json.dumps({
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
        "scrape_configs": [{"job_name": "acrpool-controller-metrics", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}]}))
    proc = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=open(tmp / "prometheus.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"prometheus did not start: {(tmp / 'prometheus.log').read_text()[-2000:]}")


def query_range(url, expr, start, end, step):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{q}", timeout=30) as r:
        return json.loads(r.read())["data"]["result"]


def query(url, expr, at):
    q = urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=30) as r:
        return json.loads(r.read())["data"]["result"]


def legend(fmt, metric):
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def scenario(kube, emu, ns, say):
    """A few minutes of pool life."""
    emu.settings(runDurationSeconds=20)
    kube.apply(pool_obj("build-linux", tier="S2", count=2), ns)
    kube.apply(pool_obj("build-large", tier="S3", count=1), ns)
    kube.apply(pool_obj("nightly", tier="S1", count=0), ns)
    for name in ("build-linux", "build-large", "nightly"):
        wait_condition(kube, "agentpool", name, ns, "Ready", timeout=120)
    say("pools Ready")
    time.sleep(40)
    kube.apply(pool_obj("build-linux", tier="S2", count=4), ns)
    say("build-linux scaled to 4")
    time.sleep(30)
    for i in range(5):
        emu.control("PUT", f"registries/{SUB}/{RG}/myregistry/runs/n{i}",
                    {"properties": {"agentPoolName": "nightly", "status": "Queued"}})
    kube.apply(pool_obj("nightly", tier="S1", count=0, tags={"queued": "5"}), ns)
    say("5 runs queued on nightly (at zero)")
    time.sleep(30)
    emu.fault(status=429, count=6, retryAfter=1, path="/agentPools")
    kube.apply(pool_obj("build-large", tier="S3", count=2), ns)
    say("ARM throttles; build-large scaled to 2")
    time.sleep(30)
    kube.apply(pool_obj("nightly", tier="S1", count=2, tags={"queued": "5"}), ns)
    say("nightly scaled to 2: the runs are taken")
    time.sleep(40)
    kube.apply(pool_obj("build-linux", tier="S2", count=1), ns)
    kube.run("delete", "agentpool", "build-large", "-n", ns, "--wait=false")
    say("build-linux down to 1; build-large deleted")
    time.sleep(40)


def draw(url, start, end, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = pn.dashboard()
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in d["panels"])
    fig = plt.figure(figsize=(20, rows * 0.42 + 1.2), facecolor="#111217")
    fig.suptitle("acrpool (manifests/monitoring/dashboard.json): a static render of its panels from a "
                 f"{int(end - start)} s run against the Azure emulator", color="#d8d9da", fontsize=13)
    gs = fig.add_gridspec(rows, 24, hspace=2.2, wspace=1.6, left=0.04, right=0.985, top=0.95, bottom=0.04)
    step = SCRAPE_S
    for p in d["panels"]:
        g = p["gridPos"]
        ax = fig.add_subplot(gs[g["y"]:g["y"] + g["h"], g["x"]:g["x"] + g["w"]])
        ax.set_facecolor("#181b1f")
        for s in ax.spines.values():
            s.set_color("#2c3235")
        ax.tick_params(colors="#9fa7b3", labelsize=7)
        unit = p["fieldConfig"]["defaults"].get("unit", "")
        ax.set_title(p["title"] + (f"  [{unit}]" if unit not in ("", "short") else ""), color="#d8d9da",
                     fontsize=9, loc="left")
        if p["type"] == "bargauge":
            labels, values = [], []
            for t in p["targets"]:
                expr = sub_vars(t["expr"], start, end)
                for r in sorted(query(url, expr, end), key=lambda r: legend(t["legendFormat"], r["metric"])):
                    labels.append(legend(t["legendFormat"], r["metric"]))
                    values.append(float(r["value"][1]))
            ax.barh(range(len(values)), values, color="#73bf69")
            ax.set_yticks(range(len(values)), labels, fontsize=7, color="#d8d9da")
            ax.invert_yaxis()
            for i, v in enumerate(values):
                ax.text(v, i, f" {v:.3g}", va="center", color="#d8d9da", fontsize=7)
            continue
        for t in p["targets"]:
            expr = sub_vars(t["expr"], start, end)
            dashed = "desired" in t["legendFormat"]
            for r in query_range(url, expr, start, end, step):
                xs = [float(v[0]) - start for v in r["values"]]
                ys = [float(v[1]) for v in r["values"]]
                ax.plot(xs, ys, lw=1.4, ls="--" if dashed else "-", label=legend(t["legendFormat"], r["metric"]))
        ax.set_xlabel("seconds into the run", fontsize=7, color="#9fa7b3")
        ax.grid(color="#2c3235", lw=0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", labelcolor="#d8d9da",
                      edgecolor="#2c3235", ncol=2 if g["w"] >= 12 else 1)
    fig.savefig(out, dpi=80, facecolor=fig.get_facecolor())
    print(f"wrote {out}")


def sub_vars(expr, start, end):
    return (expr.replace("$__rate_interval", RATE_INTERVAL)
            .replace("$__range", f"{int(end - start)}s")
            .replace("$namespace", ".*"))


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png")
    for tool in ("prometheus",):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install prometheus)")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="acrpool-render-"))
    t0 = time.monotonic()

    def say(msg):
        print(f"[{time.monotonic() - t0:5.0f}s] {msg}", flush=True)

    state = tmp / "testenv"
    env = dict(os.environ, TESTENV_OWNER_PID=str(os.getpid()))
    subprocess.run([str(TESTENV), "start", str(state)], check=True, env=env)
    emu = op = prom = None
    try:
        kube = Kube(_read_env(state / "env"))
        kube.run("apply", "-f", str(ROOT / "crds"))
        kube.run("wait", "--for", "condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
        ns = "ci-" + uuid.uuid4().hex[:6]
        kube.run("create", "namespace", ns)
        (tmp / "emulator").mkdir()
        emu = Emulator.start(tmp / "emulator")
        # Room for every scale below, in Azure and in the Registry.
        setup_azure(kube, emu, ns, quota={"standardVCPU": 64})
        emu.registry(SUB, RG, "myregistry", quota={"standardVCPU": 64})
        op = start_operator(kube, emu, ns, "--queue-poll-interval", "2s")
        op.port()
        prom, url = start_prometheus(tmp, relay(op))
        start = time.time()
        say("operator and prometheus up")
        scenario(kube, emu, ns, say)
        end = time.time()
        time.sleep(SCRAPE_S * 2)
        draw(url, start, end, out)
    finally:
        if prom:
            prom.terminate()
            prom.wait()
        if op:
            op.stop()
        if emu:
            emu.stop()
        subprocess.run([str(TESTENV), "stop", str(state)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
