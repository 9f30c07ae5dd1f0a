"""The run ledger on real databases: a SQLite file and PostgreSQL on localhost.

Every test that takes ``ledger_url`` runs once per database, on an empty ledger.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from statefn import LedgerError, LostError, ledger
from statefn.ledger._database import Database
from statefn.ledger._schema import LATEST_VERSION, VERSION_TABLE, statements
from statefn.ledger._url import mask_url, parse_url

STATE_A = orjson.dumps({"data": {"n": 1}})
STATE_B = orjson.dumps({"data": {"n": 2}})


@pytest.fixture
def book(ledger_url: str) -> Iterator[ledger.Ledger]:
    with ledger.open(ledger_url) as opened:
        opened.register_engine("engine-1", "host-a", 101)
        yield opened


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows straight from the database, past the ledger's read API."""
    database = Database(parse_url(url))
    try:
        return database.rows(sql)
    finally:
        database.close()


def _queue(book: ledger.Ledger, run_id: str, **fields: Any) -> None:
    options: dict[str, Any] = {
        "engine_id": "engine-1",
        "plan_id": "plan-1",
        "workflow": "nightly",
        "input_state": STATE_A,
        **fields,
    }
    book.run_queued(run_id, **options)


def _two_step_run(book: ledger.Ledger, run_id: str) -> None:
    _queue(book, run_id)
    book.run_started(run_id)
    book.step_started(run_id, "a-1", "a", input_state=STATE_A)
    book.log(run_id, step_id="a", level="info", message="fetching", time="2026-01-31T09:00:00Z")
    book.step_finished(
        run_id, "a-1", reason="success", output_state=STATE_B, error=None, duration_ms=12,
        mem={"rss_mb": 40},
    )  # fmt: skip
    book.step_started(run_id, "b-1", "b", input_state=STATE_B)
    error = {"source": "runtime", "name": "JobError", "severity": "fail", "message": "bad row"}
    book.step_finished(
        run_id, "b-1", reason="fail", output_state=STATE_B, error=error, duration_ms=3, mem=None
    )
    book.run_finished(run_id, reason="fail", state=STATE_B, error=None, duration_ms=20)


# -- schema -------------------------------------------------------------------------------


def test_opening_twice_migrates_once(ledger_url: str) -> None:
    ledger.open(ledger_url).close()
    ledger.open(ledger_url).close()
    assert _rows(ledger_url, "SELECT version FROM schema_version ORDER BY version") == [
        (version,) for version in range(1, LATEST_VERSION + 1)
    ]


def test_a_ledger_of_the_previous_schema_version_is_migrated_with_its_runs(
    ledger_url: str,
) -> None:
    database = Database(parse_url(ledger_url))
    with database.transaction():
        database.execute(VERSION_TABLE)
        for version in range(1, LATEST_VERSION):
            for statement in statements(version, database.url.dialect):
                database.execute(statement)
            database.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        database.execute(
            "INSERT INTO runs (run_id, status, submitted_at) VALUES (?, ?, ?)",
            ("old", "success", "2026-01-31T09:00:00.000000+00:00"),
        )
    database.close()
    with ledger.open(ledger_url) as book:
        assert book.run("old").reason == "success"
        assert book.cancel_requested("old") is False  # the latest version's column
    assert _rows(ledger_url, "SELECT MAX(version) FROM schema_version") == [(LATEST_VERSION,)]


def test_a_cron_tick_is_claimed_once_and_let_go_a_day_later(ledger_url: str) -> None:
    tick = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    with ledger.open(ledger_url) as book, ledger.open(ledger_url) as other_server:
        assert book.claim_tick("nightly", "every", tick) is True
        assert other_server.claim_tick("nightly", "every", tick) is False
        assert other_server.claim_tick("nightly", "hourly", tick) is True  # another trigger
        assert book.claim_tick("nightly", "every", tick + timedelta(days=1, minutes=1))
        assert _rows(ledger_url, "SELECT COUNT(*) FROM cron_ticks") == [(1,)]


