#!/usr/bin/env python3
"""gen-api-docs.py: write the API reference (docs/reference/api.md) from
the CustomResourceDefinitions, so the reference says exactly what
`kubectl explain` and the API server say.

    scripts/gen-api-docs.py -o docs/reference/api.md            # from crds/*.yaml
    kubectl get crd -o json registries.acrpool.dev ... > crds.json
    scripts/gen-api-docs.py -o docs/reference/api.md crds.json  # from a cluster

Inputs are JSON (a CRD, or a List of them, as `kubectl get -o json`
prints) or YAML, which kubectl turns into JSON (`kubectl patch --local`, no server
needed), so only the Python standard library and kubectl are required. Fields are listed in name order, whatever the source order:
the API server returns them sorted, and the reference must come out the
same from either source. tests/e2e/test_api_docs.py fails when the
committed file differs from what this script writes.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIND_ORDER = ["Registry", "AgentPool", "Task", "TaskRun", "PipelineAgentPool"]
REGENERATE = "scripts/gen-api-docs.py -o docs/reference/api.md"


def kubectl():
    for cand in (os.environ.get("KUBECTL"), shutil.which("kubectl")):
        if cand:
            return cand
    try:
        bindir = subprocess.run([os.path.join(ROOT, "scripts", "testenv.sh"), "bindir"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        bindir = ""
    cand = os.path.join(bindir, "kubectl")
    if bindir and os.access(cand, os.X_OK):
        return cand
    sys.exit("gen-api-docs: no kubectl to read YAML with (set KUBECTL, or pass JSON files)")


def json_docs(text):
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.extend(obj.get("items", []) if obj.get("kind", "").endswith("List") else [obj])


def load(paths):
    crds = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            text = f.read()
        if p.endswith(".json"):
            docs = json_docs(text)
        else:
            # An empty local patch: kubectl parses the YAML and prints JSON,
            # with no API server involved.
            out = subprocess.run([kubectl(), "patch", "--local", "-f", "-", "--type=merge", "-p", "{}",
                                  "-o", "json"], input=text, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"gen-api-docs: kubectl could not read {p}: {out.stderr.strip()}")
            docs = json_docs(out.stdout)
        crds += [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        sys.exit("gen-api-docs: no CustomResourceDefinition in the input")
    return crds


def cell(text):
    """Text fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(v):
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return "`" + s.replace("|", "\\|").replace("`", "'") + "`"


def type_of(s):
    t = s.get("type", "")
    if s.get("x-kubernetes-int-or-string"):
        return "int or string"
    if t == "array":
        return "[]" + type_of(s.get("items", {}))
    if t == "object" and isinstance(s.get("additionalProperties"), dict) and "properties" not in s:
        return "map[string]" + type_of(s["additionalProperties"])
    if s.get("format") in ("date-time", "int32", "int64"):
        return f"{t} ({s['format']})"
    return t or "any"


def constraints(s):
    out = []
    if "default" in s:
        out.append("Default: " + code(s["default"]) + ".")
    if "enum" in s:
        out.append("One of: " + ", ".join(code(e) for e in s["enum"]) + ".")
    for key, words in (("minimum", "Minimum"), ("maximum", "Maximum"), ("minLength", "Minimum length"),
                       ("maxLength", "Maximum length"), ("minItems", "Minimum items"),
                       ("maxItems", "Maximum items"), ("minProperties", "Minimum entries"),
                       ("maxProperties", "Maximum entries")):
        if key in s:
            out.append(f"{words}: {s[key]}.")
    if "pattern" in s:
        out.append("Pattern: " + code(s["pattern"]) + ".")
    if s.get("x-kubernetes-list-type") == "map":
        out.append("A list keyed by " + ", ".join(code(k) for k in s.get("x-kubernetes-list-map-keys", [])) + ".")
    for rule in s.get("x-kubernetes-validations", []):
        out.append("Rule: " + rule.get("message", rule["rule"]).rstrip(".") + ".")
    return out


