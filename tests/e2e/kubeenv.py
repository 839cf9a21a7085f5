"""The test control plane as the end-to-end suite sees it: where the repo
is, the testenv script, and kubectl against the admin kubeconfig. Kept out
of conftest.py so tests can import it by a name no other suite uses."""
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTENV = ROOT / "scripts" / "testenv.sh"


def _read_env(path):
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


class Kube:
    """kubectl against the test control plane, as the admin user."""

    def __init__(self, env):
        self.env = env
        self.kubeconfig = env["KUBECONFIG"]
        self.kubectl_bin = os.path.join(env["TESTENV_BIN"], "kubectl")

    def run(self, *args, input=None, check=True, timeout=120):
        cmd = [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args]
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {p.stderr.strip()}")
        return p

    def apply(self, obj, namespace, check=True):
        """kubectl apply of one object given as a dict (JSON, so no YAML
        surprises such as `y` turning into a boolean)."""
        return self.run("apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=check)

    def get(self, kind, name, namespace):
        return json.loads(self.run("get", kind, name, "-n", namespace, "-o", "json").stdout)
