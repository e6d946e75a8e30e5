"""Face URIs as NFD writes them: ``tcp4://HOST:PORT``, ``tcp6://[HOST]:PORT``, ``udp4://…``,
``unix:///PATH``; ``HOST:PORT`` alone means TCP. The default port is 6363 (NFD's)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sflow.errors import InputError

DEFAULT_PORT = 6363


@dataclass(frozen=True, slots=True)
class FaceUri:
    scheme: str  # "tcp", "udp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        family = "6" if ":" in self.host else "4"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}{family}://{host}:{self.port}"


def parse_face_uri(text: str, default_scheme: str = "tcp") -> FaceUri:
    """Parse a face URI; raises :class:`~sflow.errors.InputError` naming the bad value."""
    value = text.strip()
    scheme = default_scheme
    if "://" in value:
        scheme, value = value.split("://", 1)
        scheme = scheme.rstrip("46")
    if scheme == "unix":
        if not value:
            raise InputError("<flag>", text, "a unix face URI needs a path")
        return FaceUri("unix", path=value)
    if scheme not in ("tcp", "udp"):
        raise InputError("<flag>", text, f"unknown face scheme {scheme!r} (tcp, udp or unix)")
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""
    host = host or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host.replace("-", "").replace(".", "").isalnum():
            raise InputError("<flag>", text, f"bad host {host!r}") from None
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise InputError("<flag>", text, f"bad port {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise InputError("<flag>", text, f"port {port} out of range")
    return FaceUri(scheme, host=host, port=port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (faces from it have local scope, as in NFD)."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"
