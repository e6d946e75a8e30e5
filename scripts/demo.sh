#!/usr/bin/env bash
# The README's main command: set up sflow on this machine, then run the sample video pipeline
# (jobs/ffmpeg.json) on a local default cluster: three nodes on loopback ports, started and stopped
# by `sflow run`. Pass another job to run that instead, and any `sflow run` options after it,
# for example: bash scripts/demo.sh jobs/fork-join.json -a heft
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
job=${1:-jobs/ffmpeg.json}
[ $# -gt 0 ] && shift
name=$(basename "$job" .json)
exec .venv/bin/sflow run "$job" -o "sflow-out/$name" "$@"
