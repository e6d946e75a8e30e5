"""NDN names and typed name components, their TLV form and their URI form.

Component types follow the NDN packet format v0.3 (``name.rst``) and the NDN naming conventions
(NDN-TR-0022 rev. 3): generic (8), ImplicitSha256Digest (1), ParametersSha256Digest (2),
keyword (32), segment (50), byte offset (52), version (54), timestamp (56), sequence number (58).

The URI form follows ndn-cxx ``Name::toUri``: unreserved characters (``A-Z a-z 0-9 - . _ ~``) as
they are, other octets as ``%XX``; a generic component made only of periods gets three more
(``...`` is the empty component); other types are written ``<type>=<value>``, with the aliases
``sha256digest=``, ``params-sha256=`` (hex) and ``seg=``, ``off=``, ``v=``, ``t=``, ``seq=``
(decimal) when the value is a valid NonNegativeInteger.

A :class:`Name` keeps its TLV-VALUE (the concatenated component TLVs) as ``wire``; since the TLV
encoding of components is order-preserving, comparing ``wire`` byte-wise is the canonical order of
the spec, and ``wire`` prefixes at component boundaries are the name's prefixes. The tables use
these byte strings as keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import overload

from sflow.errors import DecodeError, InvalidNameError
from sflow.icn import tlv
from sflow.icn.trusted import trusted_constructor

GENERIC = tlv.GENERIC_NAME_COMPONENT
IMPLICIT_SHA256_DIGEST = tlv.IMPLICIT_SHA256_DIGEST_COMPONENT
PARAMETERS_SHA256_DIGEST = tlv.PARAMETERS_SHA256_DIGEST_COMPONENT
KEYWORD = tlv.KEYWORD_NAME_COMPONENT
SEGMENT = tlv.SEGMENT_NAME_COMPONENT
BYTE_OFFSET = tlv.BYTE_OFFSET_NAME_COMPONENT
VERSION = tlv.VERSION_NAME_COMPONENT
TIMESTAMP = tlv.TIMESTAMP_NAME_COMPONENT
SEQUENCE_NUM = tlv.SEQUENCE_NUM_NAME_COMPONENT

MAX_COMPONENT_TYPE = 0xFFFF

_NUMBER_ALIASES: dict[int, str] = {
    SEGMENT: "seg",
    BYTE_OFFSET: "off",
    VERSION: "v",
    TIMESTAMP: "t",
    SEQUENCE_NUM: "seq",
}
_ALIAS_TYPES: dict[str, int] = {alias: typ for typ, alias in _NUMBER_ALIASES.items()}
_DIGEST_ALIASES: dict[int, str] = {
    IMPLICIT_SHA256_DIGEST: "sha256digest",
    PARAMETERS_SHA256_DIGEST: "params-sha256",
}
_DIGEST_ALIAS_TYPES: dict[str, int] = {alias: typ for typ, alias in _DIGEST_ALIASES.items()}
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE_TABLE: tuple[str, ...] = tuple(
    chr(octet) if octet in _UNRESERVED else f"%{octet:02X}" for octet in range(256)
)


def _escape(value: bytes) -> str:
    text = "".join([_ESCAPE_TABLE[octet] for octet in value])
    if value.count(b".") == len(value):
        # Only periods (or empty): three more periods, so that "." and ".." stay path-safe.
        return text + "..."
    return text


def _unescape(text: str, whole: str) -> bytes:
    raw = text.encode("utf-8")
    if b"%" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        octet = raw[i]
        if octet == 0x25:  # '%'
            digits = raw[i + 1 : i + 3]
            try:
                if len(digits) != 2:
                    raise ValueError
                out.append(int(digits, 16))
            except ValueError:
                raise InvalidNameError(f"bad percent-escape in name component {whole!r}") from None
            i += 3
        else:
            out.append(octet)
            i += 1
    return bytes(out)


def _is_nonneg_int(value: bytes) -> bool:
    return len(value) in (1, 2, 4, 8)


@dataclass(frozen=True, slots=True)
class Component:
    """One name component: a TLV-TYPE and an octet value. Ordered canonically (type, length, value)."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.type <= MAX_COMPONENT_TYPE:
            raise InvalidNameError(f"name component type {self.type} not in 1..{MAX_COMPONENT_TYPE}")
        if self.type in _DIGEST_ALIASES and len(self.value) != 32:
            raise InvalidNameError(f"{_DIGEST_ALIASES[self.type]} component must be 32 octets")

    # --- constructors -----------------------------------------------------------------------
    @classmethod
    def generic(cls, value: bytes | str) -> Component:
        """A generic component; a ``str`` value is taken as UTF-8 octets (not as a URI)."""
        return cls(GENERIC, value.encode("utf-8") if isinstance(value, str) else bytes(value))

    @classmethod
    def from_number(cls, number: int, component_type: int) -> Component:
        """A component whose value is ``number`` as a NonNegativeInteger."""
        try:
            return cls(component_type, tlv.encode_nonneg_int(number))
        except ValueError as exc:
            raise InvalidNameError(str(exc)) from None

    @classmethod
    def segment(cls, number: int) -> Component:
        return cls.from_number(number, SEGMENT)

    @classmethod
    def byte_offset(cls, number: int) -> Component:
        return cls.from_number(number, BYTE_OFFSET)

    @classmethod
    def version(cls, number: int) -> Component:
        return cls.from_number(number, VERSION)

    @classmethod
    def timestamp(cls, microseconds: int) -> Component:
        """A timestamp component: microseconds since the Unix epoch (naming conventions rev. 3)."""
        return cls.from_number(microseconds, TIMESTAMP)

    @classmethod
    def sequence_num(cls, number: int) -> Component:
        return cls.from_number(number, SEQUENCE_NUM)

    @classmethod
    def keyword(cls, value: bytes | str) -> Component:
        return cls(KEYWORD, value.encode("utf-8") if isinstance(value, str) else bytes(value))

    @classmethod
    def implicit_digest(cls, digest: bytes) -> Component:
        return cls(IMPLICIT_SHA256_DIGEST, bytes(digest))

    @classmethod
    def params_digest(cls, digest: bytes) -> Component:
        return cls(PARAMETERS_SHA256_DIGEST, bytes(digest))

    @classmethod
    def from_uri(cls, text: str) -> Component:
        """Parse one component in URI form (without ``/``)."""
        if not text:
            raise InvalidNameError("empty name component in URI (write the empty component as '...')")
        type_text, sep, value_text = text.partition("=")
        if not sep:
            component_type, value_text = GENERIC, text
        elif type_text in _DIGEST_ALIAS_TYPES:
            try:
                return cls(_DIGEST_ALIAS_TYPES[type_text], bytes.fromhex(value_text))
            except ValueError:
                raise InvalidNameError(f"bad hex digest in name component {text!r}") from None
        elif type_text in _ALIAS_TYPES:
            if not value_text.isdigit():
                raise InvalidNameError(f"{type_text}= needs a decimal number in name component {text!r}")
            return cls.from_number(int(value_text), _ALIAS_TYPES[type_text])
        elif type_text.isdigit():
            component_type = int(type_text)
            if not 1 <= component_type <= MAX_COMPONENT_TYPE:
                raise InvalidNameError(f"name component type {component_type} not in 1..{MAX_COMPONENT_TYPE}")
            if component_type in _DIGEST_ALIASES:
                return cls(component_type, _unescape(value_text, text))
        else:
            raise InvalidNameError(
                f"name component {text!r} has '=' but {type_text!r} is not a type; escape '=' as %3D"
            )
        if value_text and value_text.count(".") == len(value_text):
            if len(value_text) < 3:
                raise InvalidNameError(f"name component {text!r}: '.' and '..' are not valid components")
            return cls(component_type, b"." * (len(value_text) - 3))
        if not value_text:
            raise InvalidNameError(f"name component {text!r} has an empty value (write it as '...')")
        return cls(component_type, _unescape(value_text, text))

    # --- accessors --------------------------------------------------------------------------
    @property
    def wire(self) -> bytes:
        """The component's TLV encoding."""
        return tlv.encode_tlv(self.type, self.value)

    def to_number(self) -> int:
        """The value as a NonNegativeInteger (for segment, version, ... components)."""
        if not _is_nonneg_int(self.value):
            raise InvalidNameError(f"component {self.to_uri()} does not hold a NonNegativeInteger")
        return int.from_bytes(self.value, "big")

    def is_segment(self) -> bool:
        return self.type == SEGMENT and _is_nonneg_int(self.value)

    def is_version(self) -> bool:
        return self.type == VERSION and _is_nonneg_int(self.value)

    def to_uri(self) -> str:
        typ = self.type
        if typ == GENERIC:
            return _escape(self.value)
        alias = _DIGEST_ALIASES.get(typ)
        if alias is not None:
            return f"{alias}={self.value.hex()}"
        alias = _NUMBER_ALIASES.get(typ)
        if alias is not None and _is_nonneg_int(self.value):
            number = int.from_bytes(self.value, "big")
            if tlv.encode_nonneg_int(number) == self.value:  # a non-minimal encoding keeps its octets
                return f"{alias}={number}"
        return f"{typ}={_escape(self.value)}"

    def __str__(self) -> str:
        return self.to_uri()

    def __lt__(self, other: Component) -> bool:
        return self.wire < other.wire

    def __le__(self, other: Component) -> bool:
        return self.wire <= other.wire


