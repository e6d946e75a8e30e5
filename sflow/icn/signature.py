"""SignatureInfo / KeyLocator and the two symmetric signers sflow uses: DigestSha256 and HMAC-SHA256.

NDN packet format v0.3, ``signature.rst``: a signature covers a *signed portion* given as a list
of byte strings (for Data: Name, MetaInfo, Content and SignatureInfo TLVs; for a signed Interest:
the name components but the ParametersSha256Digest, ApplicationParameters and
InterestSignatureInfo). SignatureType 0 (DigestSha256) is a plain SHA-256 of that portion;
SignatureType 4 (HmacWithSha256) is HMAC-SHA256 with a shared key named by the KeyLocator, which
is how sflow nodes will authenticate each other with the cluster secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from sflow.errors import DecodeError
from sflow.icn import tlv
from sflow.icn.name import Name


class SignatureType(IntEnum):
    """SignatureType codes (spec signature.rst)."""

    DIGEST_SHA256 = 0
    SHA256_WITH_RSA = 1
    SHA256_WITH_ECDSA = 3
    HMAC_WITH_SHA256 = 4
    ED25519 = 5
    NULL = 200


@dataclass(frozen=True, slots=True)
class KeyLocator:
    """A KeyLocator: either a key Name or a KeyDigest."""

    name: Name | None = None
    key_digest: bytes | None = None

    def encode(self) -> bytes:
        if self.name is not None:
            inner = self.name.encode()
        elif self.key_digest is not None:
            inner = tlv.encode_tlv(tlv.KEY_DIGEST, self.key_digest)
        else:
            inner = b""
        return tlv.encode_tlv(tlv.KEY_LOCATOR, inner)


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """SignatureInfo (Data) or InterestSignatureInfo (signed Interest).

    ``nonce``, ``time`` (milliseconds since the epoch) and ``seq_num`` are the signed-Interest
    replay-protection fields; ``validity_period`` keeps the raw ValidityPeriod value.
    """

    signature_type: int
    key_locator: KeyLocator | None = None
    nonce: bytes | None = None
    time: int | None = None
    seq_num: int | None = None
    validity_period: bytes | None = None

    def encode(self, tlv_type: int = tlv.SIGNATURE_INFO) -> bytes:
        parts = [tlv.encode_nonneg_tlv(tlv.SIGNATURE_TYPE, self.signature_type)]
        if self.key_locator is not None:
            parts.append(self.key_locator.encode())
        if self.validity_period is not None:
            parts.append(tlv.encode_tlv(tlv.VALIDITY_PERIOD, self.validity_period))
        if self.nonce is not None:
            parts.append(tlv.encode_tlv(tlv.SIGNATURE_NONCE, self.nonce))
        if self.time is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.SIGNATURE_TIME, self.time))
        if self.seq_num is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.SIGNATURE_SEQ_NUM, self.seq_num))
        return tlv.encode_tlv(tlv_type, b"".join(parts))


def decode_key_locator(buf: bytes, start: int, end: int) -> KeyLocator:
    for tlv_type, value_start, value_end in tlv.iter_tlvs(buf, start, end):
        if tlv_type == tlv.NAME:
            return KeyLocator(name=Name.from_wire(buf[value_start:value_end]))
        if tlv_type == tlv.KEY_DIGEST:
            return KeyLocator(key_digest=buf[value_start:value_end])
        if tlv.is_critical(tlv_type):
            raise DecodeError(f"unrecognized critical element {tlv_type} in KeyLocator")
    return KeyLocator()


def decode_signature_info(buf: bytes, start: int, end: int) -> SignatureInfo:
    """Decode the value of a SignatureInfo or InterestSignatureInfo element."""
    signature_type: int | None = None
    key_locator: KeyLocator | None = None
    nonce: bytes | None = None
    time: int | None = None
    seq_num: int | None = None
    validity: bytes | None = None
    for tlv_type, value_start, value_end in tlv.iter_tlvs(buf, start, end):
        if tlv_type == tlv.SIGNATURE_TYPE:
            signature_type = tlv.decode_nonneg_int(buf, value_start, value_end)
        elif tlv_type == tlv.KEY_LOCATOR:
            key_locator = decode_key_locator(buf, value_start, value_end)
        elif tlv_type == tlv.SIGNATURE_NONCE:
            nonce = buf[value_start:value_end]
        elif tlv_type == tlv.SIGNATURE_TIME:
            time = tlv.decode_nonneg_int(buf, value_start, value_end)
        elif tlv_type == tlv.SIGNATURE_SEQ_NUM:
            seq_num = tlv.decode_nonneg_int(buf, value_start, value_end)
        elif tlv_type == tlv.VALIDITY_PERIOD:
            validity = buf[value_start:value_end]
        elif tlv.is_critical(tlv_type):
            raise DecodeError(f"unrecognized critical element {tlv_type} in SignatureInfo")
    if signature_type is None:
        raise DecodeError("SignatureInfo without SignatureType")
    return SignatureInfo(signature_type, key_locator, nonce, time, seq_num, validity)


class Signer(Protocol):
    """Something that signs a signed portion: it names its SignatureInfo and computes the value."""

    def signature_info(self) -> SignatureInfo:
        """The SignatureInfo to put in the packet (fresh for each call: it may carry a nonce)."""
        ...

    def sign(self, portions: Sequence[bytes]) -> bytes:
        """The SignatureValue over the concatenation of ``portions``."""
        ...


@dataclass(frozen=True, slots=True)
class DigestSha256Signer:
    """SignatureType 0: integrity only, no key (spec signature.rst, DigestSha256).

    With ``interest_nonce_size`` > 0 the InterestSignatureInfo carries a random SignatureNonce, as
    python-ndn's ``DigestSha256Signer(for_interest=True)`` does; leave it 0 for deterministic names.
    """

    interest_nonce_size: int = 0

    def signature_info(self) -> SignatureInfo:
        nonce = _random_bytes(self.interest_nonce_size) if self.interest_nonce_size else None
        return SignatureInfo(SignatureType.DIGEST_SHA256, nonce=nonce)

    def sign(self, portions: Sequence[bytes]) -> bytes:
        digest = hashlib.sha256()
        for portion in portions:
            digest.update(portion)
        return digest.digest()


@dataclass(frozen=True, slots=True)
class HmacSha256Signer:
    """SignatureType 4: HMAC-SHA256 with a shared secret; the KeyLocator names the key."""

    key_name: Name
    key: bytes
    interest_nonce_size: int = 0

    def signature_info(self) -> SignatureInfo:
        nonce = _random_bytes(self.interest_nonce_size) if self.interest_nonce_size else None
        return SignatureInfo(SignatureType.HMAC_WITH_SHA256, KeyLocator(name=self.key_name), nonce=nonce)

    def sign(self, portions: Sequence[bytes]) -> bytes:
        return _hmac_sha256(self.key, portions)


def check_digest_sha256(portions: Sequence[bytes], value: bytes) -> bool:
    """Whether ``value`` is the SHA-256 of the signed portion."""
    return hmac.compare_digest(DigestSha256Signer().sign(portions), value)


def check_hmac_sha256(key: bytes, portions: Sequence[bytes], value: bytes) -> bool:
    """Whether ``value`` is the HMAC-SHA256 of the signed portion under ``key`` (constant-time compare)."""
    return hmac.compare_digest(_hmac_sha256(key, portions), value)


def _hmac_sha256(key: bytes, portions: Sequence[bytes]) -> bytes:
    # the one-shot C function: less than half the time of an HMAC object fed portion by portion
    return hmac.digest(key, b"".join(portions), "sha256")


def _random_bytes(size: int) -> bytes:
    return secrets.token_bytes(size)
