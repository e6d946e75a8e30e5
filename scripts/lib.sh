# Shell helpers for scripts/setup.sh and scripts/setup.d/*.sh (source it; it defines functions only).

# apt_install PKG...: installs the Debian packages named that are not installed yet. As root it
# runs `apt-get update` once per boot, then `apt-get install`; otherwise it says what to install.
apt_install() {
  local missing=() pkg
  command -v dpkg-query >/dev/null || return 0
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
