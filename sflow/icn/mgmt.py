"""Forwarder management on the internal face: NFD's RIB and strategy-choice commands, sflow status.

Like NFD, management is an application attached to the forwarder through an internal face (face
id 1) with FIB routes for ``/localhost/nfd`` and ``/localhost/sflow``; command Interests reach it
through the normal pipelines, and ``/localhost`` scope control keeps them to local faces.

Commands (NFD ``ControlCommand``; ``/localhost/nfd/<module>/<verb>/<ControlParameters>/…``):

* ``rib/register`` — Name required; FaceId 0/absent = the requesting face; Origin (default 0, app),
  Cost (default 0), Flags (default CHILD_INHERIT), optional ExpirationPeriod (ms). Answered with
  ``ControlResponse 200 "OK"`` echoing Name, FaceId, Origin, Cost, Flags[, ExpirationPeriod].
* ``rib/unregister`` — Name; FaceId and Origin as above. Echoes Name, FaceId, Origin.
* ``strategy-choice/set`` (Name, Strategy) and ``strategy-choice/unset`` (Name).

Who may manage: an application on an in-process or Unix-socket face (its user can reach the
socket file, which is as good as being the forwarder's own) sends a signed command — a v0.3 signed
Interest (python-ndn ``appv2``) or the older signed name with SignatureInfo/SignatureValue
components (python-ndn ``app``) — with any key; a DigestSha256 signature is checked. From any
other face — TCP, even on loopback (any local user can open it), or UDP — a command must be a v0.3
signed Interest with HMAC-SHA256 under the cluster secret (``ForwarderConfig.management_key``) and
a SignatureTime within ``clock_skew`` of the forwarder's clock; a forwarder without a key accepts
commands only from in-process and Unix-socket faces. Errors: 400 malformed parameters, 403 not
authorized (unsigned, bad digest, or not under the cluster key from a remote face), 404 unknown
strategy, 410 unknown face, 501 unknown command.

Status (sflow-specific): an Interest for ``/localhost/sflow/status`` (CanBePrefix) is answered with
``/localhost/sflow/status/v=<ms>/seg=0``, segments of a UTF-8 JSON document (see
:func:`status_report`); the other segments are fetched by exact name, FinalBlockId marks the last.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sflow import __version__
from sflow.errors import DecodeError
from sflow.icn import tlv
from sflow.icn.control import (
    ROUTE_FLAG_CHILD_INHERIT,
    ROUTE_ORIGIN_APP,
    ControlParameters,
    ControlResponse,
    decode_control_parameters,
)
from sflow.icn.face.base import FACE_ID_INTERNAL, Face
from sflow.icn.face.inprocess import InProcessFace, linked_faces
from sflow.icn.lp import LpPacket
from sflow.icn.name import Component, Name
from sflow.icn.packet import Data, Interest, Nack, make_data
from sflow.icn.security import verify_interest
from sflow.icn.signature import SignatureType, check_digest_sha256
from sflow.icn.strategy import resolve_strategy

if TYPE_CHECKING:
    from sflow.icn.forwarder import Forwarder

log = logging.getLogger(__name__)

NFD_PREFIX = Name.from_uri("/localhost/nfd")
SFLOW_PREFIX = Name.from_uri("/localhost/sflow")
STATUS_PREFIX = Name.from_uri("/localhost/sflow/status")
STATUS_SEGMENT_SIZE = 7000
_KEPT_SNAPSHOTS = 4


def status_report(forwarder: Forwarder) -> dict[str, Any]:
    """The forwarder's state as a JSON-ready dict (the content of ``/localhost/sflow/status``)."""
    counters = {**forwarder.counters.as_dict(), **forwarder.limit_counters.as_dict()}
    lookups = counters["n_cs_hits"] + counters["n_cs_misses"]
    now = forwarder.now()
    return {
        "version": f"sflow {__version__}",
        "uptime_s": round(now - forwarder.start_time, 3),
        "counters": counters,
        "pit": {"entries": len(forwarder.pit)},
        "cs": {
            "entries": len(forwarder.cs),
            "bytes": forwarder.cs.n_bytes,
            "capacity": forwarder.cs.capacity,
            "capacity_bytes": forwarder.cs.capacity_bytes,
            "policy": forwarder.cs.policy_name,
            "hits": counters["n_cs_hits"],
            "misses": counters["n_cs_misses"],
            "hit_ratio": round(counters["n_cs_hits"] / lookups, 4) if lookups else 0.0,
        },
        "dead_nonce_list": {"entries": len(forwarder.dead_nonce_list), "capacity": forwarder.dead_nonce_list.capacity},
        "name_tree": {"entries": len(forwarder.name_tree)},
        "faces": [
            {
                "id": face.face_id,
                "remote": face.remote_uri,
                "local": face.local_uri,
                "scope": face.scope.name.lower().replace("_", "-"),
                "link_type": face.link_type.name.lower().replace("_", "-"),
                "counters": {
                    "n_in_interests": face.counters.n_in_interests,
                    "n_in_data": face.counters.n_in_data,
                    "n_in_nacks": face.counters.n_in_nacks,
                    "n_out_interests": face.counters.n_out_interests,
                    "n_out_data": face.counters.n_out_data,
                    "n_out_nacks": face.counters.n_out_nacks,
                    "n_in_bytes": face.counters.n_in_bytes,
                    "n_out_bytes": face.counters.n_out_bytes,
                    "n_malformed": face.counters.n_malformed,
                },
            }
            for face in sorted(forwarder.faces, key=lambda f: f.face_id)
        ],
        "fib": [
            {"prefix": entry.prefix.to_uri(), "next_hops": [{"face_id": h.face.face_id, "cost": h.cost} for h in entry.next_hops]}
            for entry in forwarder.fib
        ],
        "rib": [
            {"prefix": name.to_uri(), "face_id": r.face_id, "origin": r.origin, "cost": r.cost, "flags": r.flags}
            for name, r in forwarder.rib
        ],
        "strategy_choice": [
            {"prefix": c.prefix.to_uri(), "strategy": c.strategy_name.to_uri()} for c in forwarder.strategy_choice
        ],
    }


