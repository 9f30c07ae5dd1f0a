"""Events, runtime logging and masking (contract sections 2 to 4)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

import pytest

import statefn
from statefn.adaptor import adaptor_error, log_line

if TYPE_CHECKING:
    from conftest import EventLog, RecordList

State = dict[str, Any]

PAYLOAD_KEYS = {
    "workflow-start": {"plan_id", "time"},
    "init-start": {"job_id"},
    "init-complete": {"job_id", "duration_ms"},
    "job-start": {"job_id"},
    "job-complete": {"job_id", "duration_ms", "state", "next", "mem"},
    "job-error": {"job_id", "duration_ms", "error", "state", "next"},
    "workflow-complete": {"state", "duration_ms"},
    "load-state": {"state_id", "duration_ms"},
    "log": {"job_id", "level", "message", "time"},
}


def fail(state: State) -> State:
    raise ValueError("boom")


def chain_plan() -> dict[str, Any]:
    """a -> b (fails) -> c (always), c logs a line."""

    def say(state: State) -> State:
        log_line("info", "hello from c")
        return state

    return {
        "id": "plan-1",
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: {"data": {"n": 1}}], "next": "b"},
                {"id": "b", "expression": [fail], "next": {"c": "always"}},
                {"id": "c", "expression": [say]},
            ]
        },
    }


STEP_EVENTS = ["init-start", "init-complete", "job-start"]


def test_events_arrive_in_order(events: EventLog) -> None:
    result = statefn.run(chain_plan(), on_event=events)
    assert [name for name in events.names() if name != "log"] == [
        "workflow-start",
        *STEP_EVENTS,
        "job-complete",
        *STEP_EVENTS,
        "job-error",
        *STEP_EVENTS,
        "job-complete",
        "workflow-complete",
    ]
    step_ids = [p["job_id"] for n, p in events.events if n != "log" and "job_id" in p]
    assert step_ids == [*["a"] * 4, *["b"] * 4, *["c"] * 4]
    assert events.of("workflow-complete")[0]["state"] == result


def test_payloads_have_exactly_the_contract_keys_and_are_json(events: EventLog) -> None:
    statefn.run(
        chain_plan(),
        "in",
        resolve_state=lambda state_id: {"data": {}},
        on_event=events,
    )
    seen = set()
    for name, payload in events.events:
        assert set(payload) == PAYLOAD_KEYS[name], name
        json.dumps(payload, allow_nan=False)
        seen.add(name)
    assert seen == set(PAYLOAD_KEYS)


def test_payload_values(events: EventLog) -> None:
    statefn.run(chain_plan(), on_event=events)
    [start] = events.of("workflow-start")
    assert start["plan_id"] == "plan-1"
    assert isinstance(start["time"], str)
    for name in ("init-complete", "job-complete", "job-error", "workflow-complete"):
        for payload in events.of(name):
            assert isinstance(payload["duration_ms"], int | float)
            assert payload["duration_ms"] >= 0
    complete_a = events.of("job-complete")[0]
    assert complete_a["state"] == {"data": {"n": 1}}
    assert complete_a["next"] == ["b"]
    [error_b] = events.of("job-error")
    assert error_b["next"] == ["c"]
    assert error_b["error"] == error_b["state"]["errors"]["b"]
    assert error_b["error"]["message"] == "ValueError: boom"
    assert events.of("job-complete")[1]["next"] == []


def test_mem_holds_job_and_system_bytes(events: EventLog) -> None:
    statefn.run(chain_plan(), on_event=events)
    for payload in events.of("job-complete"):
        mem = payload["mem"]
        assert set(mem) == {"job", "system"}
        assert type(mem["job"]) is int
        assert type(mem["system"]) is int
        assert mem["system"] > 0
        assert mem["job"] >= 0


def test_profile_adds_peak_memory(events: EventLog) -> None:
    def allocate(state: State) -> State:
        blob = bytearray(4 * 1024 * 1024)
        return {"data": {"size": len(blob)}}

    plan = {"workflow": {"steps": [{"id": "a", "expression": [allocate]}]}}
    statefn.run(plan, profile=True, on_event=events)
    [payload] = events.of("job-complete")
    mem = payload["mem"]
    assert set(mem) == {"job", "system", "peak"}
    assert all(type(value) is int for value in mem.values())
    assert mem["peak"] >= 4 * 1024 * 1024


def test_async_on_event_receives_every_event() -> None:
    received: list[str] = []

    async def on_event(name: str, payload: dict[str, Any]) -> None:
        received.append(name)

    statefn.run(chain_plan(), on_event=on_event)
    assert received[0] == "workflow-start"
    assert received[-1] == "workflow-complete"
    assert received.count("job-start") == 3


def test_on_event_is_called_on_the_thread_that_called_run() -> None:
    threads: set[int] = set()
    statefn.run(chain_plan(), on_event=lambda name, payload: threads.add(threading.get_ident()))
    assert threads == {threading.get_ident()}


def test_a_log_line_from_another_thread_reaches_on_event_in_order_on_the_runs_thread() -> None:
    """Inline (no event loop), a line logged on another thread waits for the run's thread."""
    seen: list[tuple[str, Any, int]] = []

    async def operation(state: dict[str, Any]) -> dict[str, Any]:
        await asyncio.to_thread(log_line, "info", "from a thread")
        return state

    statefn.run(
        [operation],
        on_event=lambda name, payload: seen.append(
            (name, payload.get("message"), threading.get_ident())
        ),
    )
    names = [name for name, _, _ in seen]
    assert ("log", "from a thread") in [(name, message) for name, message, _ in seen]
    assert names.index("log") < names.index("job-complete")
    assert {thread for _, _, thread in seen} == {threading.get_ident()}


