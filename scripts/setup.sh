#!/usr/bin/env bash
# Sets up sflow on a fresh Debian 12 machine: system packages (when run as root), a virtualenv in
# .venv with sflow and its test extras, then every component installer in scripts/setup.d/ (Docker
# engine, sshd, ...). Safe to run again: each step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  # Installs the Debian packages named that are not installed yet.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: not root; please install: ${missing[*]}" >&2
    return 0
  fi
  if [ ! -f /tmp/.sflow-apt-updated ]; then
    apt-get update -qq && touch /tmp/.sflow-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
export -f apt_install

apt_install python3-venv ffmpeg
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
mkdir -p .venv/log
stamp=$(sha256sum setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/log/installed 2>/dev/null)" != "$stamp" ]; then
  if ! .venv/bin/python -m pip install -e '.[test]' > .venv/log/pip.log 2>&1; then
    tail -n 30 .venv/log/pip.log >&2
    echo "setup: installing sflow failed (full log: .venv/log/pip.log)" >&2
    exit 1
  fi
  echo "$stamp" > .venv/log/installed
fi

for part in scripts/setup.d/*.sh; do
  [ -e "$part" ] || continue
  bash "$part"
done
echo "setup: done (.venv/bin/sflow)" >&2
