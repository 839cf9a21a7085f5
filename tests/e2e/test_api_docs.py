"""docs/reference/api.md is generated from the CRDs by
scripts/gen-api-docs.py and cannot drift from them: regenerated here from
the CRDs as the API server serves them, and from crds/*.yaml, it must equal
the committed file."""
import json
import os
import subprocess
import sys

from kubeenv import ROOT

GEN = ROOT / "scripts" / "gen-api-docs.py"
DOC = ROOT / "docs" / "reference" / "api.md"
PLURALS = ["registries", "agentpools", "tasks", "taskruns", "pipelineagentpools"]
HOW = "docs/reference/api.md is out of date: run scripts/gen-api-docs.py -o docs/reference/api.md and commit it"


def generate(kube, *files):
    p = subprocess.run([sys.executable, str(GEN), *map(str, files)], capture_output=True, text=True,
                       env=dict(os.environ, KUBECTL=kube.kubectl_bin), timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_api_reference_matches_served_crds(kube, tmp_path):
    served = kube.run("get", "crd", *[f"{p}.acrpool.dev" for p in PLURALS], "-o", "json").stdout
    assert len(json.loads(served)["items"]) == len(PLURALS)
    (tmp_path / "crds.json").write_text(served)
    assert generate(kube, tmp_path / "crds.json") == DOC.read_text(), HOW


def test_api_reference_matches_crd_files(kube):
    # The default input: crds/*.yaml, read without an API server.
    assert generate(kube) == DOC.read_text(), HOW


def test_api_reference_documents_every_field(kube):
    """Every spec and status field of every kind has a row, with its description."""
    sections = {}
    for part in DOC.read_text().split("\n## ")[1:]:
        title, _, body = part.partition("\n")
        sections[title.strip()] = body.splitlines()
    missing = []

    def walk(schema, path):
        for name, prop in schema.get("properties", {}).items():
            p = f"{path}.{name}" if path else name
            row = next((l for l in doc if l.startswith(f"| `{p}` |")), None)
            if row is None or " ".join(prop["description"].split()) not in row:
                missing.append(f"{kind} {p}")
            walk(prop, p)
        if schema.get("type") == "array" and schema.get("items", {}).get("properties"):
            walk(schema["items"], path + "[]")

    for plural in PLURALS:
        crd = json.loads(kube.run("get", "crd", f"{plural}.acrpool.dev", "-o", "json").stdout)
        kind = crd["spec"]["names"]["kind"]
        doc = sections[kind]
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            walk(schema["properties"][part], part)
    assert missing == []
