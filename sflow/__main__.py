"""``python -m sflow`` runs the command-line interface."""

from sflow.cli import main

raise SystemExit(main())
