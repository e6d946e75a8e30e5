#!/usr/bin/env bash
# nclw_delegator.sh [ENV [JOB [PROPERTIES [HOSTS]]]] — runs a job on the running nodes (IP
# chaining), with the original's defaults nclw/env_ncl.json, nclw/job_ncl.json and
# nclw2.properties. An existing PROPERTIES file is converted with `sflow config import` (its
# sched_algorithm and port_number apply); otherwise ./sflow.toml is used if present. HOSTS is
# accepted for the ICN variants' argument order and not needed: the nodes are the env's VMs.
set -euo pipefail
sflow=${SFLOW:-$(dirname "$0")/../.venv/bin/sflow}
[ -x "$sflow" ] || sflow=sflow
env_json=${1:-nclw/env_ncl.json}
job_json=${2:-nclw/job_ncl.json}
properties=${3:-nclw2.properties}
config=()
if [ -f "$properties" ]; then
  converted=$(mktemp --suffix=.toml)
  trap 'rm -f "$converted"' EXIT
  "$sflow" config import "$properties" -o "$converted" --force
  config=(--config "$converted")
fi
"$sflow" delegate "$env_json" "$job_json" --mode "${NCLW_MODE:-ip}" "${config[@]}"