def test_processes_opening_a_fresh_ledger_at_once_all_succeed(ledger_url: str) -> None:
    script = "import sys; from statefn import ledger; ledger.open(sys.argv[1]).close()"
    children = [
        subprocess.Popen([sys.executable, "-c", script, ledger_url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [child.communicate(timeout=60)[1].decode() for child in children]
    assert [child.returncode for child in children] == [0, 0, 0, 0], errors
    assert _rows(ledger_url, "SELECT version FROM schema_version ORDER BY version") == [
        (version,) for version in range(1, LATEST_VERSION + 1)
    ]


def test_a_ledger_from_a_newer_statefn_is_refused(ledger_url: str) -> None:
    ledger.open(ledger_url).close()
    database = Database(parse_url(ledger_url))
    database.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST_VERSION + 1,))
    database.close()
    with pytest.raises(LedgerError, match=f"schema version {LATEST_VERSION + 1}, newer"):
        ledger.open(ledger_url)


def test_sqlite_ledger_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    ledger.open(str(path)).close()
    assert _rows(str(path), "PRAGMA journal_mode") == [("wal",)]


# -- writes and reads ---------------------------------------------------------------------


def test_a_run_is_recorded_with_its_steps_in_order(book: ledger.Ledger) -> None:
    _two_step_run(book, "run-1")
    run = book.run("run-1")
    assert (run.workflow, run.plan_id, run.engine_id, run.status, run.reason) == (
        "nightly", "plan-1", "engine-1", "fail", "fail",
    )  # fmt: skip
    assert run.duration_ms == 20
    assert run.submitted_at <= (run.started_at or "") <= (run.finished_at or "")
    assert [(step.seq, step.key, step.step_id, step.reason) for step in run.steps] == [
        (1, "a-1", "a", "success"),
        (2, "b-1", "b", "fail"),
    ]
    assert run.steps[0].mem == {"rss_mb": 40}
    assert run.steps[1].error is not None and run.steps[1].error["message"] == "bad row"
    assert orjson.loads(orjson.dumps(run.to_dict()))["steps"][1]["reason"] == "fail"


def test_states_are_read_back_decoded(book: ledger.Ledger) -> None:
    _two_step_run(book, "run-1")
    assert book.state("run-1") == {"data": {"n": 2}}
    assert book.state("run-1", which="input") == {"data": {"n": 1}}
    assert book.state("run-1", "a-1") == {"data": {"n": 2}}
    assert book.state("run-1", "a-1", which="input") == {"data": {"n": 1}}


def test_a_state_handed_from_step_to_step_is_stored_once(
    book: ledger.Ledger, ledger_url: str
) -> None:
    _two_step_run(book, "run-1")
    _two_step_run(book, "run-2")
    assert _rows(ledger_url, "SELECT COUNT(*) FROM states") == [(2,)]
    run = book.run("run-2")
    assert run.steps[0].output_ref == run.steps[1].input_ref == run.state_ref


def test_runs_queued_together_are_listed_in_order_with_their_states_stored_once(
    book: ledger.Ledger, ledger_url: str
) -> None:
    same, other = orjson.dumps({"data": {"n": 1}}), orjson.dumps({"data": {"n": 2}})
    bodies = [same, other, same, None]
    book.runs_queued([
        {"run_id": f"run-{n}", "engine_id": None, "plan_id": "p", "workflow": "hooked",
         "input_state": body, "input_withheld": None if body else "too large"}
        for n, body in enumerate(bodies)
    ])  # fmt: skip
    assert [run.run_id for run in book.runs()] == ["run-3", "run-2", "run-1", "run-0"]
    assert {run.status for run in book.runs()} == {"queued"}
    assert _rows(ledger_url, "SELECT COUNT(*) FROM states") == [(2,)]
    assert book.state("run-2", which="input") == {"data": {"n": 1}}
    assert book.run("run-3").input_withheld == "too large"


def test_a_withheld_state_is_a_marker_not_json(book: ledger.Ledger, ledger_url: str) -> None:
    _queue(book, "run-1", input_state=None, input_withheld="too large")
    book.step_started("run-1", "a-1", "a", input_state=None, input_withheld="too large")
    book.step_finished(
        "run-1", "a-1", reason="success", output_state=None, output_withheld="too large",
        error=None, duration_ms=1, mem=None,
    )  # fmt: skip
    assert _rows(ledger_url, "SELECT COUNT(*) FROM states") == [(0,)]
    with pytest.raises(ledger.StateWithheldError) as raised:
        book.state("run-1", which="input")
    assert raised.value.withheld == "too large"
    assert raised.value.message == "The input state of run run-1 was not stored: too large"
    with pytest.raises(ledger.StateWithheldError, match="output state of step a-1 of run"):
        book.state("run-1", "a-1")
    assert book.run("run-1").steps[0].output_withheld == "too large"


def test_a_state_not_yet_recorded_reads_as_none(book: ledger.Ledger) -> None:
    _queue(book, "run-1", input_state=None)
    assert book.state("run-1", which="input") is None
    assert book.state("run-1") is None


def test_reading_an_unknown_step_run_names_the_ones_there(book: ledger.Ledger) -> None:
    _two_step_run(book, "run-1")
    with pytest.raises(LedgerError, match="has no step run 'c-1'") as raised:
        book.state("run-1", "c-1")
    assert raised.value.fix == "Its step runs are: a-1, b-1"


def test_log_lines_are_numbered_in_order_and_followed_with_after(book: ledger.Ledger) -> None:
    _queue(book, "run-1")
    book.logs_many(
        "run-1",
        [
            {"step_id": None, "level": "info", "message": "one", "time": "2026-01-31T09:00:00Z"},
            {"step_id": "a", "level": "warn", "message": "two", "time": "2026-01-31T10:00:00+01:00"},
        ],
    )  # fmt: skip
    book.log("run-1", step_id="a", level="error", message="three", time="2026-01-31T09:00:01")
    lines = book.logs("run-1")
    assert [(line.seq, line.level, line.step_id, line.message) for line in lines] == [
        (1, "info", None, "one"), (2, "warn", "a", "two"), (3, "error", "a", "three"),
    ]  # fmt: skip
    # Times are kept in UTC, whatever zone they came in.
    assert [line.time for line in lines[:2]] == ["2026-01-31T09:00:00.000000+00:00"] * 2
    assert [line.message for line in book.logs("run-1", after=2)] == ["three"]
    assert [line.message for line in book.logs("run-1", after=1, limit=1)] == ["two"]
    assert lines[0].to_dict()["message"] == "one"


def test_writing_to_a_run_that_is_not_there_is_an_error(book: ledger.Ledger) -> None:
    with pytest.raises(LedgerError, match="Run ghost is not in the ledger"):
        book.run_started("ghost")
    _queue(book, "run-1")
    with pytest.raises(LedgerError, match="Step run a-1 of run run-1 was never started"):
        book.step_finished(
            "run-1", "a-1", reason="success", output_state=None, error=None, duration_ms=1,
            mem=None,
        )  # fmt: skip
    with pytest.raises(LedgerError, match="could not be written"):
        _queue(book, "run-1")


def test_a_step_started_again_keeps_its_place_and_loses_its_old_end(book: ledger.Ledger) -> None:
    _two_step_run(book, "run-1")
    book.step_started("run-1", "a-1", "a", input_state=STATE_B)
    steps = book.run("run-1").steps
    assert [(step.key, step.seq) for step in steps] == [("a-1", 1), ("b-1", 2)]
    assert (steps[0].reason, steps[0].output_ref) == (None, None)
    assert book.state("run-1", "a-1", which="input") == {"data": {"n": 2}}


# -- listing and finding ------------------------------------------------------------------


def _listed(book: ledger.Ledger) -> None:
    for number, (workflow, reason) in enumerate(
        [("nightly", "success"), ("daily", "fail"), ("nightly", "fail"), ("daily", None)]
    ):
        run_id = f"run-{number}"
        _queue(book, run_id, workflow=workflow, submitted_at=f"2026-01-0{number + 1}T12:00:00Z")
        if reason:
            book.run_finished(run_id, reason=reason, state=None, error=None, duration_ms=5)


def test_runs_are_listed_newest_first(book: ledger.Ledger) -> None:
    _listed(book)
    assert [run.run_id for run in book.runs()] == ["run-3", "run-2", "run-1", "run-0"]
    assert [run.run_id for run in book.runs(limit=2)] == ["run-3", "run-2"]
    assert [run.run_id for run in book.runs(limit=2, before="run-2")] == ["run-1", "run-0"]
    assert book.runs()[0].steps == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"reason": "fail"}, ["run-2", "run-1"]),
        ({"reason": "queued"}, ["run-3"]),
        ({"workflow": "nightly"}, ["run-2", "run-0"]),
        ({"workflow": "nightly", "reason": "fail"}, ["run-2"]),
        ({"since": "2026-01-02T12:00:00Z"}, ["run-3", "run-2", "run-1"]),
        ({"until": "2026-01-02T12:00:00Z"}, ["run-0"]),
        ({"since": "2026-01-02", "until": "2026-01-04"}, ["run-2", "run-1"]),
    ],
)
def test_runs_are_filtered_by_reason_workflow_and_time(
    book: ledger.Ledger, filters: dict[str, Any], expected: list[str]
) -> None:
    _listed(book)
    assert [run.run_id for run in book.runs(**filters)] == expected


