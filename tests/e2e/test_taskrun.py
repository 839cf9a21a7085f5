"""TaskRun end to end (issue 6): the declarative `az acr task run` and
`az acr build --agent-pool` against the real API server, the operator
binary, kubectl and the Azure emulator: one run, requested at most once,
followed to its end, canceled on request or deletion."""
import base64
import hashlib
import io
import tarfile
import urllib.request

from emulator import RG, SUB
from harness import pool_obj, wait_condition, wait_event, wait_events
from procs import wait_until
from taskharness import (HELLO, SUBNET, all_text, azure, emu, forbid,  # noqa: F401
                         operator, ready_pool, runs, schedule_requests, status, task_obj, taskrun_obj,
                         wait_status)

TERMINAL = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}


def run_status(kube, name, namespace):
    return status(kube, "taskrun", name, namespace).get("runStatus")


# (5) taskRef runs the Task once, followed from Queued to Succeeded ---------------

def test_task_ref_runs_once_and_follows_the_run(kube, namespace, azure, operator):
    secret = forbid("override-" + "s3cr3tv4lu3")
    azure.settings(runDurationSeconds=1.5)
    operator("--resync-period", "2s")
    # A pool at zero: the run waits in its queue until the pool scales up.
    ready_pool(kube, namespace, count=0)
    kube.apply(task_obj("mytask"), namespace)
    wait_condition(kube, "task", "mytask", namespace, "Ready")
    kube.run("create", "secret", "generic", "ov", "-n", namespace, f"--from-literal=v={secret}")
    kube.apply(taskrun_obj("run1", taskRef={"name": "mytask", "overrideValues": [
        {"name": "MODE", "value": "ci"}, {"name": "TOKEN", "secretKeyRef": {"name": "ov", "key": "v"}}]}),
        namespace)
    obj = wait_condition(kube, "taskrun", "run1", namespace, "Reconciling", reason="Queued")
    run_id = obj["status"]["runId"]
    assert obj["status"]["runStatus"] == "Queued"
    req = schedule_requests(azure)
    assert len(req) == 1
    body = req[0]["body"]
    assert body["type"] == "TaskRunRequest"
    assert body["taskId"].lower().endswith("/tasks/mytask")
    assert body["overrideTaskStepProperties"]["arguments"] == [
        {"name": "MODE", "value": "ci", "isSecret": False}, {"name": "TOKEN", "value": secret, "isSecret": True}]
    assert kube.run("get", "taskrun", "run1", "-n", namespace).stdout.splitlines()[1].split()[1:4] == \
        ["mytask", run_id, "Queued"]

    # Scale the pool up: the run starts and succeeds; status follows.
    kube.apply(pool_obj("mypool", count=1), namespace)
    obj = wait_condition(kube, "taskrun", "run1", namespace, "Ready", timeout=60)
    st = obj["status"]
    assert st["runStatus"] == "Succeeded" and st["runId"] == run_id
    assert st["startTime"] and st["finishTime"] and st["finishTime"] >= st["startTime"]
    img = st["outputImages"][0]
    assert img["repository"] == "myimage" and img["tag"] == "mytag" and img["digest"].startswith("sha256:")
    assert img["registry"] == "myregistry.azurecr.io"
    assert f"Run ID: {run_id} was successful" in st["logTail"]
    assert len(st["logTail"].splitlines()) <= 20
    wait_events(kube, namespace, "run1", lambda ev: {"Scheduled", "Succeeded"} <= {e["reason"] for e in ev})

    # The Task shows it as its last run.
    wait_status(kube, "task", "mytask", namespace, "lastRun of the TaskRun",
                lambda s: (s.get("lastRun") or {}).get("runId") == run_id
                and s["lastRun"]["status"] == "Succeeded" and s["lastRun"]["trigger"] == "Manual")

    # Resyncs never request a second run.
    n = len(azure.requests(path_contains="/runs/" + run_id))
    wait_until("more resyncs", lambda: len(azure.requests(path_contains="/runs/")) > n + 2 or
               len(azure.requests(method="GET", path_contains="/tasks/mytask")) > 6, timeout=30)
    assert len(schedule_requests(azure)) == 1 and len(runs(azure, task="mytask")) == 1
    text = all_text(kube, namespace, "taskrun", "run1")
    assert secret not in text and "sig=" not in text


