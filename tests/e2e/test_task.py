"""Task end to end (issue 6): the declarative `az acr task create` against
the real API server, the operator binary, kubectl and the Azure emulator.
Each test names the point of the issue it covers."""
import base64
import json

from harness import arm, wait_condition, wait_event, wait_events
from kubeenv import ROOT
from procs import wait_until
from taskharness import (HELLO, REG_PATH, all_text, azure, azure_task, emu, event_reasons, forbid,  # noqa: F401
                         get, operator, ready_pool, runs, status, task_obj, task_puts, wait_status)


def last_put(emu_, name):
    puts = task_puts(emu_, name)
    assert puts, f"no PUT of task {name} reached Azure"
    return puts[-1]["body"]


# (1) The docs' scheduled task, and the other step kinds ------------------------

def test_docs_scheduled_task_on_the_pool(kube, namespace, azure, operator):
    operator()
    ready_pool(kube, namespace, "myagentpool", tier="S2")
    kube.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "samples" / "task-scheduled.yaml"))
    obj = wait_condition(kube, "task", "mytask", namespace, "Ready")

    body = last_put(azure, "mytask")
    p = body["properties"]
    # az acr task create ... --agent-pool myagentpool --schedule "0 21 * * *" --commit-trigger-enabled false
    assert p["agentPoolName"] == "myagentpool"
    assert p["step"] == {"type": "Docker", "contextPath": HELLO, "dockerFilePath": "Dockerfile",
                         "imageNames": ["myimage:mytag"], "isPushEnabled": True, "noCache": False,
                         "arguments": []}
    assert p["trigger"] == {"timerTriggers": [{"name": "nightly", "schedule": "0 21 * * *", "status": "Enabled"}]}
    assert "sourceTriggers" not in p["trigger"], "no commit trigger, as with --commit-trigger-enabled false"
    assert p["platform"] == {"os": "Linux", "architecture": "amd64"}
    assert p["status"] == "Enabled" and p["timeout"] == 3600
    assert body["location"] == "eastus"

    t = azure_task(azure, "mytask")
    assert t["properties"]["agentPoolName"] == "myagentpool"
    st = obj["status"]
    assert st["azureResourceId"].lower() == t["id"].lower()
    assert st["provisioningState"] == "Succeeded" and st["azureName"] == "mytask"
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert {c["type"] for c in st["conditions"]} == {"Ready"}
    wait_event(kube, namespace, "mytask", "Created")
    row = kube.run("get", "tasks", "-n", namespace).stdout.splitlines()
    assert row[0].split()[:3] == ["NAME", "POOL", "ENABLED"]
    assert row[1].split()[:3] == ["mytask", "myagentpool", "true"]

    # Deleting the Task deletes the Azure task, then the object goes.
    kube.run("delete", "task", "mytask", "-n", namespace, "--timeout=60s")
    assert azure_task(azure, "mytask") is None


def test_file_and_encoded_steps(kube, namespace, azure, operator):
    operator()
    ready_pool(kube, namespace)
    file_step = {"file": {"contextPath": HELLO, "taskFilePath": "acr-task.yaml", "valuesFilePath": "values.yaml",
                          "values": [{"name": "env", "value": "prod"}]}}
    kube.apply(task_obj("filetask", step=file_step, timeoutSeconds=600,
                        platform={"os": "Linux", "architecture": "arm", "variant": "v7"}), namespace)
    content = "version: v1.1.0\nsteps:\n  - cmd: bash echo hello\n"
    kube.apply(task_obj("encodedtask", step={"encoded": {"taskContent": content}}, pool=None, cpu=2), namespace)
    wait_condition(kube, "task", "filetask", namespace, "Ready")
    wait_condition(kube, "task", "encodedtask", namespace, "Ready")

    p = last_put(azure, "filetask")["properties"]
    assert p["step"] == {"type": "FileTask", "contextPath": HELLO, "taskFilePath": "acr-task.yaml",
                         "valuesFilePath": "values.yaml",
                         "values": [{"name": "env", "value": "prod", "isSecret": False}]}
    assert p["platform"] == {"os": "Linux", "architecture": "arm", "variant": "v7"}
    assert p["timeout"] == 600 and p["agentPoolName"] == "mypool"

    p = last_put(azure, "encodedtask")["properties"]
    assert p["step"]["type"] == "EncodedTask"
    assert base64.b64decode(p["step"]["encodedTaskContent"]).decode() == content
    assert "agentPoolName" not in p, "no agentPoolRef: Azure's shared compute"
    assert p["agentConfiguration"] == {"cpu": 2}
    assert "trigger" not in p


# (2) The pool: not Ready -> wait; gone -> say so ---------------------------------

