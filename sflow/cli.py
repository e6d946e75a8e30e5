"""The ``sflow`` command: one program, a subcommand per role.

Each role's package contributes its subcommands through a ``register(subparsers)`` function in its
own ``cli`` module, listed in ``_ROLE_MODULES``; this module only parses, sets up logging, calls the
chosen handler and turns :class:`~sflow.errors.SflowError` into a message and an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from sflow import __version__
from sflow.errors import SflowError

# Modules with a ``register(subparsers)`` function, in the order their commands appear in --help.
_ROLE_MODULES: tuple[str, ...] = (
    "sflow.inspect_cli",
    "sflow.config_cli",
    "sflow.sched.cli",
    "sflow.node.cli",
    "sflow.delegator.cli",
    "sflow.icn.cli",
    "sflow.cluster.cli",
    "sflow.experiment.cli",
)

#: the module that registers each command: ``sflow COMMAND …`` builds only that module's parsers
#: (building all of them costs more than some commands' own work); --help, no command or an
#: unknown one build every module's. tests/unit/foundation checks it against the modules.
COMMAND_MODULES: dict[str, str] = {
    "validate": "sflow.inspect_cli",
    "config": "sflow.config_cli",
    "schedule": "sflow.sched.cli", "simulate": "sflow.sched.cli", "import": "sflow.sched.cli",
    "node": "sflow.node.cli", "status": "sflow.node.cli", "keygen": "sflow.node.cli",
    "delegate": "sflow.delegator.cli", "run": "sflow.delegator.cli", "calibrate": "sflow.delegator.cli",
    "gantt": "sflow.delegator.cli",
    "forwarder": "sflow.icn.cli", "icn": "sflow.icn.cli",
    "cluster": "sflow.cluster.cli",
    "experiment": "sflow.experiment.cli",
}

log = logging.getLogger(__name__)

#: exit status when standard output was closed by its reader: 128 + SIGPIPE, as a shell reports it
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``argv``'s command (every command's when ``argv`` is None or names none)."""
    parser = argparse.ArgumentParser(
        prog="sflow",
        description="Schedule DAGs of containerized functions onto vCPUs and chain them over IP or ICN.",
    )
    parser.add_argument("--version", action="version", version=f"sflow {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v INFO, -vv DEBUG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    command = _command(argv) if argv is not None else None
    modules = (COMMAND_MODULES[command],) if command in COMMAND_MODULES else _ROLE_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top-level options
    take no value); None when the top-level help comes first (it lists every command)."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    as_program = argv is None  # not called from Python code that goes on afterwards
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(args.verbose)
    try:
        result = args.func(args)
        sys.stdout.flush()  # here, so that a reader that went away is noticed below, not at exit
    except BrokenPipeError:
        return _stdout_closed()
    except SflowError as exc:
        print(f"sflow: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("sflow: interrupted", file=sys.stderr)
        return 130
    if as_program and getattr(args, "exit_at_once", False):
        _exit_at_once(int(result or 0))
    return int(result or 0)


def _exit_at_once(status: int) -> NoReturn:
    """End the process now, without freeing what the command built: a one-shot command over a
    large job (``sflow schedule`` of 100,000 tasks) made millions of objects, and freeing them one
    by one at exit takes a noticeable share of its run. Its files are written and closed by then;
    the output streams and the log handlers are flushed here."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def _stdout_closed() -> int:
    """Standard output's reader went away (``sflow ... | head -1``): stop quietly, as a program
    killed by SIGPIPE would (status 141), without a traceback now or when Python flushes at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return BROKEN_PIPE_STATUS
