#!/usr/bin/env bash
# Sets up sflow on a fresh Debian 12 machine: system packages (when run as root), a virtualenv in
# .venv with sflow and its test extras, then every component installer in scripts/setup.d/ (Docker
# engine, sshd, ...). Safe to run again: each step checks before it installs. Each step that does
# something says so in one short line on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh

apt_install python3-venv ffmpeg
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv ($PYTHON -m venv)"
  "$PYTHON" -m venv .venv
fi
mkdir -p .venv/log
stamp=$(sha256sum setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/log/installed 2>/dev/null)" != "$stamp" ]; then
  say "pip: installing sflow and its plot and test extras into .venv (minutes at first; .venv/log/pip.log)"
  if ! .venv/bin/python -m pip install -e '.[plot,test]' > .venv/log/pip.log 2>&1; then
    tail -n 30 .venv/log/pip.log >&2
    say "installing sflow failed (full log: .venv/log/pip.log)"
    exit 1
  fi
  echo "$stamp" > .venv/log/installed
fi

for part in scripts/setup.d/*.sh; do
  [ -e "$part" ] || continue
  bash "$part"
done
say "done (.venv/bin/sflow)"
