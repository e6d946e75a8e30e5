"""NDNLPv2 LpPacket: the link-protocol envelope that carries Nacks, PIT tokens and local fields.

From the NDNLPv2 specification (named-data/NFD wiki, "NDNLPv2")::

    LpPacket = LP-PACKET-TYPE TLV-LENGTH *LpHeaderField [Fragment]

Header fields handled: Sequence, FragIndex, FragCount, PitToken, Nack{NackReason},
IncomingFaceId, NextHopFaceId, CachePolicy{CachePolicyType}, CongestionMark, Ack, TxSequence,
NonDiscovery, PrefixAnnouncement. An unknown header field is ignored when its TLV-TYPE is in
[800, 959] and its two low bits are 0, otherwise the packet is dropped (NDNLPv2 "unknown
fields"). Fragment must be the last element.
"""

from __future__ import annotations

from dataclasses import dataclass

from sflow.errors import DecodeError
from sflow.icn import tlv

CACHE_POLICY_NO_CACHE = 1
"""CachePolicyType NoCache: the receiving forwarder must not cache the Data."""

_FIXED8 = (tlv.LP_SEQUENCE, tlv.LP_TX_SEQUENCE, tlv.LP_ACK)


@dataclass(frozen=True, slots=True)
class LpPacket:
    """One LpPacket. ``nack_reason`` is ``None`` without a Nack header (0 = Nack without reason)."""

    fragment: bytes | None = None
    sequence: int | None = None
    frag_index: int | None = None
    frag_count: int | None = None
    pit_token: bytes | None = None
    nack_reason: int | None = None
    incoming_face_id: int | None = None
    next_hop_face_id: int | None = None
    cache_policy: int | None = None
    congestion_mark: int | None = None
    acks: tuple[int, ...] = ()
    tx_sequence: int | None = None
    non_discovery: bool = False
    prefix_announcement: bytes | None = None


def encode_lp_packet(packet: LpPacket) -> bytes:
    """Encode an LpPacket, header fields in ascending TLV-TYPE order and Fragment last."""
    parts: list[bytes] = []
    if packet.sequence is not None:
        parts.append(tlv.encode_tlv(tlv.LP_SEQUENCE, packet.sequence.to_bytes(8, "big")))
    if packet.frag_index is not None:
        parts.append(tlv.encode_nonneg_tlv(tlv.LP_FRAG_INDEX, packet.frag_index))
    if packet.frag_count is not None:
        parts.append(tlv.encode_nonneg_tlv(tlv.LP_FRAG_COUNT, packet.frag_count))
    if packet.pit_token is not None:
        parts.append(tlv.encode_tlv(tlv.LP_PIT_TOKEN, packet.pit_token))
    if packet.nack_reason is not None:
        reason = tlv.encode_nonneg_tlv(tlv.LP_NACK_REASON, packet.nack_reason) if packet.nack_reason else b""
        parts.append(tlv.encode_tlv(tlv.LP_NACK, reason))
    if packet.incoming_face_id is not None:
        parts.append(tlv.encode_nonneg_tlv(tlv.LP_INCOMING_FACE_ID, packet.incoming_face_id))
    if packet.next_hop_face_id is not None:
        parts.append(tlv.encode_nonneg_tlv(tlv.LP_NEXT_HOP_FACE_ID, packet.next_hop_face_id))
    if packet.cache_policy is not None:
        inner = tlv.encode_nonneg_tlv(tlv.LP_CACHE_POLICY_TYPE, packet.cache_policy)
        parts.append(tlv.encode_tlv(tlv.LP_CACHE_POLICY, inner))
    if packet.congestion_mark is not None:
        parts.append(tlv.encode_nonneg_tlv(tlv.LP_CONGESTION_MARK, packet.congestion_mark))
    for ack in packet.acks:
        parts.append(tlv.encode_tlv(tlv.LP_ACK, ack.to_bytes(8, "big")))
    if packet.tx_sequence is not None:
        parts.append(tlv.encode_tlv(tlv.LP_TX_SEQUENCE, packet.tx_sequence.to_bytes(8, "big")))
    if packet.non_discovery:
        parts.append(tlv.encode_tlv(tlv.LP_NON_DISCOVERY))
    if packet.prefix_announcement is not None:
        parts.append(tlv.encode_tlv(tlv.LP_PREFIX_ANNOUNCEMENT, packet.prefix_announcement))
    if packet.fragment is not None:
        parts.append(tlv.encode_tlv(tlv.LP_FRAGMENT, packet.fragment))
    return tlv.encode_tlv(tlv.LP_PACKET, b"".join(parts))


