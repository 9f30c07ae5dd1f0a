"""The ledger: ``open(url)`` and the writes an engine makes as a run goes.

Each write method commits before it returns, so whatever was reported survives the engine
being killed the moment after. States arrive as JSON bytes (orjson's encoding, with
``configuration`` already removed) and are stored once each, under their SHA-256 (the
fastest stdlib hash measured here on a 17 MB state: ~14 ms, where blake2b takes ~42 ms).
A state that was not sent (``None``) may carry a ``withheld`` reason instead, such as
``"too large"``; the ledger never stores part of a state.

The ledger stores log lines and error messages as given: the engine masks them first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from statefn._errors import LedgerError, LostError

from ._clock import now, utc_text
from ._database import Database
from ._errors import StaleAttemptError
from ._leases import Leases
from ._records import FINAL_REASONS, LogLine
from ._url import parse_url

__all__ = ["Ledger", "open"]


def open(url: str, *, create: bool = True) -> Ledger:
    """Connect to the ledger at ``url`` and bring its schema up to date.

    ``url`` is ``sqlite:///path.db``, a bare file path, or ``postgresql://…``. With
    ``create=False`` a SQLite file that does not exist is an error rather than a new ledger
    (for readers). Raises ``LedgerError`` (URL masked) when the URL is malformed or the
    database cannot be reached or written.
    """
    database = Database(parse_url(url), create=create)
    try:
        database.migrate()
    except BaseException:
        database.close()
        raise
    return Ledger(database)


def _error_text(error: dict[str, Any] | None) -> str | None:
    return None if error is None else orjson.dumps(error).decode()


class Ledger(Leases):
    """An open ledger: the read API, the writes of an engine, and the leases of
    distributed workers.

    Every write of a run takes an optional ``attempt``: given, the write happens only while
    the run's attempt is still that one (else ``StaleAttemptError``), so a distributed worker
    whose delivery was superseded cannot record anything of the run.

    One instance may be shared by threads (calls are serialised); an engine should make its
    writes from one thread, in the order the events happened. Do not use an instance in a
    process forked after it was opened: open another there.
    """

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        # The last state hashed: a step's output is usually the next step's input.
        self._last_state: tuple[bytes, str] | None = None

    def batch(self) -> AbstractContextManager[None]:
        """``with ledger.batch():`` the writes inside commit together, in one transaction,
        or not at all (an engine under load commits many runs' writes at once)."""
        return self._db.transaction()

    # -- engines ----------------------------------------------------------------------------

    def register_engine(self, engine_id: str, host: str, pid: int) -> None:
        """Record an engine as alive (again, if ``engine_id`` was seen before)."""
        at = now()
        self._db.execute(
            "INSERT INTO engines (engine_id, host, pid, started_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (engine_id) DO UPDATE SET host = excluded.host, "
            "pid = excluded.pid, started_at = excluded.started_at, "
            "heartbeat_at = excluded.heartbeat_at, retired_at = NULL",
            (engine_id, host, pid, at, at),
        )

    def heartbeat(self, engine_id: str) -> None:
        """Prove the engine alive now; call every few seconds."""
        changed = self._db.execute(
            "UPDATE engines SET heartbeat_at = ? WHERE engine_id = ?", (now(), engine_id)
        )
        if not changed:
            raise LedgerError(
                f"Engine {engine_id} is not registered in the ledger {self.url}",
                fix="Call register_engine first",
            )

    def retire_engine(self, engine_id: str) -> None:
        """Record that the engine stopped; runs it left unfinished may be marked lost at once."""
        self._db.execute(
            "UPDATE engines SET retired_at = ? WHERE engine_id = ?", (now(), engine_id)
        )

    def mark_lost(self, *, dead_after_s: float = 30.0) -> list[str]:
        """Mark ``lost`` the queued or started runs whose engine retired, or has not sent a
        heartbeat for ``dead_after_s`` seconds; their ids. A run held by an engine that
        heartbeats is never touched, and two engines marking at once mark each run once.
        A distributed run (one with a queue) is never marked: its broker delivers it again.

        Heartbeats are compared with this process's clock: keep ``dead_after_s`` well above
        the clock skew between hosts.
        """
        lost: list[str] = []
        at = now()
        with self._db.transaction():
            held = self._db.rows(
                "SELECT r.run_id, e.host, e.pid FROM runs r "
                "JOIN engines e ON e.engine_id = r.engine_id "
                "WHERE r.status IN ('queued', 'started') AND r.queue IS NULL "
                "AND (e.retired_at IS NOT NULL OR e.heartbeat_at < ?)",
                (now(minus_s=dead_after_s),),
            )
            for run_id, host, pid in held:
                error = LostError(
                    f"The engine that held this run (host {host}, pid {pid}) stopped "
                    "without finishing it"
                ).to_dict()
                if self._db.execute(
                    "UPDATE runs SET status = 'lost', error = ?, finished_at = ? "
                    "WHERE run_id = ? AND status IN ('queued', 'started')",
                    (_error_text(error), at, run_id),
                ):
                    lost.append(run_id)
        return lost

    # -- runs -------------------------------------------------------------------------------

    def run_queued(
        self,
        run_id: str,
        *,
        engine_id: str | None,
        plan_id: str | None,
        workflow: str | None,
        input_state: bytes | None,
        input_withheld: str | None = None,
        submitted_at: str | None = None,
        outbox: tuple[str, bytes] | None = None,
    ) -> None:
        """Record a new run, ``queued`` on ``engine_id``, with its input state.

        A run id already in the ledger is a ``LedgerError``. ``submitted_at`` is ISO 8601
        (default: now). ``outbox`` (a queue and a broker message) makes it a distributed run:
        no delivery yet (attempt 0), and its message waits in the outbox, in the same commit,
        until ``outbox_published``.
        """
        at = now() if submitted_at is None else utc_text(submitted_at)
        queue, message = outbox if outbox is not None else (None, None)
        with self._db.transaction():
            input_ref = self._store(input_state)
            self._db.execute(
                "INSERT INTO runs (run_id, plan_id, workflow, engine_id, attempt, status, "
                "submitted_at, input_ref, input_withheld, queue) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (
                    run_id,
                    plan_id,
                    workflow,
                    engine_id,
                    1 if outbox is None else 0,
                    at,
                    input_ref,
                    input_withheld,
                    queue,
                ),
            )
            if outbox is not None:
                self._db.execute(
                    "INSERT INTO outbox (run_id, queue, message, created_at) VALUES (?, ?, ?, ?)",
                    (run_id, queue, message, at),
                )

    def runs_queued(self, runs: Sequence[Mapping[str, Any]]) -> None:
        """Record new runs in one commit: for each, ``run_queued``'s arguments (``run_id``,
        ``engine_id``, ``plan_id``, ``workflow``, ``input_state``, ``input_withheld``). A
        few statements for the lot, however many there are (a burst of webhooks)."""
        states: dict[bytes, str] = {}
        rows = []
        for run in runs:
            body = run["input_state"]
            if body is not None and body not in states:
                states[body] = hashlib.sha256(body).hexdigest()
            rows.append((
                run["run_id"], run["plan_id"], run["workflow"], run["engine_id"], now(),
                None if body is None else states[body], run.get("input_withheld"),
            ))  # fmt: skip
        with self._db.transaction():
            for chunk in _chunks([(digest, len(body), body) for body, digest in states.items()]):
                self._db.execute(
                    "INSERT INTO states (hash, size, body) VALUES "
                    + ", ".join(["(?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT (hash) DO NOTHING",
                    [value for row in chunk for value in row],
                )
            for chunk in _chunks(rows):
                self._db.execute(
                    "INSERT INTO runs (run_id, plan_id, workflow, engine_id, attempt, status, "
                    "submitted_at, input_ref, input_withheld) VALUES "
                    + ", ".join(["(?, ?, ?, ?, 1, 'queued', ?, ?, ?)"] * len(chunk)),
                    [value for row in chunk for value in row],
                )

    def run_started(
        self, run_id: str, *, attempt: int | None = None, engine_id: str | None = None
    ) -> None:
        """Record that the run's worker began it (on ``engine_id``, when it is not the
        engine that queued it)."""
        with self._db.transaction():
            self._fence(run_id, attempt)
            self._changed(
                run_id,
                "UPDATE runs SET status = 'started', started_at = ?, "
                "engine_id = COALESCE(?, engine_id) WHERE run_id = ?",
                (now(), engine_id, run_id),
            )

    def run_finished(
        self,
        run_id: str,
        *,
        reason: str,
        state: bytes | None,
        state_withheld: str | None = None,
        error: dict[str, Any] | None,
        duration_ms: float | None,
        attempt: int | None = None,
    ) -> None:
        """Record the run's final ``reason`` (one of ``FINAL_REASONS``), state and error.

        The last call wins: a run marked ``lost`` by mistake takes the reason its engine
        reports when it comes back.
        """
        if reason not in FINAL_REASONS:
            raise ValueError(f"reason must be one of {', '.join(FINAL_REASONS)}, not {reason!r}")
        with self._db.transaction():
            self._fence(run_id, attempt)
            state_ref = self._store(state)
            self._changed(
                run_id,
                "UPDATE runs SET status = ?, finished_at = ?, duration_ms = ?, state_ref = ?, "
                "state_withheld = ?, error = ? WHERE run_id = ?",
                (reason, now(), duration_ms, state_ref, state_withheld, _error_text(error), run_id),
            )

    # -- steps and logs ---------------------------------------------------------------------

    def step_started(
        self,
        run_id: str,
        key: str,
        step_id: str,
        *,
        input_state: bytes | None,
        input_withheld: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """Record that step run ``key`` (such as ``z-1``) of step ``step_id`` began.

        Starting the same key again (a retried delivery) starts it afresh, in its old place.
        """
        at = now()
        with self._db.transaction():
            self._fence(run_id, attempt)
            input_ref = self._store(input_state)
            self._db.execute(
                "INSERT INTO steps (run_id, key, step_id, seq, started_at, input_ref, "
                "input_withheld) VALUES (?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?), ?, ?, ?) "
                "ON CONFLICT (run_id, key) DO UPDATE SET step_id = excluded.step_id, "
                "started_at = excluded.started_at, input_ref = excluded.input_ref, "
                "input_withheld = excluded.input_withheld, finished_at = NULL, reason = NULL, "
                "output_ref = NULL, output_withheld = NULL, error = NULL, duration_ms = NULL, "
                "mem = NULL",
                (run_id, key, step_id, run_id, at, input_ref, input_withheld),
            )

    def step_finished(
        self,
        run_id: str,
        key: str,
        *,
        reason: str,
        output_state: bytes | None,
        output_withheld: str | None = None,
        error: dict[str, Any] | None,
        duration_ms: float | None,
        mem: dict[str, Any] | None,
        attempt: int | None = None,
    ) -> None:
        """Record how step run ``key`` ended: ``reason`` (success, fail, crash, kill or
        cancel), its output state, error record, duration and memory figures."""
        with self._db.transaction():
            self._fence(run_id, attempt)
            output_ref = self._store(output_state)
            changed = self._db.execute(
                "UPDATE steps SET finished_at = ?, reason = ?, output_ref = ?, "
                "output_withheld = ?, error = ?, duration_ms = ?, mem = ? "
                "WHERE run_id = ? AND key = ?",
                (
                    now(),
                    reason,
                    output_ref,
                    output_withheld,
                    _error_text(error),
                    duration_ms,
                    None if mem is None else orjson.dumps(mem).decode(),
                    run_id,
                    key,
                ),
            )
            if not changed:
                raise LedgerError(
                    f"Step run {key} of run {run_id} was never started in the ledger {self.url}",
                    fix="Call step_started before step_finished",
                )

    def log(
        self,
        run_id: str,
        *,
        step_id: str | None,
        level: str,
        message: str,
        time: str,
        attempt: int | None = None,
    ) -> None:
        """Record one log line (``time`` ISO 8601; ``message`` already masked)."""
        self.logs_many(
            run_id,
            [{"step_id": step_id, "level": level, "message": message, "time": time}],
            attempt=attempt,
        )

    def logs_many(
        self, run_id: str, lines: Iterable[LogLine], *, attempt: int | None = None
    ) -> None:
        """Record several log lines of one run, in order, in one commit."""
        with self._db.transaction():
            self._fence(run_id, attempt)
            last = self._db.rows(
                "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE run_id = ?", (run_id,)
            )[0][0]
            self._db.execute_many(
                "INSERT INTO logs (run_id, seq, time, level, step_id, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run_id, seq, utc_text(line["time"]), line["level"], line["step_id"],
                     line["message"])
                    for seq, line in enumerate(lines, start=int(last) + 1)
                ],
            )  # fmt: skip

    # -- cron -------------------------------------------------------------------------------

    def claim_tick(self, workflow: str, step_id: str, tick: datetime) -> bool:
        """Claim cron tick ``tick`` of trigger ``step_id`` of ``workflow``: ``True`` for the
        first claim, ``False`` for any other (another server on this ledger fired it).
        Claims of ticks more than a day older are let go on the way."""
        with self._db.transaction():
            self._db.execute(
                "DELETE FROM cron_ticks WHERE tick < ?", (utc_text(tick - timedelta(days=1)),)
            )
            return bool(
                self._db.execute(
                    "INSERT INTO cron_ticks (workflow, step_id, tick, fired_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (workflow, step_id, tick) DO NOTHING",
                    (workflow, step_id, utc_text(tick), now()),
                )
            )

    # -- sessions of statefn serve ----------------------------------------------------------

    def end_session(self, session_id: str, expires: float) -> None:
        """Record that login session ``session_id`` was logged out, until it would have
        expired (``expires``, Unix time); records past their expiry are let go."""
        with self._db.transaction():
            self._db.execute("DELETE FROM ended_sessions WHERE expires_at < ?", (now(),))
            self._db.execute(
                "INSERT INTO ended_sessions (session_id, expires_at) VALUES (?, ?) "
                "ON CONFLICT (session_id) DO NOTHING",
                (session_id, utc_text(datetime.fromtimestamp(expires, UTC))),
            )

    def session_ended(self, session_id: str) -> bool:
        """Whether login session ``session_id`` was logged out."""
        return bool(
            self._db.rows("SELECT 1 FROM ended_sessions WHERE session_id = ?", (session_id,))
        )

    # -- states -----------------------------------------------------------------------------

    def _store(self, body: bytes | None) -> str | None:
        """Store a state's JSON once; its reference (``None`` for no state)."""
        if body is None:
            return None
        last = self._last_state
        if last is not None and (body is last[0] or body == last[0]):
            digest = last[1]
        else:
            digest = hashlib.sha256(body).hexdigest()
            self._last_state = (body, digest)
        if not self._db.rows("SELECT 1 FROM states WHERE hash = ?", (digest,)):
            self._db.execute(
                "INSERT INTO states (hash, size, body) VALUES (?, ?, ?) "
                "ON CONFLICT (hash) DO NOTHING",
                (digest, len(body), body),
            )
        return digest

    def _fence(self, run_id: str, attempt: int | None) -> None:
        """Inside a transaction: hold the run's attempt at ``attempt`` until the commit, or
        raise ``StaleAttemptError``. On PostgreSQL the row is share-locked, so a claim of a
        new attempt waits for this write (SQLite's writers queue for the whole file)."""
        if attempt is None:
            return
        rows = self._db.rows(
            f"SELECT attempt FROM runs WHERE run_id = ?{self._row_lock('SHARE')}", (run_id,)
        )
        if not rows:
            raise LedgerError(
                f"Run {run_id} is not in the ledger {self.url}", fix="Call run_queued first"
            )
        if rows[0][0] != attempt:
            raise StaleAttemptError(run_id, attempt, int(rows[0][0]))

    def _changed(self, run_id: str, sql: str, params: tuple[Any, ...]) -> None:
        if not self._db.execute(sql, params):
            raise LedgerError(
                f"Run {run_id} is not in the ledger {self.url}", fix="Call run_queued first"
            )


def _chunks(rows: list[tuple[Any, ...]], size: int = 500) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` in lists of at most ``size``: one statement each, within the databases'
    limits on parameters (at least 32,766 in SQLite, 65,535 in PostgreSQL)."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
