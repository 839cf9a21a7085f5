"""The emulator against the spec's own examples (spec/examples/<version>/).

For every example an operation references in `x-ms-examples`, for both
api-versions: arrange what the example presupposes (the registry, the pool,
task, run or task run it reads), send the example's request exactly (path
parameters and body), and check that the status code is one the example
lists and that every member the example's response shows (non-null, at any
depth) is present in ours. Values (ids, times, digests) may differ.

The few examples the emulator deliberately answers differently are listed in
EXPECTED_REJECTIONS with the reason; nothing is skipped silently.
"""

import json
import os
import re

import pytest

from conftest import SPEC_DIR, V2019, V2025, wait_for

# (version, example file) -> (status, ARM code, error target) and why.
EXPECTED_REJECTIONS = {
    # An earlier revision of the 2019 example (see spec/README.md): the step
    # member is misspelt `contentPath`, which DockerBuildStep does not have.
    (V2019, "TasksCreate.json"): (400, "InvalidRequestContent", "properties.step.contentPath"),
}

# (version, example file) -> response members the example shows that the
# emulator does not produce, and why.
SHAPE_EXCEPTIONS = {
    # Same old typo in the response of the 2019 list example; the emulator
    # stores the spec's `contextPath`.
    (V2019, "TasksList.json"): {"value[0].properties.step.contentPath"},
}


def _examples():
    out = []
    for version in (V2019, V2025):
        with open(os.path.join(SPEC_DIR, f"{version}-containerregistry_build.json"), encoding="utf-8") as f:
            spec = json.load(f)
        for template, item in spec["paths"].items():
            for method, op in item.items():
                for ref in (op.get("x-ms-examples") or {}).values():
                    rel = ref["$ref"].replace("./examples/", "")
                    out.append(pytest.param(version, method.upper(), template, op, rel,
                                            id=f"{version}/{rel}"))
    return out


def _load(version, rel):
    with open(os.path.join(SPEC_DIR, "examples", version, rel), encoding="utf-8") as f:
        return json.load(f)


def _missing_keys(expected, actual, path=""):
    """Members shown in `expected` (non-null) that `actual` lacks."""
    missing = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [path or "<root>"]
        for k, v in expected.items():
            if v is None:
                continue
            if k not in actual:
                missing.append(f"{path}.{k}" if path else k)
            else:
                missing += _missing_keys(v, actual[k], f"{path}.{k}" if path else k)
    elif isinstance(expected, list) and expected and isinstance(expected[0], (dict, list)):
        if not isinstance(actual, list) or not actual:
            return [path]
        missing += _missing_keys(expected[0], actual[0], f"{path}[0]")
    return missing


def _body_param(op):
    for p in op.get("parameters", []):
        if p.get("in") == "body":
            return p["name"]
    return None


def _seed_task(client, version, name, body=None):
    """PUT a task from an example body (response bodies work: read-only
    members are ignored). Shared-agent tasks must ask for 2 CPUs."""
    body = json.loads(json.dumps(body)) if body else {
        "location": "eastus",
        "properties": {"platform": {"os": "Linux"},
                       "step": {"type": "Docker", "dockerFilePath": "Dockerfile", "imageNames": ["a:b"]}}}
    props = body.setdefault("properties", {})
    if (props.get("agentConfiguration") or {}).get("cpu", 2) != 2:
        props["agentConfiguration"]["cpu"] = 2
    step = props.get("step") or {}
    if "contentPath" in step:  # the 2019 TasksList example's old typo
        step["contextPath"] = step.pop("contentPath")
    r = client.arm("PUT", f"tasks/{name}", body, version=version, registry=client.example_registry)
    assert r.status in (200, 201), r


def _seed_task_run(client, version, name, body):
    """PUT a task run from an example body and wait until its run finished
    (the examples show finished runs). TaskRun is a proxy resource whose PUT
    model has no `tags`, yet the Get example shows some: they go in through
    PATCH (TaskRunUpdateParameters has them)."""
    body = json.loads(json.dumps(body))
    if not (body.get("properties") or {}).get("runRequest"):
        body = _load(version, "TaskRunsCreate.json")["parameters"]["taskRun"]
    tags = body.pop("tags", None)
    r = client.arm("PUT", f"taskRuns/{name}", body, version=version, registry=client.example_registry)
    assert r.status in (200, 201), r
    if tags:
        r = client.arm("PATCH", f"taskRuns/{name}", {"tags": tags}, version=version,
                       registry=client.example_registry)
        assert r.status == 200, r

    def finished():
        got = client.arm("GET", f"taskRuns/{name}", version=version, registry=client.example_registry)
        return got.json["properties"]["runResult"]["properties"]["status"] == "Succeeded"
    wait_for(finished, what=f"task run {name} to finish")