def test_a_run_is_found_by_its_id_or_a_unique_prefix(book: ledger.Ledger) -> None:
    for run_id in ("3f2a11", "3f2a22", "3f2a2", "9c00"):
        _queue(book, run_id)
    assert book.find_run("9") == "9c00"
    assert book.find_run("3f2a1") == "3f2a11"
    # An id that is also the start of another id is that run.
    assert book.find_run("3f2a2") == "3f2a2"


def test_an_ambiguous_prefix_lists_the_candidates(book: ledger.Ledger) -> None:
    for run_id in ("3f2a11", "3f2a22"):
        _queue(book, run_id)
    with pytest.raises(ledger.RunLookupError) as raised:
        book.find_run("3f")
    assert sorted(raised.value.candidates) == ["3f2a11", "3f2a22"]
    assert raised.value.message.startswith("Several runs start with '3f': ")


def test_an_unknown_run_names_the_newest_runs(book: ledger.Ledger) -> None:
    _queue(book, "3f2a11")
    with pytest.raises(ledger.RunLookupError) as raised:
        book.find_run("zz")
    assert raised.value.candidates == ["3f2a11"]
    assert raised.value.message.startswith("No run matches 'zz' in the ledger ")
    with pytest.raises(ledger.RunLookupError, match="No run matches 'zz'"):
        book.run("zz")


