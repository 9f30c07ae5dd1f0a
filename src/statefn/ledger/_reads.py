"""The read half of the ledger: runs newest first, one run with its steps, logs, states.

Reads work from any thread or process while an engine writes: SQLite runs in WAL mode, so a
reader never waits for the writer, and PostgreSQL shows each query the last committed rows.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, Literal, Self

import orjson

from statefn._errors import LedgerError

from ._clock import utc_text
from ._database import Database
from ._errors import RunLookupError, StateWithheldError
from ._records import LogRecord, RunRecord, StepRecord

__all__ = ["LedgerReader"]

# A record's fields are its table's columns, by name; error and mem are JSON text there.
_RUN_FIELDS = tuple(field.name for field in fields(RunRecord) if field.name != "steps")
_STEP_FIELDS = tuple(field.name for field in fields(StepRecord))
_RUN_COLUMNS = ", ".join(_RUN_FIELDS)
_STEP_COLUMNS = ", ".join(_STEP_FIELDS)
_CANDIDATES_SHOWN = 10

# (of a step?, which) -> the query of the state's withheld marker and body.
_STATE_QUERIES = {
    (False, "output"): "SELECT r.state_withheld, s.body FROM runs r "
    "LEFT JOIN states s ON s.hash = r.state_ref WHERE r.run_id = ?",
    (False, "input"): "SELECT r.input_withheld, s.body FROM runs r "
    "LEFT JOIN states s ON s.hash = r.input_ref WHERE r.run_id = ?",
    (True, "output"): "SELECT t.output_withheld, s.body FROM steps t "
    "LEFT JOIN states s ON s.hash = t.output_ref WHERE t.run_id = ? AND t.key = ?",
    (True, "input"): "SELECT t.input_withheld, s.body FROM steps t "
    "LEFT JOIN states s ON s.hash = t.input_ref WHERE t.run_id = ? AND t.key = ?",
}


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    values = dict(zip(_RUN_FIELDS, row, strict=True))
    return RunRecord(**{**values, "error": _json(values["error"])})


def _step_record(row: tuple[Any, ...]) -> StepRecord:
    values = dict(zip(_STEP_FIELDS, row, strict=True))
    return StepRecord(**{**values, "error": _json(values["error"]), "mem": _json(values["mem"])})


class LedgerReader:
    """The read API over an open ``Database``; ``Ledger`` adds the writes."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @property
    def url(self) -> str:
        """The ledger's URL, with any password shown as ``***``."""
        return self._db.url.masked

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def runs(
        self,
        *,
        reason: str | None = None,
        workflow: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        """Runs newest first (by submission time), without their steps.

        ``reason`` matches the status (a final reason, or ``queued``/``started``); ``since``
        (inclusive) and ``until`` (exclusive) bound the submission time; ``before`` is a run
        id, to page on from the last run of the previous page.
        """
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("status = ?", reason),
            ("workflow = ?", workflow),
            ("submitted_at >= ?", None if since is None else utc_text(since)),
            ("submitted_at < ?", None if until is None else utc_text(until)),
            ("(submitted_at, run_id) < (SELECT submitted_at, run_id FROM runs r WHERE r.run_id = ?)", before),
        ):  # fmt: skip
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        rows = self._db.rows(
            f"SELECT {_RUN_COLUMNS} FROM runs {where}"
            "ORDER BY submitted_at DESC, run_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_run_record(row) for row in rows]

    def find_run(self, prefix: str) -> str:
        """The full id of the run whose id is ``prefix`` or starts with it.

        Raises ``RunLookupError`` when none or several match; its ``candidates`` are the
        matching ids (several) or the newest runs (none).
        """
        if self._db.rows("SELECT run_id FROM runs WHERE run_id = ?", (prefix,)):
            return prefix
        found = [
            row[0]
            for row in self._db.rows(
                "SELECT run_id FROM runs WHERE substr(run_id, 1, CAST(? AS INTEGER)) = ? "
                "ORDER BY submitted_at DESC, run_id DESC LIMIT ?",
                (len(prefix), prefix, _CANDIDATES_SHOWN + 1),
            )
        ]
        if len(found) == 1 and prefix:
            return str(found[0])
        if len(found) > 1 and prefix:
            more = " (and more)" if len(found) > _CANDIDATES_SHOWN else ""
            shown = found[:_CANDIDATES_SHOWN]
            raise RunLookupError(
                f"Several runs start with {prefix!r}{more}: {', '.join(shown)}",
                candidates=shown,
                fix="Give more characters of the run id",
            )
        raise self._no_run(prefix)

    def _no_run(self, prefix: str) -> RunLookupError:
        newest = [run.run_id for run in self.runs(limit=5)]
        return RunLookupError(
            f"No run matches {prefix!r} in the ledger {self.url}",
            candidates=newest,
            fix=f"The newest runs are: {', '.join(newest)}" if newest else "The ledger is empty",
        )

    def run(self, run_id: str) -> RunRecord:
        """The run ``run_id`` (a full id) with its step runs in the order they started."""
        rows = self._db.rows(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise self._no_run(run_id)
        record = _run_record(rows[0])
        record.steps = [
            _step_record(row)
            for row in self._db.rows(
                f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
            )
        ]
        return record

    def logs(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[LogRecord]:
        """The run's log lines with ``seq`` above ``after``, in order (to follow a run, pass
        the last ``seq`` seen); at most ``limit`` of them when given."""
        bounded = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self._db.rows(
            "SELECT run_id, seq, time, level, step_id, message FROM logs "
            f"WHERE run_id = ? AND seq > ? ORDER BY seq{bounded}",
            (run_id, after),
        )
        return [LogRecord(*row) for row in rows]

    def state(
        self, run_id: str, key: str | None = None, *, which: Literal["input", "output"] = "output"
    ) -> Any:
        """A state, decoded: the run's final state (``key=None``), or the output of step run
        ``key`` (such as ``"z-1"``); ``which="input"`` gives the input instead.

        ``None`` when no state was recorded (the run or step has not finished, or ended
        without one). Raises ``StateWithheldError`` when the state was withheld (too large),
        and ``RunLookupError``/``LedgerError`` for an unknown run or step run.
        """
        params = (run_id,) if key is None else (run_id, key)
        rows = self._db.rows(_STATE_QUERIES[key is not None, which], params)
        if not rows:
            record = self.run(run_id)
            keys = ", ".join(step.key for step in record.steps) or "none yet"
            raise LedgerError(
                f"Run {run_id} has no step run {key!r}", fix=f"Its step runs are: {keys}"
            )
        withheld, body = rows[0]
        if body is not None:
            return orjson.loads(body)
        if withheld is not None:
            what = f"The {which} state of " + (f"step {key} of run" if key else "run")
            raise StateWithheldError(
                f"{what} {run_id} was not stored: {withheld}", withheld=withheld
            )
        return None
