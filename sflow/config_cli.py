"""``sflow config``: show the effective settings, import the original's nclw2.properties."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import tomli_w

from sflow.config import add_config_argument, config_from_args, config_to_dict, describe_keys, import_properties
from sflow.durable import write_durably
from sflow.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="show settings, or import the original's nclw2.properties")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="print the effective settings (defaults < file < SFLOW_* < flags)")
    add_config_argument(show)
    show.add_argument("--keys", action="store_true", help="list every key with its default and meaning")
    show.set_defaults(func=_show)
    imp = csub.add_parser("import", help="convert nclw2.properties into sflow.toml")
    imp.add_argument("properties", help="the original's properties file")
    imp.add_argument("-o", "--output", help="write here (default: standard output)")
    imp.add_argument("--force", action="store_true", help="overwrite an existing output file")
    imp.set_defaults(func=_import)


def _show(args: argparse.Namespace) -> int:
    if args.keys:
        for key, default, doc in describe_keys():
            print(f"{key} = {default!r}\n    {doc}")
        return 0
    sys.stdout.write(tomli_w.dumps(config_to_dict(config_from_args(args))))
    return 0


def _import(args: argparse.Namespace) -> int:
    source = args.properties
    out = Path(args.output) if args.output else None
    # Refused before anything is read or said: no notes about a conversion that is not written.
    if out is not None and out.exists() and not args.force:
        raise InputError(str(out), "", "already exists; pass --force to overwrite")
    try:
        text = Path(source).read_text(encoding="latin-1")
    except FileNotFoundError:
        raise InputError(source, "", "no such file") from None
    sections, notes = import_properties(text, source)
    document = "# Imported from " + Path(source).name + " by `sflow config import`.\n" + tomli_w.dumps(sections)
    if out is not None:
        write_durably(out, document)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(document)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
