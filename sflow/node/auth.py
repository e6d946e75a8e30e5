"""Mutual HMAC-SHA256 challenge-response on the cluster secret.

The client opens with ``hello{nonce_c}``; the server answers ``challenge{nonce_s, proof_s}`` with
``proof_s = HMAC(secret, "sflow-server" | nonce_c | nonce_s)``; the client checks it and answers
``auth{proof_c}`` with ``proof_c = HMAC(secret, "sflow-client" | nonce_s | nonce_c)``; the server
checks it and answers ``ready``. Both sides thus prove they hold the secret without sending it, and
fresh nonces on both sides stop replays. The role labels stop a proof being reflected back.

Pure: nonces come in as arguments (:func:`new_nonce` is the only source of randomness).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from sflow.errors import AuthenticationError

NONCE_BYTES: Final = 32
_SERVER: Final = b"sflow-server"
_CLIENT: Final = b"sflow-client"


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def _mac(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(secret, label + first + second, hashlib.sha256).digest()


def server_proof(secret: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return _mac(secret, _SERVER, client_nonce, server_nonce)


def client_proof(secret: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return _mac(secret, _CLIENT, server_nonce, client_nonce)


def check_nonce(nonce: bytes) -> None:
    if len(nonce) != NONCE_BYTES:
        raise AuthenticationError(f"nonce of {len(nonce)} bytes (expected {NONCE_BYTES})")


def verify(expected: bytes, received: bytes, who: str) -> None:
    """Constant-time comparison; AuthenticationError naming ``who`` when the proof is wrong."""
    if not hmac.compare_digest(expected, received):
        raise AuthenticationError(f"{who} does not hold the cluster secret")
