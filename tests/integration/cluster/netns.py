"""Real hosts on one machine, like a user's testbed hosts: network namespaces on a bridge, each with
a mount namespace of its own and its own sshd.

The root namespace holds a bridge with the controller's address (``.1``); host ``i`` gets
``.{i+2}`` on a veth pair whose other end is on the bridge, and no default route: the host reaches
its subnet (the controller and the other hosts) and nothing else, so no package index either.

Each host has a mount namespace of its own (private propagation; a waiting process holds it, sshd
and :func:`run_as_user` enter it) in which:

- ``/etc/passwd``, ``/etc/shadow`` and ``/etc/group`` are the host's own, with one non-root user
  (:data:`USER`, uid :data:`UID`) that has a password and a home directory ``/home/<user>``
  holding ``~/.ssh/authorized_keys`` (key login, preferred) — password login works too;
- ``/etc/ssh`` is the host's own (sshd_config, host key);
- everything of the controller is hidden under empty tmpfs mounts: ``/work``, ``/root`` (the pyenv
  tree, the caches), ``/opt`` (local wheel directories and package mirrors), ``/tmp``, ``/var/tmp``,
  ``/home`` of the machine, and the directories of the controller's interpreter and venv;
  ``/etc/pip.conf`` is empty. The user logs in with sshd's default environment (no ``PIP_*``, no
  proxy variables).

The host's interpreter is Debian's system ``/usr/bin/python3`` with the Debian python3 packages
(python3-openssl among them) that the machine has. A host can be made like Debian without
``python3-venv`` (``ensurepip`` hidden) or with a bare ``python3-minimal`` (``venv`` hidden too).

Everything on the network side is named with :data:`PREFIX`, so that :func:`remove_leftovers` can
clear what a crashed run left behind, and a lock file keeps two runs on this machine from using the
names at once. :func:`lab` starts N hosts; :meth:`Lab.stop_sshd`/:meth:`Lab.start_sshd` and the
functions below (:func:`run_as_user`, :func:`host_processes`, :func:`signal_processes`,
:func:`cut_link`, :func:`restore_link`) are what tests use to drive and break hosts.

Needs root, ``ip`` (iproute2), ``sshd`` (openssh-server), ``unshare``/``nsenter``/``setpriv``
(util-linux), ``openssl`` and Debian's ``python3``; :func:`missing_requirement` says which is absent.
scripts/setup.d/30-sshd.sh installs them.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sflow.cluster.agent import process_cmdline

PREFIX = "sflt"
BRIDGE = f"{PREFIX}br0"
SUBNET = "10.213.7"  # not 10.213.0.x, which the project's sample environments use
GATEWAY = f"{SUBNET}.1"
LOCK_FILE = Path("/run/lock/sflow-netns-harness.lock") if Path("/run/lock").is_dir() else Path("/tmp/sflow-netns-harness.lock")
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
HOST_PYTHON = "/usr/bin/python3"
USER = "tester"
UID = GID = 4242
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"
# Directories of the controller that no host may see (each covered by an empty tmpfs on the host).
HIDDEN_DIRS = ("/work", "/root", "/opt", "/tmp", "/var/tmp", "/srv", "/mnt")
HIDDEN_FILES = ("/etc/pip.conf",)
_SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/proc", "/sys", "/dev", "/run", "/var", "/home")
TOOLS = ("ip", "ssh-keygen", "unshare", "nsenter", "setpriv", "openssl")


def _sshd() -> str | None:
    found = shutil.which("sshd")
    return found or next((c for c in SSHD_CANDIDATES if os.access(c, os.X_OK)), None)


def missing_requirement() -> str | None:
    """Why the harness cannot run here, or None."""
    if os.geteuid() != 0:
        return "network-namespace hosts need root"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed; scripts/setup.d/30-sshd.sh installs it"
    if _sshd() is None:
        return "`sshd` (openssh-server) is not installed; scripts/setup.d/30-sshd.sh installs it"
    if not os.access(HOST_PYTHON, os.X_OK):
        return f"{HOST_PYTHON} (Debian's python3) is not installed; scripts/setup.d/30-sshd.sh installs it"
    probe = f"{PREFIX}-probe"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"cannot create network namespaces here: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Wait until ``condition()`` holds, or fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True, capture_output=True)


def _own_namespaces() -> list[str]:
    out = ip("netns", "list", check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX + "-")]


def _namespace_pids(netns: str) -> list[int]:
    return [int(pid) for pid in ip("netns", "pids", netns, check=False).stdout.split() if pid.isdigit()]


def _kill_namespace_processes(name: str) -> None:
    for pid in _namespace_pids(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def _forward_rule(action: str) -> list[str]:
    return ["iptables", action, "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


def _bridge_filtered() -> bool:
    """Bridged traffic passes iptables' FORWARD chain (br_netfilter), where Docker sets DROP."""
    flag = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    return shutil.which("iptables") is not None and flag.exists() and flag.read_text().strip() == "1"


