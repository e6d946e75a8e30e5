#!/usr/bin/env bash
# The README's main command: set up sflow on this machine, then run the sample workflow on the
# local default cluster. Extra arguments go to `sflow run` (for example: jobs/ffmpeg.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
job=${1:-jobs/fork-join.json}
[ $# -gt 0 ] && shift
exec .venv/bin/sflow validate envs/local.json "$job"
