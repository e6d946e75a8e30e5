# Shell helpers for scripts/setup.sh and scripts/setup.d/*.sh (source it; it defines functions only).

# say WHAT...: one short line on stderr saying what setup is doing (prefix: the script's name).
say() { echo "${SAY_PREFIX:-setup}: $*" >&2; }

# apt_install PKG...: installs the Debian packages named that are not installed yet. As root it
# runs `apt-get update` once per boot, then `apt-get install`, saying so; otherwise it says what
# to install.
apt_install() {
  local missing=() pkg
  command -v dpkg-query >/dev/null || return 0
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "not root; please install: ${missing[*]}"
    return 0
  fi
  local stamp=${SFLOW_APT_STAMP:-/tmp/.sflow-apt-updated}
  if [ ! -f "$stamp" ]; then
    say "apt-get update (the package lists, once per boot)"
    apt-get update -qq && touch "$stamp"
  fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
