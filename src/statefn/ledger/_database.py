"""One connection to the ledger's database, SQLite or PostgreSQL, behind one small surface.

Statements are written once with ``?`` placeholders; for PostgreSQL they become ``%s``.
Each statement outside ``transaction()`` commits on its own. A lock serialises callers, so
one ``Database`` may be shared by threads. Every driver error leaves as a ``LedgerError``
that names the URL masked. A PostgreSQL connection that the server dropped fails the call
that met the drop and is made again for the next call.

psycopg is imported only when a PostgreSQL URL is opened: SQLite users, and the start-up of
``statefn run --ledger runs.db``, do not pay for it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from statefn._errors import LedgerError

from ._schema import LATEST_VERSION, VERSION_TABLE, statements
from ._url import LedgerURL

__all__ = ["Database"]

# How long a writer waits for another writer's lock (SQLite) or for a server to answer.
BUSY_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10
# Any constant: the key of the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK = 7_305_117_113


class Database:
    """A connection to the ledger at ``url``; ``create=False`` refuses a missing SQLite file."""

    def __init__(self, url: LedgerURL, *, create: bool = True) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._postgres = url.dialect == "postgresql"
        self._errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        self._in_transaction = False
        with self._failures("be opened"):
            self._connection: Any = (
                self._connect_postgres() if self._postgres else self._connect_sqlite(create)
            )

    def _connect_sqlite(self, create: bool) -> sqlite3.Connection:
        path = self.url.target
        if not create and not os.path.exists(path):
            raise LedgerError(
                f"There is no ledger at {self.url.masked}: the file does not exist",
                fix="Check the path, or record a run first with statefn run --ledger",
            )
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        # WAL lets readers (the CLI, a web server) read while an engine writes; NORMAL
        # syncs at checkpoints only, and a killed process still loses no committed write.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def _connect_postgres(self) -> Any:
        import psycopg

        self._errors = (sqlite3.Error, psycopg.Error)
        options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self.url.target:
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        return psycopg.connect(self.url.target, **options)

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._errors as error:
            detail = self.url.mask((str(error).strip().splitlines() or [type(error).__name__])[0])
            raise LedgerError(
                f"The run ledger {self.url.masked} could not {action}: {detail}",
                fix=_fix(self.url, action),
            ) from None

    def _live(self) -> Any:
        """The connection; one the PostgreSQL server dropped is made again, outside a
        transaction only (the statement that met the drop has failed; the next one works)."""
        if self._postgres and not self._in_transaction and self._connection.broken:
            with self._failures("be reached again"):
                self._connection = self._connect_postgres()
        return self._connection

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows ``sql`` returns."""
        with self._lock, self._failures("be read"):
            return list(self._live().execute(self._sql(sql), params).fetchall())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        with self._lock, self._failures("be written"):
            return int(self._live().execute(self._sql(sql), params).rowcount)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""
        with self._lock, self._failures("be written"):
            self._live().cursor().executemany(self._sql(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside commit together, or not at all; writers queue for the lock.

        A transaction inside another (on the same thread) joins it: everything commits with
        the outer one, and an error anywhere rolls all of it back."""
        with self._lock:
            if self._in_transaction:
                yield
                return
            connection = self._live()
            self._in_transaction = True
            try:
                if self._postgres:
                    with self._failures("be written"), connection.transaction():
                        yield
                    return
                with self._failures("be written"):
                    connection.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    connection.rollback()
                    raise
                with self._failures("be written"):
                    connection.execute("COMMIT")
            finally:
                self._in_transaction = False

    def migrate(self) -> None:
        """Bring the schema to the latest version; safe when several processes open at once."""
        if self._version(lock=False) == LATEST_VERSION:
            return
        with self.transaction():
            current = self._version(lock=True)
            if current > LATEST_VERSION:
                raise LedgerError(
                    f"The run ledger {self.url.masked} has schema version {current}, newer "
                    f"than this statefn knows ({LATEST_VERSION})",
                    fix="Upgrade statefn, or use another ledger",
                )
            for version in range(current + 1, LATEST_VERSION + 1):
                for statement in statements(version, self.url.dialect):
                    self.execute(statement)
                self.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _version(self, *, lock: bool) -> int:
        if lock:
            if self._postgres:
                self.rows("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            self.execute(VERSION_TABLE)
        elif not self._has_version_table():
            return 0
        return int(self.rows("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    def _has_version_table(self) -> bool:
        if self._postgres:
            found = self.rows("SELECT to_regclass('schema_version') IS NOT NULL")
        else:
            found = self.rows(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'schema_version'"
            )
        return bool(found[0][0])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock, self._failures("be closed"):
            self._connection.close()


def _fix(url: LedgerURL, action: str) -> str:
    if url.dialect == "sqlite":
        if action == "be opened":
            return f"Check that the folder of {url.target} exists and that you may write there"
        return "Check the file is a statefn ledger and that no other program holds a lock on it"
    if action == "be opened":
        return "Check that the PostgreSQL server is running, reachable, and that the URL is right"
    return "Check the PostgreSQL server is still up and the user may write the ledger's tables"
