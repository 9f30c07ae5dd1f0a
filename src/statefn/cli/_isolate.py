"""``statefn run --isolate`` and ``--ledger``: the run goes through the engine.

With ``--isolate`` the run executes in an engine worker process, with its memory limit and
run timeout; with ``--ledger`` (or ``$STATEFN_LEDGER``) it is also recorded, and without
``--isolate`` a recorded run executes in this process. Either way the command prints what
a plain run prints, and exits with the same codes.
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

from ._logs import CliLogs

__all__ = ["ledger_url", "run_elsewhere"]


def ledger_url(args: argparse.Namespace) -> str | None:
    """The ledger a run is recorded on: ``--ledger``, else ``$STATEFN_LEDGER``, else none."""
    url: str | None = args.ledger or os.environ.get("STATEFN_LEDGER") or None
    return url


def run_elsewhere(
    plan: dict[str, Any],
    state: Any,
    run_options: dict[str, Any],
    credentials: dict[str, Any] | None,
    args: argparse.Namespace,
    logs: CliLogs,
) -> Any:
    """Run through the engine (``--isolate``) or recorded in this process; the outcome."""
    from statefn._options import DEFAULT_STATE_LIMIT_MB
    from statefn.engine import Engine, run_recorded
    from statefn.ledger import open as open_ledger
    from statefn.ledger._url import mask_url

    ledger = ledger_url(args)
    options = {key: value for key, value in run_options.items() if key != "resolve_credential"}
    if not args.isolate:
        assert ledger is not None
        book = open_ledger(ledger)
        run_id = str(uuid.uuid4())
        logs.notice(f"Recording run {run_id} in {book.url}")
        return run_recorded(
            plan, state, ledger=book, run_id=run_id, credentials=credentials, **options
        )
    linker = options.pop("linker")
    engine = Engine(
        workers=1,
        ledger=ledger,
        run_timeout_ms=args.run_timeout,
        memory_limit_mb=args.memory_limit,
        credentials=credentials,
        # The default repo may not exist yet; a run that needs it says so when it links.
        repo_dir=linker["repo"] if os.path.isdir(linker["repo"]) else None,
        # Events bring the step states that --cache-steps and --log debug show; only a
        # ledger needs states over the usual payload limit withheld.
        payload_limit_mb=10 if ledger else DEFAULT_STATE_LIMIT_MB,
    )
    with engine:
        handle = engine.submit(plan, state, linker=linker, **options)
        if ledger is not None:
            logs.notice(f"Recording run {handle.id} in {mask_url(ledger)}")
        return handle.result()
