"""agents/azure-pipelines/start.sh, the agent image's entrypoint, run for real
against stand-ins for the agent package's config.sh and run.sh.

The stand-ins are small POSIX sh scripts written into a temporary agent
directory (AZP_AGENT_DIR). Each records, outside that directory, its
arguments, its uid, /proc/<own pid>/environ (the environment it was exec'd
with), its NoNewPrivs and CapEff, and the environ of every ancestor up to
this test process. The registration credentials are made up at run time
(random hex, a random "RSA key" JSON), so a search for them is exact and
nothing that looks like a real secret is in the repository.

The user switch (AZP_RUN_AS) needs root: as root the suite runs the agent as
65534:65534 and checks uid, ownership, permissions and no_new_privs; not as
root those cases are skipped and the rest run with AZP_RUN_AS= (empty: keep
the current user), which the script documents for exactly this.
"""
import base64
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "agents" / "azure-pipelines" / "start.sh"
IS_ROOT = os.geteuid() == 0
NOBODY = 65534

URL = "https://dev.azure.com/contoso"
POOL = "aci pool \"blue\""          # a space and quotes: JSON escaping is exercised
NAME = "acrpool-agents-0"
AGENT_ID = "17"
POOL_ID = "9"
CLIENT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
AUTH_URL = "https://vstoken.dev.azure.com/00000000-0000-0000-0000-000000000000/_apis/oauth2/token"

COMMON = ["AZP_URL", "AZP_POOL", "AZP_AGENT_NAME"]
PRE = ["AZP_AGENT_ID", "AZP_POOL_ID", "AZP_AGENT_CLIENT_ID", "AZP_AGENT_AUTH_URL", "AZP_AGENT_KEY"]
# What the agent process may be given, and nothing else (plus AZP_ENV_PASSTHROUGH names).
RUN_ENV_ALLOWED = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "AGENT_ALLOW_RUNASROOT"}


def b64(n):
    return base64.b64encode(secrets.token_bytes(n)).decode()


def fake_key():
    """A .credentials_rsaparams-shaped JSON: random bytes, not a usable key."""
    return json.dumps({"d": b64(256), "dp": b64(128), "dq": b64(128), "exponent": "AQAB",
                       "inverseQ": b64(128), "modulus": b64(256), "p": b64(128), "q": b64(128)})


RECORDER = r'''#!/bin/sh
# Stand-in for the agent package's {what}: records how it was started.
set -e
rec={rec}
mkdir -p "$rec"
chmod 0777 "$rec" 2>/dev/null || true
: > "$rec/called"
for a in "$@"; do printf '%s\n' "$a"; done > "$rec/args"
id -u > "$rec/uid"
pwd > "$rec/cwd"
cat /proc/$$/environ > "$rec/environ"
grep -E '^(NoNewPrivs|CapEff):' /proc/$$/status > "$rec/status" || true
for f in .agent .credentials .credentials_rsaparams; do
  if [ -e "$f" ]; then echo "$f" >> "$rec/present_on_entry"; fi
done
pid=$$
i=0
while :; do
  ppid=$(awk '/^PPid:/ {{print $2}}' /proc/$pid/status)
  if [ -z "$ppid" ] || [ "$ppid" -le 1 ] || [ "$ppid" = {stop} ]; then break; fi
  cat /proc/$ppid/environ > "$rec/parent$i.environ" 2>/dev/null || : > "$rec/parent$i.unreadable"
  pid=$ppid
  i=$((i + 1))
done
'''

CONFIG_TAIL = r'''
# Like the real config.sh: it runs from its own directory and leaves the
# agent's settings, credential and key there (made-up contents).
cd "$(dirname "$0")"
umask 077
printf '{{"agentId": 5, "agentName": "x", "poolId": 1, "poolName": "p", "serverUrl": "{url}/", "workFolder": "_work"}}\n' > .agent
printf '{{"scheme": "OAuth", "data": {{"clientId": "c", "authorizationUrl": "a"}}}}\n' > .credentials
printf '{{"d": "AAAA", "modulus": "BBBB", "exponent": "AQAB", "p": "CC", "q": "DD"}}\n' > .credentials_rsaparams
mkdir -p _diag
echo "configure: token ***" > _diag/Agent_config.log
{leak}
echo "config stand-in: agent registered"
'''


