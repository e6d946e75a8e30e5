"""Host-key policies: unknown keys refused unless accepted (then recorded, mode 0600)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import paramiko
import pytest

from sflow.ssh import HostKeyError, _AcceptNew, _RefuseUnknown, describe


def _key() -> paramiko.PKey:
    return paramiko.RSAKey.generate(1024)


def test_an_unknown_key_is_refused_with_advice(tmp_path: Path) -> None:
    key = _key()
    with pytest.raises(HostKeyError) as caught:
        _RefuseUnknown(tmp_path / "known_hosts").missing_host_key(paramiko.SSHClient(), "10.0.0.2", key)
    text = str(caught.value)
    assert "10.0.0.2" in text and key.fingerprint in text and "--accept-new-host-keys" in text
    assert not (tmp_path / "known_hosts").exists()


def test_an_accepted_key_is_recorded_and_read_back(tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    key = _key()
    policy = _AcceptNew(known)
    policy.missing_host_key(paramiko.SSHClient(), "[10.0.0.3]:2222", key)
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    keys = paramiko.HostKeys(str(known))
    assert keys.lookup("[10.0.0.3]:2222")[key.get_name()] == key


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (paramiko.SSHException("Error reading SSH protocol banner[Errno 104] Connection reset by peer"), "not an SSH server (no SSH banner)"),
        (paramiko.SSHException("No existing session"), "SSH handshake timed out"),
        (TimeoutError(), "timed out"),
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (paramiko.SSHException("something new"), "SSHException: something new"),
    ],
)
def test_connection_failures_are_said_in_words(exc: BaseException, words: str) -> None:
    assert describe(exc) == words


def test_paramikos_transport_tracebacks_stay_off_the_terminal(caplog: pytest.LogCaptureFixture) -> None:
    """paramiko logs a failed connection's traceback at ERROR from its transport thread; it shows
    at -v (INFO) only."""
    transport = logging.getLogger("paramiko.transport")
    root = logging.getLogger()
    old = root.level
    try:
        root.setLevel(logging.WARNING)
        with caplog.at_level(logging.WARNING):
            transport.error("Traceback (most recent call last):")
        assert not [r for r in caplog.records if r.name == "paramiko.transport"]
        root.setLevel(logging.INFO)
        with caplog.at_level(logging.INFO):
            transport.error("Exception (client): Error reading SSH protocol banner")
        shown = [r for r in caplog.records if r.name == "paramiko.transport"]
        assert [(r.levelno, r.getMessage()) for r in shown] == [(logging.INFO, "Exception (client): Error reading SSH protocol banner")]
    finally:
        root.setLevel(old)
