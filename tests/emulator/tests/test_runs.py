"""Runs and tasks: the queue simulation behind listQueueStatus, run
lifecycle and outcomes, cancel, timer runs, $filter/$top, logs, source
upload integrity, the shared-agent CPU rule, and task secrets."""

import gzip
import hashlib
import io
import tarfile

from conftest import REG, RG, SUB, V2019, V2025, wait_for

REG_CTL = f"registries/{SUB}/{RG}/{REG}"
BUILD = {"type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "platform": {"os": "linux"},
         "imageNames": ["app:{{.Run.ID}}"], "sourceLocation": "https://github.com/org/repo.git#main"}
TASK = {"location": "eastus",
        "properties": {"platform": {"os": "Linux", "architecture": "amd64"}, "agentPoolName": "pool1",
                       "step": {"type": "Docker", "dockerFilePath": "Dockerfile", "imageNames": ["base:nightly"],
                                "contextPath": "https://github.com/org/repo.git",
                                "contextAccessToken": "ghp_secret",
                                "arguments": [{"name": "A", "value": "1"},
                                              {"name": "TOKEN", "value": "hidden", "isSecret": True}]},
                       "trigger": {"timerTriggers": [{"name": "nightly", "schedule": "0 21 * * *"}]}}}


def schedule(client, pool=None, version=V2025, **extra):
    body = dict(BUILD, **extra)
    if pool:
        body["agentPoolName"] = pool
    r = client.arm("POST", "scheduleRun", body, version=version)
    assert r.status == 200, r
    return r.json["properties"]["runId"]


def make_pool(client, count):
    r = client.arm("PUT", "agentPools/pool1", {"location": "eastus", "properties": {"tier": "S1", "count": count}})
    assert r.status == 201, r


def test_queue_moves_with_pool_capacity(client):
    client.control("PATCH", "settings", {"runDurationSeconds": 0.4})
    make_pool(client, 0)
    runs = [schedule(client, "pool1") for _ in range(4)]
    # count 0: nothing runs, everything waits.
    assert client.queue("pool1") == 4
    assert {client.run(r)["status"] for r in runs} == {"Queued"}
    # One instance: one run at a time.
    assert client.arm("PATCH", "agentPools/pool1", {"properties": {"count": 1}}).status == 200
    assert client.queue("pool1") == 3
    assert client.run(runs[0])["status"] in ("Started", "Running")
    seen = set()

    def drained():
        seen.add(client.queue("pool1"))
        return client.queue("pool1") == 0
    wait_for(drained, timeout=10, interval=0.05, what="queue to drain")
    assert seen & {1, 2}  # it moved one by one, not all at once
    client.wait_run(runs[-1], {"Succeeded"})
    done = [client.run(r) for r in runs]
    # Runs never overlapped on the single instance.
    for a, b in zip(done, done[1:]):
        assert a["finishTime"] <= b["startTime"]


def test_two_instances_run_two_at_a_time(client):
    client.control("PATCH", "settings", {"runDurationSeconds": 5})
    make_pool(client, 2)
    runs = [schedule(client, "pool1") for _ in range(3)]
    assert all(client.run(r)["status"] in ("Started", "Running") for r in runs[:2])
    assert client.run(runs[2])["status"] == "Queued"
    assert client.queue("pool1") == 1


def test_lifecycle_statuses_and_output_images(client):
    client.control("PATCH", "settings", {"runDurationSeconds": 0.6})
    run_id = schedule(client)  # shared compute: starts at once
    first = client.run(run_id)
    assert first["status"] in ("Started", "Running") and "startTime" in first
    assert first["agentConfiguration"] == {"cpu": 2} and first["runType"] == "QuickBuild"
    client.wait_run(run_id, {"Running"})
    final = client.wait_run(run_id, {"Succeeded"})
    assert final["finishTime"] >= final["startTime"]
    img = final["outputImages"][0]
    assert img["repository"] == "app" and img["tag"] == run_id
    assert img["registry"] == f"{REG}.azurecr.io" and img["digest"].startswith("sha256:")


