"""``sflow cluster deploy|start|stop|status|logs HOSTS``: worker control over SSH.

HOSTS is the original's ``nclw_hosts`` file or a TOML inventory (:mod:`sflow.cluster.inventory`).
Each command prints a table with one row per host and exits non-zero when any host failed; every
host is attempted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sflow.config import DEFAULT_KNOWN_HOSTS, DEFAULT_WHEEL_CACHE, MODES, Config, add_config_argument, config_from_args
from sflow.errors import InputError

# SSH (paramiko), the operations and rich's tables are imported by the commands that use them.
if TYPE_CHECKING:
    from rich.console import Console

    from sflow.cluster import ops



def register(sub: Any) -> None:
    p = sub.add_parser("cluster", help="deploy, start, stop, inspect and collect logs of nodes over SSH")
    csub = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    deploy = _action(
        csub,
        "deploy",
        "install this sflow, the settings and the cluster secret on every host: sflow and every dependency go "
        "as wheels made here for each host's Python into an isolated venv; the hosts need python3 (3.11+) "
        "with its venv module and no package index",
    )
    deploy.add_argument("--secret", metavar="FILE", help="cluster secret to install (default: security.secret_file)")
    deploy.add_argument("--wheel", metavar="FILE", help="install this wheel instead of building one from the checkout")
    deploy.add_argument(
        "--cache",
        metavar="DIR",
        help=f"where the dependency wheels for the hosts are kept between deploys (default: {DEFAULT_WHEEL_CACHE})",
    )
    deploy.set_defaults(func=_deploy)

    start = _action(
        csub,
        "start",
        "start `sflow node` on every host and wait until each is ready; with --mode icn or auto each node "
        "advertises its host's address from HOSTS, and with --mode auto its neighbours are the other hosts "
        "(or the links HOSTS names)",
    )
    start.add_argument("--mode", choices=MODES, default="ip", help="chaining mode the nodes serve (default: ip)")
    start.add_argument("--listen", metavar="HOST:PORT", help="node listen address (default: node.listen of the deployed settings)")
    start.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for each node (default: 30)")
    start.set_defaults(func=_start)

    stop = _action(csub, "stop", "stop the nodes that `start` started (by pid file; SIGTERM, then SIGKILL)")
    stop.add_argument("--grace", type=float, default=10.0, metavar="S", help="seconds between SIGTERM and SIGKILL (default: 10)")
    stop.set_defaults(func=_stop)

    status = _action(
        csub, "status", "show whether each node is up, its version, vCPUs and running functions (exit 1 if any is down)"
    )
    status.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for each node's answer")
    status.set_defaults(func=_status)

    logs = _action(csub, "logs", "collect each host's node log, and a merged timeline")
    logs.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for <host>.log and merged.log")
    logs.set_defaults(func=_logs)


def _action(csub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = csub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("hosts", metavar="HOSTS", help="nclw_hosts (ip,user,password,dir lines) or a .toml inventory")
    add_config_argument(parser)
    parser.add_argument(
        "--known-hosts", metavar="FILE", help=f"host keys to check against (default: security.known_hosts, {DEFAULT_KNOWN_HOSTS})"
    )
    parser.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="record the key of a host not in known_hosts (a changed key is still refused)",
    )
    parser.add_argument("-i", "--identity", metavar="FILE", help="SSH private key for hosts that name none")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="SSH connect timeout (default: 10)")
    parser.add_argument("--parallel", type=int, default=16, metavar="N", help="hosts handled at once (default: 16)")
    parser.add_argument("--json", action="store_true", help="print the per-host results as JSON")
    return parser


def _cluster(args: argparse.Namespace, config: Config, secrets: Sequence[str | bytes] = ()) -> ops.Cluster:
    from sflow.cluster import ops
    from sflow.cluster.inventory import load_inventory
    from sflow.cluster.ssh import ParamikoConnector, SshOptions

    if args.parallel < 1:
        raise InputError("<flag>", "--parallel", "must be at least 1")
    options = SshOptions(
        known_hosts=args.known_hosts or config.security.known_hosts,
        accept_new_host_keys=args.accept_new_host_keys or config.security.accept_new_host_keys,
        identity=args.identity,
        connect_timeout=args.connect_timeout,
    )
    config_secrets = (config.file_server.password, config.image_repository.password)
    return ops.Cluster(
        load_inventory(args.hosts),
        ParamikoConnector(options),
        tuple(secrets) + tuple(s for s in config_secrets if s),
        args.parallel,
    )


def _deploy(args: argparse.Namespace) -> int:
    from sflow.cluster import ops
    from sflow.cluster.package import build_wheel, wheel_from_file
    from sflow.cluster.wheelhouse import WheelCache
    from sflow.secret import read_secret  # the node's module; imported here so other commands never need it

    config = config_from_args(args)
    secret_path = Path(args.secret or config.security.secret_file).expanduser()
    key = read_secret(secret_path)  # refuses a missing, short or group/world-readable secret
    cluster = _cluster(args, config, (key,))
    wheel = wheel_from_file(Path(args.wheel)) if args.wheel else build_wheel()
    cache = WheelCache(Path(args.cache) if args.cache else None)
    return _report(args, "deploy", ops.deploy(cluster, wheel, config, secret_path.read_bytes(), cache=cache))


def _start(args: argparse.Namespace) -> int:
    from sflow.cluster import ops

    config = config_from_args(args)
    cluster = _cluster(args, config)
    results = ops.start(cluster, mode=args.mode, timeout=args.timeout, listen=args.listen,
                        hello_port=config.icn.hello_port)
    return _report(args, "start", results)


def _stop(args: argparse.Namespace) -> int:
    from sflow.cluster import ops

    return _report(args, "stop", ops.stop(_cluster(args, config_from_args(args)), grace=args.grace))


def _status(args: argparse.Namespace) -> int:
    from sflow.cluster import ops

    return _report(args, "status", ops.status(_cluster(args, config_from_args(args)), timeout=args.timeout), one_line=True)


def _logs(args: argparse.Namespace) -> int:
    from sflow.cluster import ops

    out = Path(args.output)
    results = ops.collect_logs(_cluster(args, config_from_args(args)), out)
    status = _report(args, "logs", results)
    if not args.json:
        print(f"merged timeline: {out / ops.MERGED_LOG}")
    return status


def exit_status(results: Sequence[ops.HostResult]) -> int:
    """0 when every host succeeded, 1 otherwise."""
    return 0 if all(r.ok for r in results) else 1


def render_table(results: Sequence[ops.HostResult], title: str, console: Console, *, one_line: bool = False) -> None:
    """One row per host; with ``one_line`` each row is one terminal line (details cut with an
    ellipsis: --json and the -v log have them whole)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    # host and result are never squeezed: the detail gives way
    table.add_column("host", no_wrap=True, min_width=max((len(r.host) for r in results), default=4))
    table.add_column("result", no_wrap=True, min_width=max((len(r.result) for r in results), default=6))
    table.add_column("detail", overflow="ellipsis" if one_line else "fold", no_wrap=one_line)
    for r in results:
        table.add_row(r.host, f"[green]{r.result}[/]" if r.ok else f"[bold red]{r.result}[/]", r.detail, style=None)
    console.print(table)
    failed = sum(not r.ok for r in results)
    console.print(f"{len(results) - failed} of {len(results)} hosts ok" + (f", {failed} failed" if failed else ""))


def _report(args: argparse.Namespace, what: str, results: Sequence[ops.HostResult], *, one_line: bool = False) -> int:
    from rich.console import Console

    if args.json:
        print(json.dumps([r.as_json() for r in results], indent=2))
    else:
        render_table(results, f"sflow cluster {what} {args.hosts}", Console(file=sys.stdout, highlight=False), one_line=one_line)
    return exit_status(results)
