"""The ledger's tables: one schema for SQLite and PostgreSQL, with forward migrations.

``MIGRATIONS[n - 1]`` takes a ledger from version ``n - 1`` to ``n``; a new column or index
is a new entry at the end, never an edit of an old one. The only word that differs between
the two databases is the type of bytes, written ``{bytes}``.

Times are ISO 8601 text in UTC with microseconds (``2026-01-31T09:00:00.000000+00:00``), so
that they sort as text the same way on both databases. Errors and memory figures are JSON
text. States live once each in ``states``, keyed by the SHA-256 of their JSON; a state that
was not stored has a NULL reference and says why in its ``*_withheld`` column.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["LATEST_VERSION", "MIGRATIONS", "VERSION_TABLE", "statements"]

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE engines (
        engine_id     TEXT PRIMARY KEY,
        host          TEXT NOT NULL,
        pid           INTEGER NOT NULL,
        started_at    TEXT NOT NULL,
        heartbeat_at  TEXT NOT NULL,
        retired_at    TEXT
    );
    CREATE TABLE states (
        hash  TEXT PRIMARY KEY,
        size  BIGINT NOT NULL,
        body  {bytes} NOT NULL
    );
    CREATE TABLE runs (
        run_id          TEXT PRIMARY KEY,
        plan_id         TEXT,
        workflow        TEXT,
        engine_id       TEXT,
        attempt         INTEGER NOT NULL DEFAULT 1,
        status          TEXT NOT NULL,
        submitted_at    TEXT NOT NULL,
        started_at      TEXT,
        finished_at     TEXT,
        duration_ms     DOUBLE PRECISION,
        input_ref       TEXT REFERENCES states (hash),
        input_withheld  TEXT,
        state_ref       TEXT REFERENCES states (hash),
        state_withheld  TEXT,
        error           TEXT
    );
    CREATE INDEX runs_by_time ON runs (submitted_at DESC, run_id DESC);
    CREATE INDEX runs_by_status ON runs (status, submitted_at DESC);
    CREATE INDEX runs_by_workflow ON runs (workflow, submitted_at DESC);
    CREATE INDEX runs_by_engine ON runs (engine_id, status);
    CREATE TABLE steps (
        run_id           TEXT NOT NULL REFERENCES runs (run_id),
        key              TEXT NOT NULL,
        step_id          TEXT NOT NULL,
        seq              INTEGER NOT NULL,
        started_at       TEXT NOT NULL,
        finished_at      TEXT,
        reason           TEXT,
        input_ref        TEXT REFERENCES states (hash),
        input_withheld   TEXT,
        output_ref       TEXT REFERENCES states (hash),
        output_withheld  TEXT,
        error            TEXT,
        duration_ms      DOUBLE PRECISION,
        mem              TEXT,
        PRIMARY KEY (run_id, key)
    );
    CREATE TABLE logs (
        run_id   TEXT NOT NULL REFERENCES runs (run_id),
        seq      INTEGER NOT NULL,
        time     TEXT NOT NULL,
        level    TEXT NOT NULL,
        step_id  TEXT,
        message  TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    """,
    # 2: distributed runs (statefn.distributed). A run sent through a broker names its queue;
    # its lease (owner, expiry) and its attempt fence the workers that deliver it, and
    # ``deliveries`` counts the deliveries that did not end it (poison runs). The outbox
    # holds each run's broker message until a publish is confirmed.
    """
    ALTER TABLE runs ADD COLUMN queue TEXT;
    ALTER TABLE runs ADD COLUMN lease_owner TEXT;
    ALTER TABLE runs ADD COLUMN lease_until TEXT;
    ALTER TABLE runs ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE outbox (
        run_id        TEXT PRIMARY KEY REFERENCES runs (run_id),
        queue         TEXT NOT NULL,
        message       {bytes} NOT NULL,
        created_at    TEXT NOT NULL
    );
    CREATE INDEX outbox_by_age ON outbox (created_at);
    """,
    # 3: cancelling distributed runs; for statefn serve, cron ticks and logouts. A cancel
    # asked of a run that a worker holds is noted on the run; the worker stops the run, and
    # a later delivery that finds the note runs nothing. Each cron tick fired is claimed
    # once, so that the servers that share a ledger fire it once between them. A session
    # logged out is refused by every server until it would have expired.
    """
    ALTER TABLE runs ADD COLUMN cancel_requested_at TEXT;
    CREATE TABLE cron_ticks (
        workflow   TEXT NOT NULL,
        step_id    TEXT NOT NULL,
        tick       TEXT NOT NULL,
        fired_at   TEXT NOT NULL,
        PRIMARY KEY (workflow, step_id, tick)
    );
    CREATE TABLE ended_sessions (
        session_id  TEXT PRIMARY KEY,
        expires_at  TEXT NOT NULL
    );
    """,
)

LATEST_VERSION = len(MIGRATIONS)

_BYTES = {"sqlite": "BLOB", "postgresql": "BYTEA"}


def statements(version: int, dialect: Literal["sqlite", "postgresql"]) -> list[str]:
    """The statements of the migration to ``version``, written for ``dialect``."""
    script = MIGRATIONS[version - 1].replace("{bytes}", _BYTES[dialect])
    return [statement.strip() for statement in script.split(";") if statement.strip()]