def test_configured_outcome_and_per_run_override(client):
    client.control("PATCH", "settings", {"runOutcome": "Failed"})
    failed = client.wait_run(schedule(client), {"Failed"})
    assert failed["runErrorMessage"] and "outputImages" not in failed
    client.control("PATCH", "settings", {"runOutcome": "Succeeded", "runDurationSeconds": 5})
    run_id = schedule(client)
    client.control("PATCH", f"{REG_CTL}/runs/{run_id}", {"durationSeconds": 0.1, "outcome": "Timeout"})
    assert client.wait_run(run_id, {"Timeout", "Succeeded"})["status"] == "Timeout"


def test_cancel(client):
    make_pool(client, 0)
    run_id = schedule(client, "pool1")
    r = client.arm("POST", f"runs/{run_id}/cancel")
    assert r.status == 200 and not r.raw, r
    props = client.run(run_id)
    assert props["status"] == "Canceled" and "finishTime" in props
    assert client.queue("pool1") == 0
    # Cancelling a finished run changes nothing.
    assert client.arm("POST", f"runs/{run_id}/cancel", version=V2019).status == 200
    assert client.run(run_id)["status"] == "Canceled"
    assert client.arm("POST", "runs/nosuchrun/cancel").status == 404


def test_schedule_run_2019_answers_200_with_run(client):
    r = client.arm("POST", "scheduleRun", BUILD, version=V2019)
    assert r.status == 200 and r.json["type"] == "Microsoft.ContainerRegistry/registries/runs", r


def test_unknown_pool_is_rejected(client):
    r = client.arm("POST", "scheduleRun", dict(BUILD, agentPoolName="nopool"))
    assert (r.status, r.json["error"]["code"]) == (400, "AgentPoolNotFound")


def test_shared_agent_cpu_must_be_two(client):
    r = client.arm("POST", "scheduleRun", dict(BUILD, agentConfiguration={"cpu": 4}))
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidInputValue"), r
    task = {"location": "eastus", "properties": {
        "platform": {"os": "Linux"}, "agentConfiguration": {"cpu": 3},
        "step": {"type": "Docker", "dockerFilePath": "Dockerfile"}}}
    r = client.arm("PUT", "tasks/sharedtask", task)
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidInputValue"), r
    assert "CPU core count" in r.json["error"]["message"]
    # On a dedicated pool the tier decides; the rule does not apply.
    make_pool(client, 1)
    task["properties"]["agentPoolName"] = "pool1"
    assert client.arm("PUT", "tasks/sharedtask", task).status == 201


def test_task_get_hides_secrets_and_list_details_shows_them(client):
    make_pool(client, 1)
    r = client.arm("PUT", "tasks/nightly-base", TASK)
    assert r.status == 201, r
    for body in (r.json, client.arm("GET", "tasks/nightly-base").json,
                 client.arm("GET", "tasks").json["value"][0]):
        step = body["properties"]["step"]
        assert "contextAccessToken" not in step
        assert [a["name"] for a in step["arguments"]] == ["A"]
    details = client.arm("POST", "tasks/nightly-base/listDetails").json
    assert details["properties"]["step"]["contextAccessToken"] == "ghp_secret"
    assert {a["name"]: a["value"] for a in details["properties"]["step"]["arguments"]} == {"A": "1", "TOKEN": "hidden"}
    # Defaults from the spec are filled in, enums canonical.
    assert details["properties"]["step"]["isPushEnabled"] is True
    assert details["properties"]["timeout"] == 3600
    assert details["properties"]["trigger"]["timerTriggers"][0]["status"] == "Enabled"


def test_task_patch_keeps_absent_fields(client):
    make_pool(client, 1)
    assert client.arm("PUT", "tasks/nightly-base", TASK).status == 201
    r = client.arm("PATCH", "tasks/nightly-base",
                   {"properties": {"step": {"type": "Docker", "imageNames": ["base:v2"]},
                                   "trigger": {"timerTriggers": [{"name": "nightly", "status": "Disabled"}]}}})
    assert r.status == 200, r
    p = client.arm("POST", "tasks/nightly-base/listDetails").json["properties"]
    assert p["agentPoolName"] == "pool1"
    assert p["step"]["imageNames"] == ["base:v2"] and p["step"]["dockerFilePath"] == "Dockerfile"
    assert p["step"]["contextAccessToken"] == "ghp_secret"
    assert p["trigger"]["timerTriggers"] == [{"name": "nightly", "schedule": "0 21 * * *", "status": "Disabled"}]
    # A step of another type needs that type's required members.
    r = client.arm("PATCH", "tasks/nightly-base", {"properties": {"step": {"type": "FileTask"}}})
    assert (r.status, r.json["error"]["target"]) == (400, "properties.step.taskFilePath"), r


