"""``statefn runs list|show|logs|state`` end to end, on a ledger with recorded runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from statefn import ledger
from statefn.cli import main

FAILED = "3f2a9c00-0000-4000-8000-000000000001"
QUEUED = "3f2b1d00-0000-4000-8000-000000000002"
ERROR = {"source": "runtime", "name": "JobError", "severity": "fail", "message": "bad row"}


def _record(url: str) -> None:
    with ledger.open(url) as book:
        book.register_engine("engine-1", "host-a", 1)
        book.run_queued(
            FAILED, engine_id="engine-1", plan_id="plan-1", workflow="nightly",
            input_state=b'{"n": 0}', submitted_at="2026-01-31T09:00:00Z",
        )  # fmt: skip
        book.run_started(FAILED)
        for number, (step_id, reason) in enumerate([("fetch", "success"), ("clean", "fail")]):
            key = f"{step_id}-1"
            book.step_started(FAILED, key, step_id, input_state=f'{{"n": {number}}}'.encode())
            book.log(
                FAILED, step_id=step_id, level="info", message=f"{step_id} here",
                time=f"2026-01-31T09:00:0{number}.250Z",
            )  # fmt: skip
            book.step_finished(
                FAILED, key, reason=reason, output_state=f'{{"n": {number + 1}}}'.encode(),
                error=ERROR if reason == "fail" else None, duration_ms=1500 * (number + 1),
                mem=None,
            )  # fmt: skip
        book.run_finished(FAILED, reason="fail", state=b'{"n": 2}', error=None, duration_ms=3200)
        book.run_queued(
            QUEUED, engine_id="engine-1", plan_id=None, workflow="daily", input_state=None,
            input_withheld="too large", submitted_at="2026-01-31T10:00:00Z",
        )  # fmt: skip


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite ledger holding a failed two-step run and a queued run."""
    monkeypatch.delenv("STATEFN_LEDGER", raising=False)
    path = f"sqlite:///{tmp_path / 'runs.db'}"
    _record(path)
    return path


def test_list_shows_runs_newest_first_in_aligned_columns(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "--ledger", url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "RUN       WORKFLOW  REASON  STARTED              DURATION",
        "3f2b1d00  daily     queued  -                    -",
        f"3f2a9c00  nightly   fail    {_started(url)}  3.2 s",
    ]


def _started(url: str) -> str:
    with ledger.open(url) as book:
        started = book.run(FAILED).started_at
    assert started is not None
    return started[:19].replace("T", " ")