class Env:
    """A temporary agent directory with stand-ins, and a way to run start.sh."""

    def __init__(self, base, run_as_nobody=False, leak=False, run_exit=0):
        self.base = base
        self.agent = base / "agent"
        self.rec = base / "rec"
        self.agent.mkdir()
        self.rec.mkdir()
        self.rec.chmod(0o777)
        self.token = "tok" + secrets.token_hex(24)
        self.key = fake_key()
        self.key_b64 = base64.b64encode(self.key.encode()).decode()
        stop = os.getpid()
        leak_line = f'printf "%s\\n" "$VSTS_AGENT_INPUT_TOKEN" > _diag/leak.txt' if leak else ""
        (self.agent / "config.sh").write_text(
            RECORDER.format(what="config.sh", rec=self.rec / "config", stop=stop)
            + CONFIG_TAIL.format(url=URL, leak=leak_line))
        (self.agent / "run.sh").write_text(
            RECORDER.format(what="run.sh", rec=self.rec / "run", stop=stop)
            + f"echo 'run stand-in: one job'\nexit {run_exit}\n")
        for f in ("config.sh", "run.sh"):
            (self.agent / f).chmod(0o755)
        if run_as_nobody:
            os.chown(self.agent, NOBODY, NOBODY)

    def env(self, mode, **over):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.base), "LANG": "C.UTF-8",
             "AZP_AGENT_DIR": str(self.agent), "AZP_RUN_AS": "",
             "AZP_URL": URL, "AZP_POOL": POOL, "AZP_AGENT_NAME": NAME}
        if mode == "token":
            e["AZP_TOKEN"] = self.token
        elif mode == "pre":
            e.update(AZP_AGENT_ID=AGENT_ID, AZP_POOL_ID=POOL_ID, AZP_AGENT_CLIENT_ID=CLIENT_ID,
                     AZP_AGENT_AUTH_URL=AUTH_URL, AZP_AGENT_KEY=self.key_b64)
        for k, v in over.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def start(self, env, *args):
        p = subprocess.run([str(START), *args], env=env, capture_output=True, text=True, timeout=60)
        self.out = p.stdout + p.stderr
        return p

    def called(self, what):
        return (self.rec / what / "called").exists()

    def args(self, what):
        return (self.rec / what / "args").read_text().splitlines()

    def environ(self, what):
        raw = (self.rec / what / "environ").read_bytes()
        return dict(kv.split("=", 1) for kv in raw.decode().split("\0") if kv)

    def parents(self, what):
        return sorted((self.rec / what).glob("parent*.environ"))

    def secrets(self):
        return [self.token, self.key, self.key_b64] + [v for v in json.loads(self.key).values() if len(v) > 8]

    def files_containing(self, needle):
        hits = []
        for p in self.agent.rglob("*"):
            if p.is_file() and needle.encode() in p.read_bytes():
                hits.append(str(p.relative_to(self.agent)))
        return hits


@pytest.fixture
def base():
    d = Path(tempfile.mkdtemp(prefix="acrpool-start-sh-"))
    d.chmod(0o755)  # the agent user (65534 in the root cases) must reach its directory
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def agent(base):
    return Env(base)


def assert_no_secret_reaches_the_agent(e):
    """run.sh's environment, its ancestors' and the script's output hold no
    credential; the registration variables are all gone."""
    run_env = e.environ("run")
    leaked = [k for k in run_env if k.startswith(("AZP_", "VSTS_AGENT_INPUT_"))]
    assert leaked == [], f"run.sh was given {leaked}"
    blob = (e.rec / "run" / "environ").read_bytes()
    for p in e.parents("run"):
        blob += p.read_bytes()
    for s in e.secrets():
        assert s.encode() not in blob, "a credential is in the environ of run.sh or an ancestor"
        assert s not in e.out, "a credential was printed"
    assert not list((e.rec / "run").glob("parent*.unreadable"))


# --- failing clearly ---------------------------------------------------------------

@pytest.mark.parametrize("mode,var", [("token", v) for v in COMMON + ["AZP_TOKEN"]]
                         + [("pre", v) for v in COMMON + PRE])
