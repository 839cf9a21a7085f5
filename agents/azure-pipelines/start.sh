#!/usr/bin/env bash
# start.sh: entrypoint of the acrpool Azure Pipelines agent image.
#
# Registers (or installs the pre-made registration of) one self-hosted agent,
# then replaces itself with `run.sh --once`: the agent takes exactly one job
# and exits, and Azure Container Instances (restartPolicy Always) starts the
# container again, clean. docs/pipeline-agents.md has the design and the
# threat model; this is the short version.
#
# The container starts as root. This script is the only thing that runs as
# root: it reads the registration credential, writes the agent's own files,
# and then execs the agent as an unprivileged user (AZP_RUN_AS) with an
# environment it builds itself from a short allowlist. Nothing secret is in
# that environment, in the agent's argv, or in any file the job's user can
# read, except the agent's own RSA key (.credentials_rsaparams), which the
# agent needs to authenticate.
#
# Environment (exactly one of the two modes):
#   AZP_URL             organization URL, https://dev.azure.com/ORG       (both)
#   AZP_POOL            agent pool name                                   (both)
#   AZP_AGENT_NAME      agent name, stable per instance (<prefix>-<i>)   (both)
#   token mode:
#   AZP_TOKEN           PAT with Agent Pools (read, manage), or a Microsoft
#                       Entra access token for Azure DevOps; given to
#                       `config.sh --unattended --replace` in its environment
#                       (VSTS_AGENT_INPUT_TOKEN), never on a command line
#   pre-registered mode (the operator registered the agent itself):
#   AZP_AGENT_ID        the agent's id in the pool (integer)
#   AZP_POOL_ID         the pool's id (integer), written to .agent
#   AZP_AGENT_CLIENT_ID the agent's OAuth client id (authorization.clientId)
#   AZP_AGENT_AUTH_URL  the agent's token URL (authorization.authorizationUrl)
#   AZP_AGENT_KEY       base64 of the .credentials_rsaparams JSON (the RSA
#                       private key whose public half was registered)
# Optional:
#   AZP_WORK            work folder, default _work (relative to the agent dir)
#   AZP_ENV_PASSTHROUGH names (comma or space separated) of further variables
#                       the agent and its jobs get; registration variables
#                       cannot be named
#   AZP_RUN_AS          user to run the agent as: a name, or UID:GID.
#                       Default `agent`. Set and empty: do not switch user
#                       (for tests that do not run as root; a root agent is
#                       refused unless AZP_RUN_AS is empty, and then warned)
#   AZP_AGENT_DIR       where the agent package is (config.sh, run.sh),
#                       default /azp/agent; tests point it at stand-ins
#
# Exit status: 2 for a missing or bad variable (the message names it and
# never shows a value), 1 for anything else that stops the start.
set -euo pipefail
umask 077

die() {
	printf 'start.sh: error: %s\n' "$*" >&2
	exit "${DIE_STATUS:-1}"
}
bad() { DIE_STATUS=2 die "$@"; }
note() { printf 'start.sh: %s\n' "$*" >&2; }

[ "$#" -eq 0 ] || bad "start.sh takes no arguments (the agent always runs with --once)"

# has_ctl VALUE: true when VALUE holds a control character (newline, tab, ...).
has_ctl() { [[ $1 == *[[:cntrl:]]* ]]; }

# json_str VALUE: VALUE as a JSON string literal (no control characters).
json_str() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

# --- which mode, and is everything there -------------------------------------

common=(AZP_URL AZP_POOL AZP_AGENT_NAME)
pre_markers=(AZP_AGENT_ID AZP_AGENT_CLIENT_ID AZP_AGENT_AUTH_URL AZP_AGENT_KEY)
pre_required=(AZP_AGENT_ID AZP_POOL_ID AZP_AGENT_CLIENT_ID AZP_AGENT_AUTH_URL AZP_AGENT_KEY)

pre_given=()
for v in "${pre_markers[@]}"; do
	[ -z "${!v:-}" ] || pre_given+=("$v")
done

if [ -n "${AZP_TOKEN:-}" ] && [ "${#pre_given[@]}" -gt 0 ]; then
	bad "both registration modes given: AZP_TOKEN (token mode) and ${pre_given[*]} (pre-registered mode); set exactly one"
fi
if [ -n "${AZP_TOKEN:-}" ]; then
	mode=token
	required=("${common[@]}" AZP_TOKEN)
elif [ "${#pre_given[@]}" -gt 0 ]; then
	mode=preregistered
	required=("${common[@]}" "${pre_required[@]}")
else
	missing=()
	for v in "${common[@]}"; do [ -n "${!v:-}" ] || missing+=("$v"); done
	bad "no registration credential: set AZP_TOKEN (token mode) or ${pre_required[*]} (pre-registered mode)${missing[*]:+; also missing: ${missing[*]}}"
fi

missing=()
for v in "${required[@]}"; do
	[ -n "${!v:-}" ] || missing+=("$v")
done
[ "${#missing[@]}" -eq 0 ] || bad "missing required variable(s) for $mode mode: ${missing[*]}"