# -- lost runs ----------------------------------------------------------------------------


def test_runs_of_an_engine_whose_heartbeat_stopped_are_lost(book: ledger.Ledger) -> None:
    _queue(book, "held-by-dead")
    book.run_started("held-by-dead")
    _queue(book, "finished-by-dead")
    book.run_finished("finished-by-dead", reason="success", state=None, error=None, duration_ms=1)
    time.sleep(0.6)
    book.register_engine("engine-2", "host-b", 202)
    _queue(book, "held-by-live", engine_id="engine-2")
    assert book.mark_lost(dead_after_s=0.5) == ["held-by-dead"]
    lost = book.run("held-by-dead")
    assert lost.status == "lost"
    assert lost.finished_at is not None
    assert (
        lost.error
        == LostError(
            "The engine that held this run (host host-a, pid 101) stopped without finishing it"
        ).to_dict()
    )
    assert book.run("finished-by-dead").status == "success"
    assert book.run("held-by-live").status == "queued"
    assert book.mark_lost(dead_after_s=0.5) == []


def test_a_heartbeat_keeps_an_engine_s_runs(book: ledger.Ledger) -> None:
    _queue(book, "run-1")
    time.sleep(0.6)
    book.heartbeat("engine-1")
    assert book.mark_lost(dead_after_s=0.5) == []
    assert book.run("run-1").status == "queued"


def test_runs_of_a_retired_engine_are_lost_at_once(book: ledger.Ledger) -> None:
    _queue(book, "run-1")
    book.retire_engine("engine-1")
    assert book.mark_lost(dead_after_s=3600) == ["run-1"]


def test_a_lost_run_takes_the_reason_its_engine_reports_later(book: ledger.Ledger) -> None:
    _queue(book, "run-1")
    book.retire_engine("engine-1")
    book.mark_lost()
    book.run_finished("run-1", reason="success", state=STATE_B, error=None, duration_ms=9)
    run = book.run("run-1")
    assert (run.status, run.error) == ("success", None)