class Management:
    """The management application, attached to ``forwarder`` on face id 1."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        forwarder_side, self.face = linked_faces(
            forwarder.clock, names=("internal://", "internal://management")
        )
        self.internal_face: InProcessFace = forwarder_side
        forwarder.add_face(forwarder_side, FACE_ID_INTERNAL)
        self.face.handler = self
        for prefix in (NFD_PREFIX, SFLOW_PREFIX):
            entry, _created = forwarder.fib.insert(prefix)
            forwarder.fib.add_or_update_next_hop(entry, forwarder_side, 0)
        self._snapshots: OrderedDict[int, list[Data]] = OrderedDict()

    # --- packet handler ---------------------------------------------------------------------------
    def on_incoming_interest(self, face: Face, interest: Interest, lp: LpPacket | None) -> None:
        requester = lp.incoming_face_id if lp is not None else None
        name = interest.name
        if STATUS_PREFIX.is_prefix_of(name):
            self._answer_status(interest)
        elif NFD_PREFIX.is_prefix_of(name):
            self._reply(interest, self._command(interest, requester))

    def on_incoming_data(self, face: Face, data: Data, lp: LpPacket | None) -> None:
        """Management expresses no Interests; stray Data is ignored."""

    def on_incoming_nack(self, face: Face, nack: Nack, lp: LpPacket | None) -> None:
        """Management expresses no Interests; stray Nacks are ignored."""

    def on_face_malformed(self, face: Face, reason: str) -> None:
        """Packets on the internal face are objects; nothing can be malformed."""

    def on_face_oversize(self, face: Face) -> None:
        """Packets on the internal face are objects; nothing can be oversize."""

    def on_face_closed(self, face: Face) -> None:
        log.info("management face closed")

    # --- commands ---------------------------------------------------------------------------------
    def _reply(self, interest: Interest, response: ControlResponse) -> None:
        self.face.send_data(make_data(interest.name, response.encode()))

    def _command(self, interest: Interest, requester: int | None) -> ControlResponse:
        components = interest.name.components
        if len(components) < 5:
            return ControlResponse(501, "Unsupported command")
        module = components[2].value.decode("utf-8", errors="replace")
        verb = components[3].value.decode("utf-8", errors="replace")
        handler = {
            ("rib", "register"): self._rib_register,
            ("rib", "unregister"): self._rib_unregister,
            ("strategy-choice", "set"): self._strategy_set,
            ("strategy-choice", "unset"): self._strategy_unset,
        }.get((module, verb))
        if handler is None:
            return ControlResponse(501, "Unsupported command")
        if not self._authorized(interest, requester):
            log.warning("event=management_refused command=%s/%s requester=%s", module, verb, requester)
            return ControlResponse(403, "Command Interest is not authorized (unsigned, a wrong digest, or not signed "
                                        "with the cluster key from a non-local face)")
        try:
            params = decode_control_parameters(components[4].value)
        except DecodeError as exc:
            return ControlResponse(400, f"Malformed ControlParameters: {exc}")
        response = handler(params, requester)
        log.info("management command=%s/%s status=%d requester=%s", module, verb, response.status_code, requester)
        return response

    def _authorized(self, interest: Interest, requester: int | None) -> bool:
        """See the module docstring: any signature from an in-process or Unix-socket face, the
        cluster key (and a current SignatureTime) from any other."""
        face = self.forwarder.faces.get(requester) if requester is not None else None
        if face is not None and _trusted_face(face):
            return _is_authorized(interest)
        key = self.forwarder.config.management_key
        info = interest.signature_info
        if key is None or info is None or info.signature_type != SignatureType.HMAC_WITH_SHA256 or info.time is None:
            return False
        if abs(info.time / 1000.0 - self.forwarder.now()) > self.forwarder.config.clock_skew:
            return False
        return verify_interest(interest, key)

    def _face_id(self, params: ControlParameters, requester: int | None) -> int | None:
        face_id = params.face_id or requester
        if face_id is None or self.forwarder.faces.get(face_id) is None:
            return None
        return face_id

    def _rib_register(self, params: ControlParameters, requester: int | None) -> ControlResponse:
        if params.name is None:
            return ControlResponse(400, "Name is required")
        face_id = self._face_id(params, requester)
        if face_id is None:
            return ControlResponse(410, "Face not found")
        origin = ROUTE_ORIGIN_APP if params.origin is None else params.origin
        cost = params.cost or 0
        flags = ROUTE_FLAG_CHILD_INHERIT if params.flags is None else params.flags
        expiration = params.expiration_period / 1000.0 if params.expiration_period is not None else None
        self.forwarder.rib.register(
            params.name, face_id, origin=origin, cost=cost, flags=flags, expiration=expiration
        )
        body = ControlParameters(
            name=params.name,
            face_id=face_id,
            origin=origin,
            cost=cost,
            flags=flags,
            expiration_period=params.expiration_period,
        )
        return ControlResponse(200, "OK", body)

    def _rib_unregister(self, params: ControlParameters, requester: int | None) -> ControlResponse:
        if params.name is None:
            return ControlResponse(400, "Name is required")
        face_id = params.face_id or requester
        if face_id is None:
            return ControlResponse(410, "Face not found")
        origin = ROUTE_ORIGIN_APP if params.origin is None else params.origin
        self.forwarder.rib.unregister(params.name, face_id, origin)
        return ControlResponse(200, "OK", ControlParameters(name=params.name, face_id=face_id, origin=origin))

    def _strategy_set(self, params: ControlParameters, requester: int | None) -> ControlResponse:
        if params.name is None or params.strategy is None:
            return ControlResponse(400, "Name and Strategy are required")
        resolved = resolve_strategy(params.strategy)
        if resolved is None or not self.forwarder.strategy_choice.insert(params.name, params.strategy):
            return ControlResponse(404, f"Strategy not found: {params.strategy}")
        return ControlResponse(200, "OK", ControlParameters(name=params.name, strategy=resolved[1]))

    def _strategy_unset(self, params: ControlParameters, requester: int | None) -> ControlResponse:
        if params.name is None or not params.name.ends:
            return ControlResponse(400, "a non-root Name is required")
        self.forwarder.strategy_choice.erase(params.name)
        return ControlResponse(200, "OK", ControlParameters(name=params.name))

    # --- status -----------------------------------------------------------------------------------
    def _answer_status(self, interest: Interest) -> None:
        name = interest.name
        if len(name) == len(STATUS_PREFIX):
            version = int(self.forwarder.now() * 1000)
            while version in self._snapshots:
                version += 1
            document = json.dumps(status_report(self.forwarder), sort_keys=True).encode("utf-8")
            chunks = [document[i : i + STATUS_SEGMENT_SIZE] for i in range(0, len(document), STATUS_SEGMENT_SIZE)]
            base = STATUS_PREFIX.append(Component.version(version))
            last = Component.segment(len(chunks) - 1)
            segments = [
                make_data(base.append(Component.segment(i)), chunk, freshness_period=0, final_block_id=last)
                for i, chunk in enumerate(chunks)
            ]
            self._snapshots[version] = segments
            while len(self._snapshots) > _KEPT_SNAPSHOTS:
                self._snapshots.popitem(last=False)
            self.face.send_data(segments[0])
            return
        if len(name) == len(STATUS_PREFIX) + 2 and name[-2].is_version() and name[-1].is_segment():
            segments = self._snapshots.get(name[-2].to_number(), [])
            index = name[-1].to_number()
            if index < len(segments):
                self.face.send_data(segments[index])


def _trusted_face(face: Face) -> bool:
    """An in-process face or a Unix-socket connection: only this host's users that can reach the
    socket file get one (loopback TCP is not: any local user can connect)."""
    return isinstance(face, InProcessFace) or face.remote_uri.startswith("unix://")


def _is_authorized(interest: Interest) -> bool:
    """A signed command: v0.3 signed Interest or signed-name command, any key; DigestSha256 checked."""
    info = interest.signature_info
    if info is not None:
        if info.signature_type == SignatureType.DIGEST_SHA256:
            return verify_interest(interest)
        return True
    components = interest.name.components
    if len(components) < 7:
        return False
    info_component, value_component = components[-2].value, components[-1].value
    if not info_component or info_component[0] != tlv.SIGNATURE_INFO:
        return False
    if not value_component or value_component[0] != tlv.SIGNATURE_VALUE:
        return False
    try:
        _t, info_start, info_end = tlv.read_tlv(info_component, 0, len(info_component))
        type_t, type_start, type_end = tlv.read_tlv(info_component, info_start, info_end)
        _v, value_start, value_end = tlv.read_tlv(value_component, 0, len(value_component))
        signature_type = tlv.decode_nonneg_int(info_component, type_start, type_end)
    except DecodeError:
        return False
    if type_t != tlv.SIGNATURE_TYPE:
        return False
    if signature_type == SignatureType.DIGEST_SHA256:
        return check_digest_sha256([c.wire for c in components[:-1]], value_component[value_start:value_end])
    return True