def _scan(wire: bytes) -> tuple[tuple[int, ...], int]:
    """End offsets of the components laid out in ``wire`` and how many are ParametersSha256Digest.

    Raises :class:`DecodeError` if the components are malformed.
    """
    ends: list[int] = []
    append = ends.append
    n_params = 0
    pos = 0
    end = len(wire)
    while pos < end:
        comp_type = wire[pos]
        if comp_type < 253 and pos + 1 < end and wire[pos + 1] < 253:
            length = wire[pos + 1]
            pos += 2 + length
            if pos > end:
                raise DecodeError("name component runs past the end of the Name")
        else:
            comp_type, start, pos = tlv.read_tlv(wire, pos, end)
            length = pos - start
            if comp_type > MAX_COMPONENT_TYPE:
                raise DecodeError(f"name component type {comp_type} out of range")
        if comp_type <= PARAMETERS_SHA256_DIGEST:
            if comp_type == 0:
                raise DecodeError("name component type 0 is invalid")
            if length != 32:
                raise DecodeError("digest name component must be 32 octets")
            if comp_type == PARAMETERS_SHA256_DIGEST:
                n_params += 1
        append(pos)
    return tuple(ends), n_params


def _scan_components(wire: bytes) -> tuple[int, ...]:
    """End offsets of the components laid out in ``wire``; :class:`DecodeError` if malformed."""
    return _scan(wire)[0]


