"""NDN-TLV codec: golden bytes (the reference's examples and python-ndn's output, frozen here) and
round trips. Nothing here needs python-ndn: test_icn_codec_interop.py compares with it live."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sflow.errors import DecodeError, InvalidNameError
from sflow.icn import tlv
from sflow.icn.control import (
    ControlParameters,
    ControlResponse,
    decode_control_parameters,
    decode_control_response,
)
from sflow.icn.lp import LpPacket, decode_lp_packet, encode_lp_packet
from sflow.icn.name import Component, Name
from sflow.icn.packet import (
    ContentType,
    Data,
    Interest,
    MetaInfo,
    NackReason,
    decode_data,
    decode_interest,
    encode_data,
    encode_interest,
    is_less_severe,
    make_data,
    make_interest,
    params_digest_valid,
)
from sflow.icn.security import sign_data, sign_interest, verify_data, verify_interest
from sflow.icn.signature import DigestSha256Signer, HmacSha256Signer, SignatureType


# --- VAR-NUMBER and NonNegativeInteger ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hexed"),
    [
        (0, "00"),
        (252, "fc"),
        (253, "fd00fd"),
        (1024, "fd0400"),
        (65535, "fdffff"),
        (65536, "fe00010000"),
        (2**32, "ff0000000100000000"),
    ],
)
def test_var_number_golden(value: int, hexed: str) -> None:
    assert tlv.encode_var_number(value).hex() == hexed
    raw = bytes.fromhex(hexed)
    assert tlv.read_var_number(raw, 0, len(raw)) == (value, len(raw))


def test_var_number_rejects_non_shortest_and_truncated() -> None:
    with pytest.raises(DecodeError):
        tlv.read_var_number(bytes.fromhex("fd00fc"), 0, 3)
    with pytest.raises(DecodeError):
        tlv.read_var_number(bytes.fromhex("fe0000ffff"), 0, 5)
    with pytest.raises(DecodeError):
        tlv.read_var_number(bytes.fromhex("fd04"), 0, 2)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_var_number_round_trip(value: int) -> None:
    raw = tlv.encode_var_number(value)
    assert len(raw) == tlv.var_number_size(value)
    assert tlv.read_var_number(raw, 0, len(raw)) == (value, len(raw))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_nonneg_int_round_trip(value: int) -> None:
    raw = tlv.encode_nonneg_int(value)
    assert len(raw) in (1, 2, 4, 8)
    assert tlv.decode_nonneg_int(raw, 0, len(raw)) == value


def test_nonneg_int_bad_length() -> None:
    with pytest.raises(DecodeError):
        tlv.decode_nonneg_int(b"\x00\x00\x01", 0, 3)


def test_critical_types() -> None:
    assert tlv.is_critical(31) and tlv.is_critical(33) and not tlv.is_critical(32)
    assert not tlv.is_critical(0x24) and tlv.is_critical(0xFD)


# --- names ----------------------------------------------------------------------------------------


def test_name_uri_typed_components() -> None:
    name = Name.from_uri("/sflow/fn/seg=3/v=7/t=100/seq=9/off=8/32=kw/sha256digest=" + "ab" * 32)
    kinds = [c.type for c in name.components]
    assert kinds == [8, 8, 0x32, 0x36, 0x38, 0x3A, 0x34, 0x20, 1]
    assert name[2].to_number() == 3 and name[2].is_segment()
    assert Name.from_uri(name.to_uri()) == name
    assert str(Name.from_uri("ndn:/a/b")) == "/a/b"
    assert Name.from_uri("/") == Name() and len(Name.from_uri("/")) == 0


def test_name_uri_escapes_and_periods() -> None:
    assert Name.from_uri("/a%20b/img%3D42").components[1].value == b"img=42"
    assert Name.from_uri("/.../....")[0].value == b"" and Name.from_uri("/....")[0].value == b"."
    assert Name.from_components([Component.generic(b"")]).to_uri() == "/..."
    assert Name.from_components([Component.generic(b"a b/")]).to_uri() == "/a%20b%2F"
    assert Component(0x32, b"\x00\x00\x01").to_uri() == "50=%00%00%01"  # not a valid NonNegativeInteger
    non_minimal = Component(0x32, b"\x00\x00")  # a NonNegativeInteger, but not in its shortest form
    assert non_minimal.to_uri() == "50=%00%00" and Name.from_uri("/" + non_minimal.to_uri())[0] == non_minimal
    for bad in ("/img=42", "/a/./b", "/a//b", "/%zz", "/seg=x", "/70000=a", "/sha256digest=00"):
        with pytest.raises(InvalidNameError):
            Name.from_uri(bad)


def test_name_structure() -> None:
    name = Name.from_uri("/a/b/c")
    assert name.prefix(2) == Name.from_uri("/a/b") and name.prefix(-1) == Name.from_uri("/a/b")
    assert name.prefix(0) == Name() and name[1:] == Name.from_uri("/b/c")
    assert Name.from_uri("/a").is_prefix_of(name) and not Name.from_uri("/a/bb").is_prefix_of(name)
    assert not Name.from_uri("/a/b/c/d").is_prefix_of(name)
    assert name.append("seg=1", b"x", Component.version(2)).to_uri() == "/a/b/c/seg=1/x/v=2"
    assert Name.from_wire(name.wire) == name and hash(Name.from_wire(name.wire)) == hash(name)


def test_name_canonical_order() -> None:
    # type first, then length, then value (spec name.rst "Canonical Order")
    names = ["/a/b", "/a", "/b", "/aa", "/a/seg=0", "/sha256digest=" + "00" * 32, "/32=x", "/"]
    ordered = sorted(Name.from_uri(n) for n in names)
    assert [n.to_uri() for n in ordered] == [
        "/",
        "/sha256digest=" + "00" * 32,
        "/a",
        "/a/b",
        "/a/seg=0",
        "/b",
        "/aa",
        "/32=x",
    ]


_component = st.builds(
    Component,
    st.sampled_from([8, 8, 8, 0x20, 0x32, 0x36, 0x38, 0x3A, 0x34, 300, 0xFFFF]),
    st.binary(max_size=40),
) | st.builds(Component, st.sampled_from([1, 2]), st.binary(min_size=32, max_size=32))
names = st.lists(_component, max_size=8).map(Name.from_components)
nonempty_names = st.lists(_component, min_size=1, max_size=8).map(Name.from_components)
interest_names = st.lists(_component.filter(lambda c: c.type != 2), min_size=1, max_size=8).map(
    Name.from_components
)


@given(names)
def test_name_uri_and_wire_round_trip(name: Name) -> None:
    assert Name.from_uri(name.to_uri()) == name
    assert Name.from_wire(name.wire) == name
    assert Name.from_components(name.components) == name


@given(names, names)
def test_name_order_is_component_wise(a: Name, b: Name) -> None:
    def key(n: Name) -> list[tuple[int, int, bytes]]:
        return [(c.type, len(c.value), c.value) for c in n.components]

    assert (a < b) == (key(a) < key(b))


# --- Interest ---------------------------------------------------------------------------------------


def test_interest_reference_example() -> None:
    # ndn-forwarding.md §3.2: python-ndn's encoding of this Interest
    expected = "05260713080573666c6f770802666e0806726573697a65210012000a04010203040c020fa0220140"
    interest = make_interest(
        "/sflow/fn/resize", can_be_prefix=True, must_be_fresh=True, nonce=0x01020304, lifetime=4000, hop_limit=64
    )
    assert encode_interest(interest).hex() == expected
    decoded = decode_interest(bytes.fromhex(expected))
    assert decoded == interest
    assert (decoded.can_be_prefix, decoded.must_be_fresh, decoded.nonce, decoded.lifetime, decoded.hop_limit) == (
        True,
        True,
        0x01020304,
        4000,
        64,
    )


def test_interest_params_digest_golden() -> None:
    interest = make_interest("/sflow/fn/resize", nonce=1, lifetime=4000, app_parameters=b'{"w":64}')
    assert interest.name[-1].to_uri().startswith("params-sha256=9350143c")
    assert params_digest_valid(interest)
    assert encode_interest(interest).hex() == (  # python-ndn's encoding
        "054b0735080573666c6f770802666e0806726573697a6502209350143cae81f307a2eeec6e3f544f8ec8b57ddd2c904b1f07"
        "26742721bb78210a04000000010c020fa024087b2277223a36347d")


def test_signed_interest_golden_and_verify() -> None:
    key = b"cluster-secret"
    key_name = Name.from_uri("/sflow/key/cluster")
    ours = make_interest("/a/b", nonce=5, lifetime=None, app_parameters=b"p", signer=HmacSha256Signer(key_name, key))
    wire = encode_interest(ours)
    assert wire.hex() == (  # python-ndn's encoding with its HmacSha256Signer
        "057307280801610801620220ce806e632d467b44665ae891690a23490fdfdc0ad86c68c374f7426c911be76e0a0400000005"
        "2401702c1c1b01041c170715080573666c6f7708036b65790807636c75737465722e20841698be7225ae18128b62494cae32"
        "f341890cacae368099c2dbd6356c556309")
    decoded = decode_interest(wire)
    assert decoded.signature_info is not None
    assert decoded.signature_info.signature_type == SignatureType.HMAC_WITH_SHA256
    assert verify_interest(decoded, key)
    assert verify_interest(decoded, {key_name: key})
    assert not verify_interest(decoded, b"wrong")
    assert not verify_interest(decoded)
    resigned = sign_interest(make_interest("/q", nonce=3), DigestSha256Signer(interest_nonce_size=8))
    assert verify_interest(decode_interest(encode_interest(resigned)))


@pytest.mark.parametrize(
    ("hexed", "why"),
    [
        ("0500", "no name"),
        ("05020700", "empty name"),
        ("0509070308016112002100", "MustBeFresh before CanBePrefix"),
        ("050907030801610a020102", "nonce length"),
        ("0509070308016122020101", "hop limit length"),
        ("05070703080161 2100 ff", "truncated"),
        ("0507070308016113 00", "critical unknown"),
        ("0508070308016124 0100", "params without digest"),
        ("0506070308016100", "trailing"),
        ("06050703080161", "not an interest"),
    ],
)
def test_interest_malformed(hexed: str, why: str) -> None:
    with pytest.raises(DecodeError):
        decode_interest(bytes.fromhex(hexed.replace(" ", "")))


def test_interest_skips_non_critical_unknown() -> None:
    wire = bytes.fromhex("050907030801612000 0a0401020304".replace(" ", ""))
    wire = bytes([5, len(wire) - 2]) + wire[2:]
    assert decode_interest(wire).nonce == 0x01020304


# --- Data -----------------------------------------------------------------------------------------------


def test_data_reference_example() -> None:
    wire = bytes.fromhex(  # python-ndn's encoding, DigestSha256-signed
        "06560716080573666c6f770802666e0806726573697a65360101140718010019022710150c726573756c742d62797465731603"
        "1b0100172013db4677cd323e3b25af5da35a79b5cbd605804fdf4f77f89ea7b8cbcc30e211")
    data = decode_data(wire)
    assert data.name.to_uri() == "/sflow/fn/resize/v=1"
    assert data.freshness_period == 10000 and data.content == b"result-bytes"
    assert data.signature_info is not None and data.signature_info.signature_type == SignatureType.DIGEST_SHA256
    assert verify_data(data)
    ours = make_data("/sflow/fn/resize/v=1", b"result-bytes", freshness_period=10000, content_type=ContentType.BLOB)
    assert encode_data(ours) == wire


def test_data_hmac_golden_and_verify() -> None:
    key = b"secret"
    ours = make_data("/a/b", b"x", content_type=0, final_block_id=Component.segment(4),
                     signer=HmacSha256Signer(Name.from_uri("/key/k1"), key))
    wire = encode_data(ours)
    assert wire.hex() == (  # python-ndn's encoding with its HmacSha256Signer
        "0649070608016108016214081801001a0332010415017816101b01041c0b070908036b657908026b3117205642ccb9e989fc"
        "fededb15a3d378e844d034fa40891cce7f522ca30a4054ffbc")
    assert verify_data(decode_data(wire), key) and not verify_data(decode_data(wire), b"other")
    resigned = sign_data(make_data("/a", b"y", signer=None), HmacSha256Signer(Name.from_uri("/k"), key))
    assert verify_data(resigned, key)


def test_data_full_name() -> None:
    data = make_data("/a", b"x")
    full = data.full_name()
    assert full.has_implicit_digest() and full.prefix(-1) == data.name
    assert make_interest(full).matches_data(data)
    assert not make_interest(full).matches_data(make_data("/a", b"y"))
    assert make_interest("/a").matches_data(data)
    assert make_interest("/a", can_be_prefix=True).matches_data(make_data("/a/b", b""))
    assert not make_interest("/a").matches_data(make_data("/a/b", b""))


@pytest.mark.parametrize(
    ("hexed", "why"),
    [
        ("0600", "no name"),
        ("06051503616263", "content before name"),
        ("0607070015016116 00", "siginfo without type"),
        ("060607001400 1400", "meta info twice"),
        ("060707001403 190301", "freshness length"),
        ("060607001703616263", "sigvalue without info"),
        ("0604070001 00", "critical unknown type 1"),
        ("0606070408036162", "name component runs past"),
    ],
)
def test_data_malformed(hexed: str, why: str) -> None:
    raw = bytes.fromhex(hexed.replace(" ", ""))
    with pytest.raises(DecodeError):
        decode_data(raw)


_interests = st.builds(
    make_interest,
    interest_names,
    can_be_prefix=st.booleans(),
    must_be_fresh=st.booleans(),
    forwarding_hint=st.lists(nonempty_names, max_size=2),
    nonce=st.none() | st.integers(0, 2**32 - 1),
    lifetime=st.none() | st.integers(0, 2**40),
    hop_limit=st.none() | st.integers(0, 255),
    app_parameters=st.none() | st.binary(max_size=50),
    signer=st.none() | st.just(DigestSha256Signer()) | st.just(HmacSha256Signer(Name.from_uri("/k"), b"s")),
)


@given(_interests)
def test_interest_round_trip(interest: Interest) -> None:
    wire = encode_interest(interest)
    decoded = decode_interest(wire)
    assert decoded == interest
    assert encode_interest(Interest(**{f: getattr(decoded, f) for f in _INTEREST_FIELDS})) == wire
    assert params_digest_valid(decoded)


_INTEREST_FIELDS = [
    "name",
    "can_be_prefix",
    "must_be_fresh",
    "forwarding_hint",
    "nonce",
    "lifetime",
    "hop_limit",
    "app_parameters",
    "signature_info",
    "signature_value",
]

_datas = st.builds(
    make_data,
    names,
    st.binary(max_size=300),
    freshness_period=st.none() | st.integers(0, 2**33),
    content_type=st.none() | st.integers(0, 5),
    final_block_id=st.none() | _component,
    signer=st.none() | st.just(DigestSha256Signer()) | st.just(HmacSha256Signer(Name.from_uri("/k"), b"s")),
)


@given(_datas)
def test_data_round_trip(data: Data) -> None:
    wire = encode_data(data)
    decoded = decode_data(wire)
    assert decoded == data
    rebuilt = Data(decoded.name, decoded.meta_info, decoded.content, decoded.signature_info, decoded.signature_value)
    assert encode_data(rebuilt) == wire
    if data.signature_info is not None and data.signature_info.signature_type == SignatureType.DIGEST_SHA256:
        assert verify_data(decoded)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_decode_error(raw: bytes) -> None:
    for decoder in (decode_interest, decode_data, decode_lp_packet, decode_control_parameters, decode_control_response):
        try:
            decoder(raw)
        except DecodeError:
            pass


@settings(max_examples=300)
@given(_interests | _datas, st.data())
def test_mutated_packets_raise_only_decode_error(packet: Interest | Data, data: st.DataObject) -> None:
    wire = bytearray(encode_interest(packet) if isinstance(packet, Interest) else encode_data(packet))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    for decoder in (decode_interest, decode_data):
        try:
            decoded = decoder(bytes(wire[:cut]))
            decoded.name.to_uri()
            if isinstance(decoded, Interest):
                for hint in decoded.forwarding_hint:
                    hint.to_uri()
        except DecodeError:
            pass


# --- NDNLPv2 ------------------------------------------------------------------------------------------


def test_lp_nack_golden() -> None:
    interest = make_interest("/a/b", nonce=9)
    wire = encode_lp_packet(LpPacket(fragment=encode_interest(interest), nack_reason=NackReason.NO_ROUTE))
    assert wire.hex() == "641ffd032005fd032101965014051207060801610801620a04000000090c020fa0"  # python-ndn's
    lp = decode_lp_packet(wire)
    assert lp.nack_reason == NackReason.NO_ROUTE and decode_interest(lp.fragment or b"") == interest


@given(
    st.builds(
        LpPacket,
        fragment=st.none() | st.binary(max_size=30),
        sequence=st.none() | st.integers(0, 2**64 - 1),
        frag_index=st.none() | st.integers(0, 9),
        frag_count=st.none() | st.integers(1, 9),
        pit_token=st.none() | st.binary(min_size=1, max_size=32),
        nack_reason=st.none() | st.sampled_from([0, 50, 100, 150]),
        incoming_face_id=st.none() | st.integers(0, 2**32),
        next_hop_face_id=st.none() | st.integers(0, 2**32),
        cache_policy=st.none() | st.just(1),
        congestion_mark=st.none() | st.integers(0, 3),
        acks=st.lists(st.integers(0, 2**64 - 1), max_size=3).map(tuple),
        tx_sequence=st.none() | st.integers(0, 2**64 - 1),
        non_discovery=st.booleans(),
        prefix_announcement=st.none() | st.binary(max_size=10),
    )
)
def test_lp_round_trip(packet: LpPacket) -> None:
    assert decode_lp_packet(encode_lp_packet(packet)) == packet


def test_lp_unknown_fields() -> None:
    ignorable = tlv.encode_tlv(tlv.LP_PACKET, tlv.encode_tlv(804, b"x") + tlv.encode_tlv(tlv.LP_FRAGMENT, b"f"))
    assert decode_lp_packet(ignorable).fragment == b"f"
    with pytest.raises(DecodeError):
        decode_lp_packet(tlv.encode_tlv(tlv.LP_PACKET, tlv.encode_tlv(805, b"x")))
    with pytest.raises(DecodeError):
        decode_lp_packet(tlv.encode_tlv(tlv.LP_PACKET, tlv.encode_tlv(tlv.LP_FRAGMENT, b"f") + tlv.encode_tlv(0x62, b"t")))


def test_nack_severity() -> None:
    assert is_less_severe(NackReason.CONGESTION, NackReason.DUPLICATE)
    assert is_less_severe(NackReason.DUPLICATE, NackReason.NO_ROUTE)
    assert is_less_severe(NackReason.NO_ROUTE, NackReason.NONE)
    assert not is_less_severe(NackReason.NONE, NackReason.CONGESTION)


# --- management TLVs -------------------------------------------------------------------------------------


def test_control_parameters_reference_example() -> None:
    # ndn-forwarding.md §3.3: ControlParameters for /sflow/fn
    params = ControlParameters(name=Name.from_uri("/sflow/fn"))
    assert params.encode().hex() == "680d070b080573666c6f770802666e"
    assert decode_control_parameters(params.encode()) == params


def test_control_response_round_trip() -> None:
    response = ControlResponse(200, "OK", ControlParameters(name=Name.from_uri("/a"), face_id=260, cost=0))
    assert decode_control_response(response.encode()) == response


def test_meta_info_default_object() -> None:
    assert MetaInfo().encode() == b""
    assert make_data("/a", b"").content == b""


def test_the_codec_tests_need_no_python_ndn() -> None:
    """python-ndn is for the interoperability tests only: without it, these still run."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
                and c.func.attr == "importorskip" and c.args and isinstance(c.args[0], ast.Constant)]
    assert not [m for m in modules if m == "ndn" or m.startswith("ndn.")]