def test_quick_build_on_the_pool_that_fails(kube, namespace, azure, operator):
    azure.settings(runDurationSeconds=0.5, runOutcome="Failed")
    operator()
    ready_pool(kube, namespace)
    # az acr build --agent-pool mypool --image myimage:mytag --file Dockerfile <git URL>
    kube.apply(taskrun_obj("build1", build={"sourceLocation": HELLO, "dockerFilePath": "Dockerfile",
                                           "imageNames": ["myimage:mytag"], "agentPoolRef": {"name": "mypool"},
                                           "timeoutSeconds": 900}), namespace)
    obj = wait_condition(kube, "taskrun", "build1", namespace, "Stalled", reason="RunFailed")
    st = obj["status"]
    body = schedule_requests(azure)[0]["body"]
    assert body == {"type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "imageNames": ["myimage:mytag"],
                    "isPushEnabled": True, "platform": {"os": "Linux", "architecture": "amd64"}, "timeout": 900,
                    "sourceLocation": HELLO, "agentPoolName": "mypool", "isArchiveEnabled": False}
    assert st["runStatus"] == "Failed" and st["errorMessage"] == "failed during run, err: exit status 1"
    assert "failed" in st["logTail"] and st["finishTime"]
    assert "outputImages" not in st
    ready = [c for c in st["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and "exit status 1" in ready["message"]
    assert runs(azure, pool="mypool")[0]["runId"] == st["runId"]
    wait_event(kube, namespace, "build1", "RunFailed", "Warning")


def test_cancel_true_cancels_the_run(kube, namespace, azure, operator):
    operator()
    ready_pool(kube, namespace, count=0)   # the run stays queued
    kube.apply(taskrun_obj("canceled", build={"sourceLocation": HELLO, "imageNames": ["a:1"],
                                             "agentPoolRef": {"name": "mypool"}}), namespace)
    obj = wait_condition(kube, "taskrun", "canceled", namespace, "Reconciling", reason="Queued")
    run_id = obj["status"]["runId"]
    kube.run("patch", "taskrun", "canceled", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    obj = wait_condition(kube, "taskrun", "canceled", namespace, "Stalled", reason="RunCanceled")
    assert obj["status"]["runStatus"] == "Canceled" and obj["status"]["cancelRequested"] is True
    assert [r for r in azure.requests(method="POST", path_contains=f"/runs/{run_id}/cancel")]
    assert runs(azure, pool="mypool")[0]["status"] == "Canceled"
    wait_event(kube, namespace, "canceled", "CancelRequested")
    # A canceled TaskRun cannot be resumed (admission).
    p = kube.run("patch", "taskrun", "canceled", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancel":false}}',
                 check=False)
    assert p.returncode != 0 and "cannot be resumed" in p.stderr


def test_deleting_a_running_taskrun_cancels_the_run(kube, namespace, azure, operator):
    azure.settings(runDurationSeconds=600)
    operator()
    ready_pool(kube, namespace)
    kube.apply(task_obj("longtask"), namespace)
    wait_condition(kube, "task", "longtask", namespace, "Ready")
    kube.apply(taskrun_obj("longrun", taskRef={"name": "longtask"}), namespace)
    st = wait_status(kube, "taskrun", "longrun", namespace, "the run Running",
                     lambda s: s.get("runStatus") in ("Started", "Running"))
    run_id = st["runId"]
    kube.run("delete", "taskrun", "longrun", "-n", namespace, "--timeout=60s")
    assert kube.run("get", "taskrun", "longrun", "-n", namespace, check=False).returncode != 0
    assert [r for r in runs(azure, task="longtask") if r["runId"] == run_id][0]["status"] == "Canceled"
    assert azure.requests(method="POST", path_contains=f"/runs/{run_id}/cancel")


# (6) At most once, across kill -9 --------------------------------------------------

def test_at_most_once_across_kill_9_mid_schedule(kube, namespace, azure, operator):
    azure.settings(runDurationSeconds=1)
    first = operator()
    ready_pool(kube, namespace)
    kube.apply(task_obj("oncetask"), namespace)
    wait_condition(kube, "task", "oncetask", namespace, "Ready")
    # Azure takes 4 s to answer scheduleRun (and creates the run at the end).
    azure.fault(method="POST", path="/scheduleRun", latencyMs=4000, count=1)
    kube.apply(taskrun_obj("oncerun", taskRef={"name": "oncetask"}), namespace)
    st = wait_status(kube, "taskrun", "oncerun", namespace, "the intent recorded",
                     lambda s: s.get("scheduleIntent"), timeout=30)
    assert "runId" not in st
    first.kill()   # SIGKILL while the scheduleRun request is in flight
    assert not first.alive()
    second = operator()
    obj = wait_condition(kube, "taskrun", "oncerun", namespace, "Ready", timeout=60)
    mine = runs(azure, task="oncetask")
    assert len(mine) == 1, f"exactly one run for the TaskRun, got {[r['runId'] for r in mine]}"
    assert obj["status"]["runId"] == mine[0]["runId"] and obj["status"]["runStatus"] == "Succeeded"
    assert obj["status"]["scheduleIntent"]["token"] == st["scheduleIntent"]["token"]
    assert len(schedule_requests(azure)) == 1, "the restarted operator did not request the run again"
    wait_event(kube, namespace, "oncerun", "RunFound")
    assert second.alive()


# (7) A build whose source is a ConfigMap, on a pool in a subnet ---------------------

def test_configmap_build_is_packed_uploaded_and_run_in_a_subnet(kube, namespace, azure, operator):
    azure.settings(runDurationSeconds=0.5)
    operator()
    ready_pool(kube, namespace, "vnetpool", subnetId=SUBNET)
    dockerfile = ("FROM mcr.microsoft.com/cbl-mariner/base/core:2.0\n"
                  "ARG ARTIFACT=https://artifacts.internal.example/tool-1.2.3.tar.gz\n"
                  "RUN curl -fsSL \"$ARTIFACT\" -o /tmp/tool.tgz && tar -xzf /tmp/tool.tgz -C /usr/local\n"
                  "COPY app.sh /usr/local/bin/app.sh\n")
    app = "#!/bin/sh\necho hello from the private network\n"
    blob = bytes(range(256)) * 3
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ctx"},
          "data": {"Dockerfile": dockerfile, "app.sh": app},
          "binaryData": {"cert.der": base64.b64encode(blob).decode()}}
    kube.apply(cm, namespace)
    kube.apply(taskrun_obj("cmbuild", build={"configMapRef": {"name": "ctx"}, "imageNames": ["tool:1"],
                                            "agentPoolRef": {"name": "vnetpool"}}), namespace)
    obj = wait_condition(kube, "taskrun", "cmbuild", namespace, "Ready", timeout=60)
    src = obj["status"]["source"]
    uploads = azure.control("GET", "uploads")["value"]
    assert len(uploads) == 1
    up = uploads[0]
    assert up["path"].endswith(src["relativePath"]) and up["sha256"] == src["sha256"] and up["size"] == src["size"]
    assert src["files"] == 3 and src["configMap"] == "ctx"
    body = schedule_requests(azure)[0]["body"]
    assert body["sourceLocation"] == src["relativePath"] and body["agentPoolName"] == "vnetpool"

    with urllib.request.urlopen(f"{azure.url}/_blob/{up['path']}?sig=test", timeout=10) as r:
        data = r.read()
    assert hashlib.sha256(data).hexdigest() == up["sha256"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        members = tf.getmembers()
        assert sorted(m.name for m in members) == ["Dockerfile", "app.sh", "cert.der"]
        got = {m.name: tf.extractfile(m).read() for m in members}
        assert all(m.isfile() and m.mode == 0o644 for m in members)
    assert got == {"Dockerfile": dockerfile.encode(), "app.sh": app.encode(), "cert.der": blob}

    st = obj["status"]
    assert st["runStatus"] == "Succeeded" and st["outputImages"][0]["repository"] == "tool"
    pool = azure.pool(SUB, RG, "myregistry", "vnetpool")
    assert pool["properties"]["virtualNetworkSubnetResourceId"] == SUBNET
    assert runs(azure, pool="vnetpool")[0]["runId"] == st["runId"]
    assert "vnetpool" in st["logTail"]
