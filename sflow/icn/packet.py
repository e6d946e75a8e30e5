"""Interest, Data and Nack: the network-layer packets, their NDN-TLV v0.3 encoding and decoding.

Layouts from the NDN packet format v0.3 (``interest.rst``, ``data.rst``)::

    Interest = INTEREST-TYPE TLV-LENGTH Name [CanBePrefix] [MustBeFresh] [ForwardingHint] [Nonce]
               [InterestLifetime] [HopLimit] [ApplicationParameters [InterestSignatureInfo
               InterestSignatureValue]]
    Data     = DATA-TYPE TLV-LENGTH Name [MetaInfo] [Content] SignatureInfo SignatureValue

Decoding checks the order of recognized elements (as ndn-cxx does), skips unrecognized
non-critical elements and rejects critical ones, and raises only :class:`DecodeError`. A decoded
packet keeps its original encoding in ``wire`` so that a forwarder can pass it on unchanged;
``dataclasses.replace`` clears ``wire`` (it is not an init field), so a modified packet is always
re-encoded.

A Data packet without SignatureInfo is accepted (python-ndn produces one when asked not to sign);
:func:`make_data` signs with DigestSha256 unless told otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from sflow.errors import DecodeError
from sflow.icn import tlv
from sflow.icn.name import IMPLICIT_SHA256_DIGEST, PARAMETERS_SHA256_DIGEST, Component, Name, _scan, _scan_components, _trusted
from sflow.icn.signature import DigestSha256Signer, SignatureInfo, Signer, decode_signature_info
from sflow.icn.trusted import trusted_constructor

DEFAULT_INTEREST_LIFETIME = 4000
"""Milliseconds, when InterestLifetime is absent (spec interest.rst)."""


class ContentType(IntEnum):
    """MetaInfo ContentType codes (spec data.rst and the TLV type registry)."""

    BLOB = 0
    LINK = 1
    KEY = 2
    NACK = 3
    PREFIX_ANN = 5


class NackReason(IntEnum):
    """NDNLPv2 NackReason codes. Smaller is less severe, except NONE (ndn-cxx ``isLessSevere``)."""

    NONE = 0
    CONGESTION = 50
    DUPLICATE = 100
    NO_ROUTE = 150


def nack_reason_text(reason: int) -> str:
    try:
        return NackReason(reason).name
    except ValueError:
        return str(reason)


def is_less_severe(x: int, y: int) -> bool:
    """ndn-cxx ``lp::isLessSevere``: NONE is the most severe; otherwise the smaller code is less severe."""
    if x == NackReason.NONE:
        return False
    if y == NackReason.NONE:
        return True
    return x < y


@dataclass(frozen=True, slots=True)
class Interest:
    """An Interest. ``lifetime`` and ``hop_limit`` are ``None`` when the element is absent."""

    name: Name
    can_be_prefix: bool = False
    must_be_fresh: bool = False
    forwarding_hint: tuple[Name, ...] = ()
    nonce: int | None = None
    lifetime: int | None = None
    hop_limit: int | None = None
    app_parameters: bytes | None = None
    signature_info: SignatureInfo | None = None
    signature_value: bytes | None = None
    wire: bytes | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def lifetime_ms(self) -> int:
        """The effective InterestLifetime in milliseconds (4000 when absent)."""
        return DEFAULT_INTEREST_LIFETIME if self.lifetime is None else self.lifetime

    def matches_data(self, data: Data) -> bool:
        """ndn-cxx ``Interest::matchesData``: exact name, a prefix when CanBePrefix, or the full name."""
        iname = self.name.wire
        dname = data.name.wire
        if iname == dname:
            return True
        if self.can_be_prefix and len(iname) < len(dname) and self.name.is_prefix_of(data.name):
            return True
        return (
            len(self.name) == len(data.name) + 1
            and self.name.has_implicit_digest()
            and iname == data.full_name_wire()
        )


@dataclass(frozen=True, slots=True)
class MetaInfo:
    """MetaInfo: ContentType (``None`` = absent = BLOB), FreshnessPeriod (ms; ``None`` = absent = 0)
    and FinalBlockId. Absent and explicit default values are kept apart so encodings round-trip."""

    content_type: int | None = None
    freshness_period: int | None = None
    final_block_id: Component | None = None

    def encode(self) -> bytes:
        parts = []
        if self.content_type is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CONTENT_TYPE, self.content_type))
        if self.freshness_period is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.FRESHNESS_PERIOD, self.freshness_period))
        if self.final_block_id is not None:
            parts.append(tlv.encode_tlv(tlv.FINAL_BLOCK_ID, self.final_block_id.wire))
        if not parts:
            return b""
        return tlv.encode_tlv(tlv.META_INFO, b"".join(parts))


_EMPTY_META = MetaInfo()

_DIGEST_HEADER = bytes((IMPLICIT_SHA256_DIGEST, 32))
"""TLV-TYPE and TLV-LENGTH of an ImplicitSha256Digest component (one octet each)."""


@dataclass(frozen=True, slots=True)
class Data:
    """A Data packet."""

    name: Name
    meta_info: MetaInfo = _EMPTY_META
    content: bytes = b""
    signature_info: SignatureInfo | None = None
    signature_value: bytes | None = None
    wire: bytes | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def content_type(self) -> int:
        """ContentType; BLOB when absent."""
        value = self.meta_info.content_type
        return ContentType.BLOB if value is None else value

    @property
    def freshness_period(self) -> int:
        """FreshnessPeriod in ms; absent means 0: immediately stale (spec data.rst)."""
        period = self.meta_info.freshness_period
        return 0 if period is None else period

    def implicit_digest(self) -> bytes:
        """SHA-256 of the whole encoding (the ImplicitSha256Digest component's value)."""
        return hashlib.sha256(encode_data(self)).digest()

    def full_name_wire(self) -> bytes:
        """``wire`` of :meth:`full_name` (the name and its ImplicitSha256Digest), without building a Name."""
        wire = self.wire
        return self.name.wire + _DIGEST_HEADER + hashlib.sha256(encode_data(self) if wire is None else wire).digest()

    def full_name(self) -> Name:
        wire = self.full_name_wire()
        return _trusted(wire, (*self.name.ends, len(wire)))


@dataclass(frozen=True, slots=True)
class Nack:
    """A network Nack: the Nacked Interest and a NackReason (NDNLPv2)."""

    interest: Interest
    reason: int = NackReason.NONE


# ------------------------------------------------------------------------------------------------
# encoding


def encode_interest(interest: Interest) -> bytes:
    """The Interest's encoding (the cached ``wire`` when it came from the decoder or a builder)."""
    if interest.wire is not None:
        return interest.wire
    parts = [interest.name.encode()]
    if interest.can_be_prefix:
        parts.append(b"\x21\x00")
    if interest.must_be_fresh:
        parts.append(b"\x12\x00")
    if interest.forwarding_hint:
        parts.append(tlv.encode_tlv(tlv.FORWARDING_HINT, b"".join(n.encode() for n in interest.forwarding_hint)))
    if interest.nonce is not None:
        parts.append(b"\x0a\x04" + interest.nonce.to_bytes(4, "big"))
    if interest.lifetime is not None:
        parts.append(tlv.encode_nonneg_tlv(tlv.INTEREST_LIFETIME, interest.lifetime))
    if interest.hop_limit is not None:
        parts.append(bytes((tlv.HOP_LIMIT, 1, interest.hop_limit)))
    if interest.app_parameters is not None:
        parts.append(tlv.encode_tlv(tlv.APPLICATION_PARAMETERS, interest.app_parameters))
        if interest.signature_info is not None:
            parts.append(interest.signature_info.encode(tlv.INTEREST_SIGNATURE_INFO))
            parts.append(tlv.encode_tlv(tlv.INTEREST_SIGNATURE_VALUE, interest.signature_value or b""))
    wire = tlv.encode_tlv(tlv.INTEREST, b"".join(parts))
    object.__setattr__(interest, "wire", wire)
    return wire


def encode_data(data: Data) -> bytes:
    """The Data's encoding (the cached ``wire`` when available)."""
    if data.wire is not None:
        return data.wire
    parts = [data.name.encode(), data.meta_info.encode()]
    if data.content:
        parts.append(tlv.encode_tlv(tlv.CONTENT, data.content))
    if data.signature_info is not None:
        parts.append(data.signature_info.encode(tlv.SIGNATURE_INFO))
        parts.append(tlv.encode_tlv(tlv.SIGNATURE_VALUE, data.signature_value or b""))
    wire = tlv.encode_tlv(tlv.DATA, b"".join(parts))
    object.__setattr__(data, "wire", wire)
    return wire


def make_interest(
    name: Name | str,
    *,
    can_be_prefix: bool = False,
    must_be_fresh: bool = False,
    forwarding_hint: Sequence[Name] = (),
    nonce: int | None = None,
    lifetime: int | None = DEFAULT_INTEREST_LIFETIME,
    hop_limit: int | None = None,
    app_parameters: bytes | None = None,
    signer: Signer | None = None,
) -> Interest:
    """Build (and encode) an Interest.

    With ``app_parameters`` or a ``signer``, the name gets its ParametersSha256Digest component
    (replacing one already there, else appended) computed over ApplicationParameters to the end of
    the packet; with a ``signer`` the Interest is a v0.3 signed Interest (spec signed-interest.rst).
    """
    name = Name.coerce(name)
    if nonce is not None and not 0 <= nonce <= 0xFFFFFFFF:
        raise ValueError(f"Nonce must fit in 4 octets: {nonce}")
    if hop_limit is not None and not 0 <= hop_limit <= 255:
        raise ValueError(f"HopLimit must fit in 1 octet: {hop_limit}")
    signature_info = None
    signature_value = None
    if app_parameters is not None or signer is not None:
        params = b"" if app_parameters is None else bytes(app_parameters)
        components = list(name.components)
        digest_index = next(
            (i for i, c in enumerate(components) if c.type == PARAMETERS_SHA256_DIGEST), len(components)
        )
        bare = [c for c in components if c.type != PARAMETERS_SHA256_DIGEST]
        params_tlv = tlv.encode_tlv(tlv.APPLICATION_PARAMETERS, params)
        tail = params_tlv
        if signer is not None:
            signature_info = signer.signature_info()
            info_tlv = signature_info.encode(tlv.INTEREST_SIGNATURE_INFO)
            signature_value = signer.sign([*(c.wire for c in bare), params_tlv, info_tlv])
            tail += info_tlv + tlv.encode_tlv(tlv.INTEREST_SIGNATURE_VALUE, signature_value)
        digest = Component.params_digest(hashlib.sha256(tail).digest())
        bare.insert(min(digest_index, len(bare)), digest)
        name = Name.from_components(bare)
        app_parameters = params
    elif name.find_params_digest() != -1:
        raise ValueError(f"{name}: a ParametersSha256Digest component needs ApplicationParameters")
    interest = Interest(
        name,
        can_be_prefix,
        must_be_fresh,
        tuple(forwarding_hint),
        nonce,
        lifetime,
        hop_limit,
        app_parameters,
        signature_info,
        signature_value,
    )
    encode_interest(interest)
    return interest


_DEFAULT_SIGNER = DigestSha256Signer()


def make_data(
    name: Name | str,
    content: bytes = b"",
    *,
    freshness_period: int | None = None,
    content_type: int | None = None,
    final_block_id: Component | None = None,
    signer: Signer | None = _DEFAULT_SIGNER,
) -> Data:
    """Build, sign (DigestSha256 unless another signer, or ``None`` for unsigned) and encode a Data."""
    name = Name.coerce(name)
    meta = MetaInfo(content_type, freshness_period, final_block_id)
    if signer is None:
        data = Data(name, meta, bytes(content))
    else:
        info = signer.signature_info()
        portion = [name.encode(), meta.encode()]
        if content:
            portion.append(tlv.encode_tlv(tlv.CONTENT, content))
        portion.append(info.encode(tlv.SIGNATURE_INFO))
        data = Data(name, meta, bytes(content), info, signer.sign(portion))
    encode_data(data)
    return data


# ------------------------------------------------------------------------------------------------
# decoding

# Decoded packets are built from validated fields, their encoding (``wire``) last.
_new_interest: Callable[..., Interest] = trusted_constructor(Interest)
_new_data: Callable[..., Data] = trusted_constructor(Data)


def _decode_name(buf: bytes, start: int, end: int) -> Name:
    wire = buf[start:end]
    return _trusted(wire, _scan_components(wire))


def decode_interest(buf: bytes) -> Interest:
    """Decode one Interest that is the whole of ``buf``."""
    if type(buf) is not bytes:
        buf = bytes(buf)
    end = len(buf)
    pos = tlv.read_packet_start(buf, end, tlv.INTEREST, "Interest")
    tlv_type, start, stop = tlv.read_tlv(buf, pos, end)
    if tlv_type != tlv.NAME:
        raise DecodeError("Interest must start with its Name")
    name_wire = buf[start:stop]
    ends, n_params_digest = _scan(name_wire)
    if not ends:
        raise DecodeError("Interest Name must have at least one component")
    name = _trusted(name_wire, ends)
    pos = stop
    can_be_prefix = must_be_fresh = False
    forwarding_hint: tuple[Name, ...] = ()
    nonce = lifetime = hop_limit = None
    app_parameters = signature_value = None
    signature_info = None
    last = 0
    while pos < end:
        tlv_type = buf[pos]
        if tlv_type < 253 and pos + 1 < end and buf[pos + 1] < 253:
            start = pos + 2
            stop = start + buf[pos + 1]
            if stop > end:
                raise DecodeError(f"TLV-LENGTH of type {tlv_type} runs past the end of the Interest")
        else:
            tlv_type, start, stop = tlv.read_tlv(buf, pos, end)
        pos = stop
        if tlv_type == tlv.NONCE:
            if last >= 4:
                raise DecodeError("Nonce out of order")
            if stop - start != 4:
                raise DecodeError("Nonce must be 4 octets")
            nonce = int.from_bytes(buf[start:stop], "big")
            last = 4
        elif tlv_type == tlv.INTEREST_LIFETIME:
            if last >= 5:
                raise DecodeError("InterestLifetime out of order")
            lifetime = tlv.decode_nonneg_int(buf, start, stop)
            last = 5
        elif tlv_type == tlv.CAN_BE_PREFIX:
            if last >= 1:
                raise DecodeError("CanBePrefix out of order")
            if stop != start:
                raise DecodeError("CanBePrefix must be empty")
            can_be_prefix = True
            last = 1
        elif tlv_type == tlv.MUST_BE_FRESH:
            if last >= 2:
                raise DecodeError("MustBeFresh out of order")
            if stop != start:
                raise DecodeError("MustBeFresh must be empty")
            must_be_fresh = True
            last = 2
        elif tlv_type == tlv.FORWARDING_HINT:
            if last >= 3:
                raise DecodeError("ForwardingHint out of order")
            hints = []
            for hint_type, hint_start, hint_stop in tlv.iter_tlvs(buf, start, stop):
                if hint_type == tlv.NAME:
                    hints.append(_decode_name(buf, hint_start, hint_stop))
                elif tlv.is_critical(hint_type):
                    raise DecodeError(f"unrecognized critical element {hint_type} in ForwardingHint")
            forwarding_hint = tuple(hints)
            last = 3
        elif tlv_type == tlv.HOP_LIMIT:
            if last >= 6:
                raise DecodeError("HopLimit out of order")
            if stop - start != 1:
                raise DecodeError("HopLimit must be 1 octet")
            hop_limit = buf[start]
            last = 6
        elif tlv_type == tlv.APPLICATION_PARAMETERS:
            if last >= 7:
                raise DecodeError("ApplicationParameters out of order")
            app_parameters = buf[start:stop]
            last = 7
        elif tlv_type == tlv.INTEREST_SIGNATURE_INFO:
            if last != 7:
                raise DecodeError("InterestSignatureInfo must follow ApplicationParameters")
            signature_info = decode_signature_info(buf, start, stop)
            last = 8
        elif tlv_type == tlv.INTEREST_SIGNATURE_VALUE:
            if last != 8:
                raise DecodeError("InterestSignatureValue must follow InterestSignatureInfo")
            signature_value = buf[start:stop]
            last = 9
        elif tlv_type == tlv.NAME or tlv.is_critical(tlv_type):
            raise DecodeError(f"unrecognized critical element {tlv_type} in Interest")
    if signature_info is not None and signature_value is None:
        raise DecodeError("InterestSignatureInfo without InterestSignatureValue")
    if app_parameters is not None:
        if n_params_digest != 1:
            raise DecodeError("Interest with ApplicationParameters needs exactly one ParametersSha256Digest")
    elif n_params_digest:
        raise DecodeError("ParametersSha256Digest without ApplicationParameters")
    return _new_interest(
        name,
        can_be_prefix,
        must_be_fresh,
        forwarding_hint,
        nonce,
        lifetime,
        hop_limit,
        app_parameters,
        signature_info,
        signature_value,
        buf,
    )


def decode_meta_info(buf: bytes, start: int, end: int) -> MetaInfo:
    content_type: int | None = None
    freshness: int | None = None
    final_block: Component | None = None
    last = 0
    for tlv_type, value_start, value_end in tlv.iter_tlvs(buf, start, end):
        if tlv_type == tlv.CONTENT_TYPE:
            if last >= 1:
                raise DecodeError("ContentType out of order")
            content_type = tlv.decode_nonneg_int(buf, value_start, value_end)
            last = 1
        elif tlv_type == tlv.FRESHNESS_PERIOD:
            if last >= 2:
                raise DecodeError("FreshnessPeriod out of order")
            freshness = tlv.decode_nonneg_int(buf, value_start, value_end)
            last = 2
        elif tlv_type == tlv.FINAL_BLOCK_ID:
            if last >= 3:
                raise DecodeError("FinalBlockId out of order")
            inner = buf[value_start:value_end]
            ends = _scan_components(inner)
            if len(ends) != 1:
                raise DecodeError("FinalBlockId must hold exactly one name component")
            comp_type, comp_start, comp_end = tlv.read_tlv(inner, 0, len(inner))
            final_block = Component(comp_type, inner[comp_start:comp_end])
            last = 3
        elif tlv.is_critical(tlv_type):
            raise DecodeError(f"unrecognized critical element {tlv_type} in MetaInfo")
    if content_type is None and freshness is None and final_block is None:
        return _EMPTY_META
    return MetaInfo(content_type, freshness, final_block)


# Decoded MetaInfo and SignatureInfo values repeat from packet to packet (same freshness, same
# signature type and key): frozen values, so equal encodings can share one object. Bounded.
_META_CACHE: dict[bytes, MetaInfo] = {}
_SIGNATURE_INFO_CACHE: dict[bytes, SignatureInfo] = {}
_CACHE_LIMIT = 512
_T = TypeVar("_T")


def _decode_cached(
    cache: dict[bytes, _T], decode: Callable[[bytes, int, int], _T], buf: bytes, start: int, stop: int
) -> _T:
    raw = buf[start:stop]
    value = cache.get(raw)
    if value is None:
        value = decode(buf, start, stop)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[raw] = value
    return value


def decode_data(buf: bytes) -> Data:
    """Decode one Data that is the whole of ``buf``."""
    if type(buf) is not bytes:
        buf = bytes(buf)
    end = len(buf)
    pos = tlv.read_packet_start(buf, end, tlv.DATA, "Data")
    tlv_type, start, stop = tlv.read_tlv(buf, pos, end)
    if tlv_type != tlv.NAME:
        raise DecodeError("Data must start with its Name")
    name = _decode_name(buf, start, stop)
    pos = stop
    meta = _EMPTY_META
    content = b""
    signature_info = None
    signature_value = None
    last = 0
    while pos < end:
        tlv_type = buf[pos]
        if tlv_type < 253 and pos + 1 < end and buf[pos + 1] < 253:
            start = pos + 2
            stop = start + buf[pos + 1]
            if stop > end:
                raise DecodeError(f"TLV-LENGTH of type {tlv_type} runs past the end of the Data")
        else:
            tlv_type, start, stop = tlv.read_tlv(buf, pos, end)
        pos = stop
        if tlv_type == tlv.CONTENT:
            if last >= 2:
                raise DecodeError("Content out of order")
            content = buf[start:stop]
            last = 2
        elif tlv_type == tlv.META_INFO:
            if last >= 1:
                raise DecodeError("MetaInfo out of order")
            meta = _decode_cached(_META_CACHE, decode_meta_info, buf, start, stop)
            last = 1
        elif tlv_type == tlv.SIGNATURE_INFO:
            if last >= 3:
                raise DecodeError("SignatureInfo out of order")
            signature_info = _decode_cached(_SIGNATURE_INFO_CACHE, decode_signature_info, buf, start, stop)
            last = 3
        elif tlv_type == tlv.SIGNATURE_VALUE:
            if last != 3:
                raise DecodeError("SignatureValue must follow SignatureInfo")
            signature_value = buf[start:stop]
            last = 4
        elif tlv_type == tlv.NAME or tlv.is_critical(tlv_type):
            raise DecodeError(f"unrecognized critical element {tlv_type} in Data")
    if signature_info is not None and signature_value is None:
        raise DecodeError("SignatureInfo without SignatureValue")
    return _new_data(name, meta, content, signature_info, signature_value, buf)


def interest_signed_portion(interest: Interest) -> list[bytes]:
    """The parts a signed Interest's signature covers (spec signed-interest.rst)."""
    if interest.app_parameters is None or interest.signature_info is None:
        raise ValueError("not a signed Interest")
    parts = [c.wire for c in interest.name.components if c.type != PARAMETERS_SHA256_DIGEST]
    parts.append(tlv.encode_tlv(tlv.APPLICATION_PARAMETERS, interest.app_parameters))
    parts.append(_signature_info_wire(encode_interest(interest), tlv.INTEREST_SIGNATURE_INFO))
    return parts


def data_signed_portion(data: Data) -> list[bytes]:
    """The part of the Data's encoding a signature covers: Name through SignatureInfo."""
    wire = encode_data(data)
    _outer, pos, end = tlv.read_tlv(wire, 0, len(wire))
    start = pos
    for tlv_type, _vs, value_end in tlv.iter_tlvs(wire, pos, end):
        if tlv_type == tlv.SIGNATURE_INFO:
            return [wire[start:value_end]]
    raise ValueError("Data has no SignatureInfo")


def params_digest_valid(interest: Interest) -> bool:
    """Whether the ParametersSha256Digest component matches ApplicationParameters..end of packet."""
    if interest.app_parameters is None:
        return interest.name.find_params_digest() == -1
    index = interest.name.find_params_digest()
    if index < 0:
        return False
    wire = encode_interest(interest)
    _outer, pos, end = tlv.read_tlv(wire, 0, len(wire))
    for tlv_type, value_start, _ve in tlv.iter_tlvs(wire, pos, end):
        if tlv_type == tlv.APPLICATION_PARAMETERS:
            header = tlv.var_number_size(tlv.APPLICATION_PARAMETERS) + tlv.var_number_size(
                len(interest.app_parameters)
            )
            tail = wire[value_start - header :]
            return hashlib.sha256(tail).digest() == interest.name[index].value
    return False


def _signature_info_wire(wire: bytes, info_type: int) -> bytes:
    _outer, pos, end = tlv.read_tlv(wire, 0, len(wire))
    element_start = pos
    while element_start < end:
        tlv_type, _vs, value_end = tlv.read_tlv(wire, element_start, end)
        if tlv_type == info_type:
            return wire[element_start:value_end]
        element_start = value_end
    raise ValueError("no signature info element")
