"""Client side of the forwarder's sflow status dataset (``/localhost/sflow/status``).

Fetches the JSON document a forwarder publishes (see :mod:`sflow.icn.mgmt`) over a TCP or Unix
face and renders it as text for ``sflow icn status``.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred

from sflow.errors import DecodeError
from sflow.icn.app import Endpoint, connect
from sflow.icn.mgmt import STATUS_PREFIX


def fetch_status(reactor: Any, address: str, *, lifetime: int = 2000) -> Deferred[dict[str, Any]]:
    """Connect to the forwarder at ``address`` and fetch its status document."""

    def fetch(endpoint: Endpoint) -> Deferred[dict[str, Any]]:
        d = endpoint.fetch_segmented(STATUS_PREFIX, lifetime=lifetime, retries=1, must_be_fresh=True)

        def parse(content: bytes) -> dict[str, Any]:
            try:
                document = json.loads(content.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DecodeError(f"status from {address} is not JSON: {exc}") from None
            if not isinstance(document, dict):
                raise DecodeError(f"status from {address} is not a JSON object")
            return document

        def close(result: Any) -> Any:
            endpoint.close()
            return result

        return d.addCallback(parse).addBoth(close)

    return connect(reactor, address).addCallback(fetch)


def format_status(status: dict[str, Any]) -> str:
    """A text report: faces, FIB, PIT and CS sizes, CS hit ratio and the counters."""
    lines: list[str] = []
    cs = status.get("cs", {})
    lines.append(f"{status.get('version', 'forwarder')}  uptime {status.get('uptime_s', 0):.1f} s")
    lines.append(
        f"PIT {status.get('pit', {}).get('entries', 0)} entries   "
        f"CS {cs.get('entries', 0)}/{cs.get('capacity', 0)} packets, {cs.get('bytes', 0)} bytes, "
        f"policy {cs.get('policy', '?')}, hit ratio {100 * float(cs.get('hit_ratio', 0.0)):.1f}% "
        f"({cs.get('hits', 0)} hits, {cs.get('misses', 0)} misses)"
    )
    lines.append(f"Name tree {status.get('name_tree', {}).get('entries', 0)} entries   "
                 f"Dead Nonce List {status.get('dead_nonce_list', {}).get('entries', 0)} entries")
    lines.append("")
    lines.append("Faces")
    for face in status.get("faces", []):
        c = face.get("counters", {})
        lines.append(
            f"  {face.get('id'):>5}  {face.get('remote', ''):<28} {face.get('scope', ''):<9} "
            f"in {c.get('n_in_interests', 0)}i/{c.get('n_in_data', 0)}d/{c.get('n_in_nacks', 0)}n  "
            f"out {c.get('n_out_interests', 0)}i/{c.get('n_out_data', 0)}d/{c.get('n_out_nacks', 0)}n"
        )
    lines.append("")
    lines.append("FIB")
    for entry in status.get("fib", []):
        hops = ", ".join(f"face {h['face_id']} (cost {h['cost']})" for h in entry.get("next_hops", []))
        lines.append(f"  {entry.get('prefix')}  →  {hops}")
    lines.append("")
    lines.append("Strategy choice")
    for choice in status.get("strategy_choice", []):
        lines.append(f"  {choice.get('prefix')}  {choice.get('strategy')}")
    lines.append("")
    lines.append("Counters")
    for key, value in sorted(status.get("counters", {}).items()):
        lines.append(f"  {key:<26} {value}")
    return "\n".join(lines)
