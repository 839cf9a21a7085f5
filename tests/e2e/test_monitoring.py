"""Issue 15, points 4 and 5: the alert rules and the Grafana dashboard of
manifests/monitoring read metrics the operator really exports.

The real operator runs against the real API server and the Azure emulator
(the harness), reconciles a Registry and two AgentPools to Ready, and its
/metrics is scraped through the harness's own helper (Proc.get, so however
the endpoint is served and secured, this test follows). Then:

- every metric name in every alert expression and every dashboard query
  (tests/monitoring/promql_names.py) is in the scrape, histogram suffixes
  included; the only exceptions are the series Prometheus makes itself
  for each target (`up`);
- every label an expression groups or matches by is one the metrics it
  reads carry, or a target label Prometheus adds;
- the unit cases of tests/monitoring/alert_cases.py use the operator's
  metric names with exactly the operator's label names, and the work
  queue histogram's buckets as the operator writes them.

Nothing of the scrape is written to the repository."""
import json
import re
import sys
import uuid

import pytest
import yaml

from emulator import Emulator
from harness import pool_obj, setup_azure, start_operator, wait_condition
from kubeenv import ROOT
from procs import wait_until

sys.path.insert(0, str(ROOT / "tests" / "monitoring"))
import alert_cases  # noqa: E402
import promql_names as pn  # noqa: E402

_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_scrape(body):
    """{metric name: [label dicts]} of a Prometheus text-format body."""
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out.setdefault(m.group(1), []).append(dict(_LABEL.findall(m.group(2) or "")))
    return out


def scrape_body(op):
    """/metrics of the operator through the harness's helper."""
    status, body = op.get("/metrics")
    assert status == 200, f"/metrics answered {status}: {body[:200]}"
    return body


def scrape(op):
    return parse_scrape(scrape_body(op))


def value(body, metric, **labels):
    """The value of the one sample of metric with exactly these labels."""
    for line in body.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == metric and dict(_LABEL.findall(m.group(2) or "")) == labels:
            return float(line.rsplit(" ", 1)[1])
    return None


def used_names():
    return set().union(*(pn.metric_names(e) for _, e in pn.all_exprs()))


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


@pytest.fixture(scope="module")
def scraped(kube, emu):
    """The operator's metrics once a Registry and two AgentPools (one with an
    instance, one at zero) are Ready and every name the rules and the
    dashboard use has shown up; one run for the whole module."""
    namespace = "t-" + uuid.uuid4().hex[:10]
    kube.run("create", "namespace", namespace)
    emu.reset()
    setup_azure(kube, emu, namespace)
    op = start_operator(kube, emu, namespace, "--queue-poll-interval", "1s")
    try:
        kube.apply(pool_obj("monpool", tier="S1", count=1), namespace)
        kube.apply(pool_obj("monzero", tier="S1", count=0), namespace)
        for name in ("monpool", "monzero"):
            wait_condition(kube, "agentpool", name, namespace, "Ready", timeout=90)
        wait_condition(kube, "registry", "myregistry", namespace, "Ready", timeout=60)
        wanted = used_names() - pn.SYNTHETIC

        def all_there():
            s = scrape(op)
            return s if wanted <= set(s) else None
        try:
            metrics = wait_until("every metric the rules and the dashboard use", all_there, timeout=60,
                                 interval=0.5)
        except AssertionError:
            metrics = scrape(op)   # the assertion below says which are missing
        yield metrics, namespace, scrape_body(op), op
    finally:
        op.stop()
        op.assert_clean()


def test_every_metric_of_the_rules_and_the_dashboard_is_exported(scraped):
    metrics, _, _, _ = scraped
    missing = {}
    for where, expr in pn.all_exprs():
        for name in pn.metric_names(expr) - pn.SYNTHETIC:
            if name not in metrics:
                missing.setdefault(name, []).append(where)
    assert not missing, f"used but not exported by the operator: {missing}"
    # And the exceptions are only what Prometheus makes itself.
    assert used_names() - set(metrics) <= pn.SYNTHETIC


def test_every_grouping_label_is_carried(scraped):
    metrics, _, _, _ = scraped
    for where, expr in pn.all_exprs():
        names = pn.metric_names(expr) - pn.SYNTHETIC
        carried = set(alert_cases.TARGET_LABELS)
        for n in names:
            for labels in metrics[n]:
                carried |= set(labels)
        assert pn.grouping_labels(expr) <= carried, \
            f"{where}: groups by {pn.grouping_labels(expr) - carried}, which {sorted(names)} do not carry"


