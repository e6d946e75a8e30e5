"""``sflow node`` (the worker daemon), ``sflow status`` (ask a node) and ``sflow keygen``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sflow import __version__
from sflow.config import MODES, Config, add_config_argument, add_secret_argument, config_from_args, parse_host_port, secret_overrides
from sflow.durable import write_durably
from sflow.errors import ListenError, SflowError
from sflow.model.infra import Address
from sflow.node.readiness import Readiness, format_readiness
from sflow.secret import generate_secret, read_secret, rotate_secret

log = logging.getLogger(__name__)

def register(sub: Any) -> None:
    p = sub.add_parser(
        "node",
        help="run a worker node daemon (IP chaining, and ICN chaining with --mode icn|auto)",
        description="Run the worker daemon that delegators send functions to. It listens on --listen for "
        "authenticated delegators and other nodes (IP chaining), runs each function natively or in Docker, and "
        "prints 'sflow-node ready listen=HOST:PORT [icn=HOST:PORT] pid=PID version=V' once listening. With "
        "--mode icn or auto it also embeds an NDN forwarder (--icn-listen) and a result store, and serves "
        "function results by name (static or autonomous ICN chaining); IP chaining stays available. It runs "
        "until SIGTERM or SIGINT. An address that cannot be listened on exits with status 2.",
    )
    add_config_argument(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (port 0: any free port)")
    p.add_argument("--pid-file", metavar="FILE", help="write the process id here (removed on exit)")
    p.add_argument("--workdir", metavar="DIR", help="directory for the per-job working directories")
    p.add_argument("--log-file", metavar="FILE", help="log here instead of standard error")
    p.add_argument(
        "--mode", choices=MODES, default="ip",
        help="chaining mode: ip only, or also ICN with an embedded forwarder (icn: static, auto: autonomous)",
    )
    p.add_argument("--icn-listen", metavar="HOST:PORT",
                   help="address of the embedded forwarder (default: the --listen host, port icn.port)")
    p.add_argument("--result-store", metavar="DIR", help="on-disk result store (default: icn.result_store)")
    p.add_argument("--hello-port", type=int, metavar="PORT", help="UDP port for hellos in auto mode (default: icn.hello_port)")
    p.add_argument("--neighbour", action="append", metavar="HOST:PORT",
                   help="a neighbour's hello address in auto mode (repeatable; default: icn.neighbours)")
    p.add_argument("--advertise", metavar="HOST[:PORT]",
                   help="the address other nodes reach this node's forwarder at (default: icn.advertise)")
    # sflow run's local nodes: stop when the process that started them dies, however it dies
    p.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    add_secret_argument(p)
    p.set_defaults(func=_node)

    s = sub.add_parser(
        "status",
        help="ask a node for its version, vCPUs, running functions and uptime",
        description="Connect to the node at --connect (proving the cluster secret) and print its version, "
        "process id, vCPUs, chaining mode and forwarder, uptime, jobs and running functions; --json prints "
        "the whole reply, ICN counters included.",
    )
    add_config_argument(s)
    s.add_argument("--connect", metavar="HOST:PORT", required=True, help="the node's address")
    s.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_secret_argument(s)
    s.set_defaults(func=_status)

    k = sub.add_parser(
        "keygen",
        help="write a new random cluster secret (mode 0600), or rotate it",
        description="Write a new random cluster secret (mode 0600) to -o or security.secret_file. "
        "Nodes and delegators prove to each other that they hold it before any message is acted on, and "
        "every connection's encryption keys derive from it; `sflow cluster deploy` installs it on the hosts "
        "(mode 0600). An existing secret is kept unless --force. --rotate replaces an existing one: deploy "
        "it, then restart the nodes (`sflow cluster stop`, `start`); nodes still holding the old one refuse "
        "and are refused.",
    )
    add_config_argument(k)
    k.add_argument("-o", "--output", metavar="FILE", help="where (default: security.secret_file)")
    rotate = k.add_mutually_exclusive_group()
    rotate.add_argument("--force", action="store_true", help="replace an existing secret, or write a first one")
    rotate.add_argument("--rotate", action="store_true", help="replace an existing secret (an error when there is none)")
    k.set_defaults(func=_keygen)


# ---------------------------------------------------------------------------------------------
# sflow node


def _node(args: argparse.Namespace) -> int:
    node: dict[str, Any] = {}
    for key in ("listen", "pid_file", "workdir", "log_file"):
        if getattr(args, key, None):
            node[key] = getattr(args, key)
    overrides: dict[str, dict[str, Any]] = {"node": node, **secret_overrides(args)} if node else secret_overrides(args)
    icn_flags = {
        key: value
        for key, value in (
            ("result_store", args.result_store),
            ("hello_port", args.hello_port),
            ("neighbours", list(args.neighbour) if args.neighbour else None),
            ("advertise", args.advertise),
        )
        if value is not None
    }
    if icn_flags:
        overrides["icn"] = icn_flags
    config = config_from_args(args, overrides)
    _node_logging(config, args.verbose)
    try:
        return _serve(args, config)
    except SflowError as exc:
        if config.node.log_file:  # standard error has it from the CLI; the log must too
            log.error("event=node_failed error=%s", str(exc).replace("\n", " | "))
        raise


def _serve(args: argparse.Namespace, config: Config) -> int:
    from sflow.node.signals import exit_with_parent, stop_on_hangup

    if args.exit_with_parent is not None and not exit_with_parent(args.exit_with_parent):
        raise SflowError(f"the process that started this node ({args.exit_with_parent}) is gone")
    secret = read_secret(config.security.secret_file)
    host, port = parse_host_port(config.node.listen, "node.listen")
    workdir = Path(config.node.workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    from sflow.node.owner import clean_orphans

    clean_orphans(workdir)  # what a node killed here before left behind
    pid_file = Path(config.node.pid_file).expanduser() if config.node.pid_file else None

    from twisted.internet import reactor as _reactor
    from twisted.internet.error import CannotListenError

    from sflow.node.execution import Executor
    from sflow.node.runners.native import reap_through_pidfds_only
    from sflow.node.server import NodeService

    reactor: Any = _reactor
    links: Any = None
    if config.node.links:
        # A node of an emulated topology: its connections and datagrams cross emulated links.
        from sflow.experiment.emulation import emulate_links

        reactor, links = emulate_links(reactor, Path(config.node.links).expanduser())
    cpu_count = os.cpu_count() or 1
    executor = Executor(reactor, config)
    if executor.function_user is not None:
        from sflow.node.function_user import forbid_new_privileges

        forbid_new_privileges()  # inherited by every function: no set-user-id way back to root
        log.info("event=functions_run_as user=%s uid=%d gid=%d", executor.function_user.name,
                 executor.function_user.uid, executor.function_user.gid)
    service = NodeService(
        reactor,
        config,
        secret,
        executor,
        workdir,
        vcpus=config.node.vcpus or cpu_count,
        cpu_count=cpu_count,
    )
    service.reports["usage"] = executor.recent_usage
    if links is not None:
        service.reports["links"] = links.status
    try:
        listening = reactor.listenTCP(port, service.factory(), interface=host)
    except CannotListenError as exc:
        raise ListenError(f"TCP {Address(host, port)}", exc, "--listen, node.listen") from None
    actual = listening.getHost().port
    service.name = str(Address(host, actual))
    icn_address: str | None = None
    if args.mode != "ip":
        from sflow.sfc.node import IcnNode

        icn_host, icn_port = parse_host_port(args.icn_listen, "--icn-listen") if args.icn_listen else (host, config.icn.port)
        service.icn = IcnNode(
            reactor, config, secret, service.executor, workdir / "icn", mode=args.mode, host=icn_host, port=icn_port,
            vcpus=service.vcpus, prepare_directory=service.executor.prepare_directory,
        )
        reactor.addSystemEventTrigger("before", "shutdown", service.icn.stop)
        icn_address = service.icn.address
    if pid_file is not None:
        write_durably(pid_file, f"{os.getpid()}\n")
    reactor.addSystemEventTrigger("before", "shutdown", service.shutdown)
    if links is None:  # a node of an emulated topology reloads its links on SIGHUP instead
        stop_on_hangup(reactor)
    reap_through_pidfds_only(reactor)  # the node starts no process through Twisted
    log.info("event=node_ready listen=%s workdir=%s vcpus=%d", service.name, workdir, service.vcpus)
    print(format_readiness(Readiness(service.name, os.getpid(), __version__, icn_address)), flush=True)
    try:
        reactor.run()
    finally:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
    log.info("event=node_stopped")
    return 0


def _node_logging(config: Config, verbosity: int) -> None:
    """Lifecycle at INFO by default for the daemon; to log_file when configured."""
    root = logging.getLogger()
    if verbosity == 0:
        root.setLevel(logging.INFO)
    # A node logs several lines per function; its format names no source line, thread or process,
    # so their lookups are skipped (a stack walk per line: 24 -> 17 us a line; the logging HOWTO's
    # "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if config.node.log_file:
        path = Path(config.node.log_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        from sflow.node.logfile import TurnFlushedFileHandler

        handler = TurnFlushedFileHandler(path)
        handler.setFormatter(root.handlers[0].formatter if root.handlers else None)
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(handler)


# ---------------------------------------------------------------------------------------------
# sflow status


def _status(args: argparse.Namespace) -> int:
    # Twisted is imported by the commands that use it (``sflow --help`` starts without it).
    from twisted.internet import defer

    from sflow.node.blocking import run_until
    from sflow.node.status import STATUS_TIMEOUT, query_status

    config = config_from_args(args, secret_overrides(args))
    secret = read_secret(config.security.secret_file)
    try:
        reply = run_until(lambda reactor: query_status(reactor, args.connect, secret, sealed=config.security.channel_encryption))
    except defer.TimeoutError:
        raise SflowError(f"{args.connect}: no status reply within {STATUS_TIMEOUT:g} s") from None
    fields = {k: v for k, v in reply.items() if k not in ("v", "t")}
    if args.json:
        json.dump(fields, sys.stdout, indent=2)
        print()
        return 0
    print(f"node {fields['node']} (pid {fields['pid']}): sflow {fields['version']}")
    print(f"  vCPUs: {fields['vcpus']}")
    print(f"  mode: {fields.get('mode', 'ip')}" + (f" (forwarder {fields['icn']})" if fields.get("icn") else ""))
    print(f"  uptime: {fields['uptime']:.1f} s")
    print(f"  jobs: {', '.join(fields['jobs']) or 'none'}")
    running = fields["running"]
    print(f"  running functions: {len(running)}")
    for job, task in running:
        print(f"    job {job} task {task}")
    return 0


# ---------------------------------------------------------------------------------------------
# sflow keygen


def _keygen(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    target = args.output or config.security.secret_file
    if args.rotate:
        path = rotate_secret(target)
        print(f"rotated the cluster secret in {path}: install it with `sflow cluster deploy HOSTS`, then restart "
              "the nodes (`sflow cluster stop HOSTS`, `sflow cluster start HOSTS`)")
        return 0
    path = generate_secret(target, force=args.force)
    print(f"wrote a new cluster secret to {path}; copy it (mode 0600) to every node and the delegator")
    return 0
