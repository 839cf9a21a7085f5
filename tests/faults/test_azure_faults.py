"""Azure misbehaves mid-rollout: throttling storms, 5xx bursts, dropped
connections, minutes-long operations and access tokens that expire while
the operator works. The emulator injects each (docs/emulator.md, fault
injection and settings); the rollout must converge with nothing lost and
nothing duplicated once the fault has run its course."""
import time

import pytest

import faultkit as fk
from procs import wait_until


def rollout(kube, emu, operators, report, note, *extra, before=None, during=None):
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns)
    if before:
        before()
    op = fk.start(kube, emu, ns, operators, *extra)
    pools = fk.declared()
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, pools)
    if during:
        during(len(pools))
    fk.wait_converged(kube, emu, ns, pools)
    took = time.monotonic() - t0
    fired = sum(r.get("fired", 0) for r in emu.control("GET", "faults").get("value", []))
    report("rollout", took, f"{note}; faults fired {fired}; ARM PUT/PATCH/DELETE {fk.arm_writes(emu)}")
    fk.assert_no_duplicates(emu, pools)
    return ns, op, pools


def test_429_storm(kube, emu, operators, report):
    """Half of all agent pool calls throttled (Retry-After: 1) until the
    storm has fired 3 x N times."""
    # In place before the operator starts: a rollout of N now takes about
    # as long as applying N, so a storm started after the apply would meet
    # no call.
    def before():
        emu.fault(status=429, rate=0.5, count=3 * fk.N_POOLS, path="agentPools", retryAfter=1)
    ns, op, _ = rollout(kube, emu, operators, report, "429 at rate 0.5", before=before)
    assert emu.control("GET", "faults")["value"][0]["fired"] > 0
    # and a storm during the teardown too
    emu.fault(status=429, rate=0.5, count=fk.N_POOLS, path="agentPools", retryAfter=1)
    report("teardown", fk.delete_all(kube, emu, ns), "429 at rate 0.5")
    assert op.alive()


