"""The NDN-TLV codec against python-ndn, the independent NDN implementation: the same packets
encode to the same bytes both ways, and each side decodes and verifies the other's. These are the
codec's interoperability tests; the codec's own tests (test_icn_codec.py) need no python-ndn."""

from __future__ import annotations

import pytest

from sflow.icn.control import ControlParameters, ControlResponse, decode_control_parameters, decode_control_response
from sflow.icn.lp import LpPacket, encode_lp_packet
from sflow.icn.name import Component, Name
from sflow.icn.packet import (
    ContentType,
    NackReason,
    decode_data,
    decode_interest,
    encode_data,
    encode_interest,
    make_data,
    make_interest,
)
from sflow.icn.security import verify_data, verify_interest
from sflow.icn.signature import HmacSha256Signer

ndn_encoding = pytest.importorskip("ndn.encoding", reason="python-ndn (the independent NDN peer) is not installed")
ndn_security = pytest.importorskip("ndn.security")
ndn_lp = pytest.importorskip("ndn.encoding.ndnlp_v2")


def test_name_matches_python_ndn() -> None:
    for uri in ["/sflow/fn/resize", "/a/seg=3/v=1", "/x%20y/%00%FF", "/a/b~c-d_e.f"]:
        ours = Name.from_uri(uri)
        theirs = bytes(ndn_encoding.Name.to_bytes(ndn_encoding.Name.from_str(uri)))
        assert ours.encode() == theirs
        assert ours.to_uri() == ndn_encoding.Name.to_str(theirs)


def test_interest_params_digest_matches_python_ndn() -> None:
    interest = make_interest("/sflow/fn/resize", nonce=1, lifetime=4000, app_parameters=b'{"w":64}')
    theirs = ndn_encoding.make_interest(
        "/sflow/fn/resize", ndn_encoding.InterestParam(nonce=1, lifetime=4000), app_param=b'{"w":64}'
    )
    assert encode_interest(interest) == bytes(theirs)


@pytest.mark.parametrize(
    "param",
    [
        {},
        {"can_be_prefix": True},
        {"must_be_fresh": True, "lifetime": 10},
        {"nonce": 0xFFFFFFFF, "hop_limit": 0},
        {"forwarding_hint": ["/net/a", "/net/b"], "nonce": 7},
    ],
)
def test_interest_matches_python_ndn(param: dict[str, object]) -> None:
    kwargs = dict(param)
    hint = [Name.from_uri(h) for h in kwargs.pop("forwarding_hint", [])]  # type: ignore[attr-defined]
    ip = ndn_encoding.InterestParam(**kwargs, forwarding_hint=[h.to_uri() for h in hint])
    theirs = bytes(ndn_encoding.make_interest("/a/b/seg=2", ip))
    ours = make_interest("/a/b/seg=2", forwarding_hint=hint, **kwargs)  # type: ignore[arg-type]
    if ip.nonce is None:
        # python-ndn leaves the Nonce out when not given: so do we
        assert ours.nonce is None
    assert encode_interest(ours) == theirs
    assert decode_interest(theirs) == ours


def test_signed_interest_matches_python_ndn() -> None:
    key = b"cluster-secret"
    ours = make_interest(
        "/a/b", nonce=5, lifetime=None, app_parameters=b"p",
        signer=HmacSha256Signer(Name.from_uri("/sflow/key/cluster"), key),
    )
    theirs = ndn_encoding.make_interest(
        "/a/b",
        ndn_encoding.InterestParam(nonce=5, lifetime=None),
        app_param=b"p",
        signer=ndn_security.HmacSha256Signer("/sflow/key/cluster", key),
    )
    assert encode_interest(ours) == bytes(theirs)
    assert verify_interest(decode_interest(bytes(theirs)), key)


def test_python_ndn_digest_signed_interest_verifies() -> None:
    signer = ndn_security.DigestSha256Signer(for_interest=True)
    wire = bytes(ndn_encoding.make_interest("/localhost/x", ndn_encoding.InterestParam(), app_param=b"", signer=signer))
    decoded = decode_interest(wire)
    assert decoded.signature_info is not None and decoded.signature_info.nonce is not None
    assert verify_interest(decoded)


