#!/usr/bin/env bash
# What the multi-host tests (tests/integration/cluster/) need: iproute2 for network namespaces and
# openssh-server for a private sshd in each of them. The tests start those sshds themselves; this
# step never starts or enables the machine's own sshd (service starts are refused while it installs).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
SAY_PREFIX=setup.d/sshd

if dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed"; then
  apt_install iproute2 openssh-client
  exit 0
fi
policy=/usr/sbin/policy-rc.d
if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
  # Debian's maintainer scripts ask policy-rc.d before starting a service; 101 means "not now".
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
say "openssh-server for the multi-host tests (they start their own sshd; setup starts none)"
apt_install iproute2 openssh-client openssh-server
