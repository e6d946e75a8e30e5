"""The function spawner's messages and the choice of its interpreter: the pure parts (the spawner
itself is driven through the real runner in tests/integration/execution/test_isolation.py)."""

from __future__ import annotations

import os
import resource
import struct
import sys
from pathlib import Path

import pytest

from sflow.errors import SflowError
from sflow.node.function_user import FunctionUser
from sflow.node.runners.spawner import Exited, Failed, Kill, ProtocolError, Start, decode, encode
from sflow.node.runners.spawner_link import spawner_interpreter


def test_every_message_survives_the_wire() -> None:
    usage = tuple(resource.getrusage(resource.RUSAGE_SELF))
    for message in (
        Start(1, (), "/jobs/a b", "echo hi"),
        Start(2**32 - 1, (0, 3, 65535), "/jobs/\udcff-not-utf8", "printf '%s\\n' é; exit 3"),
        Kill(7, 15),
        Failed(8, 2, "No such file or directory"),
        Exited(9, 0x0900, usage),
    ):
        assert decode(encode(message)) == message
    # and the usage becomes what wait4 gives
    exited = decode(encode(Exited(9, 0, usage)))
    assert isinstance(exited, Exited) and resource.struct_rusage(exited.usage).ru_maxrss == usage[2]


@pytest.mark.parametrize("data", [b"", b"Q", b"S\x00", b"K\x00\x00\x00\x01", b"X" + struct.pack("!Ii", 1, 0),
                                  b"S" + struct.pack("!IH", 1, 2) + struct.pack("!H", 0)])
def test_malformed_messages_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(data)


def test_start_path_length_past_the_end() -> None:
    data = encode(Start(1, (), "/jobs/x", ""))
    with pytest.raises(ProtocolError, match="path runs past the end"):
        decode(data[:-2])


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_spawner_runs_on_an_interpreter_the_function_user_may_run(shared_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    user = FunctionUser("fn", 54321, 54322, "/var/lib/fn")
    closed = shared_dir / "closed"
    own = _executable(closed / "bin" / "python3.11")
    closed.chmod(0o700)
    monkeypatch.setattr(sys, "executable", str(own))
    shared = _executable(shared_dir / "shared" / "python3")
    old = _executable(shared_dir / "old" / "python3.8")
    (shared_dir / "old-link").mkdir()
    (shared_dir / "old-link" / "python3").symlink_to(old)
    search = os.pathsep.join([str(closed / "bin"), str(shared_dir / "old-link"), str(shared_dir / "shared")])
    # the node's own is under a directory closed to the user; a Python too old is passed over
    assert spawner_interpreter(user, search) == str(shared)
    with pytest.raises(SflowError, match=r"'fn' \(node.run_as\) may run"):
        spawner_interpreter(user, str(shared_dir / "old-link"))
    closed.chmod(0o755)
    assert spawner_interpreter(user, "") == str(own)
