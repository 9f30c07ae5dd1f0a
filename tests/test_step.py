"""The step runner: log lines, sandbox violations that job code swallows, workers."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import statefn

if TYPE_CHECKING:
    from conftest import EventLog, RecordList

State = dict[str, Any]

SWALLOWS_VIOLATION = """
import json

@fn
def tamper(state):
    try:
        json.loads = None
    except Exception:
        pass
    return state
"""


def test_failure_log_line_shows_the_source_line_with_a_caret(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log
    statefn.run('n = 1\nfn(lambda state:   {}["missing"])', logger=logger)
    failures = [m for m in records.messages(logging.ERROR) if "failed" in m]
    assert failures == [
        "Step job-1 failed at line 2: RuntimeError: KeyError: 'missing'\n"
        '    fn(lambda state:   {}["missing"])\n'
        "                       ^"
    ]


def test_swallowed_sandbox_violation_still_kills_the_step(events: EventLog) -> None:
    with pytest.raises(statefn.SecurityError) as caught:
        statefn.run(SWALLOWS_VIOLATION, on_event=events)
    assert caught.value.severity == "kill"
    assert "setting attribute 'loads' of module 'json' is not allowed" in caught.value.message
    assert events.step_names("job-1")[-1] == "job-error"


def test_timed_out_worker_is_replaced_for_the_next_step() -> None:
    release = threading.Event()

    def blocks(state: State) -> State:
        release.wait(5)
        return state

    plan = {
        "workflow": {"steps": [{"id": "slow", "expression": [blocks]}]},
        "options": {"timeout": 200},
    }
    try:
        with pytest.raises(statefn.StepTimeoutError):
            statefn.run(plan)
        # The abandoned worker still blocks; a new run gets workers of its own.
        assert statefn.run([lambda s: {**s, "after": True}])["after"] is True
    finally:
        release.set()


def _threads_of_operations(**options: Any) -> list[int]:
    seen: list[int] = []

    def record_thread(state: State) -> State:
        seen.append(threading.get_ident())
        return state

    statefn.run([record_thread, record_thread], **options)
    return seen


def test_with_a_timeout_operations_run_off_the_thread_that_runs_the_workflow() -> None:
    seen = _threads_of_operations(timeout_ms=5000)
    assert len(set(seen)) == 1
    assert seen[0] != threading.get_ident()


def test_without_timeout_or_concurrency_operations_run_inline() -> None:
    # Nothing needs the run's thread while a step runs, so the step skips the hand-off.
    assert set(_threads_of_operations()) == {threading.get_ident()}


def test_retry_backoff_grows_by_its_factor() -> None:
    moments: list[float] = []

    def fails(state: State) -> State:
        moments.append(time.perf_counter())
        raise ValueError("again")

    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [fails],
                    "retry": {"attempts": 3, "backoff_ms": 100, "factor": 3},
                }
            ]
        }
    }
    result = statefn.run(plan)
    assert result["errors"]["a"]["message"] == "ValueError: again"
    first_wait, second_wait = moments[1] - moments[0], moments[2] - moments[1]
    assert first_wait >= 0.1
    assert second_wait >= 0.3


@pytest.mark.parametrize("options", [{}, {"timeout_ms": 5000}], ids=["inline", "on-a-worker"])
def test_interrupted_step_still_ends_with_a_job_error(
    events: EventLog, options: dict[str, Any]
) -> None:
    def interrupted(state: State) -> State:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        statefn.run([interrupted], on_event=events, **options)
    step_events = ["workflow-start", "init-start", "init-complete", "job-start", "job-error"]
    assert events.names() == step_events
    assert events.of("job-error")[0]["error"]["name"] == "CancelledError"


@pytest.mark.parametrize("options", [{}, {"timeout_ms": 5000}], ids=["inline", "on-a-worker"])
def test_step_interrupted_in_an_async_operation_still_ends_with_a_job_error(
    events: EventLog, options: dict[str, Any]
) -> None:
    async def interrupted(state: State) -> State:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        statefn.run([interrupted], on_event=events, **options)
    step_events = ["workflow-start", "init-start", "init-complete", "job-start", "job-error"]
    assert events.names() == step_events
    assert events.of("job-error")[0]["error"]["name"] == "CancelledError"


ABANDONED_ASYNC_STEP = """
import asyncio
import statefn

async def slow(state):
    await asyncio.sleep(5)
    return state

try:
    statefn.run({"workflow": {"steps": [{"id": "a", "expression": [slow]}]}}, timeout_ms=50)
except statefn.StatefnError as error:
    print(error.name)
"""


def test_a_timed_out_step_leaves_no_task_pending_at_exit() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", ABANDONED_ASYNC_STEP],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert finished.stdout == "TimeoutError\n"
    assert "Task was destroyed but it is pending" not in finished.stderr
    assert finished.stderr == ""