def test_list_filters_by_reason_and_workflow(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--ledger", url, "--reason", "queued", "--json"]) == 0
    assert [run["run_id"] for run in orjson.loads(capsys.readouterr().out)] == [QUEUED]
    assert main(["runs", "list", "--ledger", url, "--workflow", "nightly", "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [(run["run_id"], run["reason"]) for run in listed] == [(FAILED, "fail")]
    assert "steps" not in listed[0]  # a list does not read them: runs show has them
    assert main(["runs", "list", "--ledger", url, "--workflow", "weekly"]) == 0
    assert capsys.readouterr().out.startswith("No runs match in sqlite:///")


def test_list_refuses_an_unknown_reason(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--ledger", url, "--reason", "failed"]) == 2
    assert "--reason must be one of: success, fail," in capsys.readouterr().err


def test_the_ledger_comes_from_the_environment_or_the_command_is_a_usage_error(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["runs", "list"]) == 2
    assert "No ledger given: pass --ledger URL or set STATEFN_LEDGER" in capsys.readouterr().err
    monkeypatch.setenv("STATEFN_LEDGER", url)
    assert main(["runs", "list", "--json"]) == 0
    assert len(orjson.loads(capsys.readouterr().out)) == 2


def test_the_ledger_option_may_come_before_the_action(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "--ledger", url, "list", "--json"]) == 0
    assert len(orjson.loads(capsys.readouterr().out)) == 2


def test_show_lists_the_steps_in_order_with_their_errors(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "show", "3f2a", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert f"run        {FAILED}\n" in out
    assert "workflow   nightly (plan plan-1)\n" in out
    assert out.endswith(
        "#  KEY      STEP   REASON   DURATION  ERROR\n"
        "1  fetch-1  fetch  success  1.5 s\n"
        "2  clean-1  clean  fail     3.0 s     JobError: bad row\n"
    )


def test_show_tells_a_step_that_is_running_from_one_its_lost_run_left_unfinished(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with ledger.open(url) as book:
        book.run_queued("lost-run", engine_id="engine-1", plan_id=None, workflow="w",
                        input_state=None)  # fmt: skip
        book.step_started("lost-run", "a", "a", input_state=b"{}")
        book.retire_engine("engine-1")  # it died: its runs are lost, their steps never ended
        book.mark_lost(dead_after_s=0)
        book.register_engine("engine-2", "host-b", 2)
        book.run_queued("live-run", engine_id="engine-2", plan_id=None, workflow="w",
                        input_state=None)  # fmt: skip
        book.step_started("live-run", "a", "a", input_state=b"{}")
    assert main(["runs", "show", "lost-run", "--ledger", url]) == 0
    assert capsys.readouterr().out.endswith("1  a    a     unfinished  -\n")
    assert main(["runs", "show", "live-run", "--ledger", url]) == 0
    assert capsys.readouterr().out.endswith("1  a    a     running  -\n")


def test_show_json_holds_the_run_and_its_steps(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "show", FAILED, "--json", "--ledger", url]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert (shown["run_id"], shown["reason"], shown["duration_ms"]) == (FAILED, "fail", 3200)
    assert [step["key"] for step in shown["steps"]] == ["fetch-1", "clean-1"]
    assert shown["steps"][1]["error"] == ERROR


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("3f2", f"Several runs start with '3f2': {QUEUED}, {FAILED}"),
        ("zz", "No run matches 'zz' in the ledger sqlite:///"),
    ],
)
def test_an_unknown_or_ambiguous_run_is_invalid_input_listing_candidates(
    url: str, capsys: pytest.CaptureFixture[str], prefix: str, message: str
) -> None:
    assert main(["runs", "show", prefix, "--ledger", url]) == 3
    err = capsys.readouterr().err
    assert message in err
    assert QUEUED in err and FAILED in err


def test_logs_prints_each_line_with_its_time_and_step(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "logs", "3f2a", "--ledger", url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-01-31 09:00:00.250 [fetch] info: fetch here",
        "2026-01-31 09:00:01.250 [clean] info: clean here",
    ]


def test_logs_follow_prints_new_lines_until_the_run_ends(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def finish_later() -> None:
        with ledger.open(url) as book:
            time.sleep(0.4)
            book.log(
                QUEUED, step_id=None, level="warn", message="late", time="2026-01-31T10:00:01Z"
            )
            time.sleep(0.4)
            book.run_finished(QUEUED, reason="cancel", state=None, error=None, duration_ms=800)

    writer = threading.Thread(target=finish_later)
    writer.start()
    started = time.monotonic()
    assert main(["runs", "logs", "3f2b", "--follow", "--ledger", url]) == 0
    writer.join()
    assert time.monotonic() - started >= 0.8
    assert capsys.readouterr().out == "2026-01-31 10:00:01.000 warn: late\n"


@pytest.mark.parametrize(
    ("arguments", "state"),
    [
        ([], {"n": 2}),
        (["--input"], {"n": 0}),
        (["clean"], {"n": 2}),
        (["clean-1", "--input"], {"n": 1}),
        (["fetch"], {"n": 1}),
    ],
)
def test_state_prints_a_final_or_step_state_as_json(
    url: str, capsys: pytest.CaptureFixture[str], arguments: list[str], state: object
) -> None:
    assert main(["runs", "state", "3f2a", *arguments, "--ledger", url]) == 0
    assert orjson.loads(capsys.readouterr().out) == state


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["3f2a", "load"], "has no step 'load'; its step runs are: fetch-1, clean-1"),
        (["3f2b", "--input"], f"The input state of run {QUEUED} was not stored: too large"),
        (["3f2b"], f"Run {QUEUED} has not finished: its final state is recorded when it ends"),
    ],
)
def test_state_that_is_not_there_is_invalid_input(
    url: str, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert main(["runs", "state", *arguments, "--ledger", url]) == 3
    assert message in capsys.readouterr().err


def test_state_of_a_crashed_run_says_why_there_is_none_and_where_to_look(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed = "3f2c0000-0000-4000-8000-000000000003"
    crash = {"source": "runtime", "name": "RuntimeCrash", "severity": "crash", "message": "boom"}
    with ledger.open(url) as book:
        book.run_queued(
            crashed, engine_id="engine-1", plan_id=None, workflow="nightly", input_state=b"{}"
        )
        book.run_started(crashed)
        book.step_started(crashed, "fetch-1", "fetch", input_state=b'{"n": 0}')
        book.step_finished(
            crashed, "fetch-1", reason="crash", output_state=None, error=crash, duration_ms=5,
            mem=None,
        )  # fmt: skip
        book.run_finished(crashed, reason="crash", state=None, error=crash, duration_ms=9)
    assert main(["runs", "state", "3f2c", "--ledger", url]) == 3
    assert capsys.readouterr().err == (
        f"Run {crashed} recorded no final state (it ended with crash): look at a step's state "
        f"with statefn runs state {crashed} STEP (its step runs: fetch-1)\n"
    )
    assert main(["runs", "state", "3f2c", "fetch", "--ledger", url]) == 3
    assert f"Step run fetch-1 of run {crashed} recorded no output state (it ended with crash)" in (
        capsys.readouterr().err
    )
    assert main(["runs", "state", "3f2c", "fetch", "--input", "--ledger", url]) == 0
    assert orjson.loads(capsys.readouterr().out) == {"n": 0}


def test_a_missing_sqlite_ledger_is_invalid_input_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "--ledger", str(tmp_path / "none.db")]) == 3
    assert f"There is no ledger at {tmp_path / 'none.db'}" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_an_unreachable_ledger_is_invalid_input_with_its_password_masked() -> None:
    # A real process: the exit status and stderr are what a shell sees.
    done = subprocess.run(
        [sys.executable, "-m", "statefn", "runs", "list", "--ledger",
         "postgresql://app:s3cret@127.0.0.1:1/runs"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "STATEFN_LEDGER"},
    )  # fmt: skip
    assert done.returncode == 3
    assert "The run ledger postgresql://app:***@127.0.0.1:1/runs could not be opened" in (
        done.stderr
    )
    assert "s3cret" not in done.stderr


def test_runs_read_a_postgresql_ledger(
    postgres_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg

    schema = "cli_runs"
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    url = f"{postgres_database}?options=-csearch_path%3D{schema}"
    try:
        _record(url)
        assert main(["runs", "show", "3f2a", "--json", "--ledger", url]) == 0
        assert orjson.loads(capsys.readouterr().out)["steps"][1]["error"] == ERROR
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize("action", ["list", "show", "logs", "state"])
def test_each_command_s_help_teaches_with_examples(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["runs", action, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"statefn runs {action}" in out.split("examples:")[1]
    assert "STATEFN_LEDGER" in out


def test_the_command_line_loads_the_ledger_only_for_runs_commands() -> None:
    script = (
        "import sys; from statefn.cli import build_parser; build_parser(); "
        "print('statefn.ledger' in sys.modules, 'sqlite3' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False False"