def test_log_line_in_an_operation_sends_a_log_event(
    events: EventLog, job_log: tuple[logging.Logger, RecordList]
) -> None:
    logger, records = job_log
    statefn.run(chain_plan(), on_event=events, job_logger=logger)
    [line] = events.of("log")
    assert line["job_id"] == "c"
    assert line["level"] == "info"
    assert line["message"] == "hello from c"
    assert isinstance(line["time"], str)
    assert any("hello from c" in message for message in records.messages())


def test_log_events_arrive_between_job_start_and_its_end(events: EventLog) -> None:
    statefn.run(chain_plan(), on_event=events)
    names = events.names()
    log_at = names.index("log")
    assert names[log_at - 1] == "job-start"
    assert names[log_at + 1] == "job-complete"


def test_job_complete_state_is_not_changed_by_later_steps(events: EventLog) -> None:
    def change(state: State) -> State:
        state["data"]["n"] = 2
        state["data"]["items"].append("b")
        return state

    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [lambda s: {"data": {"n": 1, "items": ["a"]}}],
                    "next": "b",
                },
                {"id": "b", "expression": [change]},
            ]
        }
    }
    statefn.run(plan, on_event=events)
    assert events.of("job-complete")[0]["state"] == {"data": {"n": 1, "items": ["a"]}}


def test_failing_step_sends_job_error_and_no_job_complete(events: EventLog) -> None:
    plan = {"workflow": {"steps": [{"id": "a", "expression": [fail]}]}}
    statefn.run(plan, on_event=events)
    assert events.step_names("a") == [*STEP_EVENTS, "job-error"]


def test_crash_sends_job_error_and_no_workflow_complete(events: EventLog) -> None:
    def crash(state: State) -> State:
        raise NameError("name 'x' is not defined")

    plan = {"workflow": {"steps": [{"id": "a", "expression": [crash]}]}}
    with pytest.raises(statefn.RuntimeCrash):
        statefn.run(plan, on_event=events)
    assert events.step_names("a") == [*STEP_EVENTS, "job-error"]
    assert "workflow-complete" not in events.names()


def test_job_error_after_a_crash_carries_the_cleaned_state(events: EventLog) -> None:
    def crash(state: State) -> State:
        state["data"]["seen"] = (1, 2)
        state["x"] = 1
        raise NameError("name 'x' is not defined")

    plan = {"workflow": {"steps": [{"id": "a", "expression": [crash]}]}}
    with pytest.raises(statefn.RuntimeCrash):
        statefn.run(plan, {"data": {}, "configuration": {"k": "v"}}, on_event=events)
    [payload] = events.of("job-error")
    assert payload["error"]["name"] == "RuntimeCrash"
    assert payload["state"] == {"data": {"seen": [1, 2]}, "x": 1}


def test_handler_that_raises_does_not_stop_the_run() -> None:
    def broken(name: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    assert statefn.run(chain_plan(), on_event=broken)["data"] == {"n": 1}


# Runtime logging


def test_logger_receives_start_completion_and_failure_lines(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log

    def marker(state: State) -> State:
        logger.info("OPERATION RAN")
        return state

    plan = {
        "workflow": {
            "steps": [
                {"id": "step-one", "expression": [marker], "next": "step-two"},
                {"id": "step-two", "expression": [fail]},
            ]
        }
    }
    statefn.run(plan, logger=logger)
    messages = records.messages()
    ran_at = messages.index("OPERATION RAN")
    before = messages[:ran_at]
    after = messages[ran_at + 1 :]
    assert any("step-one" in m and re.search("start", m, re.IGNORECASE) for m in before)
    assert any(re.search(r"completed in \d+(\.\d+)? ?ms", m) for m in after)
    failures = [r.getMessage() for r in records.records if r.levelno >= logging.WARNING]
    assert any("step-two" in m or "boom" in m for m in failures)


def test_no_logger_means_nothing_printed_or_logged(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def forgets(state: State) -> None:
        return None

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [forgets], "next": "b"},
                {"id": "b", "expression": [fail]},
            ]
        }
    }
    statefn.run(plan)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""
    # asyncio's own debug line about its selector is not statefn's.
    assert [r for r in caplog.records if r.name != "asyncio"] == []