def test_task_run_request_and_timer_run(client):
    client.control("PATCH", "settings", {"runDurationSeconds": 0.2})
    make_pool(client, 1)
    assert client.arm("PUT", "tasks/nightly-base", TASK).status == 201
    r = client.arm("POST", "scheduleRun", {"type": "TaskRunRequest", "taskId":
                                           f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft."
                                           f"ContainerRegistry/registries/{REG}/tasks/nightly-base"})
    assert r.status == 200, r
    manual = r.json["properties"]
    assert manual["task"] == "nightly-base" and manual["agentPoolName"] == "pool1"
    fired = client.control("POST", f"{REG_CTL}/tasks/nightly-base/timer",
                           {"scheduleOccurrence": "2026-01-01T21:00:00Z"})
    props = fired["properties"]
    assert props["timerTrigger"] == {"timerTriggerName": "nightly", "scheduleOccurrence": "2026-01-01T21:00:00Z"}
    final = client.wait_run(props["runId"], {"Succeeded"})
    assert final["outputImages"][0]["repository"] == "base"
    r = client.arm("GET", "runs", query={"$filter": "taskName eq 'nightly-base'"})
    assert sorted(v["name"] for v in r.json["value"]) == sorted([manual["runId"], props["runId"]])
    r = client.arm("POST", "scheduleRun", {"type": "TaskRunRequest", "taskId": "nosuchtask"})
    assert r.status == 404


def test_runs_filter_and_top(client):
    client.control("PATCH", "settings", {"runDurationSeconds": 30})
    make_pool(client, 0)
    queued = [schedule(client, "pool1") for _ in range(3)]
    shared = schedule(client)

    def ids(**query):
        r = client.arm("GET", "runs", query=query)
        assert r.status == 200, r
        return [v["name"] for v in r.json["value"]]
    assert sorted(ids(**{"$filter": "status eq 'Queued'"})) == sorted(queued)
    assert sorted(ids(**{"$filter": "agentPoolName eq 'pool1' and status eq 'Queued'"})) == sorted(queued)
    assert ids(**{"$filter": "status eq 'Queued' or status eq 'Started'", "$top": "2"}) == \
        [shared, queued[2]]  # newest first
    assert len(ids(**{"$top": "1"})) == 1
    r = client.arm("GET", "runs", query={"$filter": "bogus eq 'x'"})
    assert (r.status, r.json["error"]["code"]) == (400, "InvalidFilter")


def test_log_link(client):
    run_id = client.wait_run(schedule(client), {"Succeeded"})["runId"]
    r = client.arm("POST", f"runs/{run_id}/listLogSasUrl")
    assert r.status == 200, r
    link = r.json["logLink"]
    assert "sig=" in link and link.startswith(client.base)
    log = client.request("GET", link)
    assert log.status == 200
    assert f"Run ID: {run_id} was successful" in log.raw.decode()
    # Without the SAS signature storage refuses.
    assert client.request("GET", link.split("?")[0]).status == 403


def _tarball():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"FROM alpine\nRUN echo hi\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_source_upload_integrity_and_build(client):
    r = client.arm("POST", "listBuildSourceUploadUrl")
    assert r.status == 200, r
    upload, rel = r.json["uploadUrl"], r.json["relativePath"]
    assert rel.startswith("source/") and rel.endswith(".tar.gz")
    blob = _tarball()
    missing_type = client.request("PUT", upload, raw_body=blob)
    assert missing_type.status == 400
    put = client.request("PUT", upload, raw_body=blob, headers={"x-ms-blob-type": "BlockBlob"})
    assert put.status == 201, put
    uploads = client.control("GET", "uploads")["value"]
    assert [(u["sha256"], u["size"]) for u in uploads] == [(hashlib.sha256(blob).hexdigest(), len(blob))]
    assert gzip.decompress(client.request("GET", upload).raw)  # the stored bytes are the tarball
    ok = client.wait_run(schedule(client, sourceLocation=rel), {"Succeeded", "Failed"})
    assert ok["status"] == "Succeeded"
    # A relative path that was never uploaded fails the run the way the service does.
    bad = client.wait_run(schedule(client, sourceLocation="source/202601010000/nope.tar.gz"),
                          {"Succeeded", "Failed"})
    assert bad["status"] == "Failed" and "failed to download context" in bad["runErrorMessage"]


