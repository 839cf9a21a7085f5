"""Two replicas with leader election; the leader is killed (kill -9)
mid-rollout. The standby must take the Lease and finish the rollout, and
the dead leader's half-done work must neither be lost nor done twice."""
import signal
import time
import uuid

import faultkit as fk
from harness import OPERATOR_NAMESPACE
from procs import wait_until

LEASE, RENEW, RETRY = 6, 4, 1


def holder(kube, lease):
    p = kube.run("get", "lease", lease, "-n", OPERATOR_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}",
                 check=False)
    return p.stdout if p.returncode == 0 else ""


def test_leader_failover_mid_rollout(kube, emu, operators, report):
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns)
    lease = "acrpool-faults-" + uuid.uuid4().hex[:8]
    args = ["--leader-elect", "--leader-election-id", lease, "--lease-duration", f"{LEASE}s",
            "--renew-deadline", f"{RENEW}s", "--retry-period", f"{RETRY}s"]
    replicas = {name: fk.start(kube, emu, ns, operators, *args, env={"POD_NAME": name})
                for name in ("replica-a", "replica-b")}
    first = wait_until("a leader", lambda: holder(kube, lease), timeout=60)
    assert first in replicas
    other = "replica-b" if first == "replica-a" else "replica-a"
    pools = fk.declared()
    n = len(pools)
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, pools)
    fk.wait_created(emu, n // 3)
    replicas[first].signal(signal.SIGKILL)
    replicas[first].p.wait()
    killed = time.monotonic()
    wait_until("the standby to take the Lease", lambda: holder(kube, lease) == other,
               timeout=LEASE + RENEW + 10, interval=0.2)
    took_over = time.monotonic() - killed
    fk.wait_converged(kube, emu, ns, pools)
    report("rollout", time.monotonic() - t0,
           f"leader killed with {n // 3}+ pools created; standby took the Lease in {took_over:.1f}s; "
           f"converged {time.monotonic() - killed:.1f}s after the kill; ARM PUT/PATCH/DELETE {fk.arm_writes(emu)}")
    fk.assert_no_duplicates(emu, pools)
    report("teardown", fk.delete_all(kube, emu, ns))
    assert replicas[other].alive()
