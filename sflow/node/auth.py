"""Mutual HMAC-SHA256 challenge-response on the cluster secret, with an ephemeral key exchange.

The client opens with ``hello{nonce_c, kx_c, sealed}``; the server answers
``challenge{nonce_s, kx_s, sealed, proof_s}`` with
``proof_s = HMAC(secret, "sflow-server" | nonce_c | nonce_s | kx_c | kx_s | terms_s)``; the client
checks it and answers ``auth{proof_c, sealed, heartbeat?}`` with
``proof_c = HMAC(secret, "sflow-client" | nonce_s | nonce_c | kx_s | kx_c | terms_c)``; the server
checks it and answers ``ready`` — sealed already (:mod:`sflow.node.seal`). Both sides thus prove
they hold the secret without sending it; fresh nonces on both sides stop replays; the role labels
stop a proof being reflected back. The proofs also cover the X25519 public keys (``kx``) the
session keys come from, and each side's ``terms`` (the fields it announces in its frame:
``sealed``, ``heartbeat``), so that an attacker in the middle can change neither.

Pure: nonces come in as arguments (:func:`new_nonce` is the only source of randomness).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final

import msgpack

from sflow.errors import AuthenticationError

NONCE_BYTES: Final = 32
_SERVER: Final = b"sflow-server"
_CLIENT: Final = b"sflow-client"
#: the fields of a handshake frame that its proof covers
TERMS: Final = ("sealed", "heartbeat")


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def terms(msg: Mapping[str, Any]) -> dict[str, Any]:
    """The announced fields of a handshake frame (those of :data:`TERMS` it holds)."""
    return {name: msg[name] for name in TERMS if name in msg}


def _mac(secret: bytes, label: bytes, parts: tuple[bytes, ...], announced: Mapping[str, Any]) -> bytes:
    # Every part is fixed-length (checked before use) and the packed terms come last: unambiguous.
    packed = msgpack.packb(sorted(announced.items()), use_bin_type=True)
    return hmac.new(secret, label + b"".join(parts) + packed, hashlib.sha256).digest()


def server_proof(
    secret: bytes, client_nonce: bytes, server_nonce: bytes, client_kx: bytes, server_kx: bytes, announced: Mapping[str, Any]
) -> bytes:
    return _mac(secret, _SERVER, (client_nonce, server_nonce, client_kx, server_kx), announced)


def client_proof(
    secret: bytes, client_nonce: bytes, server_nonce: bytes, client_kx: bytes, server_kx: bytes, announced: Mapping[str, Any]
) -> bytes:
    return _mac(secret, _CLIENT, (server_nonce, client_nonce, server_kx, client_kx), announced)


def check_nonce(nonce: bytes) -> None:
    if len(nonce) != NONCE_BYTES:
        raise AuthenticationError(f"nonce of {len(nonce)} bytes (expected {NONCE_BYTES})")


def check_sealed(mine: bool, theirs: bool, peer: str) -> None:
    """Both ends must agree on ``security.channel_encryption``; a mismatch is refused (never a
    silent fall back to clear text)."""
    if mine != theirs:
        raise AuthenticationError(
            f"{peer} has security.channel_encryption = {str(theirs).lower()} and this side "
            f"{str(mine).lower()}: every node and delegator of a cluster must use the same setting"
        )


def verify(expected: bytes, received: bytes, who: str) -> None:
    """Constant-time comparison; AuthenticationError naming ``who`` when the proof is wrong."""
    if not hmac.compare_digest(expected, received):
        raise AuthenticationError(f"{who} does not hold the cluster secret")
