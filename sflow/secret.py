"""The cluster secret: a random key every node and the delegator hold (``sflow keygen`` writes it).

Peers prove they hold it with an HMAC challenge-response (:mod:`sflow.node.auth`); the secret
itself never crosses the network and is never logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sflow.durable import write_durably
from sflow.errors import InputError

SECRET_BYTES = 32
MIN_SECRET_BYTES = 16


def generate_secret(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write a new random secret (hex, mode 0600) to ``path``; refuse to overwrite unless ``force``."""
    target = Path(path).expanduser()
    if target.exists() and not force:
        raise InputError(str(target), "", "a secret already exists; use --force to replace it")
    return write_durably(target, secrets.token_hex(SECRET_BYTES) + "\n", mode=0o600)


def read_secret(path: str | os.PathLike[str]) -> bytes:
    """The secret's bytes; a missing, unreadable, too short or group/world-readable file is an error."""
    source = Path(path).expanduser()
    try:
        st = source.stat()
        text = source.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise InputError(str(source), "", "no cluster secret here; create one with `sflow keygen`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(source), "", f"cannot read the cluster secret: {exc}") from None
    if st.st_mode & 0o077:
        raise InputError(str(source), "", "the cluster secret is readable by others; chmod 600 it")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise InputError(str(source), "", "the cluster secret is not hex text as `sflow keygen` writes it") from None
    if len(key) < MIN_SECRET_BYTES:
        raise InputError(str(source), "", f"the cluster secret is shorter than {MIN_SECRET_BYTES} bytes")
    return key
