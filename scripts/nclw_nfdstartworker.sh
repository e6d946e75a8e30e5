#!/usr/bin/env bash
# nclw_nfdstartworker.sh [HOSTS [OPTION...]] — starts the nodes for static ICN-SFC (--mode icn).
exec env NCLW_MODE=icn "$(dirname "$0")/nclw_startworker.sh" "$@"
