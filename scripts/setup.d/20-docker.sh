#!/usr/bin/env bash
# Docker engine for the nodes' container runner and the Docker integration tests: installs
# Debian's docker.io (and busybox-static, ffmpeg for the sample images), starts dockerd when it is
# not running (no systemd: in the background, logging to /var/log/dockerd.log), and builds the
# sample images with dockerfiles/build.sh. Safe and quick to run again: every step checks first.
# Not root: prints what to install and carries on.
set -euo pipefail
cd "$(dirname "$0")/../.."

DOCKERD_LOG=${SFLOW_DOCKERD_LOG:-/var/log/dockerd.log}
DEADLINE=${SFLOW_DOCKERD_WAIT:-60}
. scripts/lib.sh
SAY_PREFIX=setup.d/docker

apt_install docker.io busybox-static ffmpeg  # the Docker engine, and what the sample images are made of

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    say "no Docker engine is reachable and this is not root: start dockerd (or add $(id -un) to the docker group); Docker tests will be skipped"
    exit 0
  fi
  if ! command -v dockerd >/dev/null; then
    say "dockerd is not installed (apt-get install docker.io); Docker tests will be skipped"
    exit 0
  fi
  if ! pgrep -x dockerd >/dev/null; then
    say "starting dockerd (log: $DOCKERD_LOG)"
    # In a session of its own, so that it outlives this script and whatever ran it.
    if command -v setsid >/dev/null; then
      setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    else
      nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
  fi
  end=$((SECONDS + DEADLINE))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      say "dockerd did not answer within ${DEADLINE}s; see $DOCKERD_LOG; Docker tests will be skipped"
      tail -n 5 "$DOCKERD_LOG" >&2 || true
      exit 0
    fi
    sleep 0.5
  done
  say "dockerd is up"
fi

say "building the sample images if they changed (dockerfiles/build.sh)"
bash dockerfiles/build.sh || say "building the sample images failed; Docker tests that need them will fail"
