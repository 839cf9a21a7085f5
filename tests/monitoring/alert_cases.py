"""Unit cases for every alert of manifests/monitoring/prometheusrule.yaml,
for `promtool test rules`: for each alert at least one history that fires it
and one that must not.

The input series are shaped like the operator's own metrics as a
ServiceMonitor scrapes them: the metric names and label names the operator
exports (tests/e2e/test_monitoring.py checks both, and the histogram
buckets, against a real scrape), plus the target labels Prometheus adds
(job, instance, pod, namespace, service, endpoint). The pool metrics keep
their own `namespace` (honorLabels: true in the ServiceMonitor)."""

JOB = "acrpool-controller-metrics"
LEADER = "10.244.1.7:8443"
STANDBY = "10.244.2.9:8443"
PODS = {LEADER: "acrpool-controller-7c9d8b6f5-x2k4q", STANDBY: "acrpool-controller-7c9d8b6f5-m8w2z"}
THIRD = "10.244.3.4:8443"   # a pod of a new ReplicaSet (a rollout)
PODS[THIRD] = "acrpool-controller-5b6c7d8e9-p4r7t"
TARGET_LABELS = {"job", "instance", "pod", "namespace", "service", "endpoint"}

# controller-runtime's workqueue buckets, as the operator writes their `le`.
QUEUE_LE = ["1e-08", "1e-07", "1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1", "1", "10", "100",
            "1000", "+Inf"]


def series(metric, labels, values, instance=LEADER):
    """An input series: the operator's labels plus the scrape target's."""
    target = {"job": JOB, "instance": instance, "pod": PODS[instance], "namespace": "acrpool-system",
              "service": JOB, "endpoint": "metrics"}
    all_labels = {**target, **labels}   # the pool's own namespace wins (honorLabels)
    body = ",".join(f'{k}="{v}"' for k, v in sorted(all_labels.items()))
    return {"series": f"{metric}{{{body}}}", "values": values}


def up(instance, values):
    return {"series": f'up{{job="{JOB}",instance="{instance}",pod="{PODS[instance]}",'
                      f'namespace="acrpool-system",service="{JOB}",endpoint="metrics"}}',
            "values": values}


def reconciles(controller, result, values, instance=LEADER):
    return series("controller_runtime_reconcile_total", {"controller": controller, "result": result},
                  values, instance)


def queue_wait_buckets(name, first_filled_le, values):
    """workqueue_queue_duration_seconds_bucket for a queue whose keys all
    waited longer than the bucket before first_filled_le: cumulative buckets
    from first_filled_le up grow with values, the ones below stay 0."""
    out, filled = [], False
    for le in QUEUE_LE:
        filled = filled or le == first_filled_le
        out.append(series("workqueue_queue_duration_seconds_bucket", {"name": name, "le": le},
                          values if filled else "0x40"))
    return out


def arm(code, values, operation="agentPools.get", method="GET"):
    return series("acrpool_azure_requests_total", {"operation": operation, "method": method, "code": code}, values)


def pool(metric, ns, name, values, **extra):
    return series(metric, {"namespace": ns, "name": name, **extra}, values)


