#!/usr/bin/env bash
# The unprivileged user functions run as when a node runs as root (setting node.run_as, default
# sflow-fn): a system account with its own group, a home of its own (/var/lib/sflow-fn, for
# programs that write under $HOME) and no login shell. (util-linux's nsenter, which starts the
# function spawner as that user, and passwd's useradd are part of every Debian system; the spawner
# runs on the node's Python when the user may run it, else on Debian's python3, which
# setup.d/30-sshd.sh installs.) Not root: nothing to do (a node that is not root runs its functions
# as itself). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
SAY_PREFIX=setup.d/function-user

FUNCTION_USER=${SFLOW_FUNCTION_USER:-sflow-fn}
[ "$(id -u)" -eq 0 ] || exit 0
if ! id -u "$FUNCTION_USER" >/dev/null 2>&1; then
  say "creating the system user $FUNCTION_USER that functions run as when a node is root (node.run_as)"
  useradd --system --user-group --home-dir "/var/lib/$FUNCTION_USER" --create-home \
    --shell /usr/sbin/nologin --comment "sflow functions" "$FUNCTION_USER"
fi