# Masking


SECRET = "hunter22"


def masked_plan(*operations: Any, **configuration: Any) -> dict[str, Any]:
    return {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": list(operations),
                    "configuration": {"password": SECRET, **configuration},
                }
            ]
        }
    }


def test_secret_in_an_error_message_is_masked(events: EventLog) -> None:
    def leak(state: State) -> State:
        raise Exception(f"bad {SECRET}")

    result = statefn.run(masked_plan(leak), on_event=events)
    assert result["errors"]["a"]["message"] == "bad ***"
    assert events.of("job-error")[0]["error"]["message"] == "bad ***"
    assert SECRET not in json.dumps(events.events)


def test_secret_in_a_log_line_is_masked(
    events: EventLog, job_log: tuple[logging.Logger, RecordList]
) -> None:
    logger, records = job_log

    def leak(state: State) -> State:
        log_line("info", f"password is {SECRET}")
        return state

    statefn.run(masked_plan(leak), on_event=events, job_logger=logger)
    [line] = events.of("log")
    assert line["message"] == "password is ***"
    assert any("password is ***" in m for m in records.messages())
    assert not any(SECRET in m for m in records.messages())


def test_nested_secret_is_masked() -> None:
    def leak(state: State) -> State:
        raise Exception("token abcdef123 leaked")

    plan = masked_plan(leak, nested={"deep": {"token": "abcdef123"}})
    result = statefn.run(plan)
    assert result["errors"]["a"]["message"] == "token *** leaked"


def test_basic_auth_header_value_is_masked() -> None:
    encoded = base64.b64encode(f"admin:{SECRET}".encode()).decode()

    def leak(state: State) -> State:
        raise Exception(f"Authorization: Basic {encoded}")

    result = statefn.run(masked_plan(leak, username="admin"))
    message = result["errors"]["a"]["message"]
    assert encoded not in message
    assert message == "Authorization: Basic ***"


def test_output_state_is_not_masked() -> None:
    def copy_secret(state: State) -> State:
        return {"data": {"copied": state["configuration"]["password"]}}

    assert statefn.run(masked_plan(copy_secret)) == {"data": {"copied": SECRET}}


def test_short_values_are_not_masked() -> None:
    def leak(state: State) -> State:
        raise Exception("abc hunter22")

    result = statefn.run(masked_plan(leak, short="abc"))
    assert result["errors"]["a"]["message"] == "abc ***"


def test_url_encoded_and_json_escaped_secrets_are_masked() -> None:
    secret = 'p@ss w/"rd"'
    url_form = "p%40ss%20w%2F%22rd%22"
    json_form = json.dumps(secret)[1:-1]

    def leak(state: State) -> State:
        raise Exception(f"url {url_form} json {json_form}")

    plan = {
        "workflow": {
            "steps": [{"id": "a", "expression": [leak], "configuration": {"password": secret}}]
        }
    }
    assert statefn.run(plan)["errors"]["a"]["message"] == "url *** json ***"


def test_runtime_log_lines_are_masked(runtime_log: tuple[logging.Logger, RecordList]) -> None:
    logger, records = runtime_log

    def leak(state: State) -> State:
        raise Exception(f"bad {SECRET}")

    statefn.run(masked_plan(leak), logger=logger)
    assert records.messages()
    assert not any(SECRET in message for message in records.messages())


def test_print_in_job_source_reaches_the_job_logger_and_a_log_event(
    events: EventLog, job_log: tuple[logging.Logger, RecordList]
) -> None:
    logger, records = job_log
    source = "fn(lambda state: print('counted', len(state['data'])) or state)\n"
    statefn.run(source, {"data": {"a": 1}}, on_event=events, job_logger=logger)
    [line] = events.of("log")
    assert line["job_id"] == "job-1"
    assert line["level"] == "info"
    assert line["message"] == "counted 1"
    assert records.messages() == ["counted 1"]


def test_credentials_from_every_source_are_masked() -> None:
    def leak(state: State) -> State:
        configuration = state["configuration"]
        raise Exception(" ".join(configuration[key] for key in ("wf", "resolved", "given")))

    plan = {
        "workflow": {
            "credentials": {"wf": "workflow-secret"},
            "steps": [{"id": "a", "expression": [leak], "configuration": "cred-1"}],
        }
    }
    result = statefn.run(
        plan,
        {"data": {}, "configuration": {"given": "input-secret"}},
        resolve_credential=lambda cred_id: {"resolved": "resolved-secret"},
    )
    assert result["errors"]["a"]["message"] == "*** *** ***"


def test_secret_in_error_details_is_masked() -> None:
    def leak(state: State) -> State:
        raise adaptor_error(f"failed {SECRET}", url=f"https://example.org/?p={SECRET}", status=500)

    record = statefn.run(masked_plan(leak))["errors"]["a"]
    assert record["name"] == "AdaptorError"
    assert record["message"] == "failed ***"
    assert record["details"] == {"url": "https://example.org/?p=***", "status": 500}