def _seed_run(client, params, run_id, props=None):
    props = dict(props or {"status": "Succeeded"})
    client.control("PUT", f"registries/{params['subscriptionId']}/{params['resourceGroupName']}/"
                          f"{params['registryName']}/runs/{run_id}", {"properties": props})


def _arrange(client, version, op_id, params, example):
    """Create what the example's request presupposes."""
    ok = example["responses"].get("200", {}).get("body")
    reg_path = f"registries/{params['subscriptionId']}/{params['resourceGroupName']}/{params['registryName']}"
    if op_id in ("AgentPools_Get", "AgentPools_Update", "AgentPools_Delete", "AgentPools_GetQueueStatus"):
        client.control("PUT", f"{reg_path}/agentPools/{params['agentPoolName']}",
                       {"tier": "S1", "count": 1, "location": "westus"})
    elif op_id == "AgentPools_List":
        for item in ok["value"]:
            client.control("PUT", f"{reg_path}/agentPools/{item['name']}", {"tier": "S1", "count": 1})
    elif op_id in ("Tasks_Get", "Tasks_GetDetails", "Tasks_Update"):
        _seed_task(client, version, params["taskName"], ok)
    elif op_id == "Tasks_Delete":
        _seed_task(client, version, params["taskName"])
    elif op_id == "Tasks_List":
        for item in ok["value"]:
            _seed_task(client, version, item["name"], item)
    elif op_id == "Registries_ScheduleRun" and params["runRequest"]["type"] == "TaskRunRequest":
        _seed_task(client, version, params["runRequest"]["taskId"].rsplit("/", 1)[-1])
    elif op_id in ("Runs_Get", "Runs_Update", "Runs_Cancel", "Runs_GetLogSasUrl"):
        _seed_run(client, params, params["runId"], (ok or {}).get("properties"))
    elif op_id == "Runs_List":
        for item in ok["value"]:
            _seed_run(client, params, item["name"], item["properties"])
    elif op_id in ("TaskRuns_Get", "TaskRuns_GetDetails", "TaskRuns_Update", "TaskRuns_Delete"):
        _seed_task_run(client, version, params["taskRunName"], ok or {})
    elif op_id == "TaskRuns_List":
        for item in ok["value"]:
            _seed_task_run(client, version, item["name"], item)


@pytest.mark.parametrize("version,method,template,op,rel", _examples())
def test_example(client, version, method, template, op, rel):
    example = _load(version, rel)
    params = example["parameters"]
    op_id = op["operationId"]
    client.registry(params["registryName"], params["subscriptionId"], params["resourceGroupName"],
                    location="westus")
    client.example_registry = (f"/subscriptions/{params['subscriptionId']}/resourceGroups/"
                               f"{params['resourceGroupName']}/providers/Microsoft.ContainerRegistry/"
                               f"registries/{params['registryName']}")
    _arrange(client, version, op_id, params, example)

    path = re.sub(r"\{([^}]+)\}", lambda m: str(params[m.group(1)]), template)
    query = {k: params[k] for k in ("$filter", "$top") if k in params}
    body_name = _body_param(op)
    r = client.arm(method, path, params.get(body_name) if body_name else None, version=version, query=query)

    rejection = EXPECTED_REJECTIONS.get((version, rel))
    if rejection:
        status, code, target = rejection
        assert (r.status, r.json["error"]["code"], r.json["error"].get("target")) == (status, code, target), r
        return
    assert str(r.status) in example["responses"], (r, sorted(example["responses"]))
    expected = example["responses"][str(r.status)].get("body")
    if expected is not None:
        assert r.json is not None, r
        missing = set(_missing_keys(expected, r.json)) - SHAPE_EXCEPTIONS.get((version, rel), set())
        assert missing == set(), r


def test_every_example_file_is_exercised():
    """No example in the folders is left out (e.g. one the specs stopped referencing)."""
    referenced = {(p.values[0], p.values[4]) for p in _examples()}
    on_disk = set()
    for version in (V2019, V2025):
        root = os.path.join(SPEC_DIR, "examples", version)
        for dirpath, _, files in os.walk(root):
            for fn in files:
                on_disk.add((version, os.path.relpath(os.path.join(dirpath, fn), root)))
    assert on_disk - referenced == set()
