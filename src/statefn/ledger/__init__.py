"""The run ledger: every run an engine makes, with its steps, logs and states, in SQLite or
PostgreSQL.

    from statefn import ledger

    with ledger.open("sqlite:///runs.db") as book:      # or "postgresql://host/db"
        for run in book.runs(reason="fail", limit=10):  # newest first
            print(run.run_id, run.workflow, run.duration_ms)
        record = book.run(book.find_run("3f2a"))        # a unique prefix is enough
        state = book.state(record.run_id)               # the final state, decoded

The engine writes through the same object (``run_queued``, ``step_started``, ``log``, ...);
see ``docs/ledger.md`` for the schema and the rules on states and secrets.
"""

from ._errors import RunLookupError, StaleAttemptError, StateWithheldError
from ._leases import CancelResult, Claim
from ._ledger import Ledger, open
from ._reads import LedgerReader
from ._records import FINAL_REASONS, STATUSES, LogLine, LogRecord, RunRecord, StepRecord

__all__ = [
    "FINAL_REASONS",
    "STATUSES",
    "CancelResult",
    "Claim",
    "Ledger",
    "LedgerReader",
    "LogLine",
    "LogRecord",
    "RunLookupError",
    "RunRecord",
    "StaleAttemptError",
    "StateWithheldError",
    "StepRecord",
    "open",
]
