"""Who a node is: every form of address that names it (pure).

A node is known to the others by its *advertised* address (``HOST:PORT`` of its forwarder: the
host's inventory address, or ``icn.advertise``). Lists of nodes — neighbours from the settings,
adverts heard, a static schedule's placements — may name it in other forms: the address it binds
(``--icn-listen``), a wildcard (``0.0.0.0``, ``::``), loopback (``127.0.0.1``, ``::1``,
``localhost``) or any address of its interfaces. :meth:`Identity.is_me` recognises all of them (on
the node's own port), so that a node never sends work to itself over the network.

Names that are not ``HOST:PORT`` (in-process test clusters name nodes ``n0``, ``n1``…) match only
themselves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

WILDCARD = "*"
LOOPBACK = "loopback"
_WILDCARDS = ("", "*", "0.0.0.0", "::")


def split_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``[V6]:PORT``; None when ``address`` is not one."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None  # a bare IPv6 address without brackets has no unambiguous port
    return host, int(port)


def host_form(host: str) -> str:
    """The form hosts are compared in: lower case, no brackets, IPv4-mapped IPv6 as IPv4, every
    loopback address as :data:`LOOPBACK` and every wildcard as :data:`WILDCARD`."""
    text = host.strip().strip("[]").lower()
    if text in _WILDCARDS:
        return WILDCARD
    if text == "localhost":
        return LOOPBACK
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text.rstrip(".")  # a host name
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_unspecified:
        return WILDCARD
    return str(ip)


@dataclass(frozen=True, slots=True)
class Identity:
    """A node's advertised ``name`` (``HOST:PORT``, or any label), its forwarder ``port`` and the
    :func:`host_form` of every host that is this machine."""

    name: str
    port: int
    hosts: frozenset[str]

    @classmethod
    def of(cls, name: str, hosts: Iterable[str] = ()) -> Identity:
        """The identity of a node advertised as ``name`` whose machine also answers to ``hosts``
        (its bind host, its interfaces' addresses); wildcard and loopback forms are always its."""
        parsed = split_address(name)
        forms = {WILDCARD, LOOPBACK, *(host_form(h) for h in hosts)}
        if parsed is None:
            return cls(name, -1, frozenset(forms))
        forms.add(host_form(parsed[0]))
        return cls(name, parsed[1], frozenset(forms))

    def is_me(self, address: str, port: int | None = None) -> bool:
        """Whether ``address`` names this node: on ``port`` (default: the forwarder's), by any
        form of one of its hosts; or ``address`` is exactly its name."""
        if address == self.name:
            return True
        parsed = split_address(address)
        if parsed is None or self.port < 0:
            return False
        host, at = parsed
        return at == (self.port if port is None else port) and host_form(host) in self.hosts
