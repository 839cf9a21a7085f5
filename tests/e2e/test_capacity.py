"""Capacity that follows the work (issue 7): count schedules and
queue-driven autoscaling, end to end with the emulator's run simulation
(runs queue on a pool; each instance runs one at a time).

The operator's capacity clock is read from ACRPOOL_TEST_CLOCK_FILE here, so
a test moves through schedule windows and scale-down delays by writing a
time, not by waiting; the emulator's runs still take real seconds."""
import calendar
import json
import time

import pytest

from emulator import RG, SUB, Emulator
from harness import pool_obj, registry_obj, setup_azure, start_operator, wait_condition, wait_event, wait_events
from procs import wait_until


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator.start(tmp_path_factory.mktemp("emulator"))
    yield e
    e.stop()


class Clock:
    def __init__(self, path, start):
        self.path = path
        self.set(start)

    def set(self, t):
        self.t = int(t)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(self.t))
        tmp.replace(self.path)

    def advance(self, seconds):
        self.set(self.t + seconds)


@pytest.fixture
def clock(tmp_path):
    return Clock(tmp_path / "clock", time.time())


@pytest.fixture
def run_operator(kube, emu, namespace, clock):
    emu.reset()
    setup_azure(kube, emu, namespace)
    procs = []

    def start(*extra):
        p = start_operator(kube, emu, namespace, "--queue-poll-interval", "1s", *extra,
                           env={"ACRPOOL_TEST_CLOCK_FILE": str(clock.path)})
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
        p.assert_clean()


def azure_count(emu, name):
    return emu.pool(SUB, RG, "myregistry", name)["properties"]["count"]


def submit_runs(emu, pool, ids, seconds):
    for i in ids:
        emu.control("PUT", f"registries/{SUB}/{RG}/myregistry/runs/{i}",
                    {"properties": {"agentPoolName": pool, "status": "Queued"}, "durationSeconds": seconds})


def run_status(emu, run_id):
    return emu.control("GET", f"registries/{SUB}/{RG}/myregistry/runs/{run_id}")["status"]


def poke(kube, namespace, name):
    """Any change to the object makes the operator look again at once
    (otherwise it looks when the next window fires or the queue is polled)."""
    kube.run("annotate", "--overwrite", "agentpool", name, "-n", namespace, f"test/poke={time.monotonic_ns()}")


def reconciles(op):
    return op.metric("controller_runtime_reconcile_total", {"controller": "agentpool"}) or 0


def test_autoscale_scales_up_to_max_drains_and_returns_to_zero(kube, namespace, emu, run_operator, clock):
    op = run_operator()
    kube.apply(pool_obj("auto", tier="S1", count=0,
                        autoscale={"minCount": 0, "maxCount": 4, "runsPerInstance": 1,
                                   "scaleDownDelaySeconds": 60}), namespace)
    obj = wait_condition(kube, "agentpool", "auto", namespace, "Ready")
    assert obj["status"]["desiredCountSource"] == "Autoscale" and obj["status"]["count"] == 0
    ids = [f"r{i:02d}" for i in range(12)]
    submit_runs(emu, "auto", ids, 2)
    # Twelve runs, at most four instances: straight to four.
    wait_until("the pool at 4", lambda: azure_count(emu, "auto") == 4, timeout=60)
    assert max(int(json.loads(json.dumps(r["body"]))["properties"]["count"])
               for r in emu.requests(method="PATCH", path_contains="/agentPools/auto")) == 4
    wait_until("every run done", lambda: all(run_status(emu, i) == "Succeeded" for i in ids), timeout=90)
    kube.run("wait", "--for=jsonpath={.status.queuedRuns}=0", "agentpool/auto", "-n", namespace, "--timeout=60s")
    # Within the delay the pool stays: no scale-down while work may come.
    before = reconciles(op)
    wait_until("two more looks at the pool", lambda: reconciles(op) >= before + 2, timeout=30)
    assert azure_count(emu, "auto") == 4
    assert "scaling down in" in get_status(kube, namespace, "auto")["capacityMessage"]
    # The delay passes: back to zero, with an Event saying why.
    clock.advance(61)
    wait_until("the pool back at 0", lambda: azure_count(emu, "auto") == 0, timeout=60)
    wait_events(kube, namespace, "auto", lambda ev: {"ScaleUp", "ScaleDown"} <= {e["reason"] for e in ev})


def get_status(kube, namespace, name):
    return kube.get("agentpool", name, namespace)["status"]


def test_burst_during_the_delay_cancels_the_scale_down(kube, namespace, emu, run_operator, clock):
    op = run_operator()
    kube.apply(pool_obj("bursty", tier="S1", count=0,
                        autoscale={"minCount": 0, "maxCount": 2, "runsPerInstance": 1,
                                   "scaleDownDelaySeconds": 60}), namespace)
    wait_condition(kube, "agentpool", "bursty", namespace, "Ready")
    submit_runs(emu, "bursty", ["a0", "a1"], 1)
    wait_until("the pool at 2", lambda: azure_count(emu, "bursty") == 2, timeout=60)
    wait_until("first runs done", lambda: all(run_status(emu, i) == "Succeeded" for i in ("a0", "a1")), timeout=60)
    # 40 s into the 60 s delay a burst arrives (runs of 3 s: the operator
    # polls every second, so it cannot miss them between two looks)...
    clock.advance(40)
    submit_runs(emu, "bursty", ["b0", "b1"], 3)
    wait_until("burst done", lambda: all(run_status(emu, i) == "Succeeded" for i in ("b0", "b1")), timeout=60)
    # ...so at 70 s (past the first delay, within the new one) it stays.
    clock.advance(30)
    before = reconciles(op)
    wait_until("two more looks at the pool", lambda: reconciles(op) >= before + 2, timeout=30)
    assert azure_count(emu, "bursty") == 2, "the scale-down was not cancelled by the burst"
    clock.advance(61)
    wait_until("the pool back at 0", lambda: azure_count(emu, "bursty") == 0, timeout=60)


