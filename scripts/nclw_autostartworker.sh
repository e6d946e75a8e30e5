#!/usr/bin/env bash
# nclw_autostartworker.sh [HOSTS [OPTION...]] — starts the nodes for autonomous ICN-SFC (--mode auto).
exec env NCLW_MODE=auto "$(dirname "$0")/nclw_startworker.sh" "$@"
