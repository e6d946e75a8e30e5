"""NDN-TLV primitives: VAR-NUMBER, NonNegativeInteger, TLV blocks and the type numbers.

Follows the NDN packet format specification v0.3, ``tlv.rst``:

* TLV-TYPE and TLV-LENGTH are VAR-NUMBERs: a first octet below 253 is the value itself; 253, 254
  and 255 announce a 2-, 4- and 8-octet big-endian value. The shortest form is mandatory, so a
  longer-than-needed encoding is rejected when decoding.
* A NonNegativeInteger is 1, 2, 4 or 8 octets, big-endian.
* An unrecognized element is *critical* when its TLV-TYPE is at most 31 or odd; a packet with a
  critical unrecognized element is dropped, a non-critical one is ignored ("evolvability").

Every decoder in this package reports malformed input with :class:`~sflow.errors.DecodeError` and
nothing else. Decoders work on ``bytes`` with offsets to avoid copying.
"""

from __future__ import annotations

from collections.abc import Iterator

from sflow.errors import DecodeError

# --- packet types (spec types.rst) -------------------------------------------------------------
INTEREST = 0x05
DATA = 0x06
LP_PACKET = 0x64

# --- common fields ------------------------------------------------------------------------------
NAME = 0x07
IMPLICIT_SHA256_DIGEST_COMPONENT = 0x01
PARAMETERS_SHA256_DIGEST_COMPONENT = 0x02
GENERIC_NAME_COMPONENT = 0x08
KEYWORD_NAME_COMPONENT = 0x20
SEGMENT_NAME_COMPONENT = 0x32
BYTE_OFFSET_NAME_COMPONENT = 0x34
VERSION_NAME_COMPONENT = 0x36
TIMESTAMP_NAME_COMPONENT = 0x38
SEQUENCE_NUM_NAME_COMPONENT = 0x3A

# --- Interest -----------------------------------------------------------------------------------
CAN_BE_PREFIX = 0x21
MUST_BE_FRESH = 0x12
FORWARDING_HINT = 0x1E
NONCE = 0x0A
INTEREST_LIFETIME = 0x0C
HOP_LIMIT = 0x22
APPLICATION_PARAMETERS = 0x24
INTEREST_SIGNATURE_INFO = 0x2C
INTEREST_SIGNATURE_VALUE = 0x2E

# --- Data ---------------------------------------------------------------------------------------
META_INFO = 0x14
CONTENT = 0x15
SIGNATURE_INFO = 0x16
SIGNATURE_VALUE = 0x17
CONTENT_TYPE = 0x18
FRESHNESS_PERIOD = 0x19
FINAL_BLOCK_ID = 0x1A

# --- signature ----------------------------------------------------------------------------------
SIGNATURE_TYPE = 0x1B
KEY_LOCATOR = 0x1C
KEY_DIGEST = 0x1D
SIGNATURE_NONCE = 0x26
SIGNATURE_TIME = 0x28
SIGNATURE_SEQ_NUM = 0x2A
VALIDITY_PERIOD = 0xFD

# --- NDNLPv2 (https://redmine.named-data.net/projects/nfd/wiki/NDNLPv2) -------------------------
LP_FRAGMENT = 0x50
LP_SEQUENCE = 0x51
LP_FRAG_INDEX = 0x52
LP_FRAG_COUNT = 0x53
LP_PIT_TOKEN = 0x62
LP_NACK = 0x0320
LP_NACK_REASON = 0x0321
LP_INCOMING_FACE_ID = 0x032C
LP_NEXT_HOP_FACE_ID = 0x0330
LP_CACHE_POLICY = 0x0334
LP_CACHE_POLICY_TYPE = 0x0335
LP_CONGESTION_MARK = 0x0340
LP_ACK = 0x0344
LP_TX_SEQUENCE = 0x0348
LP_NON_DISCOVERY = 0x034C
LP_PREFIX_ANNOUNCEMENT = 0x0350

# --- NFD management (https://redmine.named-data.net/projects/nfd/wiki/ControlCommand) -----------
CONTROL_RESPONSE = 0x65
STATUS_CODE = 0x66
STATUS_TEXT = 0x67
CONTROL_PARAMETERS = 0x68
CP_FACE_ID = 0x69
CP_COST = 0x6A
CP_STRATEGY = 0x6B
CP_FLAGS = 0x6C
CP_EXPIRATION_PERIOD = 0x6D
CP_ORIGIN = 0x6F
CP_MASK = 0x70
CP_URI = 0x72
CP_LOCAL_URI = 0x81
CP_CAPACITY = 0x83
CP_COUNT = 0x84
CP_FACE_PERSISTENCY = 0x85
CP_BASE_CONGESTION_MARKING_INTERVAL = 0x87
CP_DEFAULT_CONGESTION_THRESHOLD = 0x88
CP_MTU = 0x89

MAX_NDN_PACKET_SIZE = 8800
"""ndn-cxx ``MAX_NDN_PACKET_SIZE``: the largest packet a forwarder accepts (NFD stream transport)."""

_MAX_VAR_NUMBER = (1 << 64) - 1


def is_critical(tlv_type: int) -> bool:
    """Whether an unrecognized element of this type must make the packet invalid (spec tlv.rst)."""
    return tlv_type <= 31 or (tlv_type & 1) == 1


def var_number_size(value: int) -> int:
    """Octets taken by ``value`` as a VAR-NUMBER."""
    if value < 253:
        return 1
    if value <= 0xFFFF:
        return 3
    if value <= 0xFFFFFFFF:
        return 5
    return 9