def wrap(fragment: bytes, *, pit_token: bytes | None = None, nack_reason: int | None = None,
         cache_policy: int | None = None, incoming_face_id: int | None = None) -> bytes:
    """An Interest or Data encoding wrapped in an LpPacket with the given header fields."""
    return encode_lp_packet(
        LpPacket(
            fragment=fragment,
            pit_token=pit_token,
            nack_reason=nack_reason,
            cache_policy=cache_policy,
            incoming_face_id=incoming_face_id,
        )
    )


def _fixed8(buf: bytes, start: int, end: int, what: str) -> int:
    if end - start != 8:
        raise DecodeError(f"{what} must be 8 octets")
    return int.from_bytes(buf[start:end], "big")


def decode_lp_packet(buf: bytes) -> LpPacket:
    """Decode one LpPacket that is the whole of ``buf``."""
    buf = bytes(buf)
    end = len(buf)
    pos = tlv.read_packet_start(buf, end, tlv.LP_PACKET, "LpPacket")
    fields: dict[str, object] = {}
    acks: list[int] = []
    fragment: bytes | None = None
    for tlv_type, start, stop in tlv.iter_tlvs(buf, pos, end):
        if fragment is not None:
            raise DecodeError("Fragment must be the last element of an LpPacket")
        if tlv_type == tlv.LP_FRAGMENT:
            fragment = buf[start:stop]
            continue
        if tlv_type == tlv.LP_ACK:
            acks.append(_fixed8(buf, start, stop, "Ack"))
            continue
        key, value = _decode_field(buf, tlv_type, start, stop)
        if key is None:
            continue
        if key in fields:
            raise DecodeError(f"repeated LpPacket field {tlv_type}")
        fields[key] = value
    packet = LpPacket(fragment=fragment, acks=tuple(acks))
    for key, value in fields.items():
        object.__setattr__(packet, key, value)
    return packet


def _decode_field(buf: bytes, tlv_type: int, start: int, stop: int) -> tuple[str | None, object]:
    if tlv_type == tlv.LP_PIT_TOKEN:
        if not 1 <= stop - start <= 32:
            raise DecodeError("PitToken must be 1 to 32 octets")
        return "pit_token", buf[start:stop]
    if tlv_type == tlv.LP_NACK:
        reason = 0
        for inner_type, inner_start, inner_stop in tlv.iter_tlvs(buf, start, stop):
            if inner_type == tlv.LP_NACK_REASON:
                reason = tlv.decode_nonneg_int(buf, inner_start, inner_stop)
            elif tlv.is_critical(inner_type):
                raise DecodeError(f"unrecognized critical element {inner_type} in Nack")
        return "nack_reason", reason
    if tlv_type == tlv.LP_SEQUENCE:
        return "sequence", _fixed8(buf, start, stop, "Sequence")
    if tlv_type == tlv.LP_TX_SEQUENCE:
        return "tx_sequence", _fixed8(buf, start, stop, "TxSequence")
    if tlv_type == tlv.LP_FRAG_INDEX:
        return "frag_index", tlv.decode_nonneg_int(buf, start, stop)
    if tlv_type == tlv.LP_FRAG_COUNT:
        return "frag_count", tlv.decode_nonneg_int(buf, start, stop)
    if tlv_type == tlv.LP_INCOMING_FACE_ID:
        return "incoming_face_id", tlv.decode_nonneg_int(buf, start, stop)
    if tlv_type == tlv.LP_NEXT_HOP_FACE_ID:
        return "next_hop_face_id", tlv.decode_nonneg_int(buf, start, stop)
    if tlv_type == tlv.LP_CACHE_POLICY:
        policy: int | None = None
        for inner_type, inner_start, inner_stop in tlv.iter_tlvs(buf, start, stop):
            if inner_type == tlv.LP_CACHE_POLICY_TYPE:
                policy = tlv.decode_nonneg_int(buf, inner_start, inner_stop)
            elif tlv.is_critical(inner_type):
                raise DecodeError(f"unrecognized critical element {inner_type} in CachePolicy")
        if policy is None:
            raise DecodeError("CachePolicy without CachePolicyType")
        return "cache_policy", policy
    if tlv_type == tlv.LP_CONGESTION_MARK:
        return "congestion_mark", tlv.decode_nonneg_int(buf, start, stop)
    if tlv_type == tlv.LP_NON_DISCOVERY:
        return "non_discovery", True
    if tlv_type == tlv.LP_PREFIX_ANNOUNCEMENT:
        return "prefix_announcement", buf[start:stop]
    if 800 <= tlv_type <= 959 and tlv_type & 0x3 == 0:
        return None, None
    raise DecodeError(f"unrecognized LpPacket field {tlv_type}")
