"""``sflow forwarder`` / ``sflow icn`` argument handling (the running forwarder is covered by the
integration tests: no reactor here)."""

from __future__ import annotations

import argparse

import pytest

from sflow.errors import InputError
from sflow.icn import cli
from sflow.icn.name import Name
from sflow.icn.server import parse_static_route


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sflow")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def test_forwarder_config_from_flags_and_settings(tmp_path: object) -> None:
    args = parse("forwarder", "--cs-capacity", "10", "--cs-capacity-bytes", "0", "--cs-policy", "priority-fifo",
                 "--unsolicited", "admit-local", "--default-hop-limit", "32")
    from sflow.config import IcnSettings

    config = cli._forwarder_config(args, IcnSettings())
    assert (config.cs_capacity, config.cs_capacity_bytes, config.cs_policy) == (10, None, "priority-fifo")
    assert config.unsolicited_data_policy == "admit-local" and config.default_hop_limit == 32
    defaults = cli._forwarder_config(parse("forwarder"), IcnSettings())
    assert defaults.cs_capacity == IcnSettings().cs_capacity_packets
    assert defaults.cs_capacity_bytes == IcnSettings().cs_capacity_bytes


@pytest.mark.parametrize(
    "argv",
    [
        ("forwarder", "--strategy", "/a=no-such"),
        ("forwarder", "--strategy", "a=multicast"),
        ("forwarder", "--listen", "udp://1.2.3.4:5"),
        ("forwarder", "--listen", "1.2.3.4:notaport"),
        ("forwarder", "--no-tcp"),
        ("forwarder", "--route", "nonsense"),
        ("forwarder", "--default-hop-limit", "300"),
        ("forwarder", "--cs-capacity", "-1"),
    ],
)
def test_forwarder_flag_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(InputError):
        cli.run_forwarder(parse(*argv))


def test_static_route_parsing() -> None:
    route = parse_static_route("/sflow/fn=tcp4://10.0.0.2:6363,7")
    assert route.prefix == Name.from_uri("/sflow/fn") and route.cost == 7 and str(route.uri) == "tcp4://10.0.0.2:6363"
    assert parse_static_route("/x=udp://10.0.0.3").uri.port == 6363
    for bad in ("/x", "x=tcp://1.2.3.4:1", "/x=tcp://1.2.3.4:1,cheap"):
        with pytest.raises(InputError):
            parse_static_route(bad)


def test_icn_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("icn")
    assert args.func(args) == 2
    assert "status" in capsys.readouterr().out
