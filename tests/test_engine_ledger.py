"""The engine on a ledger (SQLite and PostgreSQL): what it records, what survives a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from statefn import InputError, LedgerError
from statefn.engine import Engine, _recorder
from statefn.ledger import Ledger, StateWithheldError
from statefn.ledger import open as open_ledger

pytestmark = pytest.mark.timeout(90)

SECRET = "s3cret-token-value"

FAN_IN = {
    "workflow": {
        "name": "fan-in",
        "steps": [
            {"id": "start", "next": {"a": True, "b": True}},
            {
                "id": "a",
                "configuration": {"token": SECRET},
                "expression": f"fn(lambda s: print('using', {SECRET!r}) or {{**s, 'a': 1}})",
                "next": "z",
            },
            {"id": "b", "expression": "fn(lambda s: {**s, 'b': 2})", "next": "z"},
            {"id": "z", "expression": "fn(lambda s: {**s, 'z': True})"},
        ],
    }
}


def test_every_run_step_and_log_line_is_recorded(ledger_url: str) -> None:
    with Engine(workers=1, ledger=ledger_url) as engine:
        outcome = engine.submit(FAN_IN, {"data": {"n": 1}}).result(timeout=30)
    assert outcome.reason == "success"
    with open_ledger(ledger_url) as book:
        run = book.run(outcome.run_id)
        assert (run.workflow, run.reason) == ("fan-in", "success")
        assert [(step.key, step.step_id, step.reason) for step in run.steps] == [
            ("a", "a", "success"),
            ("b", "b", "success"),
            ("z", "z", "success"),
            ("z-1", "z", "success"),
        ]
        assert book.state(outcome.run_id, "a", which="input") == {"data": {"n": 1}}
        assert book.state(outcome.run_id, "z-1") == {"data": {"n": 1}, "b": 2, "z": True}
        assert book.state(outcome.run_id, which="input") == {"data": {"n": 1}}
        assert book.state(outcome.run_id) == outcome.state
        messages = [line.message for line in book.logs(outcome.run_id)]
    assert messages == ["using ***"]


def test_credentials_and_configuration_are_never_stored(ledger_url: str, tmp_path: Path) -> None:
    state = {"data": {}, "configuration": {"password": SECRET}}
    plan = {
        "workflow": {
            "steps": [{"id": "a", "configuration": "api", "expression": "fn(lambda s: s)"}]
        }
    }
    with Engine(workers=1, ledger=ledger_url, credentials={"api": {"key": SECRET}}) as engine:
        outcome = engine.submit(plan, state, state_props_to_remove=[]).result(timeout=30)
    assert outcome.reason == "success"
    with open_ledger(ledger_url) as book:
        stored = [
            book.state(outcome.run_id, which="input"),
            book.state(outcome.run_id, "a", which="input"),
            book.state(outcome.run_id, "a"),
            book.state(outcome.run_id),
        ]
    assert SECRET not in repr(stored)
    if ledger_url.startswith("sqlite:///"):
        database = Path(ledger_url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):
            assert SECRET.encode() not in path.read_bytes()


def test_a_state_over_the_payload_limit_is_stored_as_a_marker(ledger_url: str) -> None:
    job = "fn(lambda state: {**state, 'big': 'x' * (2 * 1024 * 1024)})"
    with Engine(workers=1, ledger=ledger_url, payload_limit_mb=1) as engine:
        outcome = engine.submit(job).result(timeout=30)
    with open_ledger(ledger_url) as book:
        with pytest.raises(StateWithheldError) as raised:
            book.state(outcome.run_id, "job-1")
        assert raised.value.withheld == "too large"
        with pytest.raises(StateWithheldError):
            book.state(outcome.run_id)
    assert len(outcome.state["big"]) == 2 * 1024 * 1024


def test_a_run_id_the_ledger_already_has_is_refused(ledger_url: str) -> None:
    with Engine(workers=1, ledger=ledger_url) as engine:
        first = engine.submit("fn(lambda s: {**s, 'n': 1})", run_id="same-id").result(30)
        with pytest.raises(InputError, match=r"^run same-id is already in the ledger "):
            engine.submit("fn(lambda s: {**s, 'n': 2})", run_id="same-id")
    with open_ledger(ledger_url) as book:
        assert book.state("same-id") == first.state == {"data": {}, "n": 1}


def test_killed_and_failed_runs_are_recorded_with_their_errors(ledger_url: str) -> None:
    # Time enough for the run that fails to fail on a slow, busy machine.
    with Engine(workers=1, ledger=ledger_url, run_timeout_ms=1_000) as engine:
        killed = engine.submit("fn(lambda s: sum(x for x in range(10 ** 12)))").result(timeout=30)
        failed = engine.submit("fn(lambda s: 1 / 0)").result(timeout=30)
    with open_ledger(ledger_url) as book:
        assert book.run(killed.run_id).reason == "kill"
        assert book.run(killed.run_id).error["message"] == "Run took longer than 1000 ms"
        [step] = book.run(killed.run_id).steps  # ended with its run, not left running
        assert (step.reason, step.error["message"]) == ("kill", "Run took longer than 1000 ms")
        assert step.finished_at is not None
        failed_run = book.run(failed.run_id)
        assert failed_run.reason == "fail"
        assert failed_run.steps[0].error["name"] == "RuntimeError"


def test_an_event_reaches_events_only_once_the_ledger_has_it(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow database: the step's record is committed well after its worker reported it.
    original = Ledger.step_finished

    def slow_step_finished(self: Ledger, *args: object, **kwargs: object) -> None:
        time.sleep(0.3)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "step_finished", slow_step_finished)
    seen: dict[str, object] = {}
    with Engine(workers=1, ledger=ledger_url) as engine:
        handle = engine.submit("fn(lambda s: {**s, 'one': 1})\nfn(lambda s: {**s, 'two': 2})")
        for name, payload in handle.events():
            if name == "job-complete":
                with open_ledger(ledger_url) as book:  # another connection, as after a crash
                    seen[name] = book.state(handle.id, payload["job_id"])
                break
        handle.result(timeout=30)
    assert seen == {"job-complete": {"data": {}, "one": 1, "two": 2}}


ENGINE_SCRIPT = """
import sys, time
from statefn.engine import Engine
engine = Engine(workers=1, ledger=sys.argv[1])
handle = engine.submit(
    "fn(lambda s: {**s, 'first': 1})\\nfn(lambda s: sum(x for x in range(10 ** 12)))",
    run_id="doomed-run",
)
for name, payload in handle.events():
    if name == "job-start":
        break
