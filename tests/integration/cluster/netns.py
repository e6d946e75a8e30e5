"""Real hosts on one machine: network namespaces on a bridge, each with its own sshd.

The root namespace holds a bridge with the delegator's address (``.1``); namespace ``i`` gets
``.{i+2}`` on a veth pair whose other end is on the bridge, and, unless told otherwise, its own
``sshd`` (own config, host key and pid file, listening on that address, key authentication with a
generated client key, root login allowed). Everything is named with :data:`PREFIX`, so that
:func:`remove_leftovers` can clear what a crashed run left behind, and a lock file keeps two runs
on this machine from using the names at once.

Needs root, ``ip`` (iproute2) and ``sshd`` (openssh-server); :func:`missing_requirement` says
which is absent.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
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


def _sshd() -> str | None:
    found = shutil.which("sshd")
    return found or next((c for c in SSHD_CANDIDATES if os.access(c, os.X_OK)), None)


def missing_requirement() -> str | None:
    """Why the harness cannot run here, or None."""
    if os.geteuid() != 0:
        return "network-namespace hosts need root"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed; scripts/setup.d/30-sshd.sh installs it"
    if _sshd() is None:
        return "`sshd` (openssh-server) is not installed; scripts/setup.d/30-sshd.sh installs it"
    if shutil.which("ssh-keygen") is None:
        return "`ssh-keygen` (openssh-client) is not installed"
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


def _kill_namespace_processes(name: str) -> None:
    pids = ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
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


@dataclass(frozen=True, slots=True)
class LabHost:
    index: int
    netns: str
    address: str
    home: Path  # this host's files: sshd config, host key, and the sflow directory
    host_key_pub: str  # "ssh-ed25519 AAAA..."
    has_sshd: bool

    @property
    def sflow_dir(self) -> Path:
        return self.home / "sflow"


@dataclass(slots=True)
class Lab:
    root: Path
    hosts: list[LabHost] = field(default_factory=list)
    client_key: Path = Path()
    known_hosts: Path = Path()
    _sshd: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: int | None = None
    _forward_rule: bool = False

    # --- lifecycle ----------------------------------------------------------------------------

    def up(self, count: int, without_sshd: Iterable[int] = ()) -> None:
        self._take_lock(timeout=180)
        remove_leftovers()
        no_sshd = set(without_sshd)
        self.client_key = self.root / "client_key"
        keygen(self.client_key, "sflow-test-client")
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        if _bridge_filtered():
            subprocess.run(_forward_rule("-I"), check=True, capture_output=True)
            self._forward_rule = True
        for i in range(count):
            self.hosts.append(self._make_host(i, has_sshd=i not in no_sshd))
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("".join(f"{h.address} {h.host_key_pub}\n" for h in self.hosts), encoding="ascii")
        for host in self.hosts:
            if host.has_sshd:
                self._start_sshd(host)
        for host in self.hosts:
            if host.has_sshd:
                wait_for(partial(port_open, host.address, 22), 20, f"sshd on {host.address}:22 accepting connections")

    def down(self) -> None:
        """Kill everything started in the namespaces (sshds, nodes), delete namespaces, links and
        the firewall rule. Runs to the end whatever fails; then releases the lock."""
        try:
            for proc in self._sshd.values():
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
            kill_processes_under(self.root)
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

    def _make_host(self, index: int, has_sshd: bool) -> LabHost:
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
        ip("route", "add", "default", "via", GATEWAY, netns=netns)
        home = self.root / f"h{index}"
        home.mkdir(mode=0o700)
        key = home / "ssh_host_ed25519_key"
        keygen(key, f"sflow-test-host-{index}")
        public = " ".join(key.with_suffix(".pub").read_text(encoding="ascii").split()[:2])
        return LabHost(index, netns, address, home, public, has_sshd)

    def _start_sshd(self, host: LabHost) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        authorized = self.root / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text(encoding="ascii"), encoding="ascii")
        config = host.home / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {host.address}:22",
                    f"HostKey {host.home / 'ssh_host_ed25519_key'}",
                    f"PidFile {host.home / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
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
        log = (host.home / "sshd.log").open("ab")
        self._sshd[host.netns] = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, sshd, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()

    def stop_sshd(self, host: LabHost) -> None:
        proc = self._sshd.pop(host.netns)
        proc.terminate()
        proc.wait(timeout=10)


# --- processes ---------------------------------------------------------------------------------


def processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of every live, non-zombie process (kernel threads, with no argv, left out)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = process_cmdline(int(entry.name))
        except OSError:
            continue
        if argv:
            yield int(entry.name), argv


def runs_sflow(argv: list[str]) -> bool:
    """``sflow ...``, ``python .../bin/sflow ...`` or ``python -m sflow[.module] ...``."""
    return any(Path(a).name == "sflow" for a in argv) or any(
        a == "-m" and (b == "sflow" or b.startswith("sflow.")) for a, b in zip(argv, argv[1:])
    )


def sflow_processes_under(root: Path) -> list[tuple[int, list[str]]]:
    """sflow processes whose command line names a path under ``root`` (the lab's nodes)."""
    text = str(root)
    return [(pid, argv) for pid, argv in processes() if runs_sflow(argv) and any(text in a for a in argv)]


def kill_processes_under(root: Path) -> None:
    for pid, _ in sflow_processes_under(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


@contextmanager
def lab(root: Path, count: int, without_sshd: Iterable[int] = ()) -> Iterator[Lab]:
    """A lab that is torn down however the block ends."""
    the_lab = Lab(root)
    try:
        the_lab.up(count, without_sshd)
        yield the_lab
    finally:
        the_lab.down()
