"""Host-key policies: unknown keys refused unless accepted (then recorded, mode 0600)."""

from __future__ import annotations

import stat
from pathlib import Path

import paramiko
import pytest

from sflow.ssh import HostKeyError, _AcceptNew, _RefuseUnknown



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