def test_digest_signed_data_matches_python_ndn() -> None:
    theirs = ndn_encoding.make_data(
        "/sflow/fn/resize/v=1",
        ndn_encoding.MetaInfo(content_type=ndn_encoding.ContentType.BLOB, freshness_period=10000),
        b"result-bytes",
        signer=ndn_security.DigestSha256Signer(),
    )
    ours = make_data("/sflow/fn/resize/v=1", b"result-bytes", freshness_period=10000, content_type=ContentType.BLOB)
    assert encode_data(ours) == bytes(theirs)
    assert verify_data(decode_data(bytes(theirs)))


def test_hmac_data_matches_python_ndn() -> None:
    key = b"secret"
    ours = make_data("/a/b", b"x", content_type=0, final_block_id=Component.segment(4),
                     signer=HmacSha256Signer(Name.from_uri("/key/k1"), key))
    theirs = ndn_encoding.make_data(
        "/a/b",
        ndn_encoding.MetaInfo(content_type=0, final_block_id=ndn_encoding.Component.from_segment(4)),
        b"x",
        signer=ndn_security.HmacSha256Signer("/key/k1", key),
    )
    assert encode_data(ours) == bytes(theirs)
    assert verify_data(decode_data(bytes(theirs)), key)


def test_data_unsigned_from_python_ndn() -> None:
    wire = bytes(ndn_encoding.make_data("/a/b", ndn_encoding.MetaInfo(), b"x"))
    data = decode_data(wire)
    assert data.signature_info is None and data.content == b"x" and encode_data(data) == wire


def test_lp_nack_matches_python_ndn() -> None:
    interest = make_interest("/a/b", nonce=9)
    ours = encode_lp_packet(LpPacket(fragment=encode_interest(interest), nack_reason=NackReason.NO_ROUTE))
    theirs = bytes(ndn_lp.make_network_nack(encode_interest(interest), ndn_lp.NackReason.NO_ROUTE))
    assert ours == theirs


def test_lp_python_ndn_parses_ours() -> None:
    interest = make_interest("/a/b", nonce=9)
    ours = encode_lp_packet(LpPacket(fragment=encode_interest(interest), nack_reason=NackReason.DUPLICATE))
    reason, fragment = ndn_lp.parse_network_nack(ours, with_tl=True)
    assert reason == NackReason.DUPLICATE and bytes(fragment) == encode_interest(interest)
    token_wrapped = encode_lp_packet(LpPacket(fragment=encode_interest(interest), pit_token=b"\x01\x02"))
    parsed = ndn_lp.parse_lp_packet_v2(token_wrapped, with_tl=True)
    assert bytes(parsed.pit_token) == b"\x01\x02" and bytes(parsed.fragment) == encode_interest(interest)


def test_control_parameters_match_python_ndn() -> None:
    from ndn.app_support import nfd_mgmt

    theirs = nfd_mgmt.ControlParameters()
    theirs.cp = nfd_mgmt.ControlParametersValue()
    theirs.cp.name = "/a/b"
    theirs.cp.face_id = 300
    theirs.cp.origin = 0
    theirs.cp.cost = 10
    theirs.cp.flags = 1
    wire = bytes(theirs.encode())
    params = decode_control_parameters(wire)
    assert params == ControlParameters(name=Name.from_uri("/a/b"), face_id=300, origin=0, cost=10, flags=1)
    assert params.encode() == wire


def test_control_response_parsed_by_python_ndn() -> None:
    from ndn.app_support import nfd_mgmt

    response = ControlResponse(200, "OK", ControlParameters(name=Name.from_uri("/a"), face_id=260, cost=0))
    parsed = nfd_mgmt.parse_response(response.encode())
    assert parsed["status_code"] == 200 and parsed["status_text"] == "OK"
    assert decode_control_response(response.encode()) == response

