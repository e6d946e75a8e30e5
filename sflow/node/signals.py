"""How sflow's long-running processes stop, whatever stops them.

* **SIGHUP** (the terminal closed, the SSH session dropped) stops a node or a delegator as SIGTERM
  and Ctrl-C do: running functions are killed, containers removed, working directories cleaned,
  the nodes of ``sflow run`` stopped. (Twisted handles SIGINT and SIGTERM itself; without this,
  SIGHUP would end the process on the spot.)
* **The parent's death**: the local nodes of ``sflow run`` ask the kernel for SIGTERM when the
  process that started them dies (``prctl(PR_SET_PDEATHSIG)``), so that even ``kill -9`` of
  ``sflow run`` leaves no node behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def stop_on_hangup(reactor: Any) -> None:
    """Handle SIGHUP as the reactor handles SIGTERM (a clean stop)."""
    signal.signal(signal.SIGHUP, reactor.sigTerm)


def exit_with_parent(parent: int) -> bool:
    """Ask for SIGTERM when this process's parent dies; False when ``parent`` is not (or no
    longer) the parent — it died before the request took effect — or the kernel refused."""
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("event=pdeathsig_refused errno=%d", ctypes.get_errno())
            return False
    except OSError as exc:
        log.warning("event=pdeathsig_unavailable error=%s", exc)
        return False
    # Checked after the request: a parent that died just before it would never send the signal.
    return os.getppid() == parent