def test_5xx_bursts(kube, emu, operators, report):
    """Two bursts in which every agent pool call fails: 500s at the start,
    then, after a third of N agent pool calls got through, 503s (with
    Retry-After). Both rules are in place before the operator starts (a
    rollout of N now ends about when its apply does, so a burst added
    during it could meet no call); the emulator tries them in order."""
    def before():
        emu.fault(status=500, count=fk.N_POOLS // 2, path="agentPools")
        emu.fault(status=503, count=fk.N_POOLS // 2, after=fk.N_POOLS // 3, path="agentPools", retryAfter=1)
    ns, op, _ = rollout(kube, emu, operators, report, "500 x N/2, N/3 calls, 503 x N/2", before=before)
    assert [r["fired"] for r in emu.control("GET", "faults")["value"]] == [fk.N_POOLS // 2] * 2
    emu.clear_faults()
    emu.fault(status=500, count=fk.N_POOLS // 4, path="agentPools", method="DELETE")
    report("teardown", fk.delete_all(kube, emu, ns), "500 x N/4 on DELETE")


def test_dropped_connections(kube, emu, operators, report):
    """A third of ARM and token requests get the socket closed with no
    answer at all. (The emulator drops before it acts on the request, so
    this is a request lost on the way in.)"""
    def during(n):
        emu.fault(drop=True, rate=0.3, count=n, path="/(subscriptions|.*oauth2)")
    ns, op, _ = rollout(kube, emu, operators, report, "drop at rate 0.3", during=during)
    emu.fault(drop=True, rate=0.3, count=fk.N_POOLS // 2, path="agentPools")
    report("teardown", fk.delete_all(kube, emu, ns), "drop at rate 0.3")


def test_slow_emulator_makes_progress(kube, emu, operators, report):
    """Operations that take minutes (a 120 s provisioning delay): the
    operator must have every pool's create under way long before one of
    them finishes, poll them without hammering Azure and without a second
    PUT. Progress is checked; the 120 s are not waited out."""
    emu.settings(provisioningDelaySeconds=120)
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns)
    fk.start(kube, emu, ns, operators)
    pools = fk.declared()
    n = len(pools)
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, pools)
    fk.wait_pool_puts(emu, n, timeout=120)
    all_put = time.monotonic() - t0

    def all_creating():
        objs = fk.objects(kube, ns) or {}
        return len(objs) == n and all(
            any(c["type"] == "Reconciling" and c["status"] == "True" and c["reason"] == "Creating"
                for c in (o.get("status") or {}).get("conditions", [])) for o in objs.values())
    wait_until("every pool Reconciling/Creating", all_creating, timeout=120, interval=fk.POLL)
    reported = time.monotonic() - t0
    # Watch the operator poll the pools for a while: until every pool
    # has been read three times (a condition, not a sleep).

    def polls():
        gets = {}
        for r in emu.requests(method="GET", path_contains="/agentPools/"):
            name = r["path"].rstrip("/").rsplit("/", 1)[-1]
            gets[name] = gets.get(name, 0) + 1
        return gets
    wait_until("every pool polled three times", lambda: len([g for g in polls().values() if g >= 3]) >= n,
               timeout=110, interval=1)
    watched = time.monotonic() - t0
    puts = emu.requests(method="PUT", path_contains="/agentPools/")
    conflicts = [r for r in emu.requests(path_contains="/agentPools/") if r["status"] == 409]
    gets = sum(polls().values())
    report("progress", reported,
           f"all {n} PUTs in {all_put:.1f}s, all Reconciling/Creating at {reported:.1f}s; every pool read 3 times "
           f"by {watched:.1f}s ({gets} GETs: {gets / n / watched * 60:.1f} per pool per minute); PUTs {len(puts)}, "
           f"409s {len(conflicts)}")
    assert len(puts) == n, f"{len(puts)} PUTs for {n} pools while they were Creating"
    assert not conflicts, f"{len(conflicts)} writes to pools whose operation was in flight"
    assert watched < 120, "a pool finished before every pool was under way: the check proved nothing"


def test_token_expiry_mid_run(kube, emu, operators, report):
    """Access tokens that live 35 s. The operator stops using a token 30 s
    before it expires (IDENTITY_EXPIRY_SKEW), so each is good for about
    5 s: the rollout, a scale of every pool and the teardown run across
    many of them."""
    def before():
        emu.settings(tokenLifetimeSeconds=35)
    ns, op, _ = rollout(kube, emu, operators, report, "tokenLifetimeSeconds 35", before=before)
    t1 = time.monotonic()
    pools = {n: c + 1 for n, c in fk.declared().items()}
    fk.apply_pools(kube, ns, pools)
    fk.wait_converged(kube, emu, ns, pools)
    report("scale", time.monotonic() - t1, "every pool +1")
    report("teardown", fk.delete_all(kube, emu, ns))
    tokens = emu.requests(method="POST", path_contains="oauth2")
    unauth = [r for r in emu.requests(path_contains="/subscriptions/") if r["status"] == 401]
    report("tokens", 0.0, f"{len(tokens)} token requests, {len(unauth)} ARM 401s")
    assert len(tokens) >= 2, "the token never expired during the run"


# A regression test: this scenario orphaned 6 to 9 pools before the
# AgentPool reconciler confirmed a missing owned pool with its own GET.
def test_paged_list_during_teardown_leaves_no_orphan(kube, emu, operators, report):
    """The teardown of a rollout with a small ARM page size (5): every
    snapshot refresh during the teardown is a multi-page LIST racing the
    deletes. No Azure pool may be left behind."""
    emu.settings(pageSize=5)
    ns = fk.new_namespace(kube)
    fk.setup(kube, emu, ns, page_size=5)
    fk.start(kube, emu, ns, operators)
    pools = fk.declared(min(fk.N_POOLS, 60))
    t0 = time.monotonic()
    fk.apply_pools(kube, ns, pools)
    fk.wait_converged(kube, emu, ns, pools)
    report("rollout", time.monotonic() - t0, "pageSize 5")
    t1 = time.monotonic()
    kube.run("delete", "agentpools", "--all", "-n", ns, "--wait=false", timeout=300)
    wait_until("every object gone", lambda: fk.objects(kube, ns) == {}, timeout=fk.CONVERGE_TIMEOUT,
               interval=fk.POLL)
    left = sorted(fk.azure_pools(emu))
    report("teardown", time.monotonic() - t1, f"Azure pools left after every object went: {len(left)} {left[:5]}")
    assert not left, f"{len(left)} Azure pools orphaned: {left[:10]}"
