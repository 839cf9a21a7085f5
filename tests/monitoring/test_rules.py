"""manifests/monitoring: the PrometheusRule passes `promtool check rules` and
`promtool test rules` (every alert fires on the histories of alert_cases.py
meant to fire it, and stays quiet on the others), every alert has a runbook
in docs/operations.md, the dashboard has the panels issue 15 asks for, and
the kustomization holds it all together.

promtool comes from Debian's `prometheus` package (scripts/deps.sh). That
the metric names are the operator's is checked against a real scrape in
tests/e2e/test_monitoring.py."""
import json
import re
import shutil
import subprocess

import pytest
import yaml

import alert_cases
import promql_names as pn

ROOT = pn.ROOT
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/your-org/acrpool/blob/main/docs/operations.md#"


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    assert path, "promtool not found: scripts/deps.sh installs Debian's prometheus package, which has it"
    return path


@pytest.fixture
def rules_file(tmp_path):
    """spec.groups of the PrometheusRule, as the rules file Prometheus loads."""
    path = tmp_path / "acrpool-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": pn.rule_groups()}, sort_keys=False))
    return path


def test_promtool_check_rules(promtool, rules_file):
    p = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(pn.alerts())} rules found" in p.stdout


def test_prometheusrule_object():
    doc = yaml.safe_load(pn.RULES.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["namespace"] == "acrpool-system"
    names = [r["alert"] for r in pn.alerts()]
    assert len(names) == len(set(names))
    for r in pn.alerts():
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert {"summary", "description", "runbook_url"} <= set(r["annotations"]), r["alert"]


def _headings_anchors(markdown):
    """GitHub's anchors of the markdown's headings."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[`*_]", "", m.group(1)).strip().lower()
            out.add(re.sub(r"[^a-z0-9 -]", "", text).replace(" ", "-"))
    return out


def test_every_alert_has_a_runbook_section():
    anchors = _headings_anchors(OPERATIONS.read_text())
    for r in pn.alerts():
        url = r["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), url
        anchor = url[len(RUNBOOK_BASE):]
        assert anchor == r["alert"].lower(), url
        assert anchor in anchors, f"docs/operations.md has no section #{anchor} for {r['alert']}"


def test_the_alerts_issue_15_asks_for():
    """Stalled objects, reconcile errors, queue depth and latency, ARM 429
    and 5xx, watch relists, leader changes, pools stuck Creating."""
    names = {r["alert"] for r in pn.alerts()}
    assert {"AcrpoolTerminalReconcileErrors", "AcrpoolReconcileErrorRate", "AcrpoolQueueDepth",
            "AcrpoolQueueLatency", "AcrpoolAzureThrottled", "AcrpoolAzureUnavailable",
            "AcrpoolWatchRelists", "AcrpoolLeaderChanges", "AcrpoolPoolStuckCreating"} <= names


def test_every_alert_has_a_firing_and_a_quiet_case():
    names = {r["alert"] for r in pn.alerts()}
    assert set(alert_cases.CASES) == names
    for name, cases in alert_cases.CASES.items():
        assert any(exp for _, _, _, exp in cases), f"{name}: no case where it fires"
        assert any(not exp for _, _, _, exp in cases), f"{name}: no case where it stays quiet"


def _expand(template, labels):
    """The annotation as Prometheus renders it for these labels: only
    {{ $labels.x }} is used in our annotations (checked here)."""
    rest = re.sub(r"\{\{\s*\$labels\.([A-Za-z_]+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    assert "{{" not in rest, f"annotation template not understood by the test: {template!r}"
    return rest


def test_promtool_test_rules(promtool, rules_file, tmp_path):
    rules = {r["alert"]: r for r in pn.alerts()}
    tests = []
    for name, cases in alert_cases.CASES.items():
        rule = rules[name]
        for what, input_series, eval_time, expected in cases:
            exp_alerts = []
            for labels in expected:
                full = {**rule.get("labels", {}), **labels}
                exp_alerts.append({"exp_labels": full,
                                   "exp_annotations": {k: _expand(v, full)
                                                       for k, v in rule["annotations"].items()}})
            tests.append({"name": f"{name}: {what}", "interval": "1m", "input_series": input_series,
                          "alert_rule_test": [{"eval_time": eval_time, "alertname": name,
                                               "exp_alerts": exp_alerts}]})
    test_file = tmp_path / "acrpool-rules-test.yaml"
    test_file.write_text(yaml.safe_dump({"rule_files": [rules_file.name], "evaluation_interval": "1m",
                                         "tests": tests}, sort_keys=False))
    p = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True,
                       cwd=tmp_path)
    assert p.returncode == 0, f"promtool test rules failed:\n{p.stdout}{p.stderr}"
    assert "SUCCESS" in p.stdout


def test_tokenizer():
    names = pn.metric_names
    assert names('sum by (controller) (rate(foo_total{code=~"5..|<error>", x="a{b"}[10m])) '
                 '/ clamp_min(sum without (le) (bar), 1e-9) > 0.2') == {"foo_total", "bar"}
    assert names('histogram_quantile(0.99, sum by (name, le) (rate(h_bucket[$__rate_interval])))') == {"h_bucket"}
    assert names('a and on (instance) (b > bool 0) unless ignoring (x) group_left (y) c') == {"a", "b", "c"}
    assert names('sum(resets((sum by (instance) (x_total))[1h:1m])) > 2 offset 5m') == {"x_total"}
    assert names('absent(up{job="j"} == 1)') == {"up"}
    assert names('sum_over_time((max by (namespace, name) (g{namespace=~"$namespace"}))[$__range:1m]) / 60') \
        == {"g"}
    assert names('topk(3, m) or count_values("v", n)') == {"m", "n"}


def test_dashboard_has_the_panels_issue_15_asks_for():
    d = pn.dashboard()
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in d["panels"]}
    used = {title: set().union(*(pn.metric_names(e) for e in es)) for title, es in exprs.items()}

    def panel_using(*metrics):
        return [t for t, u in used.items() if set(metrics) <= u]

    assert panel_using("acrpool_agentpool_provisioning_state"), "pools by state"
    assert panel_using("acrpool_agentpool_count", "acrpool_agentpool_desired_count"), "desired vs actual"
    assert panel_using("acrpool_agentpool_queued_runs"), "queued runs"
    assert any("sum_over_time" in e and "acrpool_agentpool_count" in e for es in exprs.values() for e in es), \
        "instance-hours"
    assert panel_using("controller_runtime_reconcile_total"), "reconcile rate"
    assert panel_using("controller_runtime_reconcile_errors_total"), "reconcile errors"
    assert any("by (method, code)" in e for e in exprs["Azure Resource Manager requests per second, by verb and code"])
    assert panel_using("workqueue_depth"), "work queue depth"
    # Every query goes through the dashboard's data source variable, and
    # every panel has a place of its own on the grid.
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        assert p["datasource"]["uid"] == "${datasource}"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]


def test_kustomization_and_docs_copy():
    k = yaml.safe_load((pn.MONITORING / "kustomization.yaml").read_text())
    for f in k["resources"]:
        assert (pn.MONITORING / f).is_file(), f
    on_disk = {p.name for p in pn.MONITORING.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == on_disk
    gen = k["configMapGenerator"][0]
    assert gen["files"] == ["acrpool.json=dashboard.json"]
    assert gen["options"]["labels"] == {"grafana_dashboard": "1"}
    sm = yaml.safe_load((pn.MONITORING / "servicemonitor.yaml").read_text())
    ep = sm["spec"]["endpoints"][0]
    assert ep["port"] == "metrics" and ep["scheme"] == "https" and ep["honorLabels"] is True
    assert ep["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert ep["tlsConfig"]["insecureSkipVerify"] is True
    # The ServiceMonitor selects the metrics Service of manifests/base.
    svc = yaml.safe_load((ROOT / "manifests" / "base" / "service.yaml").read_text())
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert "metrics" in [p["name"] for p in svc["spec"]["ports"]]
    # docs/ shows the same dashboard (a link to the one file).
    assert json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text()) == pn.dashboard()