def remove_leftovers() -> None:
    """Delete every namespace, link and firewall rule of this harness, and kill what runs in its
    namespaces. Safe when nothing is there."""
    for name in _own_namespaces():
        _kill_namespace_processes(name)
        ip("netns", "del", name, check=False)
    links = ip("-o", "link", "show", check=False).stdout
    for line in links.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            link = parts[1].strip().split("@")[0]
            if link.startswith(PREFIX):
                ip("link", "del", link, check=False)
    if shutil.which("iptables"):
        while subprocess.run(_forward_rule("-D"), capture_output=True, check=False).returncode == 0:
            continue


def controller_paths() -> list[str]:
    """Directories of this machine that hold the controller's checkout, interpreter and venv: none
    of them exists on the hosts."""
    paths = [sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[3])]
    return [p for p in paths if p and p != "/"]


def _hidden_dirs() -> list[str]:
    """HIDDEN_DIRS, plus the top directory of any controller path they do not already cover."""
    hidden = [d for d in HIDDEN_DIRS if Path(d).is_dir()]
    for path in [*controller_paths(), tempfile.gettempdir()]:
        if not any(path == d or path.startswith(d + "/") for d in hidden):
            top = "/" + Path(path).parts[1]
            if top not in _SYSTEM_DIRS and Path(top).is_dir():
                hidden.append(top)
    return hidden


@dataclass(frozen=True, slots=True)
class LabHost:
    """One host. ``root`` is the controller's view of the host's own files; ``home`` is where the
    user's home directory (``/home/<user>`` on the host) is on the controller."""

    index: int
    netns: str
    address: str
    root: Path
    host_key_pub: str  # "ssh-ed25519 AAAA..."
    has_sshd: bool
    has_venv_package: bool  # python3-venv (ensurepip) present
    has_venv_module: bool  # the venv module present (not a bare python3-minimal)
    link: str  # the veth end inside the namespace

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def user_home(self) -> str:
        """The home directory as the host sees it."""
        return f"/home/{USER}"

    @property
    def sflow_dir(self) -> Path:
        """The controller's view of ``~/sflow`` on the host, where the tests deploy."""
        return self.home / "sflow"


