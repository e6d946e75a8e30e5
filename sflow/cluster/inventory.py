"""The host inventory: the original's ``nclw_hosts`` file, read unchanged, or a TOML inventory.

``nclw_hosts`` has one ``ip,user,password,dir`` line per worker (no header; ``dir`` ends with ``/``).
An empty password means key authentication. The TOML form is a list of tables::

    [[host]]
    address = "10.0.0.2"      # required
    port = 22
    user = "sflow"            # default: the local user name
    key_file = "~/.ssh/id_ed25519"
    password = ""             # accepted for compatibility; keys are preferred
    dir = "/home/sflow/sflow" # required: where deploy installs and the node runs
    python = "python3"        # the host's interpreter that makes the venv
    neighbours = ["10.0.0.3"] # autonomous mode: links to other hosts of the inventory

Passwords are accepted with a warning and never logged: :class:`HostSpec` leaves them out of its
``repr``.

In autonomous mode every node exchanges hellos with its neighbours (:func:`neighbours`): every
other host of the inventory when no host has a ``neighbours`` key; otherwise the links the keys
name, each one both ways (a host lists others by their ``address``, or by ``address:port`` when
several share an address).
"""

from __future__ import annotations

import getpass
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_SSH_PORT = 22
DEFAULT_PYTHON = "python3"
_TOML_KEYS = ("address", "port", "user", "key_file", "password", "dir", "python", "neighbours")


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One host of the inventory. ``dir`` is absolute, or relative to the login's home directory."""

    address: str
    user: str
    dir: str
    port: int = DEFAULT_SSH_PORT
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    python: str = DEFAULT_PYTHON
    source: str = field(default="", compare=False)
    #: the hosts this one is linked to, as written (None: the key is absent)
    neighbours: tuple[str, ...] | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """How the host is shown: its address, with the port when it is not 22."""
        if self.port == DEFAULT_SSH_PORT:
            return self.address
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Inventory:
    source: str
    hosts: tuple[HostSpec, ...]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every password in the inventory, for redaction."""
        return tuple(h.password for h in self.hosts if h.password)

    def labels(self) -> tuple[str, ...]:
        """One unique label per host: its name, plus its directory when the name repeats."""
        names = [h.name for h in self.hosts]
        return tuple(h.name if names.count(h.name) == 1 else f"{h.name}:{h.dir}" for h in self.hosts)


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read ``path`` as TOML when it ends in ``.toml``, otherwise as the original's ``nclw_hosts``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(file), "", "no such hosts file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(file), "", f"cannot read the hosts file: {exc}") from None
    if file.suffix == ".toml":
        inventory = parse_toml_inventory(text, str(file))
    else:
        inventory = parse_nclw_hosts(text, str(file))
    if not inventory.hosts:
        raise InputError(str(file), "", "no hosts listed")
    _check_unique(inventory)
    neighbours(inventory)  # every link names a host of the inventory
    if inventory.secrets:
        log.warning(
            "event=plaintext_passwords source=%s hosts=%d advice=%s",
            inventory.source,
            len(inventory.secrets),
            "prefer SSH keys (key_file in a TOML inventory, or --identity)",
        )
    return inventory


def parse_nclw_hosts(text: str, source: str) -> Inventory:
    """Parse ``ip,user,password,dir`` lines. Blank lines and ``#`` comments are skipped; any other
    malformed line is an error naming ``source:line``."""
    hosts: list[HostSpec] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            # The password is not echoed: the line may hold one.
            raise InputError(where, "", f"expected 4 comma-separated fields ip,user,password,dir, found {len(fields)}")
        address, user, password, directory = fields
        _check_text(where, "ip", address)
        _check_text(where, "user", user)
        _check_text(where, "dir", directory)
        hosts.append(
            HostSpec(
                address=address,
                user=user,
                dir=_normalise_dir(directory),
                password=password or None,
                source=where,
            )
        )
    return Inventory(source, tuple(hosts))


def parse_toml_inventory(text: str, source: str) -> Inventory:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(source, "", f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"host"})
    if unknown:
        raise InputError(source, unknown[0], "unknown key; an inventory is a list of [[host]] tables")
    entries = data.get("host", [])
    if not isinstance(entries, list):
        raise InputError(source, "host", "expected [[host]] tables")
    hosts = tuple(_toml_host(entry, source, f"host[{i}]") for i, entry in enumerate(entries))
    return Inventory(source, hosts)


def _toml_host(entry: Any, source: str, where: str) -> HostSpec:
    if not isinstance(entry, Mapping):
        raise InputError(source, where, "expected a table")
    unknown = sorted(set(entry) - set(_TOML_KEYS))
    if unknown:
        raise InputError(source, f"{where}.{unknown[0]}", f"unknown key; known keys: {', '.join(_TOML_KEYS)}")

    def text(key: str, default: str | None) -> str | None:
        value = entry.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            # Never echo what may be a password.
            found = "" if key == "password" else f", found {value!r}"
            raise InputError(source, f"{where}.{key}", f"expected a string{found}")
        return value

    address = text("address", None)
    directory = text("dir", None)
    if not address:
        raise InputError(source, f"{where}.address", "required")
    if not directory:
        raise InputError(source, f"{where}.dir", "required")
    port = entry.get("port", DEFAULT_SSH_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InputError(source, f"{where}.port", f"expected a port number 1-65535, found {port!r}")
    user = text("user", None) or getpass.getuser()
    key_file = text("key_file", None)
    password = text("password", None)
    python = text("python", DEFAULT_PYTHON) or DEFAULT_PYTHON
    links = entry.get("neighbours")
    if links is not None and not (isinstance(links, list) and all(isinstance(n, str) and n for n in links)):
        raise InputError(source, f"{where}.neighbours", f"expected a list of host addresses, found {links!r}")
    location = f"{source}: {where}"
    for key, value in (("address", address), ("user", user), ("dir", directory), ("python", python)):
        _check_text(location, key, value)
    return HostSpec(
        address=address,
        user=user,
        dir=_normalise_dir(directory),
        port=port,
        key_file=str(Path(key_file).expanduser()) if key_file else None,
        password=password or None,
        python=python,
        source=location,
        neighbours=tuple(links) if links is not None else None,
    )


def _check_text(where: str, key: str, value: str) -> None:
    if not value:
        raise InputError(where, "", f"{key} is empty")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise InputError(where, "", f"{key} {value!r} contains white space or control characters")


def _normalise_dir(directory: str) -> str:
    """Drop the trailing ``/`` the original requires; ``~/x`` becomes ``x`` (SSH commands start in
    the home directory, and quoted paths get no tilde expansion)."""
    if directory in ("~", "~/"):
        return "."
    if directory.startswith("~/"):
        directory = directory[2:]
    stripped = directory.rstrip("/")
    return stripped or "/"


def _check_unique(inventory: Inventory) -> None:
    seen: dict[tuple[str, int, str], str] = {}
    for host in inventory.hosts:
        key = (host.address, host.port, host.dir)
        if key in seen:
            raise InputError(host.source, "", f"{host.name} {host.dir} is listed twice (first at {seen[key]})")
        seen[key] = host.source


def neighbours(inventory: Inventory) -> dict[HostSpec, tuple[HostSpec, ...]]:
    """Each host's neighbours for autonomous mode, in inventory order (see the module docstring).
    A link that names no other host of the inventory is an error naming the host and the entry."""
    hosts = inventory.hosts
    if all(h.neighbours is None for h in hosts):
        return {h: tuple(o for o in hosts if o is not h) for h in hosts}
    by_name: dict[str, HostSpec] = {}
    for host in hosts:
        for key in (host.name, host.address):
            by_name.setdefault(key, host)
    linked: dict[HostSpec, set[HostSpec]] = {h: set() for h in hosts}
    for host in hosts:
        for k, name in enumerate(host.neighbours or ()):
            other = by_name.get(name)
            if other is None or other is host:
                known = ", ".join(h.name for h in hosts if h is not host)
                why = "is the host itself" if other is host else f"names no other host of the inventory (hosts: {known})"
                raise InputError(host.source, f"neighbours[{k}]", f"{name!r} {why}")
            linked[host].add(other)
            linked[other].add(host)
    return {h: tuple(o for o in hosts if o in linked[h]) for h in hosts}
