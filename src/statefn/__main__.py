"""``python -m statefn``: the command line."""

from __future__ import annotations

from statefn.cli import console

raise SystemExit(console())
