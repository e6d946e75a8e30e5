"""Settings: built-in defaults < ``sflow.toml`` < ``SFLOW_*`` environment variables < flags.

Every key is declared once, in the dataclasses below, with its default and a one-line description
(``sflow config show`` prints them). An environment variable is ``SFLOW_<SECTION>_<KEY>`` in upper
case, for example ``SFLOW_NODE_LISTEN=0.0.0.0:7070`` or ``SFLOW_SCHEDULER_ALGORITHM=heft``.
The original's ``nclw2.properties`` converts with :func:`import_properties`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.errors import ConfigError

DEFAULT_CONFIG_FILE = "sflow.toml"
#: the chaining modes: IP push, static ICN-SFC, autonomous ICN-SFC
MODES = ("ip", "icn", "auto")


def _key(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class NodeSettings:
    listen: str = _key("0.0.0.0:7070", "address the node daemon listens on for IP chaining and control")
    workdir: str = _key("~/.local/share/sflow/work", "directory holding one working directory per job")
    pid_file: str = _key("", "file the node writes its pid to (empty: none)")
    log_file: str = _key("", "file the node logs to (empty: standard error)")
    pinning: bool = _key(False, "pin each function to the host CPUs of its assigned vCPU")
    vcpus: int = _key(0, "vCPUs this node offers when no environment says (0: the CPU count)")
    function_timeout: float = _key(3600.0, "seconds a function may run before it is killed and failed")
    chunk_size: int = _key(262144, "bytes per file chunk when streaming files between nodes")
    heartbeat_interval: float = _key(2.0, "seconds between heartbeats on node channels (delegator-node, node-node; 0: none, TCP keepalive only)")
    heartbeat_misses: int = _key(3, "silent heartbeat intervals after which a peer is declared lost (at least 2); lost within interval x (misses + 1) s")
    links: str = _key("", "links file of an emulated topology (written by `sflow experiment`; reloaded on SIGHUP; empty: no emulation)")


@dataclass(frozen=True, slots=True)
class DelegatorSettings:
    outdir: str = _key("sflow-out", "directory where END outputs, the summary and the trace are written")
    job_timeout: float = _key(86400.0, "seconds before a job is declared failed (--timeout; 0: no deadline)")
    retries: int = _key(0, "times a failed function is run again (in a fresh working directory) before the job fails")


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    algorithm: str = _key("sf-cuv", "scheduling algorithm (sflow schedule --compare lists them)")
    seed: int = _key(1, "random seed for randomised algorithms (coordvnf, best)")
    budget_s: float = _key(1.0, "seconds the best algorithm may take (portfolio and local search)")
    costs: str = _key("", "costs file from `sflow calibrate` the schedulers and the simulator use (empty: workload / MIPS and the environment's bandwidths)")


#: where SSH host keys are checked by default (SFTP, image repositories, cluster hosts)
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: where `sflow cluster deploy` keeps the dependency wheels for the hosts between deploys
DEFAULT_WHEEL_CACHE = "~/.cache/sflow/wheelhouse"


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    secret_file: str = _key("~/.config/sflow/cluster.secret", "the cluster secret written by `sflow keygen`")
    known_hosts: str = _key(DEFAULT_KNOWN_HOSTS, "SSH host keys checked for cluster hosts, SFTP file servers and image repositories")
    accept_new_host_keys: bool = _key(False, "record unknown SSH host keys on first use (a changed key is always refused)")


@dataclass(frozen=True, slots=True)
class FileServerSettings:
    protocol: str = _key("local", "how $R^ input files are fetched: local, sftp or ftp")
    host: str = _key("", "file server host (sftp, ftp)")
    port: int = _key(0, "file server port (0: the protocol's default)")
    user: str = _key("", "login name")
    password: str = _key("", "password (prefer key_file for sftp)")
    key_file: str = _key("", "SSH private key for sftp")
    root: str = _key("", "base directory; files are looked up as <root>/<job_id>/<basename>")


@dataclass(frozen=True, slots=True)
class ImageRepositorySettings:
    kind: str = _key("dir", "where image tars come from: dir (a local directory), sftp, or registry")
    path: str = _key("", "directory holding the image tars (dir) or remote directory (sftp)")
    host: str = _key("", "SSH host of the repository (sftp)")
    port: int = _key(22, "SSH port (sftp)")
    user: str = _key("", "SSH login (sftp)")
    password: str = _key("", "SSH password (sftp; prefer key_file)")
    key_file: str = _key("", "SSH private key (sftp)")
    local_dir: str = _key("~/.cache/sflow/images", "where fetched tars are stored before `docker load`")


@dataclass(frozen=True, slots=True)
class IcnSettings:
    port: int = _key(6363, "TCP/UDP port of the embedded NDN forwarder")
    cs_capacity_packets: int = _key(65536, "content store capacity in packets")
    cs_capacity_bytes: int = _key(268435456, "content store capacity in bytes")
    freshness_ms: int = _key(3600000, "FreshnessPeriod given to function results")
    interest_lifetime_ms: int = _key(4000, "InterestLifetime of the Interests sflow expresses")
    result_store: str = _key(
        "~/.cache/sflow/results/{host}-{port}",
        "on-disk store that keeps results across restarts; {host} is the host name and {port} the forwarder's "
        "port, so that nodes sharing a home directory (NFS) each keep their own",
    )
    result_store_bytes: int = _key(2147483648, "size bound of the on-disk result store")
    advertise: str = _key(
        "",
        "address (HOST or HOST:PORT) other nodes and the delegator reach this forwarder at; empty: the listen "
        "host, or when that is a wildcard the address this host reaches its first neighbour from",
    )
    neighbours: tuple[str, ...] = _key((), "neighbour nodes' hello sockets for autonomous mode (HOST:PORT)")
    broadcast_address: str = _key("", "LAN broadcast address for neighbour discovery (empty: off)")
    hello_port: int = _key(15454, "UDP port of the hello protocol")
    hello_interval: float = _key(1.0, "seconds between hellos / resource advertisements")
    max_neighbours: int = _key(10, "neighbours a node keeps in autonomous mode")
    speed: float = _key(1000.0, "MIPS per vCPU this node advertises in autonomous mode")
    bandwidth: float = _key(1000.0, "link bandwidth (MB/s) this node advertises in autonomous mode")
    max_faces: int = _key(100, "faces a forwarder accepts")
    fib_max_entries: int = _key(0, "FIB size bound (0: none)")
    fib_max_nexthops: int = _key(5, "next hops kept per FIB entry")
    connect_timeout_ms: int = _key(2000, "face connect timeout")


@dataclass(frozen=True, slots=True)
class Config:
    node: NodeSettings = field(default_factory=NodeSettings)
    delegator: DelegatorSettings = field(default_factory=DelegatorSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    file_server: FileServerSettings = field(default_factory=FileServerSettings)
    image_repository: ImageRepositorySettings = field(default_factory=ImageRepositorySettings)
    icn: IcnSettings = field(default_factory=IcnSettings)


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))
_DEFAULTS = Config()


def _coerce(section: str, key: str, value: Any, source: str) -> Any:
    default = getattr(_DEFAULTS, section)
    fields = {f.name: f for f in dataclasses.fields(default)}
    if key not in fields:
        raise ConfigError(source, f"{section}.{key}", f"unknown key; known keys of [{section}]: {', '.join(fields)}")
    expected = type(getattr(default, key))
    where = f"{section}.{key}"
    if expected is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(source, where, f"expected true or false, found {value!r}")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(source, where, f"expected an integer, found {value!r}")
    if expected is float:
        try:
            if not isinstance(value, bool):
                return float(value)
        except (TypeError, ValueError):
            pass
        raise ConfigError(source, where, f"expected a number, found {value!r}")
    if expected is tuple:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(source, where, f"expected a list of strings, found {value!r}")
    if not isinstance(value, str):
        raise ConfigError(source, where, f"expected a string, found {value!r}")
    return value


def _apply(config: Config, updates: Mapping[str, Mapping[str, Any]], source: str) -> Config:
    changed: dict[str, Any] = {}
    for section, values in updates.items():
        if section not in SECTIONS:
            raise ConfigError(source, section, f"unknown section; known sections: {', '.join(SECTIONS)}")
        if not isinstance(values, Mapping):
            raise ConfigError(source, section, "expected a table of keys")
        coerced = {k: _coerce(section, k, v, source) for k, v in values.items()}
        changed[section] = dataclasses.replace(getattr(config, section), **coerced)
    return dataclasses.replace(config, **changed)


def _from_environment(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    updates: dict[str, dict[str, str]] = {}
    # Longest section names first so that SFLOW_FILE_SERVER_HOST is file_server.host.
    for name, value in environ.items():
        if not name.startswith("SFLOW_"):
            continue
        rest = name[len("SFLOW_") :].lower()
        for section in sorted(SECTIONS, key=len, reverse=True):
            if rest.startswith(section + "_"):
                updates.setdefault(section, {})[rest[len(section) + 1 :]] = value
                break
    return updates


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Defaults, then the file (``path``, else ``./sflow.toml`` if present), then ``SFLOW_*``
    variables, then ``overrides`` (from flags). A named file that does not exist is an error."""
    config = Config()
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    if path is not None or file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(file), "", "no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), "", f"not valid TOML: {exc}") from None
        config = _apply(config, data, str(file))
    env_updates = _from_environment(os.environ if environ is None else environ)
    if env_updates:
        config = _apply(config, env_updates, "environment")
    if overrides:
        config = _apply(config, overrides, "<flags>")
    return config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", default=None, help=f"settings file (default: ./{DEFAULT_CONFIG_FILE} if present)"
    )