@dataclass(slots=True)
class Lab:
    root: Path
    hosts: list[LabHost] = field(default_factory=list)
    client_key: Path = Path()
    known_hosts: Path = Path()
    password: str = ""
    _holders: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # one per host: its mount namespace
    _sshd: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: int | None = None
    _forward_rule: bool = False

    # --- lifecycle ----------------------------------------------------------------------------

    def up(
        self,
        count: int,
        without_sshd: Iterable[int] = (),
        without_venv_package: Iterable[int] = (),
        minimal_python: Iterable[int] = (),
    ) -> None:
        """Start ``count`` hosts. ``without_sshd``: hosts with an address but no sshd (SSH is
        refused). ``without_venv_package``: hosts like Debian without python3-venv (no ensurepip).
        ``minimal_python``: hosts with a bare python3-minimal (no venv module, no ensurepip)."""
        self._take_lock(timeout=180)
        remove_leftovers()
        no_sshd, no_venv_package, minimal = set(without_sshd), set(without_venv_package), set(minimal_python)
        self.password = "pw-" + secrets.token_hex(8)
        self.client_key = self.root / "client_key"
        keygen(self.client_key, "sflow-test-client")
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        if _bridge_filtered():
            subprocess.run(_forward_rule("-I"), check=True, capture_output=True)
            self._forward_rule = True
        for i in range(count):
            self.hosts.append(
                self._make_host(
                    i,
                    has_sshd=i not in no_sshd,
                    has_venv_package=i not in no_venv_package and i not in minimal,
                    has_venv_module=i not in minimal,
                )
            )
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("".join(f"{h.address} {h.host_key_pub}\n" for h in self.hosts), encoding="ascii")
        for host in self.hosts:
            self._start_host(host)
            if host.has_sshd:
                self.start_sshd(host)
        for host in self.hosts:
            if host.has_sshd:
                wait_for(partial(port_open, host.address, 22), 20, f"sshd on {host.address}:22 accepting connections")

    def down(self) -> None:
        """Kill everything started in the namespaces (sshds, nodes), delete namespaces, links and
        the firewall rule. Runs to the end whatever fails; then releases the lock."""
        try:
            for host in self.hosts:
                signal_processes(host, signal.SIGKILL)
            for proc in [*self._sshd.values(), *self._holders.values()]:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
            remove_leftovers()
        finally:
            self._release_lock()

    def _take_lock(self, timeout: float) -> None:
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)

        def acquired() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        try:
            wait_for(acquired, timeout, "another test run releasing the network-namespace harness", interval=0.5)
        except TimeoutError:
            os.close(fd)
            raise
        self._lock = fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    # --- hosts --------------------------------------------------------------------------------

    def _make_host(self, index: int, *, has_sshd: bool, has_venv_package: bool, has_venv_module: bool) -> LabHost:
        netns = f"{PREFIX}-h{index}"
        address = f"{SUBNET}.{index + 2}"
        outside, inside = f"{PREFIX}{index}a", f"{PREFIX}{index}b"
        ip("netns", "add", netns)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", netns)
        ip("link", "set", outside, "master", BRIDGE)
        ip("link", "set", outside, "up")
        ip("link", "set", "lo", "up", netns=netns)
        ip("addr", "add", f"{address}/24", "dev", inside, netns=netns)
        ip("link", "set", inside, "up", netns=netns)
        # No default route: the subnet only, as on a testbed without a way to a package index.
        root = self.root / f"h{index}"
        root.mkdir(mode=0o700)
        etc_ssh = root / "etc-ssh"
        etc_ssh.mkdir(mode=0o755)
        key = etc_ssh / "ssh_host_ed25519_key"
        keygen(key, f"sflow-test-host-{index}")
        public = " ".join(key.with_suffix(".pub").read_text(encoding="ascii").split()[:2])
        host = LabHost(index, netns, address, root, public, has_sshd, has_venv_package, has_venv_module, inside)
        self._write_accounts(host)
        return host

    def _write_accounts(self, host: LabHost) -> None:
        """The host's passwd, shadow and group (the machine's, plus the user), and the user's home
        with the client's key authorised."""
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"], input=self.password, capture_output=True, text=True, check=True
        ).stdout.strip()
        user_line = f"{USER}:x:{UID}:{GID}:sflow test user:/home/{USER}:/bin/bash\n"
        for name, extra, mode in (
            ("passwd", user_line, 0o644),
            ("group", f"{USER}:x:{GID}:\n", 0o644),
            ("shadow", f"{USER}:{hashed}:19000:0:99999:7:::\n", 0o640),
        ):
            lines = [ln for ln in Path(f"/etc/{name}").read_text(encoding="utf-8").splitlines(keepends=True) if not ln.startswith(f"{USER}:")]
            path = host.root / name
            path.write_text("".join(lines) + extra, encoding="utf-8")
            path.chmod(mode)
        ssh_dir = host.home / ".ssh"
        ssh_dir.mkdir(parents=True, mode=0o700)
        (ssh_dir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text(encoding="ascii"), encoding="ascii")
        (ssh_dir / "authorized_keys").chmod(0o600)
        host.home.chmod(0o750)
        for path in (host.home, ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(path, UID, GID)

    def _mount_script(self, host: LabHost) -> str:
        """Shell commands that make the host's file system view inside its mount namespace."""
        q = shlex.quote
        lines = [
            "set -e",
            # the user's home first: its source lies under a directory hidden below
            "mount -t tmpfs -o mode=755 sflow-home /home",
            f"mkdir /home/{USER}",
            f"mount --bind {q(str(host.home))} /home/{USER}",
            f"mount --bind {q(str(host.root / 'passwd'))} /etc/passwd",
            f"mount --bind {q(str(host.root / 'group'))} /etc/group",
            f"mount --bind {q(str(host.root / 'shadow'))} /etc/shadow",
            f"mount --bind {q(str(host.root / 'etc-ssh'))} /etc/ssh",
        ]
        for path in HIDDEN_FILES:
            if Path(path).exists():
                lines.append(f"mount --bind /dev/null {q(path)}")
        if not host.has_venv_package or not host.has_venv_module:
            lines += [f"mount -t tmpfs -o mode=755 sflow-hidden {q(d)}" for d in _stdlib_dirs("ensurepip")]
        if not host.has_venv_module:
            lines += [f"mount -t tmpfs -o mode=755 sflow-hidden {q(d)}" for d in _stdlib_dirs("venv")]
        for directory in _hidden_dirs():
            mode = "1777" if directory.endswith("tmp") else "755"
            lines.append(f"mount -t tmpfs -o mode={mode} sflow-hidden {q(directory)}")
        return "\n".join(lines)

    def _start_host(self, host: LabHost) -> None:
        """The host's mount namespace, made in its network namespace and held open by a process
        that only waits; sshd and :func:`run_as_user` enter it."""
        log = (host.root / "host.log").open("ab")
        holder = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", self._mount_script(host) + "\necho ready\nexec sleep infinity"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )  # fmt: skip
        log.close()
        assert holder.stdout is not None
        ready = holder.stdout.readline()  # the mounts are made once this line comes (EOF if they failed)
        holder.stdout.close()
        self._holders[host.netns] = holder
        if ready.strip() != b"ready":
            raise RuntimeError(f"making host {host.netns}'s file system failed; see {host.root / 'host.log'}")

    def host_pid(self, host: LabHost) -> int:
        """A process whose network and mount namespaces are the host's (whether or not sshd runs)."""
        return self._holders[host.netns].pid

    def start_sshd(self, host: LabHost) -> None:
        """Start the host's sshd (again, after :meth:`stop_sshd`)."""
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        (host.root / "etc-ssh" / "sshd_config").write_text(
            "\n".join(
                [
                    f"ListenAddress {host.address}:22",
                    "HostKey /etc/ssh/ssh_host_ed25519_key",
                    "PidFile none",
                    "PermitRootLogin no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes yes",
                    "PrintMotd no",
                    "Subsystem sftp internal-sftp",
                    "MaxStartups 50",
                    "",
                ]
            ),
            encoding="ascii",
        )
        sshd = _sshd()
        if sshd is None:
            raise RuntimeError("sshd disappeared after missing_requirement() found it")
        log = (host.root / "sshd.log").open("ab")
        # nsenter execs sshd (it forks only to enter a pid namespace): the Popen's pid is sshd's.
        self._sshd[host.netns] = subprocess.Popen(
            ["nsenter", "--target", str(self.host_pid(host)), "--net", "--mount", "--", sshd, "-D", "-e", "-f", "/etc/ssh/sshd_config"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        log.close()

    def stop_sshd(self, host: LabHost) -> None:
        """Stop the host's sshd (the host stays up: SSH to it is refused)."""
        proc = self._sshd.pop(host.netns)
        proc.terminate()
        proc.wait(timeout=10)


def _stdlib_dirs(package: str) -> list[str]:
    """Where the host python's standard library keeps ``package`` (a directory)."""
    done = subprocess.run(
        [HOST_PYTHON, "-I", "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"], capture_output=True, text=True, check=True
    )
    path = Path(done.stdout.strip()) / package
    return [str(path)] if path.is_dir() else []


# --- driving hosts -----------------------------------------------------------------------------


def run_as_user(
    lab: Lab, host: LabHost, command: str, *, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (a shell command line) on ``host`` as its user, in the home directory, with
    the host's view of the file system and network and a login-like environment (no ``PIP_*``, no
    proxy). Does not go through SSH, so it works on hosts without sshd too."""
    home = host.user_home
    base = {"HOME": home, "USER": USER, "LOGNAME": USER, "SHELL": "/bin/bash", "PATH": HOST_PATH, "LANG": "C.UTF-8"}
    argv = [
        "nsenter", "--target", str(lab.host_pid(host)), "--net", "--mount", "--",
        "setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--",
        "env", "-i", *(f"{k}={v}" for k, v in {**base, **(env or {})}.items()),
        "sh", "-c", f"cd {shlex.quote(home)} && {command}",
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def host_processes(host: LabHost, match: Callable[[list[str]], bool] = lambda argv: True) -> list[tuple[int, list[str]]]:
    """(pid, argv) of the live processes in ``host``'s network namespace that ``match``."""
    found = []
    for pid in _namespace_pids(host.netns):
        try:
            argv = process_cmdline(pid)
        except OSError:
            continue
        if argv and match(argv):
            found.append((pid, argv))
    return found


def signal_processes(host: LabHost, signum: int, match: Callable[[list[str]], bool] = lambda argv: True) -> list[int]:
    """Send ``signum`` to the processes of ``host`` that ``match`` (SIGKILL to kill, SIGSTOP to
    freeze, SIGCONT to thaw); returns their pids."""
    pids = []
    for pid, _ in host_processes(host, match):
        try:
            os.kill(pid, signum)
            pids.append(pid)
        except ProcessLookupError:
            continue
    return pids


def cut_link(host: LabHost) -> None:
    """Take the host off the network (its interface down inside the namespace)."""
    ip("link", "set", host.link, "down", netns=host.netns)


def restore_link(host: LabHost) -> None:
    """Put the host back on the network after :func:`cut_link`."""
    ip("link", "set", host.link, "up", netns=host.netns)


# --- processes ---------------------------------------------------------------------------------


def runs_sflow(argv: list[str]) -> bool:
    """``sflow ...``, ``python .../bin/sflow ...`` or ``python -m sflow[.module] ...``."""
    return any(Path(a).name == "sflow" for a in argv) or any(
        a == "-m" and (b == "sflow" or b.startswith("sflow.")) for a, b in zip(argv, argv[1:])
    )


def sflow_processes(hosts: Iterable[LabHost]) -> list[tuple[int, list[str]]]:
    """sflow processes running on any of ``hosts``."""
    return [proc for host in hosts for proc in host_processes(host, runs_sflow)]


@contextmanager
def lab(
    root: Path,
    count: int,
    without_sshd: Iterable[int] = (),
    without_venv_package: Iterable[int] = (),
    minimal_python: Iterable[int] = (),
) -> Iterator[Lab]:
    """A lab of ``count`` hosts (see :meth:`Lab.up`) that is torn down however the block ends."""
    the_lab = Lab(root)
    try:
        the_lab.up(count, without_sshd, without_venv_package, minimal_python)
        yield the_lab
    finally:
        the_lab.down()
