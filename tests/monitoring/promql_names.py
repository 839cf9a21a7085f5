"""The metric names a PromQL expression reads, and every expression of
manifests/monitoring (the alert rules and the Grafana dashboard).

Used by tests/monitoring (promtool, the tokenizer's own tests) and by
tests/e2e/test_monitoring.py, which checks the names against a real scrape of
the operator. A small tokenizer, not a parser: string literals, label
matchers `{...}`, ranges `[...]`, numbers and Grafana variables are skipped;
an identifier followed by `(` is a function or an aggregation; the label
lists of by/without/on/ignoring/group_left/group_right are skipped; what is
left, minus PromQL's keywords, is a metric name."""
import json
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboard.json"

# Keywords and operators that look like identifiers.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "and", "or", "unless", "offset", "atan2", "inf", "nan", "start", "end"}
# Aggregation operators: `sum by (x) (...)` puts the label list between the
# name and its parenthesis.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
# Keywords followed by a label list in parentheses.
LABEL_LIST = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Names Prometheus makes itself for every target, not the operator.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_]+)?\}?)
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
                (?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?(?![A-Za-z_]))
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<punct>[{}()\[\],]|=~|!~|!=|==|<=|>=|[-+*/%^<>=])
""", re.VERBOSE)


def tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot tokenize {expr[pos:pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        if kind not in ("space", "comment"):
            out.append((kind, m.group()))
        pos = m.end()
    return out


def metric_names(expr):
    """The metric names expr reads (a set)."""
    toks = tokens(expr)
    names = set()
    i, depth_brace, depth_bracket = 0, 0, 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if text == "{":
            depth_brace += 1
        elif text == "}":
            depth_brace -= 1
        elif text == "[":
            depth_bracket += 1
        elif text == "]":
            depth_bracket -= 1
        elif kind == "ident" and depth_brace == 0 and depth_bracket == 0:
            low = text.lower()
            if low in LABEL_LIST and nxt == "(":
                # Skip the label list.
                j = i + 2
                while j < len(toks) and toks[j][1] != ")":
                    j += 1
                i = j + 1
                continue
            if nxt == "(" or low in KEYWORDS or low in AGGREGATIONS or (nxt or "").lower() in ("by", "without"):
                pass   # a function, an aggregation, a keyword
            else:
                names.add(text)
        i += 1
    return names


def rule_groups():
    """spec.groups of the PrometheusRule: a Prometheus rules file's groups."""
    return yaml.safe_load(RULES.read_text())["spec"]["groups"]


def alerts():
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def dashboard():
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs():
    """(where, PromQL) for every panel target and every templating query of
    the dashboard; label_values(metric, label) yields its metric."""
    d = dashboard()
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\)\s*", q)
        out.append((f"variable {v['name']}", m.group(1) if m else q))
    return out


def all_exprs():
    return [(f"alert {r['alert']}", r["expr"]) for r in alerts()] + dashboard_exprs()


def grouping_labels(expr):
    """The label names of expr's by/without/on/ignoring/group_* lists."""
    toks = tokens(expr)
    out = set()
    for i, (kind, text) in enumerate(toks):
        if kind == "ident" and text.lower() in LABEL_LIST and i + 1 < len(toks) and toks[i + 1][1] == "(":
            j = i + 2
            while j < len(toks) and toks[j][1] != ")":
                if toks[j][0] == "ident":
                    out.add(toks[j][1])
                j += 1
    return out
