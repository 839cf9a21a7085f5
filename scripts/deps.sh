#!/usr/bin/env bash
# deps.sh: install what building and testing acrpool needs on Debian, only
# what is missing. Run as root (CI and the dev machines are); otherwise it
# uses sudo when present.
set -euo pipefail

PKGS=(build-essential cmake ninja-build pkg-config git curl ca-certificates openssl
      libcurl4-openssl-dev libcjson-dev libyaml-dev libwebsockets-dev libssl-dev zlib1g-dev
      python3 python3-pytest lua5.4 tzdata clang-14 libclang-rt-14-dev shellcheck
      prometheus python3-yaml)
# prometheus is for promtool (tests/monitoring: promtool check/test rules;
# Debian has no package with promtool alone); python3-yaml reads the
# PrometheusRule there.

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "deps: installing ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The package starts a Prometheus server (:9090) where an init system
	# lets it; installed here for promtool only, so leave none running.
	if [[ " ${missing[*]} " == *" prometheus "* ]]; then
		if [ -d /run/systemd/system ]; then
			$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
		elif [ -x /etc/init.d/prometheus ]; then
			$SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
			$SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
		fi
	fi
fi

# Go (>= 1.26) builds the test control plane; scripts/go.sh finds or
# fetches it when the control plane is first built.