def rows(schema, path, required):
    """Depth-first rows (path, type, description) for the properties of schema."""
    out = []
    props = schema.get("properties", {})
    req = set(schema.get("required", []))
    for name in sorted(props):
        s = props[name]
        p = f"{path}.{name}" if path else name
        t = type_of(s) + (", required" if name in req else "")
        desc = " ".join([cell(s.get("description", ""))] + [cell(c) for c in constraints(s)]).strip()
        out.append((p, t, desc))
        out += rows(s, p, required)
        item = s.get("items") if s.get("type") == "array" else None
        if item and item.get("properties"):
            out += rows(item, p + "[]", required)
        add = s.get("additionalProperties")
        if isinstance(add, dict) and add.get("properties"):
            out += rows(add, p + "{}", required)
    return out


def kind_section(crd):
    spec = crd["spec"]
    names = spec["names"]
    kind = names["kind"]
    out = [f"## {kind}", ""]
    for v in spec["versions"]:
        schema = v["schema"]["openAPIV3Schema"]
        out += [cell(schema.get("description", "")), ""]
        facts = [f"`{spec['group']}/{v['name']}`", f"{spec['scope'].lower()}", f"plural `{names['plural']}`"]
        if names.get("shortNames"):
            facts.append("short names " + ", ".join(f"`{n}`" for n in names["shortNames"]))
        if names.get("categories"):
            facts.append("categories " + ", ".join(f"`{n}`" for n in names["categories"]))
        if "status" in v.get("subresources", {}):
            facts.append("status subresource")
        out += ["- " + "; ".join(facts), ""]

        rules = schema.get("x-kubernetes-validations", [])
        if rules:
            out += ["Object rules:", ""]
            for r in rules:
                where = f" (`{r['fieldPath'].lstrip('.')}`)" if r.get("fieldPath") else ""
                out.append(f"- {cell(r.get('message', r['rule']))}{where}")
            out.append("")

        cols = v.get("additionalPrinterColumns", [])
        if cols:
            out += ["`kubectl get` columns (`-o wide` adds those of priority 1):", "",
                    "| Column | JSONPath | Priority | Description |", "|---|---|---|---|"]
            for c in cols:
                out.append(f"| {cell(c['name'])} | {code(c['jsonPath'])} | {c.get('priority', 0)} | "
                           f"{cell(c.get('description', ''))} |")
            out.append("")

        for part in ("spec", "status"):
            s = schema.get("properties", {}).get(part)
            if not s:
                continue
            out += [f"### {kind}.{part}", "", cell(s.get("description", ""))]
            extra = constraints(s)
            if extra:
                out += ["", " ".join(cell(c) for c in extra)]
            out += ["", "| Field | Type | Description |", "|---|---|---|"]
            for p, t, d in rows(s, part, set()):
                out.append(f"| `{p}` | {cell(t)} | {d} |")
            out.append("")
    return out


def render(crds):
    def order(c):
        k = c["spec"]["names"]["kind"]
        return (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k)

    crds = sorted(crds, key=order)
    groups = sorted({f"{c['spec']['group']}/{v['name']}" for c in crds for v in c["spec"]["versions"]})
    out = [f"# API reference: {', '.join(groups)}", "",
           "<!-- Generated by scripts/gen-api-docs.py from the CRDs in crds/. Do not edit by hand:",
           f"     change the CRD descriptions and run {REGENERATE} -->", "",
           "Every kind is namespaced. Each status carries `observedGeneration` and the kstatus",
           "conditions `Ready`, `Reconciling` and `Stalled` (see [GitOps](../gitops.md)).",
           "`kubectl explain <kind>.spec` shows the same descriptions.", "",
           "Kinds: " + " · ".join(f"[{c['spec']['names']['kind']}](#{c['spec']['names']['kind'].lower()})"
                                  for c in crds), ""]
    for c in crds:
        out += kind_section(c)
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="CRD files, JSON or YAML (default: crds/*.yaml)")
    ap.add_argument("-o", "--output", help="write here instead of standard output")
    args = ap.parse_args()
    files = args.files or sorted(glob.glob(os.path.join(ROOT, "crds", "*.yaml")))
    text = render(load(files))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