def add_secret_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret-file", metavar="FILE", help="the cluster secret (default: security.secret_file)")


def secret_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"security": {"secret_file": args.secret_file}} if getattr(args, "secret_file", None) else {}


def config_from_args(args: argparse.Namespace, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    return load_config(getattr(args, "config", None), overrides=overrides)


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    return {
        section: {f.name: _plain(getattr(getattr(config, section), f.name)) for f in dataclasses.fields(getattr(config, section))}
        for section in SECTIONS
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def describe_keys() -> list[tuple[str, Any, str]]:
    """(``section.key``, default, description) for every key, for documentation and ``config show``."""
    out = []
    for section in SECTIONS:
        values = getattr(_DEFAULTS, section)
        for f in dataclasses.fields(values):
            out.append((f"{section}.{f.name}", _plain(getattr(values, f.name)), f.metadata["doc"]))
    return out


# ---------------------------------------------------------------------------------------------
# The original's nclw2.properties

ALGORITHMS_BY_NUMBER = {0: "sf-cuv", 1: "heft", 2: "fws", 3: "coordvnf", 4: "hclustering", 5: "peft"}

_IGNORED = {
    "rmgr_send_thread_num": "unused by the original (thread counts); sflow is event-driven",
    "rmgr_recv_thread_num": "unused by the original (thread counts); sflow is event-driven",
    "total_cnt_cpuusage": "parsed but unused by the original",
    "ccn_comm_mode": "sflow always speaks NDN-TLV on its faces; the Java-serialised socket mode is gone",
    "nfd.strategy": "the chaining mode is chosen per run (`sflow delegate --mode icn|auto`)",
    "ccn_routing": "routes follow from the chaining mode (`--mode icn` installs the schedule's routes)",
    "ccn_networkaddress": "a node's own address is its listen address; no NIC guessing",
    "delegator_ip": "the delegator's address travels with each job; nothing to configure",
}


def parse_properties(text: str) -> dict[str, str]:
    """java.util.Properties basics: ``key=value`` or ``key: value``, ``#``/``!`` comments."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        for i, ch in enumerate(line):
            if ch in "=:":
                out[line[:i].strip()] = line[i + 1 :].strip()
                break
        else:
            out[line] = ""
    return out


def import_properties(text: str, source: str = "nclw2.properties") -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Convert the original's properties into sflow.toml sections. Returns (sections, notes): one
    note per key that was ignored, with the reason. Empty values keep sflow's defaults."""
    props = parse_properties(text)
    sections: dict[str, dict[str, Any]] = {}
    notes: list[str] = []

    def put(section: str, key: str, value: Any) -> None:
        sections.setdefault(section, {})[key] = _coerce(section, key, value, source)

    def number(key: str) -> int | None:
        value = props.get(key, "")
        if value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise ConfigError(source, key, f"expected an integer, found {value!r}") from None

    for key, value in props.items():
        if key in _IGNORED:
            notes.append(f"{key}: ignored: {_IGNORED[key]}")
            continue
        if value == "":
            if key in _SIMPLE or key in _SPECIAL:
                notes.append(f"{key}: empty; sflow's default is kept")
            else:
                notes.append(f"{key}: ignored: not a key sflow knows")
            continue
        if key in _SIMPLE:
            section, name = _SIMPLE[key]
            put(section, name, value)
        elif key == "port_number":
            port = number(key)
            put("node", "listen", f"0.0.0.0:{port}")
        elif key == "sched_algorithm":
            n = number(key)
            if n not in ALGORITHMS_BY_NUMBER:
                notes.append(f"sched_algorithm: {n} is not 0-5; the original falls back to SF-CUV, so sf-cuv is used")
            put("scheduler", "algorithm", ALGORITHMS_BY_NUMBER.get(n if n is not None else 0, "sf-cuv"))
        elif key == "input_file_transfer_protocol":
            put("file_server", "protocol", "sftp" if value.lower() == "scp" else "ftp")
        elif key == "docker_repository_ip":
            put("image_repository", "kind", "sftp")
            put("image_repository", "host", value)
        elif key in ("ccn_bcastaddress",):
            put("icn", "broadcast_address", value)
        elif key in ("ccn_bcastport",):
            put("icn", "hello_port", number(key))
        else:
            notes.append(f"{key}: ignored: not a key sflow knows")
    for key in ("ftp_server_pass", "docker_repository_password"):
        if props.get(key):
            notes.append(f"{key}: imported as a plain-text password; prefer key_file with an SSH key")
    return sections, notes


_SIMPLE: dict[str, tuple[str, str]] = {
    "ftp_server_ip": ("file_server", "host"),
    "ftp_server_id": ("file_server", "user"),
    "ftp_server_pass": ("file_server", "password"),
    "ftp_server_homedirName": ("file_server", "root"),
    "docker_repository_home": ("image_repository", "path"),
    "docker_repository_userid": ("image_repository", "user"),
    "docker_repository_password": ("image_repository", "password"),
    "docker_localdir": ("image_repository", "local_dir"),
    "ccn_node_routernum": ("icn", "max_neighbours"),
    "ccn_node_face_num_max": ("icn", "max_faces"),
    "ccn_fib_entry_max": ("icn", "fib_max_entries"),
    "ccn_fib_maxfaces_entry": ("icn", "fib_max_nexthops"),
    "ccn_connection_timeout": ("icn", "connect_timeout_ms"),
}
_SPECIAL = {
    "port_number",
    "sched_algorithm",
    "input_file_transfer_protocol",
    "docker_repository_ip",
    "ccn_bcastaddress",
    "ccn_bcastport",
}


def parse_host_port(text: str, where: str) -> tuple[str, int]:
    """A listen or peer address from settings or flags: ``HOST:PORT`` or ``[V6]:PORT`` with
    0 ≤ PORT < 65536 (0: any free port). ``where`` names the setting or flag in the error."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError("<flags>", where, f"expected HOST:PORT, found {text!r}")
    return host, int(port)
