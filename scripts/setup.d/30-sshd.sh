#!/usr/bin/env bash
# What the multi-host tests (tests/integration/cluster/) need: iproute2 for network namespaces,
# openssh-server for a private sshd in each of them, util-linux (unshare, nsenter, setpriv) and
# openssl for the hosts' mount namespaces, users and passwords, and Debian's system python3 with the
# packages a user's Debian host has (python3-venv, python3-openssl, python3-pip): the hosts run that
# python, not this checkout's. The tests start their sshds themselves; this step never starts or
# enables the machine's own sshd (service starts are refused while it installs).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
SAY_PREFIX=setup.d/sshd

HOST_PACKAGES=(iproute2 openssh-client util-linux openssl python3 python3-venv python3-openssl python3-pip)
if dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed"; then
  apt_install "${HOST_PACKAGES[@]}"
  exit 0
fi
policy=/usr/sbin/policy-rc.d
if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
  # Debian's maintainer scripts ask policy-rc.d before starting a service; 101 means "not now".
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
say "openssh-server and python3 packages for the multi-host tests' hosts (they start their own sshd)"
apt_install "${HOST_PACKAGES[@]}" openssh-server