def amsterdam(y, mo, d, h, mi):
    """Epoch seconds of a wall time in Europe/Amsterdam in winter (UTC+1)."""
    return calendar.timegm((y, mo, d, h - 1, mi, 0))


def test_count_schedule_windows_in_a_time_zone(kube, namespace, emu, run_operator, clock):
    # Wednesday 25 November 2026, 10:00 in Amsterdam: the 07:00 window is in force.
    clock.set(amsterdam(2026, 11, 25, 10, 0))
    run_operator()
    kube.apply(pool_obj("office", tier="S1", count=1, countSchedule={
        "timeZone": "Europe/Amsterdam",
        "windows": [{"cron": "0 19 * * 1-5", "count": 0}, {"cron": "0 7 * * 1-5", "count": 3}]}), namespace)
    wait_until("3 instances by day", lambda: azure_count(emu, "office") == 3 if emu_has(emu, "office") else False)
    st = wait_until("status", lambda: (s := get_status(kube, namespace, "office")).get("count") == 3 and s)
    assert st["desiredCountSource"] == "Schedule" and st["activeWindow"] == "0 7 * * 1-5"
    assert st["nextWindowTime"] == "2026-11-25T18:00:00Z"   # 19:00 in Amsterdam
    # 20:00: the night window has fired.
    clock.set(amsterdam(2026, 11, 25, 20, 0))
    poke(kube, namespace, "office")
    wait_until("0 instances at night", lambda: azure_count(emu, "office") == 0)
    # Monday 06:59 after the weekend: Friday 19:00's window still holds.
    clock.set(amsterdam(2026, 11, 30, 6, 59))
    poke(kube, namespace, "office")
    before = len(emu.requests(method="PATCH", path_contains="/agentPools/office"))
    wait_until("the status to catch up", lambda: get_status(kube, namespace, "office").get(
        "nextWindowTime") == "2026-11-30T06:00:00Z")
    assert azure_count(emu, "office") == 0
    assert len(emu.requests(method="PATCH", path_contains="/agentPools/office")) == before
    wait_event(kube, namespace, "office", "ScheduleWindow")


def emu_has(emu, name):
    try:
        emu.pool(SUB, RG, "myregistry", name)
        return True
    except AssertionError:
        return False


def test_autoscale_respects_quota_and_says_so(kube, namespace, emu, run_operator, clock):
    run_operator()
    # S2 is 4 vCPU; the quota of 16 fits 4 instances, autoscale wants 6.
    kube.apply(pool_obj("capped", tier="S2", count=0,
                        autoscale={"minCount": 0, "maxCount": 6, "runsPerInstance": 1,
                                   "scaleDownDelaySeconds": 60}), namespace)
    wait_condition(kube, "agentpool", "capped", namespace, "Ready")
    submit_runs(emu, "capped", [f"c{i}" for i in range(6)], 30)
    wait_until("the pool at the quota's 4", lambda: azure_count(emu, "capped") == 4, timeout=60)
    st = wait_until("status says quota", lambda: (s := get_status(kube, namespace, "capped")).get(
        "capacityMessage", "").lower().count("quota") and s)
    assert st["desiredCount"] == 4
    assert all(int(r["body"]["properties"]["count"]) <= 4
               for r in emu.requests(method="PATCH", path_contains="/agentPools/capped"))
    wait_event(kube, namespace, "capped", "QuotaCapped")


def test_out_of_band_change_is_overridden_as_drift(kube, namespace, emu, run_operator, clock):
    # Drift is found at resync, when the registry's pools are read again.
    run_operator("--resync-period", "4s")
    kube.apply(pool_obj("held", tier="S1", count=0,
                        autoscale={"minCount": 1, "maxCount": 3, "runsPerInstance": 1,
                                   "scaleDownDelaySeconds": 60}), namespace)
    wait_until("min 1 instance", lambda: emu_has(emu, "held") and azure_count(emu, "held") == 1)
    wait_condition(kube, "agentpool", "held", namespace, "Ready")
    emu.pool(SUB, RG, "myregistry", "held", "PATCH", {"count": 3})   # a human, out of band
    wait_until("back to 1", lambda: azure_count(emu, "held") == 1, timeout=60)
    wait_event(kube, namespace, "held", "DriftCorrected")


def test_metrics_show_desired_count_source_and_queue(kube, namespace, emu, run_operator, clock):
    op = run_operator()
    kube.apply(pool_obj("metered", tier="S1", count=0,
                        autoscale={"minCount": 0, "maxCount": 1, "runsPerInstance": 1,
                                   "scaleDownDelaySeconds": 60}), namespace)
    wait_condition(kube, "agentpool", "metered", namespace, "Ready")
    labels = {"namespace": namespace, "name": "metered"}
    assert op.metric("acrpool_agentpool_desired_count_source", {**labels, "source": "Autoscale"}) == 1
    assert op.metric("acrpool_agentpool_desired_count_source", {**labels, "source": "Spec"}) == 0
    submit_runs(emu, "metered", ["m0", "m1", "m2"], 30)
    wait_until("queue depth on /metrics", lambda: (op.metric("acrpool_agentpool_queued_runs", labels) or 0) >= 2,
               timeout=30)
    wait_until("desired 1 on /metrics", lambda: op.metric("acrpool_agentpool_desired_count", labels) == 1)