def test_each_missing_variable_fails_naming_it(agent, mode, var):
    p = agent.start(agent.env(mode, **{var: None}))
    if mode == "token" and var == "AZP_TOKEN":
        assert p.returncode == 2  # no mode left at all: the message names both modes' variables
        assert "AZP_TOKEN" in p.stderr and "AZP_AGENT_KEY" in p.stderr
    elif mode == "pre" and var == "AZP_POOL_ID":
        assert p.returncode == 2 and "AZP_POOL_ID" in p.stderr
    else:
        assert p.returncode == 2, agent.out
        assert var in p.stderr
    assert not agent.called("config") and not agent.called("run")
    for s in agent.secrets():
        assert s not in agent.out


@pytest.mark.parametrize("var", COMMON + ["AZP_TOKEN", "AZP_AGENT_KEY"])
def test_an_empty_variable_counts_as_missing(agent, var):
    mode = "pre" if var == "AZP_AGENT_KEY" else "token"
    p = agent.start(agent.env(mode, **{var: ""}))
    assert p.returncode == 2 and var in p.stderr
    assert not agent.called("run")


def test_neither_mode_fails_naming_both(agent):
    p = agent.start(agent.env(None))
    assert p.returncode == 2
    assert "no registration credential" in p.stderr
    for v in ["AZP_TOKEN"] + PRE:
        assert v in p.stderr
    assert not agent.called("config") and not agent.called("run")


@pytest.mark.parametrize("extra", ["AZP_AGENT_KEY", "AZP_AGENT_ID", "AZP_AGENT_CLIENT_ID", "AZP_AGENT_AUTH_URL"])
def test_both_modes_at_once_fail(agent, extra):
    env = agent.env("token", **{extra: agent.env("pre")[extra]})
    p = agent.start(env)
    assert p.returncode == 2
    assert "both registration modes" in p.stderr and "AZP_TOKEN" in p.stderr and extra in p.stderr
    assert not agent.called("config") and not agent.called("run")
    for s in agent.secrets():
        assert s not in agent.out


@pytest.mark.parametrize("var,value,words", [
    ("AZP_AGENT_ID", "seventeen", "AZP_AGENT_ID must be a positive integer"),
    ("AZP_POOL_ID", "0", "AZP_POOL_ID must be a positive integer"),
    ("AZP_AGENT_CLIENT_ID", "not-a-guid", "AZP_AGENT_CLIENT_ID must be a GUID"),
    ("AZP_AGENT_AUTH_URL", "vstoken.dev.azure.com/x", "AZP_AGENT_AUTH_URL must be an http(s) URL"),
    ("AZP_URL", "dev.azure.com/contoso", "AZP_URL must be an http(s) URL"),
    ("AZP_AGENT_KEY", "%%% not base64 %%%", "AZP_AGENT_KEY is not valid base64"),
    ("AZP_AGENT_KEY", base64.b64encode(b'{"hello": "world"}').decode(), "does not decode to the agent's RSA key"),
])
def test_bad_values_fail_without_showing_them(agent, var, value, words):
    p = agent.start(agent.env("pre", **{var: value}))
    assert p.returncode == 2, agent.out
    assert words in p.stderr
    if var == "AZP_AGENT_KEY":
        assert value not in agent.out
    assert not agent.called("run")
    assert not (agent.agent / ".credentials_rsaparams").exists()


def test_control_characters_are_refused_and_not_echoed(agent):
    bad = agent.token[:20] + "\n" + agent.token[20:]
    p = agent.start(agent.env("token", AZP_TOKEN=bad))
    assert p.returncode == 2 and "AZP_TOKEN holds a control character" in p.stderr
    assert agent.token[:20] not in agent.out and agent.token[20:] not in agent.out
    assert not agent.called("config")


def test_arguments_are_refused(agent):
    p = agent.start(agent.env("token"), "--noonce")
    assert p.returncode == 2 and "takes no arguments" in p.stderr
    assert not agent.called("config")


def test_missing_agent_package_is_named(agent):
    (agent.agent / "run.sh").unlink()
    p = agent.start(agent.env("token"))
    assert p.returncode == 1 and "run.sh" in p.stderr and "AZP_AGENT_DIR" in p.stderr
    assert not agent.called("config")


