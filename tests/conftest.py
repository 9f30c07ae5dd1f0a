"""Shared fixtures: an event recorder, loggers that keep their records, ledger databases."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class EventLog:
    """An ``on_event`` handler that keeps every event it receives, in order.

    Payloads are kept as received (not copied), so a test can check that the runtime did
    not hand out objects that later steps change.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        self.events.append((name, payload))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def of(self, name: str) -> list[dict[str, Any]]:
        """The payloads of every event called ``name``, in order."""
        return [payload for event, payload in self.events if event == name]

    def step_names(self, job_id: str) -> list[str]:
        """The names of the events about step ``job_id`` (log lines left out)."""
        return [
            name
            for name, payload in self.events
            if payload.get("job_id") == job_id and name != "log"
        ]


class RecordList(logging.Handler):
    """A logging handler that keeps every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, min_level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= min_level]


@pytest.fixture
def events() -> EventLog:
    return EventLog()


def _captured_logger() -> tuple[logging.Logger, RecordList]:
    # A fresh name per test, not propagating, so no record leaks between tests or to root.
    logger = logging.getLogger(f"statefn-test.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = RecordList()
    logger.addHandler(handler)
    return logger, handler


@pytest.fixture
def runtime_log() -> tuple[logging.Logger, RecordList]:
    """A logger to pass as ``logger=`` and the handler holding what it received."""
    return _captured_logger()


@pytest.fixture
def job_log() -> tuple[logging.Logger, RecordList]:
    """A logger to pass as ``job_logger=`` and the handler holding what it received."""
    return _captured_logger()


POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a throwaway PostgreSQL database on 127.0.0.1:5432, dropped after the
    session (tests are skipped where no server answers)."""
    import psycopg

    name = f"statefn_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL server at {POSTGRES_ADMIN_URL}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty ledger: a SQLite file, or a schema of its own in the session's
    PostgreSQL database (dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    import psycopg

    database: str = request.getfixturevalue("postgres_database")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{database}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


class Server:
    """A ``statefn serve`` process on a free port, and an HTTP client pointed at it."""

    def __init__(
        self, process: Any, project: Path, url: str, log: Path, token: str | None
    ) -> None:
        import httpx

        self.process = process
        self.project = project
        self.url = url
        self.log = log
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=30)

    def finished(self, run_id: str, timeout: float = 90) -> dict[str, Any]:
        """The run ``run_id`` (from the API) once it has a final reason (the server's
        workers run below its priority: on a busy machine a run queued behind a burst of
        them can take a while)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.client.get(f"/api/runs/{run_id}").json()
            if run["reason"] is not None:
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not finish in {timeout} s")

    def stop(self) -> int:
        """Interrupt the server (Ctrl-C) and wait for it; its exit code."""
        import signal
        import subprocess

        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        return int(self.process.returncode)


def start_server(project: Path, *args: str, token: str | None = None) -> Server:
    """Start ``statefn serve PROJECT --port 0 ARGS`` and wait until it answers."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    log = project.parent / f"serve-{uuid.uuid4().hex[:8]}.log"
    env = {**os.environ, "STATEFN_TOKEN": token or ""}
    env.pop("STATEFN_LEDGER", None)
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "statefn", "serve", str(project), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=stderr, env=env, text=True,
        )  # fmt: skip
    line = process.stdout.readline() if process.stdout else ""
    if "http://" not in line:
        process.kill()
        process.wait()
        raise AssertionError(f"the server did not start: {line}{log.read_text()}")
    url = line.split("open ", 1)[1].split()[0].rstrip("/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return Server(process, project, url, log, token)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"the server never became healthy: {log.read_text()}")
