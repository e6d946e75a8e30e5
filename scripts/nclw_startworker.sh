#!/usr/bin/env bash
# nclw_startworker.sh [HOSTS [OPTION...]] — the original's IP-mode worker start, which started
# nothing. Starts `sflow node` on every host of HOSTS (default: ./nclw_hosts, the original's
# ip,user,password,dir lines, or a .toml inventory) and waits until each is ready. OPTIONs go to
# `sflow cluster start` (for example --accept-new-host-keys, -i KEY). Run `sflow cluster deploy` first.
set -euo pipefail
sflow=${SFLOW:-$(dirname "$0")/../.venv/bin/sflow}
[ -x "$sflow" ] || sflow=sflow
exec "$sflow" cluster start "${1:-nclw_hosts}" --mode "${NCLW_MODE:-ip}" "${@:2}"