# alert -> [(description, input series, eval time, expected alert labels or [] for none)]
CASES = {
    "AcrpoolDown": [
        ("no replica answers", [up(LEADER, "0x30"), up(STANDBY, "0x30")], "15m", [{}]),
        ("the target is gone from discovery altogether", [up(LEADER, "_x30")], "15m", [{}]),
        ("one replica up is enough", [up(LEADER, "1x30"), up(STANDBY, "0x30")], "15m", []),
    ],
    "AcrpoolNotReconciling": [
        ("keys wait, nothing reconciles", [
            reconciles("agentpool", "success", "5x60"),
            series("workqueue_depth", {"name": "agentpool"}, "3x60"),
            series("workqueue_depth", {"name": "agentpool"}, "3x60", STANDBY),
        ], "50m", [{}]),
        ("a leader reconciling", [
            reconciles("agentpool", "success", "0+1x60"),
            series("workqueue_depth", {"name": "agentpool"}, "0x60"),
            series("workqueue_depth", {"name": "agentpool"}, "3x60", STANDBY),
        ], "50m", []),
        ("no objects at all: nothing to reconcile", [
            reconciles("agentpool", "success", "0x60"),
            series("workqueue_depth", {"name": "agentpool"}, "0x60"),
        ], "50m", []),
    ],
    "AcrpoolLeaderChanges": [
        # LEADER leads, crashes at 10m; STANDBY leads, crashes at 20m;
        # LEADER (restarted) leads, crashes at 30m; STANDBY leads.
        ("three leader crashes in an hour", [
            reconciles("agentpool", "success", "0+10x9 0x9 0+10x9 0x30"),
            reconciles("agentpool", "success", "0x9 0+10x9 0x9 0+10x30", STANDBY),
        ], "45m", [{}]),
        ("one crash", [
            reconciles("agentpool", "success", "0+10x9 0x50"),
            reconciles("agentpool", "success", "0x9 0+10x50", STANDBY),
        ], "45m", []),
        ("a rollout replaces the pods: new instances, no resets", [
            reconciles("agentpool", "success", "0+10x19 stale"),
            reconciles("agentpool", "success", "0x19 stale", STANDBY),
            reconciles("agentpool", "success", "_x20 0+10x29", THIRD),
        ], "45m", []),
    ],
    "AcrpoolTerminalReconcileErrors": [
        ("a Stalled object fails at every look", [
            series("controller_runtime_terminal_reconcile_errors_total", {"controller": "agentpool"}, "0+1x100"),
            series("controller_runtime_terminal_reconcile_errors_total", {"controller": "registry"}, "0x100"),
        ], "65m", [{"controller": "agentpool"}]),
        ("errors that stopped 45 minutes ago", [
            series("controller_runtime_terminal_reconcile_errors_total", {"controller": "agentpool"}, "0+1x20 20x80"),
        ], "65m", []),
    ],
    "AcrpoolReconcileErrorRate": [
        ("half the reconciles fail", [
            series("controller_runtime_reconcile_errors_total", {"controller": "agentpool"}, "0+5x60"),
            reconciles("agentpool", "error", "0+5x60"),
            reconciles("agentpool", "success", "0+5x60"),
            reconciles("agentpool", "requeue_after", "0x60"),
        ], "40m", [{"controller": "agentpool"}]),
        ("one in ten", [
            series("controller_runtime_reconcile_errors_total", {"controller": "agentpool"}, "0+1x60"),
            reconciles("agentpool", "error", "0+1x60"),
            reconciles("agentpool", "success", "0+9x60"),
        ], "40m", []),
    ],
    "AcrpoolQueueDepth": [
        ("the leader's queue does not drain", [
            series("workqueue_depth", {"name": "agentpool"}, "500x40"),
            reconciles("agentpool", "success", "0+10x40"),
            series("workqueue_depth", {"name": "agentpool"}, "500x40", STANDBY),
            reconciles("agentpool", "success", "0x40", STANDBY),
        ], "30m", [{"name": "agentpool"}]),
        ("only the standby's queue is deep (its keys wait for leadership)", [
            series("workqueue_depth", {"name": "agentpool"}, "0x40"),
            reconciles("agentpool", "success", "0+10x40"),
            series("workqueue_depth", {"name": "agentpool"}, "500x40", STANDBY),
            reconciles("agentpool", "success", "0x40", STANDBY),
        ], "30m", []),
        ("a resync's burst that drains", [
            series("workqueue_depth", {"name": "agentpool"}, "0x10 500 300 100 0x27"),
            reconciles("agentpool", "success", "0+10x40"),
        ], "30m", []),
    ],
    "AcrpoolQueueLatency": [
        ("keys wait minutes", queue_wait_buckets("agentpool", "1000", "0+100x40"), "30m", [{"name": "agentpool"}]),
        ("keys wait milliseconds", queue_wait_buckets("agentpool", "0.01", "0+100x40"), "30m", []),
    ],
    "AcrpoolWorkerStuck": [
        ("one reconcile runs on and on", [
            series("workqueue_longest_running_processor_seconds", {"name": "taskrun"}, "0+60x20"),
        ], "10m", [{"name": "taskrun"}]),
        ("reconciles take seconds", [
            series("workqueue_longest_running_processor_seconds", {"name": "taskrun"}, "0 2 5 0 1 3x15"),
        ], "10m", []),
    ],
    "AcrpoolAzureThrottled": [
        ("a fifth of the attempts answered 429", [arm("429", "0+20x40"), arm("200", "0+80x40")], "30m", [{}]),
        ("one in twenty", [arm("429", "0+5x40"), arm("200", "0+95x40")], "30m", []),
    ],
    "AcrpoolAzureUnavailable": [
        ("503 and no answer", [arm("503", "0+40x40"), arm("<error>", "0+30x40"), arm("200", "0+30x40")],
         "30m", [{}]),
        ("a few 5xx, and throttling (another alert's)", [
            arm("503", "0+10x40"), arm("429", "0+50x40"), arm("200", "0+40x40")], "30m", []),
    ],
    "AcrpoolKubeRequestsFailing": [
        ("RBAC refuses the operator's writes", [
            series("rest_client_requests_total", {"host": "10.96.0.1:443", "verb": "PUT", "code": "403"}, "0+60x40"),
            series("rest_client_requests_total", {"host": "10.96.0.1:443", "verb": "GET", "code": "200"}, "0+600x40"),
        ], "30m", [{"code": "403"}]),
        ("conflicts are normal", [
            series("rest_client_requests_total", {"host": "10.96.0.1:443", "verb": "PUT", "code": "409"}, "0+60x40"),
            series("rest_client_requests_total", {"host": "10.96.0.1:443", "verb": "GET", "code": "200"}, "0+600x40"),
        ], "30m", []),
    ],
    "AcrpoolWatchRelists": [
        ("a relist every minute", [
            series("acrpool_watch_relists_total", {"resource": "agentpools"}, "0+1x40"),
            series("acrpool_watch_relists_total", {"resource": "agentpools"}, "0+1x40", STANDBY),
            series("acrpool_watch_relists_total", {"resource": "registries"}, "0x40"),
        ], "30m", [{"resource": "agentpools"}]),
        ("one relist after a compaction", [
            series("acrpool_watch_relists_total", {"resource": "agentpools"}, "0x10 1x30"),
            series("acrpool_watch_relists_total", {"resource": "agentpools"}, "0x10 1x30", STANDBY),
        ], "30m", []),
    ],
    "AcrpoolPoolStuckCreating": [
        # One series a pool, for its state: the series of the state left
        # behind goes away (`_`), it does not drop to 0.
        ("Creating for 40 minutes", [
            pool("acrpool_agentpool_provisioning_state", "ci", "pool1", "1x40", state="Creating"),
        ], "35m", [{"namespace": "ci", "name": "pool1"}]),
        ("created in 10 minutes", [
            pool("acrpool_agentpool_provisioning_state", "ci", "pool1", "1x10 _x30", state="Creating"),
            pool("acrpool_agentpool_provisioning_state", "ci", "pool1", "_x10 1x30", state="Succeeded"),
        ], "35m", []),
    ],
    "AcrpoolPoolNotAtDesiredCount": [
        ("one instance of three", [
            pool("acrpool_agentpool_count", "ci", "pool1", "1x40"),
            pool("acrpool_agentpool_desired_count", "ci", "pool1", "3x40"),
        ], "35m", [{"namespace": "ci", "name": "pool1"}]),
        ("scaled within 5 minutes", [
            pool("acrpool_agentpool_count", "ci", "pool1", "1x5 3x35"),
            pool("acrpool_agentpool_desired_count", "ci", "pool1", "3x40"),
        ], "35m", []),
    ],
    "AcrpoolRunsQueuedOnEmptyPool": [
        ("runs wait on a pool scaled to zero", [
            pool("acrpool_agentpool_queued_runs", "ci", "pool1", "4x30"),
            pool("acrpool_agentpool_count", "ci", "pool1", "0x30"),
        ], "20m", [{"namespace": "ci", "name": "pool1"}]),
        ("runs wait on a pool with instances", [
            pool("acrpool_agentpool_queued_runs", "ci", "pool1", "4x30"),
            pool("acrpool_agentpool_count", "ci", "pool1", "2x30"),
        ], "20m", []),
    ],
}
