"""The e2e happy path with the operator under valgrind (issue 9): create
one pool, scale it, scale it to zero, delete it, then SIGTERM. The binary
comes from a build without sanitizers (make valgrind: build-valgrind,
-DACRPOOL_SANITIZE=OFF); valgrind's memcheck must report no error and no
definitely lost block:

    valgrind --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite

and the operator must exit 0 after its clean shutdown (so every thread
joined and every cache freed before the leak check runs)."""
import os
import pathlib
import re
import signal

from harness import OPERATOR, operator_identity, pool_obj, setup_azure, wait_condition
from emulator import RG, SUB
from procs import Proc, wait_until

# valgrind runs the operator 20 to 50 times slower: generous timeouts.
TIMEOUT = 240


def start_under_valgrind(kube, emu, namespace, log):
    assert "build-valgrind" in str(OPERATOR) or os.environ.get("ACRPOOL_VALGRIND_ANY_BUILD"), \
        f"{OPERATOR}: run with ACRPOOL_BUILD_DIR pointing at a build without sanitizers (make valgrind)"
    args = ["--kubeconfig", operator_identity(kube).kubeconfig, "--namespaces", namespace,
            "--arm-endpoint", emu.url, "--authority-host", emu.url,
            "--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0",
            "--metrics-secure=false"]
    vg = ["--leak-check=full", "--error-exitcode=1", "--errors-for-leak-kinds=definite",
          "--show-leak-kinds=definite", "--num-callers=30", f"--log-file={log}", str(OPERATOR)]
    return Proc("valgrind", [*vg, *args])


def test_happy_path_has_no_memory_errors_and_no_leaks(kube, emu, namespace, tmp_path):
    setup_azure(kube, emu, namespace)
    log = tmp_path / "valgrind.log"
    op = start_under_valgrind(kube, emu, namespace, log)
    try:
        op.port()
        kube.apply(pool_obj("vgpool", tier="S1", count=1), namespace)
        wait_condition(kube, "agentpool", "vgpool", namespace, "Ready", timeout=TIMEOUT)
        for count in (2, 0):
            kube.apply(pool_obj("vgpool", tier="S1", count=count), namespace)
            wait_until(f"Azure count {count}", lambda: emu.pool(SUB, RG, "myregistry", "vgpool")["properties"]
                       ["count"] == count, timeout=TIMEOUT, interval=0.5)
            kube.run("wait", f"--for=jsonpath={{.status.count}}={count}", "agentpool/vgpool", "-n", namespace,
                     f"--timeout={TIMEOUT}s", timeout=TIMEOUT + 10)
        kube.run("delete", "agentpool", "vgpool", "-n", namespace, f"--timeout={TIMEOUT}s", timeout=TIMEOUT + 10)
        assert kube.run("get", "agentpool", "vgpool", "-n", namespace, check=False).returncode != 0
        rc = op.stop(signal.SIGTERM, timeout=TIMEOUT)
    finally:
        op.kill()
    report = pathlib.Path(log).read_text(errors="replace")
    summary = "\n".join(l for l in report.splitlines() if re.search(r"(ERROR SUMMARY|definitely lost|"
                                                                   r"indirectly lost|possibly lost|still reachable|"
                                                                   r"All heap blocks)", l))
    print(f"valgrind summary ({log}):\n{summary}")
    assert rc == 0, f"operator under valgrind exited {rc} (1 = valgrind found errors); see {log}:\n{report[-6000:]}"
    assert "ERROR SUMMARY: 0 errors" in report, report[-6000:]
    m = re.search(r"definitely lost: ([\d,]+) bytes", report)
    assert m is None or m.group(1) == "0", report[-6000:]
    assert op.find("exited"), "no clean shutdown line in the operator's log"