def encode_var_number(value: int) -> bytes:
    """Encode a VAR-NUMBER in its shortest form.

    >>> encode_var_number(1024).hex()
    'fd0400'
    """
    if value < 0 or value > _MAX_VAR_NUMBER:
        raise ValueError(f"VAR-NUMBER out of range: {value}")
    if value < 253:
        return bytes((value,))
    if value <= 0xFFFF:
        return b"\xfd" + value.to_bytes(2, "big")
    if value <= 0xFFFFFFFF:
        return b"\xfe" + value.to_bytes(4, "big")
    return b"\xff" + value.to_bytes(8, "big")


def read_var_number(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a VAR-NUMBER at ``pos`` (not beyond ``end``); return ``(value, next position)``.

    Raises :class:`DecodeError` when the buffer is too short or the encoding is not the shortest.
    """
    if pos >= end:
        raise DecodeError("truncated VAR-NUMBER")
    first = buf[pos]
    if first < 253:
        return first, pos + 1
    if first == 253:
        size, minimum = 2, 253
    elif first == 254:
        size, minimum = 4, 0x10000
    else:
        size, minimum = 8, 0x100000000
    stop = pos + 1 + size
    if stop > end:
        raise DecodeError("truncated VAR-NUMBER")
    value = int.from_bytes(buf[pos + 1 : stop], "big")
    if value < minimum:
        raise DecodeError(f"VAR-NUMBER {value} not in its shortest form")
    return value, stop


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a TLV header at ``pos``; return ``(type, value start, value end)``.

    The value must fit before ``end``.
    """
    if pos + 2 <= end and buf[pos] < 253 and buf[pos + 1] < 253:
        # Fast path: one-octet TYPE and LENGTH, which is almost every element.
        value_start = pos + 2
        value_end = value_start + buf[pos + 1]
        if value_end > end:
            raise DecodeError(f"TLV-LENGTH of type {buf[pos]} runs past the end of its enclosing element")
        return buf[pos], value_start, value_end
    tlv_type, pos = read_var_number(buf, pos, end)
    length, pos = read_var_number(buf, pos, end)
    if pos + length > end:
        raise DecodeError(f"TLV-LENGTH of type {tlv_type} runs past the end of its enclosing element")
    return tlv_type, pos, pos + length


def read_packet_start(buf: bytes, end: int, expected: int, what: str) -> int:
    """Check that ``buf[:end]`` is exactly one element of type ``expected`` (a ``what``); return
    where its value starts."""
    if end >= 2 and buf[0] == expected and buf[1] < 253:
        if 2 + buf[1] != end:
            raise DecodeError(f"{what} length does not match the packet")
        return 2
    outer, pos, value_end = read_tlv(buf, 0, end)
    if outer != expected:
        raise DecodeError(f"expected {what} (type {expected}), got type {outer}")
    if value_end != end:
        raise DecodeError(f"trailing octets after the {what}")
    return pos


def iter_tlvs(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Iterate the elements ``(type, value start, value end)`` laid one after another in ``buf[pos:end]``."""
    while pos < end:
        tlv_type, value_start, value_end = read_tlv(buf, pos, end)
        yield tlv_type, value_start, value_end
        pos = value_end


def encode_tlv(tlv_type: int, value: bytes = b"") -> bytes:
    """Encode one TLV element."""
    length = len(value)
    if tlv_type < 253 and length < 253:
        return bytes((tlv_type, length)) + value
    return encode_var_number(tlv_type) + encode_var_number(length) + value


def encode_nonneg_int(value: int) -> bytes:
    """Encode a NonNegativeInteger value in 1, 2, 4 or 8 octets (the smallest that fits)."""
    if value < 0:
        raise ValueError(f"NonNegativeInteger must not be negative: {value}")
    if value <= 0xFF:
        return bytes((value,))
    if value <= 0xFFFF:
        return value.to_bytes(2, "big")
    if value <= 0xFFFFFFFF:
        return value.to_bytes(4, "big")
    if value <= _MAX_VAR_NUMBER:
        return value.to_bytes(8, "big")
    raise ValueError(f"NonNegativeInteger out of range: {value}")


def decode_nonneg_int(buf: bytes, start: int, end: int) -> int:
    """Decode the NonNegativeInteger in ``buf[start:end]``; its length must be 1, 2, 4 or 8."""
    size = end - start
    if size == 1:
        return buf[start]
    if size not in (2, 4, 8):
        raise DecodeError(f"NonNegativeInteger of invalid length {size}")
    return int.from_bytes(buf[start:end], "big")


def encode_nonneg_tlv(tlv_type: int, value: int) -> bytes:
    """Encode a TLV element whose value is a NonNegativeInteger."""
    return encode_tlv(tlv_type, encode_nonneg_int(value))


def read_packet_length(buf: bytes, pos: int, end: int) -> int | None:
    """Size of the whole TLV element starting at ``pos``, or ``None`` if its header is not complete yet.

    Used by stream framing, which may see any prefix of a packet. Raises :class:`DecodeError` when
    the header is invalid (not shortest form).
    """
    if pos >= end:
        return None
    first = buf[pos]
    type_size = 1 if first < 253 else 3 if first == 253 else 5 if first == 254 else 9
    if pos + type_size >= end:
        return None
    second = buf[pos + type_size]
    length_size = 1 if second < 253 else 3 if second == 253 else 5 if second == 254 else 9
    if pos + type_size + length_size > end:
        return None
    read_var_number(buf, pos, pos + type_size)
    length, value_start = read_var_number(buf, pos + type_size, pos + type_size + length_size)
    return value_start - pos + length