def test_two_engines_marking_at_once_mark_each_run_once(
    book: ledger.Ledger, ledger_url: str
) -> None:
    run_ids = [f"run-{number:02d}" for number in range(30)]
    for run_id in run_ids:
        _queue(book, run_id)
    book.retire_engine("engine-1")
    markers = [ledger.open(ledger_url), ledger.open(ledger_url)]
    start = threading.Barrier(2)
    marked: list[list[str]] = [[], []]

    def mark(index: int) -> None:
        start.wait()
        marked[index] = markers[index].mark_lost()

    threads = [threading.Thread(target=mark, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for marker in markers:
        marker.close()
    assert sorted(marked[0] + marked[1]) == run_ids
    assert {run.status for run in book.runs(limit=100)} == {"lost"}


def test_a_heartbeat_of_an_unknown_engine_is_an_error(book: ledger.Ledger) -> None:
    with pytest.raises(LedgerError, match="Engine ghost is not registered"):
        book.heartbeat("ghost")


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_dropped_postgresql_connection_fails_one_call_and_is_made_again(
    book: ledger.Ledger, postgres_database: str
) -> None:
    import psycopg

    _queue(book, "before")
    backend = book._db.rows("SELECT pg_backend_pid()")[0][0]
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(LedgerError, match="could not be written"):
        _queue(book, "lost-with-the-connection")
    _queue(book, "after")
    assert [run.run_id for run in book.runs()] == ["after", "before"]


# -- durability: a writer killed at each point loses nothing it was told was written -------

_WRITER = """
import sys
from statefn import ledger

STATE = b'{"n": 1}'
book = ledger.open(sys.argv[1])
window = sys.argv[2]
steps = [
    ("registered", lambda: book.register_engine("engine-1", "host-a", 1)),
    ("queued", lambda: book.run_queued(
        "run-1", engine_id="engine-1", plan_id=None, workflow="w", input_state=STATE)),
    ("started", lambda: book.run_started("run-1")),
    ("step started", lambda: book.step_started("run-1", "a-1", "a", input_state=STATE)),
    ("logged", lambda: book.log(
        "run-1", step_id="a", level="info", message="hello", time="2026-01-31T09:00:00Z")),
    ("step finished", lambda: book.step_finished(
        "run-1", "a-1", reason="success", output_state=b'{"n": 2}', error=None,
        duration_ms=1, mem=None)),
    ("finished", lambda: book.run_finished(
        "run-1", reason="success", state=b'{"n": 2}', error=None, duration_ms=2)),
]
for name, write in steps:
    write()
    if name == window:
        print(name, flush=True)
        sys.stdin.read()  # wait to be killed
"""

# The window -> what must be in the ledger after the writer is killed there.
_WINDOWS = {
    "queued": lambda book: book.run("run-1").status == "queued",
    "started": lambda book: book.run("run-1").status == "started",
    "step started": lambda book: [s.key for s in book.run("run-1").steps] == ["a-1"],
    "logged": lambda book: [line.message for line in book.logs("run-1")] == ["hello"],
    "step finished": lambda book: book.state("run-1", "a-1") == {"n": 2},
    "finished": lambda book: (
        book.run("run-1").reason == "success" and book.state("run-1") == {"n": 2}
    ),
}


@pytest.mark.parametrize("window", list(_WINDOWS))
def test_a_writer_killed_after_a_write_returns_loses_nothing(ledger_url: str, window: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, ledger_url, window],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == window
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    with ledger.open(ledger_url) as book:
        assert _WINDOWS[window](book)


_FLOODER = """
import sys
from statefn import ledger

book = ledger.open(sys.argv[1])
book.run_queued("run-1", engine_id=None, plan_id=None, workflow="w", input_state=None)
number = 0
while True:
    number += 1
    book.log("run-1", step_id=None, level="info", message=str(number), time="2026-01-31")
    print(number, flush=True)
"""


def test_a_writer_killed_mid_flood_keeps_every_line_it_reported(ledger_url: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _FLOODER, ledger_url], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    for _ in range(100):
        writer.stdout.readline()
    writer.send_signal(signal.SIGKILL)
    reported = _last(writer)
    with ledger.open(ledger_url) as book:
        numbers = [int(line.message) for line in book.logs("run-1")]
    assert numbers == list(range(1, len(numbers) + 1))
    assert reported <= len(numbers) <= reported + 1


def _last(writer: subprocess.Popen[str]) -> int:
    """The last number a killed flooder reported."""
    assert writer.stdout is not None
    rest = writer.stdout.read().split()
    writer.wait(timeout=30)
    return int(rest[-1]) if rest else 100


# -- URLs and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/runs", "postgresql://app:***@db:5432/runs"),
        ("postgres://app@db/runs?password=s3cret&sslmode=require",
         "postgres://app@db/runs?password=***&sslmode=require"),
        ("postgresql://db/runs", "postgresql://db/runs"),
        ("sqlite:///runs.db", "sqlite:///runs.db"),
    ],
)  # fmt: skip
def test_a_url_s_password_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "dialect", "target"),
    [
        ("runs.db", "sqlite", "runs.db"),
        ("/var/lib/statefn/runs.db", "sqlite", "/var/lib/statefn/runs.db"),
        ("sqlite:///data/runs.db", "sqlite", "data/runs.db"),
        ("sqlite:////var/runs.db", "sqlite", "/var/runs.db"),
        ("postgres://db/runs", "postgresql", "postgres://db/runs"),
    ],
)
def test_urls_name_a_database(url: str, dialect: str, target: str) -> None:
    parsed = parse_url(url)
    assert (parsed.dialect, parsed.target) == (dialect, target)


