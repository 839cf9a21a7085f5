"""Secure metrics (issue 15, item 2), against the real kube-apiserver and
the real operator binary, run as its ServiceAccount with manifests/base's
RBAC:

- /metrics is HTTPS; the certificate is the self-signed one made at start,
  or the one mounted with --metrics-cert-dir (verified against it);
- a ServiceAccount token bound to acrpool-metrics-reader gets the metrics
  (Prometheus text with the operator's own metric names); a token without
  the role gets 403; no token, a garbage token or another scheme gets 401;
- a scrape every few seconds is answered from the review cache: the
  operator's own POST count (TokenReview + SubjectAccessReview) does not
  grow with each scrape;
- /healthz and /readyz stay plain HTTP on the probe port;
- --metrics-secure=false serves plain HTTP without authentication on
  127.0.0.1 and is refused at start on 0.0.0.0.

The rest of the suite runs the operator with --metrics-secure=false on
127.0.0.1 (harness.start_operator), so Proc.metric() reads plain HTTP.
"""
import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from emulator import Emulator
from harness import OPERATOR, operator_identity, start_operator
from procs import Proc, wait_until

OPERATOR_METRICS = ["controller_runtime_reconcile_total", "workqueue_depth", "acrpool_watch_events_total",
                    "rest_client_requests_total"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.alive():
            p.stop()
        else:
            p.kill()
        p.assert_clean()


@pytest.fixture
def scrapers(kube, namespace):
    """Make ServiceAccounts with tokens in the test's namespace; bound=True
    binds acrpool-metrics-reader to it (a ClusterRoleBinding, removed at
    the end)."""
    bindings = []

    def make(name, bound):
        kube.run("-n", namespace, "create", "serviceaccount", name)
        if bound:
            crb = f"metrics-reader-{namespace}-{name}"
            kube.run("create", "clusterrolebinding", crb, "--clusterrole=acrpool-metrics-reader",
                     f"--serviceaccount={namespace}:{name}")
            bindings.append(crb)
        return kube.run("-n", namespace, "create", "token", name, "--duration=1h").stdout.strip()

    yield make
    for crb in bindings:
        kube.run("delete", "clusterrolebinding", crb, check=False)


def https_get(port, path, token=None, header=None, cafile=None):
    """(status, body) of GET https://127.0.0.1:port/path; the certificate is
    verified against cafile when given (name 127.0.0.1), else not."""
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if header is not None:
        headers["Authorization"] = header
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def presented_certificate(port):
    """The DER certificate the server presents on 127.0.0.1:port."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True), t.version()


def post_count(body):
    """The operator's own POSTs that the API server answered 201, from a
    scrape (the reviews are POSTs; with no objects, nothing else is)."""
    total = 0.0
    for line in body.splitlines():
        if line.startswith("rest_client_requests_total{") and 'verb="POST"' in line and 'code="201"' in line:
            total += float(line.rpartition(" ")[2])
    return total


def test_metrics_need_a_reviewed_token_with_the_reader_role(kube, emu, namespace, procs, scrapers):
    reader = scrapers("prometheus", bound=True)
    stranger = scrapers("stranger", bound=False)
    op = start_operator(kube, emu, namespace, metrics_secure=True)
    procs.append(op)
    port = op.port()
    entry = op.find("serving metrics")[0]
    assert entry["secure"] == "true" and entry["certificate"] == "self-signed", entry

    # TLS is really on: a certificate is presented, and it is ECDSA made for
    # this host (it verifies against itself as its own CA).
    der, version = presented_certificate(port)
    assert der and version in ("TLSv1.2", "TLSv1.3")
    pem = ssl.DER_cert_to_PEM_cert(der)
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, text=True,
                          check=True).stdout
    assert "id-ecPublicKey" in text and "prime256v1" in text, text
    assert "IP Address:127.0.0.1" in text, text

    # The reader gets the operator's metrics in Prometheus text format.
    status, body = wait_until("the first authorized scrape",
                              lambda: (lambda r: r if r[0] == 200 else None)(https_get(port, "/metrics", reader)),
                              timeout=30)
    for name in OPERATOR_METRICS:
        assert f"# TYPE {name} " in body, f"{name} missing from the scrape"
    assert "\n# HELP " in "\n" + body
    posts = post_count(body)
    assert posts >= 2, "the TokenReview and SubjectAccessReview are not among the operator's requests"

    # Scrapes within the cache's minute cost the API server nothing.
    for _ in range(3):
        status, again = https_get(port, "/metrics", reader)
        assert status == 200
    assert post_count(again) == posts, "a cached scrape was reviewed again"

    # A valid token without the role: 403, naming the user, no metrics.
    status, body = https_get(port, "/metrics", stranger)
    assert status == 403, body
    assert f"system:serviceaccount:{namespace}:stranger" in body
    assert "workqueue_depth" not in body

    # No token, a garbage token, another scheme: 401.
    for kw in ({}, {"token": "not-a-token"}, {"token": reader[:-8] + "AAAAAAAA"},
               {"header": "Basic dXNlcjpwYXNz"}, {"header": "Bearer"}):
        status, body = https_get(port, "/metrics", **kw)
        assert status == 401, (kw.get("header"), status, body)
        assert "workqueue_depth" not in body

    # Plain HTTP on the metrics port gets no metrics.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + reader})
        plain = conn.getresponse()
        assert plain.status != 200 or "workqueue_depth" not in plain.read().decode()
    except (ConnectionError, http.client.HTTPException, OSError):
        pass
    finally:
        conn.close()

    # The probes stay plain HTTP on their own port.
    health = op.port("serving health probes")
    assert health != port
    assert op.get("/healthz", health) == (200, "ok")
    status, _ = wait_until("ready", lambda: (lambda r: r if r[0] == 200 else None)(op.get("/readyz", health)))
    assert status == 200

    # The tokens never reach the operator's log.
    assert reader not in op.text() and stranger not in op.text()


def test_mounted_certificate_is_the_one_presented(kube, emu, namespace, procs, scrapers, tmp_path):
    reader = scrapers("prometheus", bound=True)
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=acrpool-mounted",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    op = start_operator(kube, emu, namespace, "--metrics-cert-dir", str(tmp_path), metrics_secure=True)
    procs.append(op)
    port = op.port()
    assert op.find("serving metrics")[0]["certificate"] == str(tmp_path)
    der, _ = presented_certificate(port)
    assert der == ssl.PEM_cert_to_DER_cert(crt.read_text())
    # Verified for real against the mounted certificate as the CA.
    status, body = https_get(port, "/metrics", reader, cafile=str(crt))
    assert status == 200 and "# TYPE workqueue_depth gauge" in body


def make_pair(tmp_path, cn):
    """(certificate PEM, key PEM): a P-256 pair for 127.0.0.1 made by openssl."""
    crt, key = tmp_path / f"{cn}.crt", tmp_path / f"{cn}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return crt.read_text(), key.read_text()


def kubelet_publish(volume, generation, cert_pem, key_pem):
    """Update volume as the kubelet's AtomicWriter updates a Secret volume:
    the files go into a new hidden directory, a new ..data symlink to it is
    renamed over the old one (the one atomic step), tls.crt and tls.key are
    links through ..data, and the previous directory is removed."""
    gen = volume / f"..2026_12_07_00_00_{generation:02d}.000000000"
    gen.mkdir(mode=0o755)
    (gen / "tls.crt").write_text(cert_pem)
    (gen / "tls.key").write_text(key_pem)
    os.chmod(gen / "tls.key", 0o600)
    data, tmp = volume / "..data", volume / "..data_tmp"
    old = os.readlink(data) if data.is_symlink() else None
    os.symlink(gen.name, tmp)
    os.rename(tmp, data)
    for name in ("tls.crt", "tls.key"):
        if not (volume / name).is_symlink():
            os.symlink(f"..data/{name}", volume / name)
    if old:
        for f in (volume / old).iterdir():
            f.unlink()
        (volume / old).rmdir()


def test_rotated_certificate_is_presented_without_a_restart(kube, emu, namespace, procs, scrapers, tmp_path):
    reader = scrapers("prometheus", bound=True)
    volume = tmp_path / "metrics-cert"
    volume.mkdir()
    first, second, third = (make_pair(tmp_path, cn) for cn in ("acrpool-first", "acrpool-second", "acrpool-third"))
    kubelet_publish(volume, 1, *first)
    op = start_operator(kube, emu, namespace, "--metrics-cert-dir", str(volume), metrics_secure=True)
    procs.append(op)
    port = op.port()
    pid = op.p.pid
    assert presented_certificate(port)[0] == ssl.PEM_cert_to_DER_cert(first[0])
    status, _ = https_get(port, "/metrics", reader, cafile=str(tmp_path / "acrpool-first.crt"))
    assert status == 200

    # cert-manager renews: the kubelet swaps the volume's contents.
    kubelet_publish(volume, 2, *second)
    second_der = ssl.PEM_cert_to_DER_cert(second[0])
    wait_until("the renewed certificate to be presented",
               lambda: presented_certificate(port)[0] == second_der, timeout=30)
    # Verified for real against the new certificate only, by the same process.
    status, body = https_get(port, "/metrics", reader, cafile=str(tmp_path / "acrpool-second.crt"))
    assert status == 200 and "# TYPE workqueue_depth gauge" in body
    assert op.alive() and op.p.pid == pid
    loaded = op.find("loaded a new serving certificate")
    assert loaded and loaded[-1]["sha256"] == hashlib.sha256(second_der).hexdigest(), loaded
    assert loaded[-1]["certificate"] == str(volume / "tls.crt")

    # A pair that does not match (the third certificate, the second key):
    # refused and logged once the next handshake looks; the second stays.
    kubelet_publish(volume, 3, third[0], second[1])
    refused = "cannot load the new serving certificate; still serving the previous one"

    def refusal_logged():
        der, _ = presented_certificate(port)
        assert der == second_der, "a mismatched pair was put in use"
        return op.find(refused)

    entries = wait_until("the mismatched pair to be refused", refusal_logged, timeout=30)
    assert "is not the certificate's" in entries[0]["error"], entries
    status, _ = https_get(port, "/metrics", reader, cafile=str(tmp_path / "acrpool-second.crt"))
    assert status == 200
    # Reported once per change, and no key material reaches the log.
    presented_certificate(port)
    assert len(op.find(refused)) == 1
    text = op.text()
    assert "PRIVATE KEY" not in text and second[1].splitlines()[1] not in text


def test_missing_certificate_dir_is_refused_at_start(kube, emu, namespace, procs, tmp_path):
    op = start_operator(kube, emu, namespace, "--metrics-cert-dir", str(tmp_path / "absent"), metrics_secure=True)
    procs.append(op)
    assert op.p.wait(timeout=60) != 0
    assert "tls.crt" in op.text()


def test_plain_http_development_mode_on_loopback(kube, emu, namespace, procs):
    # The harness' own mode: --metrics-secure=false on 127.0.0.1.
    op = start_operator(kube, emu, namespace)
    procs.append(op)
    assert "--metrics-secure=false" in op.p.args
    op.port()
    assert op.find("serving metrics")[0]["secure"] == "false"
    status, body = op.get("/metrics")
    assert status == 200 and "# TYPE workqueue_depth gauge" in body
    assert op.metric("acrpool_watch_events_total") is not None


@pytest.mark.parametrize("address", ["0.0.0.0:0", ":0", "[::]:0"])
def test_plain_http_refused_off_loopback(kube, namespace, address):
    ident = operator_identity(kube)
    p = Proc(OPERATOR, ["--kubeconfig", ident.kubeconfig, "--namespaces", namespace, "--metrics-secure=false",
                        "--metrics-bind-address", address, "--health-probe-bind-address", "127.0.0.1:0"])
    try:
        rc = p.p.wait(timeout=60)
    finally:
        p.kill()
    assert rc == 2
    text = p.text()
    assert "loopback" in text and "--metrics-secure=false" in text, text
    assert not p.find("serving metrics")
    p.assert_clean()