# --- token mode ---------------------------------------------------------------------

def test_token_mode_registers_with_replace_then_runs_once_without_the_token(agent):
    p = agent.start(agent.env("token"))
    assert p.returncode == 0, agent.out
    args = agent.args("config")
    for flag in ("--unattended", "--replace", "--acceptTeeEula"):
        assert flag in args
    pairs = dict(zip(args, args[1:]))
    assert pairs["--url"] == URL
    assert pairs["--pool"] == POOL
    assert pairs["--agent"] == NAME
    assert pairs["--auth"] == "pat"
    assert pairs["--work"] == "_work"
    # The token reaches config in its environment (VSTS_AGENT_INPUT_TOKEN, which
    # the agent reads and masks), never in an argv that /proc shows to everyone.
    assert agent.token not in "\n".join(args)
    cfg_env = agent.environ("config")
    assert cfg_env["VSTS_AGENT_INPUT_TOKEN"] == agent.token
    assert "AZP_TOKEN" not in cfg_env
    assert (agent.rec / "config" / "cwd").read_text().strip() == str(agent.agent)

    assert agent.args("run") == ["--once"]
    assert_no_secret_reaches_the_agent(agent)
    assert set(agent.environ("run")) <= RUN_ENV_ALLOWED
    assert agent.files_containing(agent.token) == []
    assert agent.token not in agent.out
    for f in (".credentials", ".credentials_rsaparams"):
        assert stat.S_IMODE((agent.agent / f).stat().st_mode) == 0o600


def test_token_mode_starts_from_no_registration(agent):
    for f in (".agent", ".credentials", ".credentials_rsaparams"):
        (agent.agent / f).write_text("{}  # from an earlier start\n")
    p = agent.start(agent.env("token"))
    assert p.returncode == 0, agent.out
    assert not (agent.rec / "config" / "present_on_entry").exists()


def test_token_mode_refuses_to_run_when_the_token_lands_in_a_file(base):
    e = Env(base, leak=True)
    p = e.start(e.env("token"))
    assert p.returncode == 1
    assert "registration token was found in" in p.stderr and "_diag/leak.txt" in p.stderr
    assert e.token not in e.out
    assert not e.called("run")
    assert not (e.agent / ".credentials_rsaparams").exists()


def test_config_failure_stops_the_start(agent):
    cfg = agent.agent / "config.sh"
    cfg.write_text("#!/bin/sh\necho 'config stand-in: refused' >&2\nexit 3\n")
    p = agent.start(agent.env("token"))
    assert p.returncode == 1 and "config.sh failed" in p.stderr
    assert not agent.called("run")
    assert agent.token not in agent.out


# --- pre-registered mode -----------------------------------------------------------------

def test_preregistered_mode_writes_the_agent_files_and_never_configures(agent):
    p = agent.start(agent.env("pre"))
    assert p.returncode == 0, agent.out
    assert not agent.called("config")
    a = agent.agent
    assert json.loads((a / ".agent").read_text()) == {
        "agentId": 17, "agentName": NAME, "poolId": 9, "poolName": POOL,
        "serverUrl": URL + "/", "workFolder": "_work"}
    assert json.loads((a / ".credentials").read_text()) == {
        "scheme": "OAuth",
        "data": {"clientId": CLIENT_ID, "authorizationUrl": AUTH_URL, "oauthEndpointUrl": AUTH_URL}}
    assert (a / ".credentials_rsaparams").read_text() == agent.key
    assert stat.S_IMODE((a / ".agent").stat().st_mode) == 0o644
    assert stat.S_IMODE((a / ".credentials").stat().st_mode) == 0o600
    assert stat.S_IMODE((a / ".credentials_rsaparams").stat().st_mode) == 0o600

    assert agent.args("run") == ["--once"]
    assert sorted((agent.rec / "run" / "present_on_entry").read_text().split()) == [
        ".agent", ".credentials", ".credentials_rsaparams"]
    assert_no_secret_reaches_the_agent(agent)
    assert set(agent.environ("run")) <= RUN_ENV_ALLOWED
    # The key is in the agent's own key file and nowhere else.
    d = json.loads(agent.key)["d"]
    assert agent.files_containing(d) == [".credentials_rsaparams"]
    assert agent.files_containing(agent.key_b64) == []