print("started", flush=True)
time.sleep(60)
"""


def test_runs_of_an_engine_killed_with_sigkill_become_lost(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "engine.py"
    script.write_text(textwrap.dedent(ENGINE_SCRIPT))
    process = subprocess.Popen(
        [sys.executable, str(script), ledger_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "started"
        with open_ledger(ledger_url) as book:
            deadline = time.monotonic() + 10
            while book.run("doomed-run").status != "started" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert book.run("doomed-run").status == "started"
        with Engine(workers=1, ledger=ledger_url):
            pass  # the engine is alive: its run is not touched
        with open_ledger(ledger_url) as book:
            assert book.run("doomed-run").status == "started"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    monkeypatch.setattr(_recorder, "LOST_AFTER_S", 0.5)
    time.sleep(1.0)
    with Engine(workers=1, ledger=ledger_url):
        pass
    with open_ledger(ledger_url) as book:
        run = book.run("doomed-run")
    assert run.reason == "lost"
    assert run.error is not None and run.error["name"] == "LostError"


def test_an_unreachable_ledger_is_refused_with_its_password_masked() -> None:
    url = "postgresql://statefn:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(LedgerError) as raised:
        Engine(workers=1, ledger=url)
    assert "hunter2" not in str(raised.value)
    assert "127.0.0.1:1" in str(raised.value)


def test_a_recorded_run_in_this_process_leaves_its_input_untouched(tmp_path: Path) -> None:
    from statefn.engine import run_recorded

    state = {"data": {"n": 1}}
    job = "fn(lambda s: s['data'].update(n=2) or s)"
    outcome = run_recorded(job, state, ledger=str(tmp_path / "runs.db"))
    assert outcome.state["data"] == {"n": 2}
    assert state == {"data": {"n": 1}}


SPIN = {
    "workflow": {"steps": [{"id": "spin", "expression": "fn(lambda s: [0 for _ in iter(int, 1)])"}]}
}


def test_recorded_is_done_once_the_ledger_has_the_run_queued(ledger_url: str) -> None:
    with Engine(workers=1, ledger=ledger_url) as engine:
        handle = engine.submit(SPIN)
        handle.recorded.result(timeout=30)
        with open_ledger(ledger_url) as book:
            assert book.run(handle.id).status in ("queued", "started")
        handle.cancel()
        assert handle.result(timeout=30).reason == "cancel"


def test_recorded_is_done_at_once_without_a_ledger() -> None:
    with Engine(workers=1) as engine:
        handle = engine.submit(FAN_IN)
        assert handle.recorded.done() and handle.recorded.exception() is None
        assert handle.result(timeout=30).reason == "success"


def test_recorded_fails_with_the_ledger_error_when_the_run_cannot_be_recorded(
    tmp_path: Path,
) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Engine(workers=1, ledger=url) as engine:
        with sqlite3.connect(tmp_path / "runs.db") as connection:
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'no'); END"
            )
        handle = engine.submit(FAN_IN)
        with pytest.raises(LedgerError, match="could not be written: no"):
            handle.recorded.result(timeout=30)
        handle.result(timeout=30)


def test_queued_runs_are_recorded_in_one_commit_and_start_when_submitted(ledger_url: str) -> None:
    run_ids = [str(uuid.uuid4()) for _ in range(3)]
    with Engine(workers=1, ledger=ledger_url) as engine:
        queued = engine.queue(
            [(run_id, FAN_IN, {"data": {"n": n}}) for n, run_id in enumerate(run_ids)]
        )
        queued.result(timeout=30)
        with open_ledger(ledger_url) as book:
            assert [book.run(run_id).status for run_id in run_ids] == ["queued"] * 3
            assert book.state(run_ids[2], which="input") == {"data": {"n": 2}}
        outcome = engine.submit(FAN_IN, {"data": {"n": 0}}, run_ids[0], queued=True).result(30)
        assert outcome.reason == "success"
    with open_ledger(ledger_url) as book:
        assert [book.run(run_id).status for run_id in run_ids] == ["success", "queued", "queued"]
        assert book.state(run_ids[0], "z-1") == {"data": {"n": 0}, "b": 2, "z": True}


def test_queue_fails_as_a_whole_with_the_ledger_error(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Engine(workers=1, ledger=url) as engine:
        taken = str(uuid.uuid4())
        engine.queue([(taken, FAN_IN, None)]).result(timeout=30)
        with pytest.raises(LedgerError, match="UNIQUE constraint failed"):
            engine.queue([(str(uuid.uuid4()), FAN_IN, None), (taken, FAN_IN, None)]).result(30)
    with sqlite3.connect(tmp_path / "runs.db") as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)


def test_queue_needs_a_ledger() -> None:
    with Engine(workers=1) as engine, pytest.raises(InputError, match="records runs in the ledger"):
        engine.queue([(str(uuid.uuid4()), FAN_IN, None)])


def test_problem_is_none_while_the_engine_runs_and_says_when_it_is_closed() -> None:
    engine = Engine(workers=1)
    assert engine.problem() is None
    engine.close()
    assert engine.problem() == "The engine is closed"


QUEUED = {"engine_id": "engine-1", "plan_id": None, "workflow": "w", "input_state": b"{}"}


def queued_behind_a_busy_writer(
    url: str, queue: Callable[[_recorder.Recorder], list[Future[None]]]
) -> tuple[list[bool], list[str]]:
    """Writes that ``queue`` makes while the recorder's writer is held busy, so that they
    queue up and go in one batch: which committed, and the runs in the ledger after."""
    recorder = _recorder.Recorder(open_ledger(url), "engine-1")
    busy = threading.Event()
    recorder.then(busy.wait)  # the writer waits here while the writes queue up
    confirmations = queue(recorder)
    busy.set()
    committed = [confirmed.exception(timeout=30) is None for confirmed in confirmations]
    recorder.close()
    with open_ledger(url) as book:
        return committed, sorted(run.run_id for run in book.runs())


def test_writes_queued_while_the_writer_is_busy_commit_together_and_one_bad_write_spares_the_rest(
    tmp_path: Path,
) -> None:
    def queue(recorder: _recorder.Recorder) -> list[Future[None]]:
        return [
            recorder.write_confirmed("run_queued", run_id, **QUEUED)
            for run_id in ("a", "b", "a", "c")
        ]

    committed, runs = queued_behind_a_busy_writer(f"sqlite:///{tmp_path / 'runs.db'}", queue)
    assert committed == [True, True, False, True]
    assert runs == ["a", "b", "c"]


def test_row_writes_queued_together_are_made_as_one_and_one_bad_write_spares_the_rest(
    tmp_path: Path,
) -> None:
    batches = [["a", "b"], ["c"], ["a", "d"], ["e"]]  # the third takes a run id already taken

    def queue(recorder: _recorder.Recorder) -> list[Future[None]]:
        return [
            recorder.write_rows("runs_queued", [{"run_id": run_id, **QUEUED} for run_id in batch])
            for batch in batches
        ]

    committed, runs = queued_behind_a_busy_writer(f"sqlite:///{tmp_path / 'runs.db'}", queue)
    assert committed == [True, True, False, True]
    assert runs == ["a", "b", "c", "e"]
