"""Who functions run as (DESIGN.md, Security: functions are the job author's code).

A node that runs as root never runs a function as root: native functions and containers run as
the unprivileged user ``node.run_as`` (``sflow-fn`` by default, a system user that
``scripts/setup.sh`` creates), which can write its job directory and cannot read the node's
secret, keys, certificates or settings (0600, owned by the node's user). A node that is not root
cannot change user: its functions run as the node's own user, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from sflow.errors import ConfigError, SflowError

log = logging.getLogger(__name__)

#: the program that changes user and directory before it executes the function's shell
#: (util-linux, present on every Debian host; see :mod:`sflow.node.runners.native`)
SWITCH_USER = "/usr/bin/nsenter"

_PR_SET_NO_NEW_PRIVS = 38


@dataclass(frozen=True, slots=True)
class FunctionUser:
    """An unprivileged account that functions run as."""

    name: str
    uid: int
    gid: int
    home: str

    @property
    def docker_user(self) -> str:
        """``uid:gid`` as Docker's ``user`` option takes it."""
        return f"{self.uid}:{self.gid}"

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with the login variables of this user (a function must not find the node's
        home in ``$HOME``: it could not write there, and should not look there), and ``PATH``
        without the directories it cannot search (so that a program that is only in the node's
        own directories is "not found", as it is for the function)."""
        env = {**base, "HOME": self.home, "USER": self.name, "LOGNAME": self.name}
        if "PATH" in base:
            env["PATH"] = self.search_path(base["PATH"])
        return env

    def search_path(self, path: str) -> str:
        """The entries of ``path`` (a ``PATH`` value) that this user can search."""
        return os.pathsep.join(d for d in path.split(os.pathsep) if d and self.can(Path(d), stat.S_IXOTH))

    def can(self, path: Path, what: int, start: Path | None = None) -> bool:
        """Whether this user (uid and primary gid: what a function runs with) may do ``what``
        (``S_IXOTH``: execute or search, ``S_IROTH``: read) to ``path``, and reach it: every
        directory above it searchable — up to ``start`` when the path is reached from there (the
        function's working directory), else up to ``/``. From the permission bits (ACLs are not
        looked at)."""
        target = Path(os.path.abspath(path))
        top = Path(os.path.abspath(start)) if start is not None and target.is_relative_to(start) else None
        try:
            if not _allows(target.stat(), what, self.uid, self.gid):
                return False
            for parent in target.parents:
                if not _allows(parent.stat(), stat.S_IXOTH, self.uid, self.gid):
                    return False
                if parent == top:
                    break
            return True
        except OSError:
            return False


def _allows(st: os.stat_result, what: int, uid: int, gid: int) -> bool:
    """Whether mode bits ``what`` (given as the "other" bits) are granted to ``uid``/``gid``."""
    if st.st_uid == uid:
        return bool(st.st_mode & (what << 6))
    if st.st_gid == gid:
        return bool(st.st_mode & (what << 3))
    return bool(st.st_mode & what)


def resolve_function_user(run_as: str, *, euid: int | None = None) -> FunctionUser | None:
    """The user functions run as, for a node whose effective uid is ``euid`` (default: this
    process's): None when the node is not root (it cannot change user); otherwise the account
    ``run_as`` names, which must exist and not be root. Raises :class:`ConfigError` naming
    ``node.run_as`` when it cannot be used."""
    if (os.geteuid() if euid is None else euid) != 0:
        return None
    if not run_as:
        raise ConfigError("settings", "node.run_as", "is empty, but the node runs as root and never runs functions as "
                          "root: name an unprivileged user (scripts/setup.sh creates sflow-fn)")
    try:
        entry = pwd.getpwuid(int(run_as)) if run_as.isdigit() else pwd.getpwnam(run_as)
    except KeyError:
        raise ConfigError("settings", "node.run_as", f"no user {run_as!r} on this host; create it (scripts/setup.sh "
                          "creates sflow-fn: useradd --system --user-group sflow-fn) or name another") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ConfigError("settings", "node.run_as", f"user {run_as!r} is root or in group root; functions must run "
                          "as an unprivileged user")
    if not os.access(SWITCH_USER, os.X_OK):
        raise SflowError(f"{SWITCH_USER} (util-linux) is missing: a node running as root needs it to start functions "
                         f"as {run_as}")
    return FunctionUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def forbid_new_privileges() -> None:
    """Set ``no_new_privs`` on this process, so that nothing it executes — a function that has
    dropped to :class:`FunctionUser` included — can gain privileges through a set-user-id program
    or file capabilities (the flag is inherited and cannot be unset). For the node daemon when it
    runs functions as another user; raises :class:`SflowError` when the kernel refuses."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SflowError(f"cannot set no_new_privs on the node: {os.strerror(err)}")
    log.debug("no_new_privs set")


def hand_over(directory: os.PathLike[str] | str, user: FunctionUser, st: os.stat_result | None = None) -> None:
    """Make ``directory`` (one the node created for a function) the function user's, so that the
    function can write there; nothing is done when it is already (``st``: its ``lstat``, when
    the caller has it)."""
    if st is None:
        st = os.lstat(directory)
    if (st.st_uid, st.st_gid) != (user.uid, user.gid):
        os.lchown(directory, user.uid, user.gid)