def test_preregistered_mode_runs_env_sh_as_the_agent_with_the_clean_environment(agent):
    (agent.agent / "env.sh").write_text(f"cat /proc/$$/environ > {agent.rec}/envsh.environ\n"
                                        "echo \"$PATH\" > .path\n")
    p = agent.start(agent.env("pre", SOMETHING_ELSE="x"))
    assert p.returncode == 0, agent.out
    got = (agent.rec / "envsh.environ").read_bytes().decode().split("\0")
    names = {kv.split("=", 1)[0] for kv in got if kv}
    assert names <= RUN_ENV_ALLOWED, names
    assert (agent.agent / ".path").exists()


def test_the_run_exit_status_is_the_containers(base):
    e = Env(base, run_exit=4)
    p = e.start(e.env("pre"))
    assert p.returncode == 4


# --- the agent's environment ------------------------------------------------------------------

def test_run_environment_is_built_not_inherited(agent):
    env = agent.env("token", SOME_TOOL_HOME="/opt/tool", IDENTITY_HEADER="hdr-" + secrets.token_hex(8),
                    IDENTITY_ENDPOINT="http://169.254.169.254/x", TZ="Europe/Paris")
    p = agent.start(env)
    assert p.returncode == 0, agent.out
    run_env = agent.environ("run")
    assert set(run_env) <= RUN_ENV_ALLOWED
    assert run_env["TZ"] == "Europe/Paris" and run_env["LANG"] == "C.UTF-8"
    assert run_env["PATH"] == env["PATH"]
    assert "SOME_TOOL_HOME" not in run_env and "IDENTITY_HEADER" not in run_env


def test_passthrough_names_reach_the_agent(agent):
    p = agent.start(agent.env("pre", AZP_ENV_PASSTHROUGH="SOME_TOOL_HOME, NUGET_FEED", SOME_TOOL_HOME="/opt/t",
                              NUGET_FEED="https://example.invalid/feed", OTHER="no"))
    assert p.returncode == 0, agent.out
    run_env = agent.environ("run")
    assert run_env["SOME_TOOL_HOME"] == "/opt/t" and run_env["NUGET_FEED"] == "https://example.invalid/feed"
    assert "OTHER" not in run_env and "AZP_ENV_PASSTHROUGH" not in run_env


@pytest.mark.parametrize("name", ["AZP_TOKEN", "AZP_AGENT_KEY", "VSTS_AGENT_INPUT_TOKEN", "IDENTITY_HEADER", "MSI_SECRET"])
def test_passthrough_cannot_name_a_credential(agent, name):
    p = agent.start(agent.env("token", AZP_ENV_PASSTHROUGH=f"FOO,{name}"))
    assert p.returncode == 2 and f"may not name {name}" in p.stderr
    assert not agent.called("config") and not agent.called("run")
    assert agent.token not in agent.out


# --- who the agent runs as --------------------------------------------------------------------

def test_the_default_is_to_switch_to_the_agent_user(agent):
    """AZP_RUN_AS unset means `agent`: as root that user must exist (it does in
    the image, not here); not as root, switching is refused. Either way the
    script never falls back to running the agent as whoever started it."""
    try:
        pwd.getpwnam("agent")
        pytest.skip("this machine has a user named agent")
    except KeyError:
        pass
    p = agent.start(agent.env("pre", AZP_RUN_AS=None))
    assert p.returncode != 0
    if IS_ROOT:
        assert "AZP_RUN_AS: no user named agent" in p.stderr
    else:
        assert "AZP_RUN_AS=agent: switching to that user needs root" in p.stderr
    assert not agent.called("run") and not agent.called("config")


@pytest.mark.skipif(not IS_ROOT, reason="the user switch needs root")
def test_root_is_refused_as_the_agent_user(agent):
    p = agent.start(agent.env("pre", AZP_RUN_AS="0:0"))
    assert p.returncode == 2 and "must not run as root" in p.stderr
    assert not agent.called("run")


