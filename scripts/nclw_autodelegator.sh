#!/usr/bin/env bash
# nclw_autodelegator.sh [ENV [JOB [PROPERTIES [HOSTS]]]] — runs a job by autonomous ICN-SFC
# (--mode auto); defaults as the original: nclw/env_ncl.json nclw/job_ffmpeg.json nclw2.properties nclw_hosts.
exec env NCLW_MODE=auto "$(dirname "$0")/nclw_delegator.sh" "${1:-nclw/env_ncl.json}" "${2:-nclw/job_ffmpeg.json}" "${@:3}"
