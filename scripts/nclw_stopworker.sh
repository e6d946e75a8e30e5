#!/usr/bin/env bash
# nclw_stopworker.sh [HOSTS [OPTION...]] — stops the nodes that nclw_*startworker.sh started, by
# the pid each recorded (the original killed every process matching "nclw" on every host).
set -euo pipefail
sflow=${SFLOW:-$(dirname "$0")/../.venv/bin/sflow}
[ -x "$sflow" ] || sflow=sflow
exec "$sflow" cluster stop "${1:-nclw_hosts}" "${@:2}"