def test_waits_for_the_pool_then_proceeds_and_says_when_it_is_gone(kube, namespace, azure, operator):
    azure.settings(provisioningDelaySeconds=4)
    operator()
    kube.apply(task_obj("pooltask", pool="slowpool"), namespace)
    # No pool object yet: the Task names what it waits for.
    obj = wait_condition(kube, "task", "pooltask", namespace, "Stalled", reason="AgentPoolNotFound")
    assert "slowpool" in [c for c in obj["status"]["conditions"] if c["type"] == "Stalled"][0]["message"]
    from harness import pool_obj
    kube.apply(pool_obj("slowpool"), namespace)
    obj = wait_condition(kube, "task", "pooltask", namespace, "Reconciling", reason="AgentPoolNotReady")
    ready = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and "slowpool" in ready["message"]
    assert not task_puts(azure, "pooltask"), "no task is created while its pool is not Ready"
    # The pool becomes Ready (4 s): the task proceeds without any change to it.
    wait_condition(kube, "agentpool", "slowpool", namespace, "Ready")
    wait_condition(kube, "task", "pooltask", namespace, "Ready")
    assert last_put(azure, "pooltask")["properties"]["agentPoolName"] == "slowpool"
    wait_event(kube, namespace, "pooltask", "AgentPoolNotReady")

    azure.settings(provisioningDelaySeconds=0)
    kube.run("delete", "agentpool", "slowpool", "-n", namespace, "--timeout=60s")
    obj = wait_condition(kube, "task", "pooltask", namespace, "Stalled", reason="AgentPoolNotFound")
    msg = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"][0]["message"]
    assert "AgentPool slowpool" in msg and "does not exist" in msg
    wait_event(kube, namespace, "pooltask", "AgentPoolNotFound", "Warning")


# (3) Edits update Azure; drift is put back ---------------------------------------

def test_edits_update_the_azure_task(kube, namespace, azure, operator):
    operator()
    ready_pool(kube, namespace)
    timers = [{"name": "nightly", "schedule": "0 21 * * *"}]
    kube.apply(task_obj("edited", timers=timers), namespace)
    wait_condition(kube, "task", "edited", namespace, "Ready")

    step = {"docker": {"contextPath": HELLO, "imageNames": ["myimage:{{.Run.ID}}", "myimage:latest"]}}
    kube.apply(task_obj("edited", step=step, timers=[{"name": "nightly", "schedule": "30 2 * * 1-5"}],
                        enabled=False), namespace)

    def updated():
        t = azure_task(azure, "edited")["properties"]
        return (t["step"]["imageNames"] == ["myimage:{{.Run.ID}}", "myimage:latest"] and t["status"] == "Disabled"
                and t["trigger"]["timerTriggers"] == [{"name": "nightly", "schedule": "30 2 * * 1-5",
                                                       "status": "Enabled"}]) and t
    t = wait_until("the edits in Azure", updated)
    assert t["agentPoolName"] == "mypool"
    obj = wait_condition(kube, "task", "edited", namespace, "Ready")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    wait_event(kube, namespace, "edited", "Updating")
    assert "DriftCorrected" not in event_reasons(kube, namespace, "edited"), "an edit is not drift"

    # A timer removed from the spec is removed in Azure (PUT, not a merging PATCH).
    kube.apply(task_obj("edited", step=step, enabled=True), namespace)
    wait_until("the timer gone from Azure",
               lambda: not (azure_task(azure, "edited")["properties"].get("trigger") or {}).get("timerTriggers"))
    assert kube.run("get", "task", "edited", "-n", namespace).stdout.splitlines()[1].split()[2] == "true"


def test_drift_is_put_back_at_resync(kube, namespace, azure, operator):
    operator("--resync-period", "2s")
    ready_pool(kube, namespace)
    kube.apply(task_obj("drifty"), namespace)
    wait_condition(kube, "task", "drifty", namespace, "Ready")
    def operator_puts():
        return [r for r in task_puts(azure, "drifty") if r["method"] == "PUT"]
    puts_before = len(operator_puts())
    # Out of band: a PATCH that drops agentPoolName (the az CLI bug,
    # Azure/azure-cli#23373) and changes the image.
    arm(azure, "PATCH", "/tasks/drifty", {"properties": {"agentPoolName": "",
                                                          "step": {"type": "Docker", "imageNames": ["other:1"]}}})
    assert not azure_task(azure, "drifty")["properties"]["agentPoolName"]
    wait_until("agentPoolName put back",
               lambda: azure_task(azure, "drifty")["properties"].get("agentPoolName") == "mypool", timeout=30)
    assert azure_task(azure, "drifty")["properties"]["step"]["imageNames"] == ["myimage:mytag"]
    ev = wait_event(kube, namespace, "drifty", "DriftCorrected", "Warning")
    assert "agentPoolName" in ev["note"] and "imageNames" in ev["note"]
    assert len(operator_puts()) == puts_before + 1
    wait_condition(kube, "task", "drifty", namespace, "Ready")
    # In sync again: further resyncs write nothing to Azure.
    n = len(azure.requests(method="GET", path_contains="/tasks/drifty"))
    wait_until("two more resyncs", lambda: len(azure.requests(method="GET", path_contains="/tasks/drifty")) >= n + 2)
    assert len(operator_puts()) == puts_before + 1


