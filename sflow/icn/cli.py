"""``sflow forwarder`` (a standalone NDN forwarder) and ``sflow icn status``.

``sflow forwarder`` listens on TCP (``--listen``, default ``0.0.0.0:<icn.port>``, 6363), optionally
a Unix socket and UDP, and prints one line once listening::

    sflow forwarder ready: tcp4://127.0.0.1:45123 [unix:///run/sflow.sock] [udp4://0.0.0.0:6363]

then runs until SIGTERM or SIGINT, when it stops listening, closes its faces and removes its Unix
socket. Applications register prefixes over the Unix socket: a standalone forwarder has no cluster
key, so management commands over TCP (loopback included) are refused (:mod:`sflow.icn.mgmt`); the
limits of ``[icn]`` in the settings apply (:mod:`sflow.icn.limits`). ``sflow icn status`` fetches ``/localhost/sflow/status`` from a forwarder and prints faces,
FIB, PIT and CS sizes, the CS hit ratio and NFD's counters (``--json`` prints the document).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

from sflow.config import add_config_argument, config_from_args
from sflow.errors import IcnError, InputError, SflowError

# The forwarder and its server (Twisted) are imported by the commands that run them, so that
# registering these subcommands (``sflow --help``) imports none of the ICN layer.
if TYPE_CHECKING:
    from sflow.icn.forwarder import ForwarderConfig

log = logging.getLogger(__name__)


class _Choices(Sequence[str]):
    """Names that a module of the ICN layer defines, looked up only when argparse needs them (a
    value to check, or this subcommand's help)."""

    def __init__(self, module: str, attribute: str) -> None:
        self._module = module
        self._attribute = attribute

    def _names(self) -> list[str]:
        names = getattr(importlib.import_module(self._module), self._attribute)
        return sorted(names) if isinstance(names, dict) else list(names)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, value: object) -> bool:
        return value in self._names()


def register(sub: Any) -> None:
    p = sub.add_parser(
        "forwarder",
        help="run a standalone NDN forwarder (NFD semantics, TCP 6363 by default)",
        description="Run an NDN forwarder. It prints one 'ready' line with the bound addresses once listening "
        "and stops cleanly on SIGTERM.",
    )
    p.add_argument("--listen", metavar="HOST:PORT", action="append", default=None,
                   help="TCP address to listen on (repeatable; default 0.0.0.0:<icn.port>; port 0 picks one)")
    p.add_argument("--no-tcp", action="store_true", help="do not listen on TCP")
    p.add_argument("--unix", metavar="PATH",
                   help="also listen on this Unix socket (applications register their prefixes over it: management "
                   "is refused over TCP, loopback included)")
    p.add_argument("--udp", metavar="HOST:PORT", action="append", default=[], help="also listen on UDP (repeatable)")
    p.add_argument("--cs-capacity", metavar="N", type=int, default=None,
                   help="content store capacity in packets (default: icn.cs_capacity_packets)")
    p.add_argument("--cs-capacity-bytes", metavar="N", type=int, default=None,
                   help="content store capacity in bytes (default: icn.cs_capacity_bytes; 0 = no byte limit)")
    # (choices set after add_argument, which would otherwise list them at once to check a metavar)
    p.add_argument("--cs-policy", default="lru",
                   help="CS replacement policy").choices = _Choices("sflow.icn.cs", "POLICIES")
    p.add_argument("--unsolicited", default="drop-all", help="unsolicited Data policy (default drop-all, as NFD)"
                   ).choices = _Choices("sflow.icn.forwarder", "UNSOLICITED_DATA_POLICIES")
    p.add_argument("--default-hop-limit", metavar="N", type=int, default=0,
                   help="HopLimit added to Interests without one (0: none)")
    p.add_argument("--strategy", metavar="PREFIX=NAME", action="append", default=[],
                   help="forwarding strategy for a prefix: best-route or multicast (repeatable)")
    p.add_argument("--route", metavar="PREFIX=URI[,COST]", action="append", default=[],
                   help="static route through a face to another forwarder, e.g. /sflow=tcp4://10.0.0.2:6363")
    add_config_argument(p)
    p.set_defaults(func=run_forwarder)

    icn = sub.add_parser("icn", help="talk to an NDN forwarder", description="Query a running forwarder.")
    icn_sub = icn.add_subparsers(dest="icn_command", metavar="COMMAND", title="icn commands")
    s = icn_sub.add_parser(
        "status",
        help="faces, FIB, PIT/CS sizes, CS hit ratio and counters of a forwarder",
        description="Fetch /localhost/sflow/status from a forwarder (a local face is needed: "
        "connect over loopback or a Unix socket).",
    )
    s.add_argument("--connect", metavar="HOST:PORT", default=None,
                   help="forwarder address: HOST:PORT, tcp4://HOST:PORT or unix:///PATH (default 127.0.0.1:<icn.port>)")
    s.add_argument("--json", action="store_true", help="print the status document as JSON")
    s.add_argument("--timeout", type=float, default=4.0, help="seconds to wait for the forwarder")
    add_config_argument(s)
    s.set_defaults(func=icn_status)
    icn.set_defaults(func=lambda args: _icn_help(icn))


