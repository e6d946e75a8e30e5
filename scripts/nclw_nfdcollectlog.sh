#!/usr/bin/env bash
# nclw_nfdcollectlog.sh [HOSTS [OUTDIR [OPTION...]]] — collects every host's node log into
# OUTDIR/<host>.log (default OUTDIR: ./collectLog) plus OUTDIR/merged.log, one timeline with each
# line prefixed by its host (the original appended all logs, with garbage bytes, to one file).
set -euo pipefail
sflow=${SFLOW:-$(dirname "$0")/../.venv/bin/sflow}
[ -x "$sflow" ] || sflow=sflow
exec "$sflow" cluster logs "${1:-nclw_hosts}" -o "${2:-collectLog}" "${@:3}"