# (4) Secrets from Secret references ----------------------------------------------

def test_secrets_from_secret_refs_and_rotation(kube, namespace, azure, operator):
    token1, token2 = forbid("ghp_first_" + "a1b2c3d4e5"), forbid("ghp_second_" + "f6a7b8c9d0")
    npm = forbid("npm_" + "0123456789abcdef")
    op = operator("--resync-period", "2s")
    ready_pool(kube, namespace)
    kube.run("create", "secret", "generic", "git", "-n", namespace, f"--from-literal=token={token1}")
    kube.run("create", "secret", "generic", "npm", "-n", namespace, f"--from-literal=NPM_TOKEN={npm}")
    step = {"docker": {"contextPath": HELLO, "imageNames": ["myimage:mytag"],
                       "arguments": [{"name": "MODE", "value": "release"},
                                     {"name": "NPM_TOKEN", "secretKeyRef": {"name": "npm", "key": "NPM_TOKEN"}}]}}
    kube.apply(task_obj("secrettask", step=step, contextAccessTokenSecretRef={"name": "git", "key": "token"}),
               namespace)
    obj = wait_condition(kube, "task", "secrettask", namespace, "Ready")
    s = azure_task(azure, "secrettask")["properties"]["step"]
    assert s["contextAccessToken"] == token1
    assert {"name": "NPM_TOKEN", "value": npm, "isSecret": True} in s["arguments"]
    assert {"name": "MODE", "value": "release", "isSecret": False} in s["arguments"]
    hash1 = obj["status"]["secretHash"]
    assert len(hash1) == 64

    # Rotate the token: the next resync pushes the new value to Azure.
    kube.run("create", "secret", "generic", "git", "-n", namespace, f"--from-literal=token={token2}",
             "--dry-run=client", "-o", "json")
    kube.run("patch", "secret", "git", "-n", namespace, "-p",
             json.dumps({"stringData": {"token": token2}}))
    wait_until("the rotated token in Azure",
               lambda: azure_task(azure, "secrettask")["properties"]["step"]["contextAccessToken"] == token2,
               timeout=30)
    puts = task_puts(azure, "secrettask")
    assert puts[-1]["body"]["properties"]["step"]["contextAccessToken"] == token2
    wait_status(kube, "task", "secrettask", namespace, "a new secretHash",
                lambda st: st.get("secretHash") not in (None, hash1))
    wait_event(kube, namespace, "secrettask", "SecretRotated")
    assert "DriftCorrected" not in event_reasons(kube, namespace, "secrettask")

    # A missing Secret key stalls the Task, naming the Secret, not a value.
    kube.run("delete", "secret", "npm", "-n", namespace)
    obj = wait_condition(kube, "task", "secrettask", namespace, "Stalled", reason="SecretNotFound", timeout=30)
    assert "npm" in json.dumps(obj["status"])

    text = all_text(kube, namespace, "task", "secrettask")
    for v in (token1, token2, npm):
        assert v not in text, "a secret value appeared in the Task's status or Events"
    assert op.alive()


# (8) The last run, from a timer ---------------------------------------------------

def test_last_run_from_a_timer_shows_in_status_and_kubectl(kube, namespace, azure, operator):
    operator("--resync-period", "2s")
    ready_pool(kube, namespace)
    kube.apply(task_obj("timed", timers=[{"name": "nightly", "schedule": "0 21 * * *"}]), namespace)
    wait_condition(kube, "task", "timed", namespace, "Ready")
    run = azure.control("POST", f"{REG_PATH}/tasks/timed/timer", {"durationSeconds": 1})
    run_id = run["properties"]["runId"]
    assert run["properties"]["timerTrigger"]["timerTriggerName"] == "nightly"
    st = wait_status(kube, "task", "timed", namespace, "lastRun Succeeded",
                     lambda s: (s.get("lastRun") or {}).get("runId") == run_id
                     and s["lastRun"].get("status") == "Succeeded", timeout=30)
    lr = st["lastRun"]
    assert lr["trigger"] == "nightly" and lr["startTime"] and lr["finishTime"]
    assert lr["finishTime"] >= lr["startTime"]
    row = kube.run("get", "tasks", "-n", namespace).stdout.splitlines()
    head, cols = row[0].split(), row[1].split()
    assert head[:5] == ["NAME", "POOL", "ENABLED", "LAST-RUN", "RUN-STATUS"]
    assert cols[3] == run_id and cols[4] == "Succeeded"
    wait_events(kube, namespace, "timed", lambda ev: any(e["reason"] == "LastRun" and run_id in e["note"] for e in ev))
    assert runs(azure, task="timed")[0]["runId"] == run_id
