"""Result names, specs on the wire, bundles and statuses (pure)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sfc_harness import chain_tasks, fork_join_tasks, job

from sflow.errors import DecodeError, InputError, ProtocolError
from sflow.icn.name import Name
from sflow.model.workflow import TaskId
from sflow.errors import FunctionFailure
from sflow.sfc.bundle import (
    FAILED,
    READY,
    RUNNING,
    STATUS_STDERR_BYTES,
    Status,
    bundle_version,
    decode_bundle,
    decode_status,
    encode_bundle,
    encode_status,
)
from sflow.sfc.names import (
    Installed,
    build_specs,
    installed_from_wire,
    installed_to_wire,
    parse_result_name,
    program_label,
    remote_inputs,
)


def test_specs_round_trip_on_the_wire_and_names_parse_back() -> None:
    specs = build_specs(job(fork_join_tasks()), {})
    for spec in specs.values():
        item = Installed(spec, "img.tar", 7, 1000.0, tuple("" for _ in spec.inputs), "run1")
        back = installed_from_wire(msgpack.unpackb(msgpack.packb(installed_to_wire(item)), raw=False))
        assert back == item and back.spec.digest == spec.digest
        assert parse_result_name(spec.prefix) == (spec.program, spec.digest)
    assert parse_result_name(Name.from_uri("/sflow/fn/x/notadigest")) is None
    assert parse_result_name(Name.from_uri("/other/fn/x/" + "a" * 64)) is None


def test_untrusted_specs_are_checked() -> None:
    spec = build_specs(job(chain_tasks(2)), {})[TaskId(2)]
    wire = installed_to_wire(Installed(spec, None, 1, 1.0, ("",), "r"))
    for breakage in (
        lambda w: w["spec"].update(outputs=["../../etc/passwd"]),
        lambda w: w["spec"].update(inputs=[[1, "d", "p"]]),
        lambda w: w.update(input_nodes=[]),
        lambda w: w["spec"].pop("cmd"),
    ):
        broken = msgpack.unpackb(msgpack.packb(wire), raw=False)
        breakage(broken)
        with pytest.raises(ProtocolError):
            installed_from_wire(broken)


def test_remote_inputs_enter_the_name_by_digest() -> None:
    tasks = chain_tasks(1)
    tasks[0]["cmd"] = "cat $R^data/in.txt > ./out/1.txt"
    j = job(tasks)
    assert remote_inputs(j) == {TaskId(1): ("data/in.txt",)}
    with pytest.raises(InputError, match="no digest"):
        build_specs(j, {})
    one = build_specs(j, {"data/in.txt": "1" * 64})[TaskId(1)]
    two = build_specs(j, {"data/in.txt": "2" * 64})[TaskId(1)]
    assert one.prefix != two.prefix and one.remote == (("data/in.txt", "1" * 64),)


def test_program_labels_are_readable_components() -> None:
    assert program_label("/usr/bin/ffmpeg -i x") == "ffmpeg"
    assert program_label("  ") == "fn"
    assert program_label("a$b c") == "a_b"


@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}", fullmatch=True), st.binary(max_size=200),
                       max_size=5))
def test_bundles_round_trip_and_are_deterministic(files: dict[str, bytes]) -> None:
    content = encode_bundle(files)
    assert decode_bundle(content) == files
    assert encode_bundle(dict(reversed(list(files.items())))) == content
    assert bundle_version(content) == bundle_version(encode_bundle(files))


def test_bad_bundles_and_statuses_are_rejected() -> None:
    with pytest.raises(DecodeError):
        decode_bundle(b"\xc1")
    with pytest.raises(DecodeError):
        decode_bundle(msgpack.packb([1, [["../x", b""]]]))
    with pytest.raises(DecodeError):
        decode_status(msgpack.packb({"s": "bogus"}))
    with pytest.raises(DecodeError, match="failure"):
        decode_status(msgpack.packb({"s": "failed", "failure": {"node": "n1"}}))
    failure = FunctionFailure(2, "127.0.0.1:6363", "exit status 3", 3, "boom\n")
    for status in (Status(RUNNING, "n1", "waiting", 2.5, 100), Status(FAILED, reason="exit status 1"),
                   Status(FAILED, "n2", "input 1 of 2: exit status 3", failure=failure)):
        assert decode_status(encode_status(status)) == status


def test_a_failure_status_carries_the_end_of_a_long_stderr_and_fits_in_a_packet() -> None:
    stderr = "".join(f"line {i} éé\n" for i in range(5000))
    status = Status(FAILED, "n2", "x", failure=FunctionFailure(2, "n1", "exit status 3", 3, stderr))
    content = encode_status(status)
    assert len(content) < STATUS_STDERR_BYTES + 200
    tail = decode_status(content).failure
    assert tail is not None and stderr.endswith(tail.stderr_tail) and tail.stderr_tail.endswith("line 4999 éé\n")


def test_status_carries_a_ready_result_and_nothing_else() -> None:
    ready = Status(READY, node="n0", version=7, segments=1, content=b"\x92\x01\x90")
    assert decode_status(encode_status(ready)) == ready
    assert decode_status(encode_status(Status(READY, node="n0"))).content == b""
    # whether the producer held it before it was asked (an older producer does not say: not held)
    held = Status(READY, node="n0", version=7, segments=1, content=b"\x92\x01\x90", stored=True)
    assert decode_status(encode_status(held)) == held and not decode_status(encode_status(ready)).stored
    assert "stored" not in msgpack.unpackb(encode_status(ready))
    with pytest.raises(DecodeError, match="content"):
        decode_status(msgpack.packb({"s": FAILED, "content": b"x"}, use_bin_type=True))
    with pytest.raises(DecodeError, match="content"):
        decode_status(msgpack.packb({"s": READY, "content": "text"}, use_bin_type=True))
