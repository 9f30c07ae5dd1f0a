"""The graph walk (contract section 1): order, start and end, edges, leaves, retries,
timeouts, the state limit and concurrency."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

import statefn

if TYPE_CHECKING:
    from conftest import EventLog, RecordList

State = dict[str, Any]


def mark(name: str, ran: list[str]) -> Callable[[State], State]:
    """An operation that notes ``name`` in ``ran`` and appends it to ``state["data"]["path"]``."""

    def op(state: State) -> State:
        ran.append(name)
        data = state.setdefault("data", {})
        data["path"] = [*data.get("path", []), name]
        return state

    return op


def graph(ran: list[str], edges: dict[str, Any], **workflow: Any) -> dict[str, Any]:
    """A plan whose steps are the keys of ``edges``, each marking itself, in that order."""
    steps = []
    for step_id, next_ in edges.items():
        step: dict[str, Any] = {"id": step_id, "expression": [mark(step_id, ran)]}
        if next_ is not None:
            step["next"] = next_
        steps.append(step)
    return {"workflow": {"steps": steps, **workflow}}


def boom(state: State) -> State:
    raise ValueError("boom")


# Order, start and end


def test_steps_run_breadth_first() -> None:
    ran: list[str] = []
    plan = graph(
        ran,
        {
            "a": {"b": True, "c": True},
            "b": {"d": True},
            "c": {"e": True},
            "d": None,
            "e": None,
        },
    )
    statefn.run(plan)
    assert ran == ["a", "b", "c", "d", "e"]


def test_run_starts_from_the_first_step_by_default() -> None:
    ran: list[str] = []
    plan = graph(ran, {"x": None, "a": {"x": True}})
    assert statefn.run(plan) == {"data": {"path": ["x"]}}
    assert ran == ["x"]


def test_run_starts_from_workflow_start() -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": {"b": True}, "b": {"c": True}, "c": None}, start="b")
    assert statefn.run(plan) == {"data": {"path": ["b", "c"]}}
    assert ran == ["b", "c"]


def test_options_start_wins_over_workflow_start() -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": {"b": True}, "b": {"c": True}, "c": None}, start="a")
    plan["options"] = {"start": "c"}
    assert statefn.run(plan) == {"data": {"path": ["c"]}}
    assert ran == ["c"]


def test_end_stops_after_that_step_and_abandons_the_queue() -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": {"b": True, "c": True}, "b": {"d": True}, "c": None, "d": None})
    plan["options"] = {"end": "b"}
    assert statefn.run(plan) == {"data": {"path": ["a", "b"]}}
    assert ran == ["a", "b"]


def test_trigger_passes_its_input_through_and_sends_no_events(events: EventLog) -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": None})
    plan["workflow"]["steps"].insert(0, {"id": "trigger", "next": {"a": True}})
    result = statefn.run(plan, {"data": {"n": 1}}, on_event=events)
    assert result == {"data": {"n": 1, "path": ["a"]}}
    assert events.step_names("trigger") == []
    assert events.step_names("a") == [
        "init-start",
        "init-complete",
        "job-start",
        "job-complete",
    ]


def test_fanned_out_branches_get_isolated_copies() -> None:
    seen: dict[str, Any] = {}

    def producer(state: State) -> State:
        return {"data": {"items": ["a"], "nested": {"k": "a"}}}

    def mutate(state: State) -> State:
        state["data"]["items"].append("b")
        state["data"]["nested"]["k"] = "b"
        return state

    def observe(state: State) -> State:
        seen["c"] = state["data"]
        return state

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [producer], "next": {"b": True, "c": True}},
                {"id": "b", "expression": [mutate]},
                {"id": "c", "expression": [observe]},
            ]
        }
    }
    result = statefn.run(plan)
    assert seen["c"] == {"items": ["a"], "nested": {"k": "a"}}
    assert result["b"]["data"] == {"items": ["a", "b"], "nested": {"k": "b"}}


def test_step_reached_twice_runs_once_per_input_with_numbered_leaf_keys() -> None:
    def tagged(tag: str) -> Callable[[State], State]:
        return lambda state: {**state, "data": {"from": tag, "seen": []}}

    def z(state: State) -> State:
        state["data"]["seen"].append("z")
        return state

    plan = {
        "workflow": {
            "steps": [
                {"id": "root", "next": {"x": True, "y": True}},
                {"id": "x", "expression": [tagged("x")], "next": "z"},
                {"id": "y", "expression": [tagged("y")], "next": "z"},
                {"id": "z", "expression": [z]},
            ]
        }
    }
    result = statefn.run(plan)
    assert result == {
        "z": {"data": {"from": "x", "seen": ["z"]}},
        "z-1": {"data": {"from": "y", "seen": ["z"]}},
    }


def test_three_arrivals_are_keyed_z_z1_z2() -> None:
    ran: list[str] = []
    plan = graph(
        ran,
        {"a": {"x": True, "y": True, "z": True}, "x": "z", "y": "z", "z": None},
    )
    result = statefn.run(plan)
    assert list(result) == ["z", "z-1", "z-2"]
    assert ran == ["a", "x", "y", "z", "z", "z"]


def test_single_leaf_returns_its_state_and_several_leaves_a_dict() -> None:
    ran: list[str] = []
    one = graph(ran, {"a": {"b": True}, "b": None})
    assert statefn.run(one) == {"data": {"path": ["a", "b"]}}
    two = graph(ran, {"a": {"b": True, "c": True}, "b": None, "c": None})
    assert statefn.run(two) == {
        "b": {"data": {"path": ["a", "b"]}},
        "c": {"data": {"path": ["a", "c"]}},
    }


# Edges


@pytest.mark.parametrize(
    ("edge", "followed"),
    [
        (True, True),
        (False, False),
        ("state['data']['path'] == ['a']", True),
        ("state['data']['path'] == []", False),
        ("upstream_step_id == 'a'", True),
        ("upstream_step_id == 'b'", False),
        ({"condition": "True", "label": "yes"}, True),
        ({"condition": "True", "disabled": True}, False),
        ({"condition": "always", "disabled": False}, True),
        ({"label": "no condition"}, False),
        ({}, False),
        ("always", True),
        ("on_job_success", True),
        ("on_upstream_success", True),
        ("on_job_failure", False),
        ("on_upstream_fail", False),
    ],
)
def test_edge_after_a_successful_step(edge: Any, followed: bool) -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": {"b": edge}, "b": None})
    statefn.run(plan)
    assert ran == (["a", "b"] if followed else ["a"])


def test_string_next_is_followed() -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": "b", "b": None})
    statefn.run(plan)
    assert ran == ["a", "b"]


@pytest.mark.parametrize(
    ("edge", "followed"),
    [
        (True, True),
        ("always", True),
        ("on_job_failure", True),
        ("on_upstream_fail", True),
        ("on_job_success", False),
        ("on_upstream_success", False),
        ("state['errors']['a']['message'] == 'ValueError: boom'", True),
        ("'errors' not in state", False),
    ],
)
def test_edges_are_evaluated_after_a_failed_step(edge: Any, followed: bool) -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": {"b": edge}, "b": None})
    plan["workflow"]["steps"][0]["expression"] = [boom]
    statefn.run(plan)
    assert ran == (["b"] if followed else [])


@pytest.mark.parametrize(
    ("edge", "followed"), [("on_job_failure", True), ("on_job_success", False)]
)
def test_an_empty_error_record_counts_as_a_failure(edge: str, followed: bool) -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": {"b": edge}, "b": None})
    plan["workflow"]["steps"][0]["expression"] = [lambda s: {**s, "errors": {"a": {}}}]
    statefn.run(plan)
    assert ran == (["b"] if followed else [])


@pytest.mark.parametrize(
    "edge",
    [
        lambda state: state["data"]["path"] == ["a"],
        {"condition": lambda state: state["data"]["path"] == ["a"], "label": "callable"},
    ],
    ids=["bare", "in an object"],
)
def test_a_condition_may_be_a_callable_of_the_upstream_state(edge: Any) -> None:
    ran: list[str] = []
    plan = graph(
        ran, {"a": {"b": edge, "c": {"condition": lambda state: False}}, "b": None, "c": None}
    )
    statefn.run(plan)
    assert ran == ["a", "b"]


def test_a_callable_condition_that_raises_is_an_edge_condition_error() -> None:
    plan = graph([], {"a": {"b": lambda state: state["missing"]}, "b": None})
    with pytest.raises(statefn.EdgeConditionError) as caught:
        statefn.run(plan)
    assert caught.value.message == "Edge condition a->b raised KeyError: 'missing'"


def test_failure_and_success_branches_split_on_the_upstream_error() -> None:
    ran: list[str] = []
    plan = graph(
        ran,
        {"a": {"ok": "on_job_success", "alert": "on_job_failure"}, "ok": None, "alert": None},
    )
    plan["workflow"]["steps"][0]["expression"] = [boom]
    result = statefn.run(plan)
    assert ran == ["alert"]
    assert result["errors"]["a"]["message"] == "ValueError: boom"


def test_condition_that_raises_is_an_edge_condition_error(events: EventLog) -> None:
    ran: list[str] = []
    plan = graph(ran, {"a": {"b": "state['data']['missing'] > 1"}, "b": None})
    with pytest.raises(statefn.EdgeConditionError) as caught:
        statefn.run(plan, on_event=events)
    error = caught.value
    assert isinstance(error, statefn.StatefnError)
    assert error.name == "EdgeConditionError"
    assert error.severity == "crash"
    assert ran == ["a"]
    assert "workflow-complete" not in events.names()


def test_condition_that_raises_after_its_step_failed_names_the_steps_error_first() -> None:
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": "fn(lambda state: 1 / 0)",
                 "next": {"b": "state['data']['total'] > 1"}},
                {"id": "b", "expression": "fn(lambda state: state)"},
            ]
        }
    }  # fmt: skip
    with pytest.raises(statefn.EdgeConditionError) as caught:
        statefn.run(plan)
    assert caught.value.message == (
        "Step a failed with RuntimeError: ZeroDivisionError: division by zero; "
        "then its edge condition a->b raised KeyError: 'total'"
    )


# Retry


def flaky(failures: int, calls: list[int]) -> Callable[[State], State]:
    """An operation that raises ``failures`` times, then passes."""

    def op(state: State) -> State:
        calls.append(1)
        if len(calls) <= failures:
            raise ValueError(f"attempt {len(calls)} failed")
        return {"data": {"attempts": len(calls)}}

    return op


def test_retry_runs_a_failing_step_again_until_it_passes(events: EventLog) -> None:
    calls: list[int] = []
    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [flaky(2, calls)],
                    "retry": {"attempts": 3, "backoff_ms": 10},
                }
            ]
        }
    }
    result = statefn.run(plan, on_event=events)
    assert result == {"data": {"attempts": 3}}
    assert "errors" not in result
    assert events.step_names("a") == ["init-start", "init-complete", "job-start", "job-complete"]
    warnings = [p for p in events.of("log") if p["level"] == "warn"]
    assert len(warnings) == 2
    assert all(p["job_id"] == "a" for p in warnings)


def test_retry_records_the_error_after_the_last_attempt(events: EventLog) -> None:
    calls: list[int] = []
    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [flaky(10, calls)],
                    "retry": {"attempts": 3, "backoff_ms": 10, "factor": 1},
                }
            ]
        }
    }
    result = statefn.run(plan, on_event=events)
    assert len(calls) == 3
    assert result["errors"]["a"]["message"] == "ValueError: attempt 3 failed"
    assert events.step_names("a") == ["init-start", "init-complete", "job-start", "job-error"]
    assert len([p for p in events.of("log") if p["level"] == "warn"]) == 2


def test_each_attempt_starts_from_the_step_input() -> None:
    calls: list[int] = []

    def changes_then_fails(state: State) -> State:
        state["data"]["seen"] = [*state["data"].get("seen", []), len(calls)]
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("again")
        return state

    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [changes_then_fails],
                    "retry": {"attempts": 3, "backoff_ms": 1},
                }
            ]
        }
    }
    assert statefn.run(plan) == {"data": {"seen": [2]}}


def test_retry_does_not_repeat_a_crash() -> None:
    calls: list[int] = []

    def crash(state: State) -> State:
        calls.append(1)
        raise NameError("name 'x' is not defined")

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [crash], "retry": {"attempts": 3, "backoff_ms": 10}}
            ]
        }
    }
    with pytest.raises(statefn.RuntimeCrash):
        statefn.run(plan)
    assert calls == [1]


# Timeout


def sleeper(seconds: float) -> Callable[[State], State]:
    def op(state: State) -> State:
        time.sleep(seconds)
        return state

    return op


def test_plan_timeout_ends_a_blocked_step(events: EventLog) -> None:
    plan = {
        "workflow": {"steps": [{"id": "a", "expression": [sleeper(10)]}]},
        "options": {"timeout": 300},
    }
    started = time.monotonic()
    with pytest.raises(statefn.StepTimeoutError) as caught:
        statefn.run(plan, on_event=events)
    assert time.monotonic() - started < 0.3 + 1.5
    error = caught.value
    assert error.name == "TimeoutError"
    assert error.severity == "kill"
    assert error.message == "Job took longer than 300ms to complete"
    assert error.step_id == "a"
    assert events.step_names("a")[-1] == "job-error"
    assert events.of("job-error")[0]["error"]["name"] == "TimeoutError"


def test_timeout_ms_option_ends_a_blocked_step(events: EventLog) -> None:
    release = threading.Event()

    def blocked(state: State) -> State:
        release.wait(10)
        return state

    plan = {"workflow": {"steps": [{"id": "a", "expression": [blocked]}]}}
    started = time.monotonic()
    try:
        with pytest.raises(statefn.StepTimeoutError) as caught:
            statefn.run(plan, timeout_ms=200, on_event=events)
        assert time.monotonic() - started < 0.2 + 1.5
    finally:
        release.set()
    assert caught.value.message == "Job took longer than 200ms to complete"
    assert events.step_names("a") == ["init-start", "init-complete", "job-start", "job-error"]


def test_timeout_fires_while_an_async_operation_blocks_the_thread(events: EventLog) -> None:
    release = threading.Event()

    async def blocked(state: State) -> State:
        release.wait(10)
        return state

    plan = {"workflow": {"steps": [{"id": "a", "expression": [blocked]}]}}
    started = time.monotonic()
    try:
        with pytest.raises(statefn.StepTimeoutError) as caught:
            statefn.run(plan, timeout_ms=200, on_event=events)
        assert time.monotonic() - started < 0.2 + 1.5
    finally:
        release.set()
    assert caught.value.message == "Job took longer than 200ms to complete"
    assert events.step_names("a")[-1] == "job-error"


def test_timeout_ends_an_async_operation_that_awaits() -> None:
    async def slow(state: State) -> State:
        await asyncio.sleep(10)
        return state

    plan = {"workflow": {"steps": [{"id": "a", "expression": [slow]}]}}
    started = time.monotonic()
    with pytest.raises(statefn.StepTimeoutError):
        statefn.run(plan, timeout_ms=200)
    assert time.monotonic() - started < 0.2 + 1.5


def test_plan_timeout_wins_over_timeout_ms_option() -> None:
    release = threading.Event()

    def blocked(state: State) -> State:
        release.wait(10)
        return state

    plan = {
        "workflow": {"steps": [{"id": "a", "expression": [blocked]}]},
        "options": {"timeout": 250},
    }
    try:
        with pytest.raises(statefn.StepTimeoutError) as caught:
            statefn.run(plan, timeout_ms=5000)
    finally:
        release.set()
    assert caught.value.message == "Job took longer than 250ms to complete"


def test_step_within_its_timeout_completes() -> None:
    plan = {
        "workflow": {"steps": [{"id": "a", "expression": [sleeper(0.01)]}]},
        "options": {"timeout": 5000},
    }
    assert statefn.run(plan) == {"data": {}}


def test_timeout_bounds_each_step_not_the_whole_run() -> None:
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [sleeper(0.15)], "next": "b"},
                {"id": "b", "expression": [sleeper(0.15)], "next": "c"},
                {"id": "c", "expression": [sleeper(0.15)]},
            ]
        },
        "options": {"timeout": 2000},
    }
    assert statefn.run(plan, timeout_ms=400) == {"data": {}}
    assert statefn.run(plan | {"options": {"timeout": 400}}) == {"data": {}}


# Steps that produce no state


def test_a_step_whose_last_operation_returns_none_produces_no_state(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log
    plan = {"workflow": {"steps": [{"id": "a", "expression": [lambda s: s, lambda s: None]}]}}
    assert statefn.run(plan, logger=logger) is None
    assert records.messages(logging.WARNING) == []


def test_a_leaf_without_state_is_left_out_of_the_result() -> None:
    plan = graph([], {"start": {"a": True, "b": True}, "a": None, "b": None})
    plan["workflow"]["steps"][2]["expression"] = [lambda s: None]
    assert statefn.run(plan) == {"data": {"path": ["start", "a"]}}


def test_steps_after_a_step_without_state_start_from_empty(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log
    seen: list[State] = []
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: None], "next": "b"},
                {"id": "b", "expression": [lambda s: seen.append(dict(s)) or s]},
            ]
        }
    }
    assert statefn.run(plan, {"data": {"x": 1}}, logger=logger) == {"data": {}}
    assert seen == [{"data": {}, "configuration": {}}]
    assert records.messages(logging.WARNING) == [
        "Step a did not return a state object: its next steps start from {}"
    ]


def test_an_operation_before_the_last_that_returns_none_hands_on_empty_state(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log
    plan = {"workflow": {"steps": [{"id": "a", "expression": [lambda s: None, lambda s: s]}]}}
    assert statefn.run(plan, logger=logger) == {}
    [warning] = records.messages(logging.WARNING)
    assert warning.startswith("Operation 1 (") and warning.endswith("passing an empty state {} on")


# State limit


def test_state_over_the_limit_is_a_state_too_large_error(events: EventLog) -> None:
    def big(state: State) -> State:
        return {"data": {"blob": "x" * (2 * 1024 * 1024)}}

    plan = {"workflow": {"steps": [{"id": "a", "expression": [big]}]}}
    with pytest.raises(statefn.StateTooLargeError) as caught:
        statefn.run(plan, state_limit_mb=1, on_event=events)
    error = caught.value
    assert error.name == "StateTooLargeError"
    assert error.severity == "kill"
    assert error.message == "State exceeds the limit of 1mb"
    assert error.step_id == "a"
    assert events.step_names("a")[-1] == "job-error"


def test_state_under_the_limit_passes() -> None:
    def small(state: State) -> State:
        return {"data": {"blob": "x" * 1000}}

    plan = {"workflow": {"steps": [{"id": "a", "expression": [small]}]}}
    assert statefn.run(plan, state_limit_mb=1) == {"data": {"blob": "x" * 1000}}


def test_state_limit_message_keeps_full_precision() -> None:
    plan = {"workflow": {"steps": [{"id": "a", "expression": [lambda s: {"data": "z" * 1024}]}]}}
    with pytest.raises(statefn.StateTooLargeError) as caught:
        statefn.run(plan, state_limit_mb=1 / 1024)
    assert caught.value.message == "State exceeds the limit of 0.0009765625mb"


def test_state_limit_zero_turns_the_size_check_off() -> None:
    plan = {"workflow": {"steps": [{"id": "a", "expression": [lambda s: {"data": "z" * 4096}]}]}}
    assert statefn.run(plan, state_limit_mb=0) == {"data": "z" * 4096}


# Concurrency


def barrier_plan(**options: Any) -> dict[str, Any]:
    """a -> b, c where b and c both wait at one barrier: they pass only if run together."""
    barrier = threading.Barrier(2, timeout=5)

    def meet(tag: str) -> Callable[[State], State]:
        def op(state: State) -> State:
            barrier.wait()
            return {"data": {"tag": tag}}

        return op

    plan: dict[str, Any] = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: s], "next": {"b": True, "c": True}},
                {"id": "b", "expression": [meet("b")]},
                {"id": "c", "expression": [meet("c")]},
            ]
        }
    }
    if options:
        plan["options"] = options
    return plan


def test_concurrency_option_runs_ready_branches_at_once() -> None:
    result = statefn.run(barrier_plan(), concurrency=2)
    assert result == {"b": {"data": {"tag": "b"}}, "c": {"data": {"tag": "c"}}}


def test_concurrency_in_the_plan_runs_ready_branches_at_once() -> None:
    result = statefn.run(barrier_plan(concurrency=2))
    assert result == {"b": {"data": {"tag": "b"}}, "c": {"data": {"tag": "c"}}}


def test_concurrency_option_wins_over_the_plan() -> None:
    # With the plan's 2 overridden by 1, the branches run one after the other and the
    # barrier breaks: both record a failure.
    plan = barrier_plan(concurrency=2)
    result = statefn.run(plan, concurrency=1, timeout_ms=20000)
    assert set(result) == {"b", "c"}
    assert result["b"]["errors"]["b"]["name"] == "JobError"


def test_concurrent_run_gives_the_same_results_as_a_serial_run() -> None:
    def build() -> dict[str, Any]:
        ran: list[str] = []
        return graph(
            ran,
            {
                "a": {"b": True, "c": True, "d": "state['data']['path'] == ['a']"},
                "b": {"e": True},
                "c": {"e": True},
                "d": {"f": "on_job_success"},
                "e": None,
                "f": None,
            },
        )

    serial = statefn.run(build(), {"data": {"path": []}})
    concurrent = statefn.run(build(), {"data": {"path": []}}, concurrency=3)
    assert set(serial) == {"e", "e-1", "f"}
    assert set(concurrent) == set(serial)
    assert concurrent["f"] == serial["f"]
    # Which of b and c reaches e first may differ between runs; the states may not.
    paths = sorted(state["data"]["path"] for state in serial.values())
    assert sorted(state["data"]["path"] for state in concurrent.values()) == paths


def test_end_with_concurrency_cancels_running_branches() -> None:
    c_started = threading.Event()
    release = threading.Event()
    c_finished: list[str] = []

    def slow_c(state: State) -> State:
        c_started.set()
        release.wait(10)
        c_finished.append("c")
        return state

    def end_b(state: State) -> State:
        assert c_started.wait(5)
        return {"data": {"from": "b"}}

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: s], "next": {"b": True, "c": True}},
                {"id": "b", "expression": [end_b]},
                {"id": "c", "expression": [slow_c], "next": "d"},
                {"id": "d", "expression": [lambda s: s]},
            ]
        },
        "options": {"end": "b"},
    }
    started = time.monotonic()
    try:
        result = statefn.run(plan, concurrency=2)
        elapsed = time.monotonic() - started
        finished_when_run_returned = list(c_finished)
    finally:
        release.set()
    assert result == {"data": {"from": "b"}}
    assert elapsed < 5
    assert finished_when_run_returned == []


def test_timed_out_step_runs_none_of_its_later_operations() -> None:
    release = threading.Event()
    later: list[str] = []

    def blocked(state: State) -> State:
        release.wait(10)
        return state

    def after(state: State) -> State:
        later.append("ran")
        return state

    plan = {"workflow": {"steps": [{"id": "a", "expression": [blocked, after]}]}}
    with pytest.raises(statefn.StepTimeoutError):
        statefn.run(plan, timeout_ms=200)
    release.set()
    time.sleep(0.3)
    assert later == []


def test_repeated_leaf_keys_follow_the_order_steps_started_in() -> None:
    def tagged(tag: str, seconds: float) -> Callable[[State], State]:
        def op(state: State) -> State:
            time.sleep(seconds)
            return {"data": {"from": tag}}

        return op

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: s], "next": {"x": True, "y": True}},
                {"id": "x", "expression": [tagged("x", 0.3)], "next": "z"},
                {"id": "y", "expression": [tagged("y", 0)], "next": "z"},
                {"id": "z", "expression": [lambda s: s]},
            ]
        }
    }
    # Serially, x's z starts first; with both branches at once, y finishes first.
    assert statefn.run(plan) == {"z": {"data": {"from": "x"}}, "z-1": {"data": {"from": "y"}}}
    assert statefn.run(plan, concurrency=2) == {
        "z": {"data": {"from": "y"}},
        "z-1": {"data": {"from": "x"}},
    }


def test_branch_cancelled_by_end_still_ends_its_events(events: EventLog) -> None:
    c_started = threading.Event()
    release = threading.Event()

    def slow_c(state: State) -> State:
        c_started.set()
        release.wait(10)
        return state

    def end_b(state: State) -> State:
        assert c_started.wait(5)
        return state

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: s], "next": {"b": True, "c": True}},
                {"id": "b", "expression": [end_b]},
                {"id": "c", "expression": [slow_c]},
            ]
        },
        "options": {"end": "b"},
    }
    try:
        statefn.run(plan, concurrency=2, on_event=events)
    finally:
        release.set()
    c_events = events.step_names("c")
    assert "job-start" in c_events
    assert c_events[-1] in {"job-complete", "job-error"}
    assert events.names()[-1] == "workflow-complete"
