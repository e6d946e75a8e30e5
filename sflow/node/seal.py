"""Session keys and sealed frames: what makes a channel confidential and tamper-proof.

The handshake of :mod:`sflow.node.auth` also exchanges ephemeral X25519 public keys (``kx``). Both
sides then derive two AES-256-GCM keys, one per direction, from the cluster secret, the
Diffie-Hellman shared value, both nonces and both public keys (HKDF-SHA256). Every frame after the
handshake is sealed: its 4-byte length header stays in clear (it is the AEAD's associated data) and
its msgpack body is encrypted and authenticated under the sender's key with a 96-bit nonce that is
the frame's sequence number in that direction (0, 1, 2, …; never sent, never reused).

So an on-path attacker reads nothing of a job and can change nothing: a changed, inserted,
dropped, reordered or replayed frame fails its tag (:class:`~sflow.errors.IntegrityError`) and the
connection is closed. Keys never repeat across sessions (fresh nonces and ephemeral keys on both
sides), so a recorded session cannot be replayed into a new one, and a cluster secret stolen later
does not decrypt a recorded session (the ephemeral keys are gone: forward secrecy).

Pure apart from :func:`new_exchange` (the only source of randomness); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sflow.errors import AuthenticationError, IntegrityError
from sflow.node.protocol import HEADER, TAG_BYTES, data_header

KX_BYTES: Final = 32
KEY_BYTES: Final = 32
_INFO: Final = b"sflow channel v1"
_MAX_SEQUENCE: Final = 2**64 - 1

#: one side's ephemeral key pair for one handshake
Exchange = X25519PrivateKey


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The key this side seals with and the key it opens the peer's frames with."""

    send: bytes
    receive: bytes


def new_exchange() -> Exchange:
    """A fresh ephemeral key pair for one handshake."""
    return X25519PrivateKey.generate()


def public_bytes(private: Exchange) -> bytes:
    return private.public_key().public_bytes_raw()


def check_kx(kx: bytes) -> None:
    if len(kx) != KX_BYTES:
        raise AuthenticationError(f"key-exchange value of {len(kx)} bytes (expected {KX_BYTES})")


def session_keys(
    role: str,
    secret: bytes,
    private: Exchange,
    client_nonce: bytes,
    server_nonce: bytes,
    client_kx: bytes,
    server_kx: bytes,
) -> SessionKeys:
    """Both directions' keys for ``role`` (``client`` or ``server``); the two sides agree on them
    only if they hold the same secret and saw the same nonces and public keys."""
    peer_kx = server_kx if role == "client" else client_kx
    check_kx(peer_kx)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_kx))
    except ValueError as exc:  # a low-order point: the exchange would give all zeros
        raise AuthenticationError(f"unusable key-exchange value: {exc}") from None
    material = HKDF(
        algorithm=hashes.SHA256(),
        length=2 * KEY_BYTES,
        salt=client_nonce + server_nonce,
        info=_INFO + client_kx + server_kx,
    ).derive(secret + shared)
    client_to_server, server_to_client = material[:KEY_BYTES], material[KEY_BYTES:]
    if role == "client":
        return SessionKeys(client_to_server, server_to_client)
    return SessionKeys(server_to_client, client_to_server)


def _nonce(sequence: int) -> bytes:
    if sequence > _MAX_SEQUENCE:
        raise IntegrityError("the channel has sealed 2**64 frames; reconnect")
    return sequence.to_bytes(12, "big")


class Sealer:
    """Seals this side's frames in order (one per direction and session)."""

    __slots__ = ("_aead", "sequence")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.sequence = 0

    def seal(self, header: bytes, body: bytes | bytearray | memoryview) -> bytes:
        """The sealed body (``len(body) + TAG_BYTES`` bytes) of the frame whose header is ``header``."""
        sealed = self._aead.encrypt(_nonce(self.sequence), body, header)
        self.sequence += 1
        return sealed

    def frame(self, body: bytes) -> list[bytes]:
        """A whole sealed frame for ``body``: its header and its sealed body."""
        header = HEADER.pack(len(body) + TAG_BYTES)
        return [header, self.seal(header, body)]

    def data_frame(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """A whole sealed data frame (:data:`~sflow.node.protocol.DATA_FLAG`) for file bytes.
        ``data`` is encrypted into a new buffer: the caller may reuse it at once."""
        header = data_header(len(data) + TAG_BYTES)
        return [header, self.seal(header, data)]


class Opener:
    """Opens the peer's sealed frames in the order they were sealed.

    Each frame's number is reserved in arrival order (:meth:`reserve`, on the thread that reads
    the connection); the frame may then be opened with it elsewhere (:meth:`open_at`, thread-safe:
    file bytes are opened on the disk thread). The owner acts on no frame before every earlier
    one has opened."""

    __slots__ = ("_aead", "sequence")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        #: the number the next frame to arrive gets
        self.sequence = 0

    def reserve(self) -> int:
        sequence = self.sequence
        self.sequence += 1
        return sequence

    def open(self, header: bytes, sealed: bytes | memoryview) -> bytes:
        """Open the next frame (its number is taken only if it opens)."""
        body = self.open_at(self.sequence, header, sealed)
        self.sequence += 1
        return body

    def open_at(self, sequence: int, header: bytes, sealed: bytes | memoryview) -> bytes:
        """Open the frame that arrived as number ``sequence``; IntegrityError if it was changed,
        replayed, reordered or sealed in another session."""
        try:
            return self._aead.decrypt(_nonce(sequence), sealed, header)
        except InvalidTag:
            raise self._failed(sequence) from None

    def open_into(self, sequence: int, header: bytes, sealed: bytes | memoryview, buffer: bytearray) -> memoryview:
        """:meth:`open_at` into ``buffer`` (at least ``len(sealed) - TAG_BYTES`` bytes): a view of
        the opened body in it, without allocating one per frame. Nothing of a frame that fails is
        usable (the caller drops the buffer's content with the connection)."""
        out = memoryview(buffer)[: len(sealed) - TAG_BYTES]
        try:
            self._aead.decrypt_into(_nonce(sequence), sealed, header, out)
        except InvalidTag:
            raise self._failed(sequence) from None
        return out

    @staticmethod
    def _failed(sequence: int) -> IntegrityError:
        return IntegrityError(
            f"frame {sequence} failed its integrity check (changed, replayed, reordered or from another session)"
        )