def test_alert_cases_are_shaped_like_the_scrape(scraped):
    metrics, namespace, _, _ = scraped
    for alert, cases in alert_cases.CASES.items():
        for what, input_series, _, _ in cases:
            for s in input_series:
                name, _, body = s["series"].partition("{")
                if name in pn.SYNTHETIC:
                    continue
                assert name in metrics, f"{alert} ({what}): {name} is not exported"
                case_labels = set(_LABEL_NAMES(body)) - alert_cases.TARGET_LABELS
                exported = {frozenset(set(l) - {"namespace"}) for l in metrics[name]}
                assert frozenset(case_labels - {"namespace"}) in exported, \
                    f"{alert} ({what}): {name} with labels {sorted(case_labels)}; the operator's: " \
                    f"{[sorted(e) for e in exported]}"
    # The queue histogram's buckets, as the operator writes `le`.
    les = [l["le"] for l in metrics["workqueue_queue_duration_seconds_bucket"]
           if l.get("name") == metrics["workqueue_queue_duration_seconds_bucket"][0]["name"]]
    assert les == alert_cases.QUEUE_LE
    # The pool metrics carry the AgentPool's own namespace (hence honorLabels
    # in the ServiceMonitor), and the state gauge one series a pool.
    for n in ("acrpool_agentpool_count", "acrpool_agentpool_desired_count",
              "acrpool_agentpool_provisioning_state"):
        assert {(l["namespace"], l["name"]) for l in metrics[n]} >= {(namespace, "monpool")}, n
    states = {l["state"]: l for l in metrics["acrpool_agentpool_provisioning_state"] if l["name"] == "monpool"}
    assert list(states) == ["Succeeded"], states


def test_pool_gauges_say_what_status_says_right_after_create(scraped):
    """A create Azure answers as done makes the pool Ready in one pass, and
    no other pass comes until the resync: the gauges must already say the
    pool's count, queue and state (they once waited for the resync)."""
    _, ns, body, _ = scraped
    assert value(body, "acrpool_agentpool_count", namespace=ns, name="monpool") == 1
    assert value(body, "acrpool_agentpool_desired_count", namespace=ns, name="monpool") == 1
    assert value(body, "acrpool_agentpool_provisioning_state", namespace=ns, name="monpool", state="Succeeded") == 1
    assert value(body, "acrpool_agentpool_provisioning_state", namespace=ns, name="monpool", state="Creating") is None
    assert value(body, "acrpool_agentpool_count", namespace=ns, name="monzero") == 0
    assert value(body, "acrpool_agentpool_queued_runs", namespace=ns, name="monzero") == 0


def test_pool_gauges_follow_a_scale(scraped, kube):
    """After a scale the gauges say the new count (desired at once, actual
    once Azure has it) and the state goes back to Succeeded."""
    _, ns, _, op = scraped
    kube.apply(pool_obj("monpool", tier="S1", count=3), ns)
    kube.run("wait", "--for=jsonpath={.status.count}=3", "agentpool/monpool", "-n", ns, "--timeout=60s")

    def settled():
        body = scrape_body(op)
        return (value(body, "acrpool_agentpool_desired_count", namespace=ns, name="monpool") == 3 and
                value(body, "acrpool_agentpool_count", namespace=ns, name="monpool") == 3 and
                value(body, "acrpool_agentpool_provisioning_state", namespace=ns, name="monpool",
                      state="Succeeded") == 1)
    wait_until("the gauges of monpool at 3, Succeeded", settled, timeout=30, interval=0.5)


def _LABEL_NAMES(body):
    return [k for k, _ in _LABEL.findall(body)]


def test_the_monitoring_kustomization_builds(kube):
    """kubectl apply -k manifests/monitoring: the kustomization builds (with
    the kubectl the suite uses) into the ServiceMonitor, the PrometheusRule,
    the binding for Prometheus and the dashboard's ConfigMap."""
    out = kube.run("kustomize", str(ROOT / "manifests" / "monitoring")).stdout
    items = [o for o in yaml.safe_load_all(out) if o]
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in items)
    assert kinds == [("ClusterRoleBinding", "acrpool-metrics-reader-prometheus"),
                     ("ConfigMap", "acrpool-grafana-dashboard"),
                     ("PrometheusRule", "acrpool-controller"),
                     ("ServiceMonitor", "acrpool-controller")], kinds
    cm = next(o for o in items if o["kind"] == "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["acrpool.json"]) == pn.dashboard()