@pytest.mark.skipif(not IS_ROOT, reason="only root can keep root")
def test_staying_root_is_loud(agent):
    p = agent.start(agent.env("pre"))
    assert p.returncode == 0
    assert "warning: the agent runs as root" in p.stderr
    assert agent.environ("run")["AGENT_ALLOW_RUNASROOT"] == "1"


@pytest.mark.skipif(IS_ROOT, reason="as root the switch is tested for real")
def test_not_root_keeps_the_current_user_when_asked(agent):
    p = agent.start(agent.env("pre"))
    assert p.returncode == 0, agent.out
    assert (agent.rec / "run" / "uid").read_text().strip() == str(os.geteuid())
    assert "AGENT_ALLOW_RUNASROOT" not in agent.environ("run")


@pytest.mark.skipif(not IS_ROOT, reason="the user switch needs root")
@pytest.mark.parametrize("mode", ["token", "pre"])
def test_as_root_the_agent_runs_unprivileged(base, mode):
    e = Env(base, run_as_nobody=True)
    p = e.start(e.env(mode, AZP_RUN_AS=f"{NOBODY}:{NOBODY}"))
    assert p.returncode == 0, e.out
    for what in (["config", "run"] if mode == "token" else ["run"]):
        assert (e.rec / what / "uid").read_text().strip() == str(NOBODY)
        status = dict(l.split(":", 1) for l in (e.rec / what / "status").read_text().splitlines())
        assert status["NoNewPrivs"].strip() == "1"
        assert int(status["CapEff"].strip(), 16) == 0
    assert "AGENT_ALLOW_RUNASROOT" not in e.environ("run")
    assert e.environ("run")["USER"] == str(NOBODY) or e.environ("run")["USER"] == pwd.getpwuid(NOBODY).pw_name
    key = e.agent / ".credentials_rsaparams"
    st = key.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o600)
    assert_no_secret_reaches_the_agent(e)
    assert e.files_containing(e.token) == []


@pytest.mark.skipif(not IS_ROOT, reason="the user switch needs root")
def test_an_agent_dir_the_agent_cannot_write_is_named(agent):
    p = agent.start(agent.env("pre", AZP_RUN_AS=f"{NOBODY}:{NOBODY}"))  # agent dir still owned by root
    assert p.returncode == 1 and "is not writable by" in p.stderr
    assert not agent.called("run")


# --- lint ---------------------------------------------------------------------------------------

def test_shellcheck_is_clean():
    sc = shutil.which("shellcheck")
    assert sc, "shellcheck is missing: scripts/deps.sh installs it"
    p = subprocess.run([sc, str(START)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


# --- the image --------------------------------------------------------------------------------------

DOCKERFILE = START.parent / "Dockerfile"


def dockerfile_stages():
    stages, cur = [], None
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            cur = [line]
            stages.append(cur)
        elif cur is not None and not line.lstrip().startswith("#"):
            cur.append(line)
    return ["\n".join(s) for s in stages]


def test_dockerfile_keeps_build_secrets_out_of_the_image():
    fetch, final = dockerfile_stages()[0], dockerfile_stages()[-1]
    assert " AS fetch" in fetch.splitlines()[0]
    for arg in ("AZP_AGENT_PACKAGE_URL", "AZP_ORG_URL", "AZP_PACKAGE_TOKEN", "AZP_AGENT_PACKAGE_SHA256"):
        assert f"ARG {arg}=" in fetch
    assert "_apis/distributedtask/packages/agent?platform=${AZP_AGENT_PLATFORM}&top=1" in fetch
    assert "curl -fsSL -K -" in fetch, "the package token must not be on curl's command line"
    # The pushed stage declares no build argument and no environment at all,
    # so nothing given at build time can end up in its configuration.
    for word in ("ARG ", "ENV ", "TOKEN", "sudo"):
        assert word not in final, f"{word!r} in the final stage"
    assert "COPY --from=fetch --chown=agent:agent /out/agent /azp/agent" in final
    assert "useradd --uid 10001" in final
    assert 'ENTRYPOINT ["/azp/start.sh"]' in final
    assert "tini" in final  # start.sh puts it in front of the agent when present