def _icn_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _forwarder_config(args: argparse.Namespace, icn: Any) -> ForwarderConfig:
    from sflow.icn.forwarder import ForwarderConfig
    from sflow.icn.limits import ForwarderLimits

    capacity = args.cs_capacity if args.cs_capacity is not None else icn.cs_capacity_packets
    capacity_bytes = args.cs_capacity_bytes if args.cs_capacity_bytes is not None else icn.cs_capacity_bytes
    if capacity < 0 or capacity_bytes < 0:
        raise InputError("<flag>", "--cs-capacity", "capacities must not be negative")
    if not 0 <= args.default_hop_limit <= 255:
        raise InputError("<flag>", "--default-hop-limit", "must be 0 to 255")
    return ForwarderConfig(
        cs_capacity=capacity,
        cs_capacity_bytes=capacity_bytes or None,
        cs_policy=args.cs_policy,
        unsolicited_data_policy=args.unsolicited,
        default_hop_limit=args.default_hop_limit,
        limits=ForwarderLimits.from_settings(icn),
    )


def run_forwarder(args: argparse.Namespace) -> int:
    from sflow.icn.face.uri import parse_face_uri
    from sflow.icn.name import Name
    from sflow.icn.server import ForwarderServer, parse_static_route, tune_garbage_collector
    from sflow.icn.strategy import resolve_strategy

    config = config_from_args(args)
    forwarder_config = _forwarder_config(args, config.icn)
    strategies = []
    for text in args.strategy:
        prefix, sep, name = text.partition("=")
        if not sep or not prefix.startswith("/") or resolve_strategy(name) is None:
            raise InputError("<flag>", f"--strategy {text}", "expected PREFIX=best-route or PREFIX=multicast")
        strategies.append((Name.from_uri(prefix), name))
    routes = [parse_static_route(text) for text in args.route]
    listen = [] if args.no_tcp else [parse_face_uri(text) for text in args.listen or [f"0.0.0.0:{config.icn.port}"]]
    if any(uri.scheme != "tcp" for uri in listen):
        raise InputError("<flag>", "--listen", "expected HOST:PORT")
    udp = [parse_face_uri(text, default_scheme="udp") for text in args.udp]
    if not listen and not udp and not args.unix:
        raise InputError("<flag>", "--no-tcp", "nothing to listen on")
    from twisted.internet import reactor as installed_reactor

    reactor: Any = installed_reactor
    server = ForwarderServer(reactor, forwarder_config)
    for prefix, name in strategies:
        server.forwarder.strategy_choice.insert(prefix, name)
    for uri in listen:
        server.listen_tcp(uri.host, uri.port)
    if args.unix:
        server.listen_unix(args.unix)
    for uri in udp:
        server.listen_udp(uri.host, uri.port)
    for route in routes:
        server.add_static_route(route).addErrback(_route_failed, route)
    tune_garbage_collector()
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    print(f"sflow forwarder ready: {' '.join(server.addresses)}", flush=True)
    log.info("forwarder running addresses=%s", " ".join(server.addresses))
    reactor.run()
    log.info("forwarder stopped")
    return 0


def _route_failed(failure: Any, route: Any) -> None:
    log.error("static route failed prefix=%s uri=%s error=%s", route.prefix, route.uri, failure.getErrorMessage())


def icn_status(args: argparse.Namespace) -> int:
    from sflow.icn.face.uri import parse_face_uri
    from sflow.icn.management_client import fetch_status, format_status

    from twisted.internet import reactor as installed_reactor

    reactor: Any = installed_reactor
    config = config_from_args(args)
    address = args.connect or f"127.0.0.1:{config.icn.port}"
    parse_face_uri(address)
    outcome: dict[str, Any] = {}

    def done(status: dict[str, Any]) -> None:
        outcome["status"] = status

    def failed(failure: Any) -> None:
        outcome["error"] = failure.value

    def stop(_: Any) -> None:
        if reactor.running:
            reactor.stop()

    def start() -> None:
        d = fetch_status(reactor, address)
        d.addCallbacks(done, failed).addBoth(stop)
        timer = reactor.callLater(args.timeout, d.cancel)
        d.addBoth(lambda result: timer.cancel() if timer.active() else None)

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    error = outcome.get("error")
    if error is not None:
        if isinstance(error, SflowError):
            raise error
        raise IcnError(f"cannot get the status of the forwarder at {address}: {error}")
    status = outcome.get("status")
    if status is None:
        raise IcnError(f"no status from the forwarder at {address} within {args.timeout} s")
    if args.json:
        json.dump(status, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(format_status(status))
    return 0