def test_deleting_pool_errors_its_queued_runs(client):
    make_pool(client, 0)
    run_id = schedule(client, "pool1")
    assert client.arm("DELETE", "agentPools/pool1").status == 202
    assert client.run(run_id)["status"] == "Error"


def test_queue_count_after_cancel_and_pool_delete(client):
    """listQueueStatus counts only the pool's runs still Queued: not one
    canceled, not those of a deleted pool of the same name."""
    make_pool(client, 0)
    runs = [schedule(client, "pool1") for _ in range(3)]
    assert client.queue("pool1") == 3
    assert client.arm("POST", f"runs/{runs[1]}/cancel").status == 200
    assert client.queue("pool1") == 2
    # A delete that takes time errors the runs when it is done.
    client.control("PATCH", REG_CTL, {"provisioningDelaySeconds": 0.2})
    assert client.arm("DELETE", "agentPools/pool1").status == 202
    assert client.run(runs[0])["status"] == "Queued"
    client.wait_run(runs[0], {"Error"})
    assert [client.run(r)["status"] for r in runs] == ["Error", "Canceled", "Error"]
    client.control("PATCH", REG_CTL, {"provisioningDelaySeconds": 0})
    make_pool(client, 0)
    assert client.queue("pool1") == 0
    later = schedule(client, "pool1")
    assert client.queue("pool1") == 1
    assert client.arm("PATCH", "agentPools/pool1", {"properties": {"count": 1}}).status == 200
    assert client.run(later)["status"] != "Queued" and client.queue("pool1") == 0


def test_runs_outlive_an_out_of_band_pool_delete_and_keep_their_order(client):
    """Runs queued on a pool removed through the control endpoint stay queued
    and run, oldest first, on a pool of that name; a seeded run that replaces
    a finished one keeps that one's place in the order."""
    make_pool(client, 0)
    client.control("PUT", f"{REG_CTL}/runs/seed1", {"properties": {"agentPoolName": "pool1",
                                                                    "status": "Succeeded"}})
    first, second = schedule(client, "pool1"), schedule(client, "pool1")
    client.control("DELETE", f"{REG_CTL}/agentPools/pool1")
    client.control("PUT", f"{REG_CTL}/runs/seed1", {"properties": {"agentPoolName": "pool1"},
                                                    "durationSeconds": 5})
    client.control("PUT", f"{REG_CTL}/agentPools/pool1", {"count": 0})
    assert client.queue("pool1") == 3
    client.control("PATCH", f"{REG_CTL}/agentPools/pool1", {"count": 2})
    assert client.run("seed1")["status"] in ("Started", "Running")
    assert client.run(first)["status"] in ("Started", "Running", "Succeeded")
    assert client.queue("pool1") == 1
    client.wait_run(second, {"Succeeded"})


def test_task_runs_resource(client):
    body = {"properties": {"forceUpdateTag": "1", "runRequest": dict(BUILD)}}
    r = client.arm("PUT", "taskRuns/myrun1", body, version=V2025)
    assert r.status == 201 and r.header("Azure-AsyncOperation"), r
    first = r.json["properties"]["runResult"]["properties"]["runId"]
    same = client.arm("PUT", "taskRuns/myrun1", body).json["properties"]["runResult"]["properties"]["runId"]
    assert same == first  # unchanged request: no new run
    body["properties"]["forceUpdateTag"] = "2"
    again = client.arm("PUT", "taskRuns/myrun1", body).json["properties"]["runResult"]["properties"]["runId"]
    assert again != first
    assert client.arm("DELETE", "taskRuns/myrun1").status == 200
    assert client.arm("DELETE", "taskRuns/myrun1").status == 204
