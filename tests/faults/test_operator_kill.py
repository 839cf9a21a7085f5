"""The operator dies (kill -9) at random points of a rollout and of the
teardown, and is started again each time. A pool's PUT may have gone out
with the object's status not yet written (azureResourceId unset), or a
DELETE with the finalizer still on: the restarted operator must adopt what
it created, finish what it started, create nothing twice and leave no pool
behind."""
import os
import random
import signal
import time

import faultkit as fk
from procs import wait_until


def test_baseline_rollout_without_faults(kube, emu, operators, report):
    """The reference the fault cases compare with: the same rollout and
    teardown with nothing going wrong."""
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns)
    fk.start(kube, emu, ns, operators)
    pools = fk.declared()
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, pools)
    fk.wait_converged(kube, emu, ns, pools)
    report("rollout", time.monotonic() - t0, f"ARM PUT/PATCH/DELETE {fk.arm_writes(emu)}")
    fk.assert_no_duplicates(emu, pools)
    report("teardown", fk.delete_all(kube, emu, ns))


def test_kill9_at_random_points_then_restart(kube, emu, operators, report):
    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns)
    op = fk.start(kube, emu, ns, operators)
    pools = fk.declared()
    n = len(pools)
    # Three kills during the rollout, at random numbers of pools created.
    points = sorted(rng.sample(range(max(2, n // 20), max(3, n - n // 20)), 3))
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, pools)
    for at in points:
        fk.wait_created(emu, at)
        op.signal(signal.SIGKILL)
        op.p.wait()
        op = fk.start(kube, emu, ns, operators)
    fk.wait_converged(kube, emu, ns, pools)
    report("rollout", time.monotonic() - t0,
           f"seed {seed}, killed at {points} pools created, ARM PUT/PATCH/DELETE {fk.arm_writes(emu)}")
    fk.assert_no_duplicates(emu, pools)

    # And once during the teardown, with deletes in flight.
    t1 = time.monotonic()
    kube.run("delete", "agentpools", "--all", "-n", ns, "--wait=false", timeout=300)
    at = rng.randrange(max(1, n // 4), max(2, 3 * n // 4))
    wait_until(f"{n - at} pools left in Azure", lambda: len(fk.azure_pools(emu)) <= n - at, timeout=120,
               interval=0.05)
    op.signal(signal.SIGKILL)
    op.p.wait()
    op = fk.start(kube, emu, ns, operators)
    report("teardown", fk.wait_deleted(kube, emu, ns, t1), f"killed with {n - at} pools left")