@dataclass(frozen=True, slots=True, repr=False)
class Name:
    """An NDN name. ``wire`` is the Name's TLV-VALUE; equality, hashing and order use it alone."""

    wire: bytes = b""
    ends: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.wire and not self.ends:
            object.__setattr__(self, "ends", _scan_components(self.wire))

    def __hash__(self) -> int:
        return hash(self.wire)

    # --- constructors -----------------------------------------------------------------------
    @classmethod
    def from_wire(cls, wire: bytes) -> Name:
        """A name from its TLV-VALUE; :class:`DecodeError` if the components are malformed."""
        return _trusted(bytes(wire), _scan_components(wire))

    @classmethod
    def from_components(cls, components: Iterable[Component]) -> Name:
        parts = [component.wire for component in components]
        ends: list[int] = []
        total = 0
        for part in parts:
            total += len(part)
            ends.append(total)
        return _trusted(b"".join(parts), tuple(ends))

    @classmethod
    def from_uri(cls, uri: str) -> Name:
        """Parse an NDN URI such as ``/sflow/fn/seg=3`` (an ``ndn:`` scheme is accepted)."""
        text = uri
        if text.startswith("ndn:"):
            text = text[4:]
            if text.startswith("//"):
                # ndn://authority/path: the authority is ignored, as ndn-cxx does.
                slash = text.find("/", 2)
                text = "/" if slash < 0 else text[slash:]
        text = text.strip()
        if text.startswith("/"):
            text = text[1:]
        if text.endswith("/"):
            text = text[:-1]
        if not text:
            return EMPTY_NAME
        return cls.from_components(Component.from_uri(part) for part in text.split("/"))

    @classmethod
    def coerce(cls, value: Name | str) -> Name:
        """A :class:`Name` as it is, or a URI string parsed."""
        return value if isinstance(value, Name) else cls.from_uri(value)

    # --- structure --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ends)

    @overload
    def __getitem__(self, index: int) -> Component: ...

    @overload
    def __getitem__(self, index: slice) -> Name: ...

    def __getitem__(self, index: int | slice) -> Component | Name:
        if isinstance(index, slice):
            return Name.from_components(self.components[index])
        ends = self.ends
        stop = ends[index]
        if index < 0:
            index += len(ends)
        start = ends[index - 1] if index else 0
        comp_type, value_start, value_end = tlv.read_tlv(self.wire, start, stop)
        return Component(comp_type, self.wire[value_start:value_end])

    def __iter__(self) -> Iterator[Component]:
        return iter(self.components)

    @property
    def components(self) -> tuple[Component, ...]:
        wire = self.wire
        result: list[Component] = []
        start = 0
        for stop in self.ends:
            comp_type, value_start, value_end = tlv.read_tlv(wire, start, stop)
            result.append(Component(comp_type, wire[value_start:value_end]))
            start = stop
        return tuple(result)

    def prefix(self, length: int) -> Name:
        """The first ``length`` components (a negative length drops components from the end)."""
        count = len(self.ends)
        if length < 0:
            length = max(0, count + length)
        if length >= count:
            return self
        if length == 0:
            return EMPTY_NAME
        return _trusted(self.wire[: self.ends[length - 1]], self.ends[:length])

    def prefix_wire(self, length: int) -> bytes:
        """``wire`` of :meth:`prefix` (``length`` in 0..len), without building a Name."""
        return self.wire[: self.ends[length - 1]] if length > 0 else b""

    def append(self, *components: Component | str | bytes) -> Name:
        """A new name with components added: Components as they are, ``str`` as URI, ``bytes`` generic."""
        wire = self.wire
        ends = list(self.ends)
        for item in components:
            if isinstance(item, Component):
                comp = item
            elif isinstance(item, str):
                comp = Component.from_uri(item)
            else:
                comp = Component.generic(item)
            wire += comp.wire
            ends.append(len(wire))
        return _trusted(wire, tuple(ends))

    def is_prefix_of(self, other: Name) -> bool:
        # Components are TLVs: when other's encoding starts with all of self's, its first
        # components are self's, boundaries included (a TLV's length says where it ends).
        return other.wire.startswith(self.wire)

    def last_type(self) -> int:
        """TLV-TYPE of the last component (0 for the empty name)."""
        if not self.ends:
            return 0
        start = self.ends[-2] if len(self.ends) > 1 else 0
        return tlv.read_tlv(self.wire, start, self.ends[-1])[0]

    def has_implicit_digest(self) -> bool:
        ends = self.ends
        if not ends:
            return False
        start = ends[-2] if len(ends) > 1 else 0
        # type 1 and length 32 are one octet each: the component is exactly 34 octets
        return ends[-1] - start == 34 and self.wire[start] == IMPLICIT_SHA256_DIGEST

    def find_params_digest(self) -> int:
        """Index of the ParametersSha256Digest component, -1 if none, -2 if more than one."""
        found = -1
        start = 0
        for index, stop in enumerate(self.ends):
            if self.wire[start] == PARAMETERS_SHA256_DIGEST:
                if found >= 0:
                    return -2
                found = index
            start = stop
        return found

    # --- encodings --------------------------------------------------------------------------
    def encode(self) -> bytes:
        """The Name's TLV encoding (type 7)."""
        return tlv.encode_tlv(tlv.NAME, self.wire)

    def to_uri(self) -> str:
        if not self.ends:
            return "/"
        return "/" + "/".join(component.to_uri() for component in self.components)

    def __str__(self) -> str:
        return self.to_uri()

    def __repr__(self) -> str:
        return f"Name({self.to_uri()!r})"

    def __lt__(self, other: Name) -> bool:
        return self.wire < other.wire

    def __le__(self, other: Name) -> bool:
        return self.wire <= other.wire

    def __gt__(self, other: Name) -> bool:
        return self.wire > other.wire

    def __ge__(self, other: Name) -> bool:
        return self.wire >= other.wire


_trusted: Callable[[bytes, tuple[int, ...]], Name] = trusted_constructor(Name)
"""Build a Name from already validated parts (``wire``, ``ends``), skipping ``__post_init__``'s scan."""


EMPTY_NAME = _trusted(b"", ())

LOCALHOST = Name.from_uri("/localhost")
LOCALHOP = Name.from_uri("/localhop")