for v in "${required[@]}" AZP_WORK AZP_AGENT_DIR AZP_RUN_AS AZP_ENV_PASSTHROUGH; do
	if [ -n "${!v:-}" ] && has_ctl "${!v}"; then bad "$v holds a control character"; fi
done
[[ $AZP_URL =~ ^https?://[^/]+ ]] || bad "AZP_URL must be an http(s) URL such as https://dev.azure.com/ORG"

if [ "$mode" = preregistered ]; then
	[[ $AZP_AGENT_ID =~ ^[1-9][0-9]{0,9}$ ]] || bad "AZP_AGENT_ID must be a positive integer"
	[[ $AZP_POOL_ID =~ ^[1-9][0-9]{0,9}$ ]] || bad "AZP_POOL_ID must be a positive integer"
	[[ $AZP_AGENT_CLIENT_ID =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]] ||
		bad "AZP_AGENT_CLIENT_ID must be a GUID"
	[[ $AZP_AGENT_AUTH_URL =~ ^https?://[^/]+ ]] || bad "AZP_AGENT_AUTH_URL must be an http(s) URL"
fi

url=$AZP_URL pool=$AZP_POOL agent_name=$AZP_AGENT_NAME
agent_dir=${AZP_AGENT_DIR:-/azp/agent}
work=${AZP_WORK:-_work}
[ -d "$agent_dir" ] || die "AZP_AGENT_DIR: $agent_dir is not a directory"
[ -x "$agent_dir/run.sh" ] || die "no agent in $agent_dir (AZP_AGENT_DIR): run.sh is missing or not executable"
if [ "$mode" = token ] && [ ! -x "$agent_dir/config.sh" ]; then
	die "no agent in $agent_dir (AZP_AGENT_DIR): config.sh is missing or not executable"
fi

# Variables that carry the registration credential, or reach one: never
# passed on, whatever AZP_ENV_PASSTHROUGH says. IDENTITY_* and MSI_* are how
# ACI hands a managed identity to the container.
is_protected() {
	case $1 in
	AZP_* | VSTS_AGENT_INPUT_* | IDENTITY_* | MSI_*) return 0 ;;
	*) return 1 ;;
	esac
}
passthrough=()
if [ -n "${AZP_ENV_PASSTHROUGH:-}" ]; then
	IFS=', ' read -r -a names <<<"$AZP_ENV_PASSTHROUGH"
	for n in "${names[@]}"; do
		[ -n "$n" ] || continue
		[[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || bad "AZP_ENV_PASSTHROUGH: '$n' is not a variable name"
		if is_protected "$n"; then bad "AZP_ENV_PASSTHROUGH may not name $n"; fi
		if [ -n "${!n+set}" ]; then passthrough+=("$n=${!n}"); fi
	done
fi

# --- who runs the agent -----------------------------------------------------

run_as=${AZP_RUN_AS-agent}
drop=()
if [ -n "$run_as" ]; then
	[ "$(id -u)" = 0 ] ||
		die "AZP_RUN_AS=$run_as: switching to that user needs root; start the container as root, or set AZP_RUN_AS= (empty) to keep the current user"
	command -v setpriv >/dev/null || die "setpriv (util-linux) is needed to switch to AZP_RUN_AS=$run_as"
	if [[ $run_as =~ ^([0-9]+):([0-9]+)$ ]]; then
		uid=${BASH_REMATCH[1]} gid=${BASH_REMATCH[2]}
		groups=--clear-groups
		IFS=: read -r user_name _ _ _ _ home _ < <(getent passwd "$uid" || true) || true
	else
		entry=$(getent passwd "$run_as") || bad "AZP_RUN_AS: no user named $run_as in this image"
		IFS=: read -r user_name _ uid gid _ home _ <<<"$entry"
		groups=--init-groups
	fi
	[ "$uid" != 0 ] || bad "AZP_RUN_AS names root: the agent, and so every job, must not run as root"
	# no_new_privs: nothing the job runs can gain privileges (setuid, file
	# capabilities); no inheritable capabilities.
	drop=(setpriv "--reuid=$uid" "--regid=$gid" "$groups" --no-new-privs --inh-caps=-all --)
	user_name=${user_name:-$uid}
else
	uid=$(id -u)
	user_name=$(id -un 2>/dev/null || echo "$uid")
	home=${HOME:-}
fi
home=${home:-$agent_dir}

# The environment of everything started from here on: built, not inherited.
run_env=(
	"PATH=${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"
	"HOME=$home"
	"USER=$user_name"
	"LOGNAME=$user_name"
)
for v in LANG LC_ALL TZ; do
	if [ -n "${!v:-}" ]; then run_env+=("$v=${!v}"); fi
done
if [ "$uid" = 0 ]; then
	note "warning: the agent runs as root (AZP_RUN_AS is empty): a job can read and change everything in this container"
	run_env+=(AGENT_ALLOW_RUNASROOT=1)
fi
run_env+=("${passthrough[@]}")

# as_agent CMD...: run CMD as the agent's user with run_env only.
as_agent() { env -i "${run_env[@]}" "${drop[@]}" "$@"; }

as_agent test -w "$agent_dir" || die "$agent_dir (AZP_AGENT_DIR) is not writable by $user_name, the agent's user"

# --- registration -------------------------------------------------------------

cd "$agent_dir"
# A container that kept its files, or an image with a configuration baked in:
# start from no registration, never from an old one.
rm -f .agent .credentials .credentials_rsaparams

if [ "$mode" = token ]; then
	token=$AZP_TOKEN
	unset AZP_TOKEN
	note "token mode: registering $AZP_AGENT_NAME in pool $AZP_POOL with config.sh --unattended --replace"
	# The token reaches config.sh in its environment only (the agent reads
	# VSTS_AGENT_INPUT_TOKEN, masks it in its logs and keeps it in no file),
	# not in an argv that every process can read in /proc.
	(
		while IFS= read -r name; do unset "$name" 2>/dev/null || true; done < <(compgen -e)
		for kv in "${run_env[@]}"; do export "${kv?}"; done
		export VSTS_AGENT_INPUT_TOKEN="$token"
		exec "${drop[@]}" ./config.sh --unattended --acceptTeeEula \
			--url "$url" --auth pat --pool "$pool" --agent "$agent_name" \
			--work "$work" --replace
	) || die "config.sh failed: the agent is not registered"
	if ! { [ -s .agent ] && [ -s .credentials ] && [ -s .credentials_rsaparams ]; }; then
		die "config.sh succeeded but left no .agent, .credentials and .credentials_rsaparams"
	fi
	# Defence in depth: the token must be in no file the job can read. bin/
	# and externals/ are the package itself, which config does not write.
	if found=$(grep -rlF --exclude-dir=bin --exclude-dir=externals -f <(printf '%s\n' "$token") -- . 2>/dev/null); then
		rm -f .credentials .credentials_rsaparams
		die "the registration token was found in $(printf '%s' "$found" | head -n 1 | tr -d '\n') under $agent_dir; not starting the agent"
	fi
	token=
else
	note "pre-registered mode: installing the credential of agent $AZP_AGENT_ID ($AZP_AGENT_NAME) in pool $AZP_POOL"
	key_file=.credentials_rsaparams
	if ! printf '%s' "$AZP_AGENT_KEY" | base64 -d >"$key_file" 2>/dev/null; then
		rm -f "$key_file"
		bad "AZP_AGENT_KEY is not valid base64"
	fi
	for field in modulus exponent d p q; do
		if ! grep -q "\"$field\"[[:space:]]*:" "$key_file"; then
			rm -f "$key_file"
			bad "AZP_AGENT_KEY does not decode to the agent's RSA key JSON (.credentials_rsaparams: d, dp, dq, exponent, inverseQ, modulus, p, q)"
		fi
	done
	server_url=${AZP_URL%/}/
	# .agent and .credentials as the agent's ConfigurationStore saves them
	# (camelCase JSON); workFolder as config.sh --work would write it.
	printf '{\n  "agentId": %s,\n  "agentName": %s,\n  "poolId": %s,\n  "poolName": %s,\n  "serverUrl": %s,\n  "workFolder": %s\n}\n' \
		"$AZP_AGENT_ID" "$(json_str "$AZP_AGENT_NAME")" "$AZP_POOL_ID" "$(json_str "$AZP_POOL")" \
		"$(json_str "$server_url")" "$(json_str "$work")" >.agent
	printf '{\n  "scheme": "OAuth",\n  "data": {\n    "clientId": %s,\n    "authorizationUrl": %s,\n    "oauthEndpointUrl": %s\n  }\n}\n' \
		"$(json_str "$AZP_AGENT_CLIENT_ID")" "$(json_str "$AZP_AGENT_AUTH_URL")" \
		"$(json_str "$AZP_AGENT_AUTH_URL")" >.credentials
	chmod 0644 .agent
	if [ "${#drop[@]}" -gt 0 ]; then chown "$uid:$gid" .agent .credentials "$key_file"; fi
	# What config.sh would also have done: env.sh records PATH (.path) and a
	# few tool variables (.env) from the environment the agent will have.
	if [ -f ./env.sh ]; then as_agent bash ./env.sh || die "env.sh failed"; fi
fi
chmod 0600 .credentials .credentials_rsaparams

# --- the agent ----------------------------------------------------------------

unset AZP_TOKEN AZP_AGENT_KEY AZP_AGENT_CLIENT_ID AZP_AGENT_AUTH_URL AZP_AGENT_ID AZP_POOL_ID token
note "running agent $AZP_AGENT_NAME as $user_name for one job (run.sh --once)"
init=()
# tini, when the image has it, becomes PID 1 as the agent's user: it forwards
# ACI's SIGTERM to the agent's process group and reaps what jobs leave behind.
if [ -x /usr/bin/tini ]; then init=(/usr/bin/tini -g --); fi
exec env -i "${run_env[@]}" "${drop[@]}" "${init[@]}" ./run.sh --once