def test_an_unreachable_server_is_named_with_its_password_masked() -> None:
    with pytest.raises(LedgerError) as raised:
        ledger.open("postgresql://app:s3cret@127.0.0.1:1/runs")
    message = raised.value.message
    assert message.startswith("The run ledger postgresql://app:***@127.0.0.1:1/runs could not ")
    assert "s3cret" not in message + str(raised.value.fix)
    assert raised.value.fix == (
        "Check that the PostgreSQL server is running, reachable, and that the URL is right"
    )
    assert raised.value.severity == "exception"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://app:s3cret@db:port/runs",
         "The ledger URL postgresql://app:***@db:port/runs is malformed: "),
        ("mysql://app:s3cret@db/runs",
         "The ledger URL mysql://app:***@db/runs has an unknown scheme 'mysql'"),
        ("sqlite://runs.db", "The ledger URL sqlite://runs.db does not name a SQLite file"),
        ("", "The ledger URL is empty"),
    ],
)  # fmt: skip
def test_a_malformed_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(LedgerError) as raised:
        ledger.open(url)
    assert raised.value.message.startswith(message)
    assert "s3cret" not in raised.value.message
    assert raised.value.fix


def test_an_unwritable_sqlite_file_is_a_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LedgerError) as raised:
        ledger.open(str(blocker / "runs.db"))
    assert raised.value.message.startswith(f"The run ledger {blocker}/runs.db could not be opened")
    assert raised.value.fix == (
        f"Check that the folder of {blocker}/runs.db exists and that you may write there"
    )


def test_a_reader_does_not_create_a_missing_sqlite_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=r"There is no ledger at .*: the file does not exist"):
        ledger.open(str(tmp_path / "runs.db"), create=False)
    assert not (tmp_path / "runs.db").exists()


def test_a_reader_sees_writes_while_the_writer_holds_its_connection(ledger_url: str) -> None:
    with ledger.open(ledger_url) as writer, ledger.open(ledger_url, create=False) as reader:
        writer.run_queued("run-1", engine_id=None, plan_id=None, workflow="w", input_state=STATE_A)
        writer.log("run-1", step_id=None, level="info", message="one", time="2026-01-31")
        assert [line.message for line in reader.logs("run-1")] == ["one"]
        writer.log("run-1", step_id=None, level="info", message="two", time="2026-01-31")
        assert [line.message for line in reader.logs("run-1", after=1)] == ["two"]


def test_a_sqlite_ledger_does_not_import_psycopg(tmp_path: Path) -> None:
    script = (
        "import sys; from statefn import ledger; ledger.open(sys.argv[1]).close(); "
        "print('psycopg' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "runs.db")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "False"


def test_the_package_exports_what_it_lists_and_each_module_lists_its_own() -> None:
    import importlib
    import pkgutil

    assert all(hasattr(ledger, name) for name in ledger.__all__)
    for module in pkgutil.iter_modules(ledger.__path__):
        names = importlib.import_module(f"statefn.ledger.{module.name}").__all__
        assert module.name.startswith("_") and names, module.name


# -- batches ------------------------------------------------------------------------------


def test_writes_in_a_batch_commit_together(book: ledger.Ledger, ledger_url: str) -> None:
    with book.batch():
        _two_step_run(book, "run-1")
        _queue(book, "run-2")
        assert _rows(ledger_url, "SELECT COUNT(*) FROM runs") == [(0,)]  # not yet committed
    assert [run.run_id for run in book.runs()] == ["run-2", "run-1"]
    assert book.run("run-1").reason == "fail"


def test_a_batch_that_fails_leaves_nothing_of_its_writes(book: ledger.Ledger) -> None:
    _queue(book, "run-1")
    with pytest.raises(LedgerError), book.batch():
        _queue(book, "run-2")
        _queue(book, "run-1")  # already there: the whole batch is rolled back
    assert [run.run_id for run in book.runs()] == ["run-1"]
