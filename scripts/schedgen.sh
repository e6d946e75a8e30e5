#!/bin/sh
# schedgen.sh ENV JOB OUT [sflow schedule options...]
#
# The original's schedgen.sh, same argument order: schedule JOB on ENV and write the mapping to OUT.
# The algorithm comes from the configuration (scheduler.algorithm in ./sflow.toml, or
# SFLOW_SCHEDULER_ALGORITHM; default sf-cuv); extra options go to `sflow schedule` (e.g. -a heft).
set -eu
if [ "$#" -lt 3 ]; then
    echo "usage: $0 ENV JOB OUT [sflow schedule options...]" >&2
    exit 2
fi
env_file=$1 job_file=$2 out_file=$3
shift 3
if command -v sflow >/dev/null 2>&1; then
    SFLOW=sflow
else
    here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
    SFLOW="$here/../.venv/bin/sflow"
    if [ ! -x "$SFLOW" ]; then
        echo "$0: sflow is not on PATH and $SFLOW does not exist; install sflow first" >&2
        exit 127
    fi
fi
exec "$SFLOW" schedule "$env_file" "$job_file" -o "$out_file" "$@"
