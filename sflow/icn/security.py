"""Signing and verification of Interests and Data with DigestSha256 and HMAC-SHA256.

Signatures follow NDN packet format v0.3 ``signature.rst`` and ``signed-interest.rst``. A forwarder
never validates signatures (NFD does not); applications and management do. HMAC-SHA256
(SignatureType 4) is what sflow uses to authenticate packets with the cluster secret.
"""

from __future__ import annotations

from sflow.icn.name import Name
from sflow.icn.packet import (
    Data,
    Interest,
    data_signed_portion,
    interest_signed_portion,
    make_data,
    make_interest,
    params_digest_valid,
)
from sflow.icn.signature import (
    DigestSha256Signer,
    HmacSha256Signer,
    SignatureType,
    Signer,
    check_digest_sha256,
    check_hmac_sha256,
)

__all__ = [
    "DigestSha256Signer",
    "HmacSha256Signer",
    "sign_data",
    "sign_interest",
    "verify_data",
    "verify_interest",
]


def sign_data(data: Data, signer: Signer) -> Data:
    """A copy of ``data`` signed by ``signer`` (its name, MetaInfo and Content unchanged)."""
    return make_data(
        data.name,
        data.content,
        freshness_period=data.meta_info.freshness_period,
        content_type=data.meta_info.content_type,
        final_block_id=data.meta_info.final_block_id,
        signer=signer,
    )


def sign_interest(interest: Interest, signer: Signer) -> Interest:
    """A v0.3 signed copy of ``interest``: InterestSignatureInfo/Value and a new params digest."""
    return make_interest(
        interest.name,
        can_be_prefix=interest.can_be_prefix,
        must_be_fresh=interest.must_be_fresh,
        forwarding_hint=interest.forwarding_hint,
        nonce=interest.nonce,
        lifetime=interest.lifetime,
        hop_limit=interest.hop_limit,
        app_parameters=interest.app_parameters if interest.app_parameters is not None else b"",
        signer=signer,
    )


def _check(signature_type: int, portions: list[bytes], value: bytes, hmac_keys: dict[Name, bytes] | bytes | None,
           key_name: Name | None) -> bool:
    if signature_type == SignatureType.DIGEST_SHA256:
        return check_digest_sha256(portions, value)
    if signature_type == SignatureType.HMAC_WITH_SHA256:
        if isinstance(hmac_keys, bytes):
            key = hmac_keys
        elif hmac_keys is not None and key_name is not None and key_name in hmac_keys:
            key = hmac_keys[key_name]
        else:
            return False
        return check_hmac_sha256(key, portions, value)
    return False


def verify_data(data: Data, hmac_key: dict[Name, bytes] | bytes | None = None) -> bool:
    """Whether ``data`` carries a valid DigestSha256 or HMAC-SHA256 signature.

    ``hmac_key`` is the shared secret, or a map from key names (the KeyLocator) to secrets. Any
    other signature type is reported invalid: sflow does not do public-key validation here.
    """
    info = data.signature_info
    if info is None or data.signature_value is None:
        return False
    key_name = info.key_locator.name if info.key_locator is not None else None
    return _check(info.signature_type, data_signed_portion(data), data.signature_value, hmac_key, key_name)


def verify_interest(interest: Interest, hmac_key: dict[Name, bytes] | bytes | None = None) -> bool:
    """Whether ``interest`` is a well-formed v0.3 signed Interest with a valid signature.

    Checks the ParametersSha256Digest component too, so a tampered name or parameters fail.
    """
    info = interest.signature_info
    if info is None or interest.signature_value is None or interest.app_parameters is None:
        return False
    if not params_digest_valid(interest):
        return False
    key_name = info.key_locator.name if info.key_locator is not None else None
    return _check(
        info.signature_type, interest_signed_portion(interest), interest.signature_value, hmac_key, key_name
    )

