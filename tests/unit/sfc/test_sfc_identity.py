"""A node recognises itself in every form of its address, and advertises one its neighbours can
reach (never a wildcard bind address when it knows better)."""

from __future__ import annotations

import socket
from pathlib import Path

from sflow.sfc.identity import Identity, host_form, split_address
from sflow.sfc.node import advertised_address, interface_addresses, result_store_path


def test_a_node_knows_itself_by_every_form_of_its_address() -> None:
    me = Identity.of("10.78.0.2:6363", ["0.0.0.0", "10.78.0.2", "192.168.5.7", "fe80::1", "h2.example.org"])
    forms = [
        "10.78.0.2:6363",  # advertised
        "0.0.0.0:6363", "[::]:6363", ":6363",  # wildcards (a bind address)
        "127.0.0.1:6363", "127.0.1.1:6363", "[::1]:6363", "localhost:6363", "LOCALHOST:6363",  # loopback
        "192.168.5.7:6363", "[fe80::1]:6363", "[::ffff:10.78.0.2]:6363",  # its interfaces
        "h2.example.org:6363", "H2.Example.Org.:6363",  # a name of its host
    ]
    assert [f for f in forms if not me.is_me(f)] == []
    others = ["10.78.0.3:6363", "10.78.0.2:6364", "[fe80::2]:6363", "h3.example.org:6363", "garbage", ""]
    assert [f for f in others if me.is_me(f)] == []
    # its hello socket, on another port
    assert me.is_me("10.78.0.2:15454", 15454) and not me.is_me("10.78.0.3:15454", 15454)


def test_names_that_are_not_addresses_match_only_themselves() -> None:
    me = Identity.of("n0")
    assert me.is_me("n0") and not me.is_me("n1") and not me.is_me("127.0.0.1:6363")


def test_address_forms() -> None:
    assert split_address("[::1]:80") == ("::1", 80) and split_address("a:1") == ("a", 1)
    assert split_address("::1") is None and split_address("a") is None and split_address("a:b") is None
    assert host_form("[::FFFF:10.0.0.1]") == "10.0.0.1" and host_form("::") == host_form("0.0.0.0") == host_form("")
    assert host_form("127.5.5.5") == host_form("::1") == host_form("localhost")


def test_the_advertised_address_is_never_a_wildcard_when_a_better_one_is_known() -> None:
    # set explicitly: as given, with the forwarder's port when it names none
    assert advertised_address("10.0.0.9", "0.0.0.0", 6363, []) == "10.0.0.9:6363"
    assert advertised_address("h9:7000", "0.0.0.0", 6363, []) == "h9:7000"
    assert advertised_address("[fd00::9]", "::", 6363, []) == "[fd00::9]:6363"
    # a concrete listen host is what others reach
    assert advertised_address("", "10.0.0.4", 6363, []) == "10.0.0.4:6363"
    # listening on every address: the address this host reaches its first neighbour from
    assert advertised_address("", "0.0.0.0", 6363, ["127.0.0.1:15454"]) == "127.0.0.1:6363"
    # nothing better known: the wildcard, which neighbours replace by the hello's source address
    assert advertised_address("", "0.0.0.0", 6363, []) == "0.0.0.0:6363"


def test_interface_addresses_include_loopback_and_the_default_store_is_per_node(tmp_path: Path) -> None:
    addresses = interface_addresses()
    assert "127.0.0.1" in addresses
    assert all(host_form(a) for a in addresses)
    path = result_store_path(str(tmp_path / "results" / "{host}-{port}"), 6363)
    assert path == tmp_path / "results" / f"{socket.gethostname()}-6363"
    assert result_store_path(str(tmp_path / "plain"), 1) == tmp_path / "plain"
