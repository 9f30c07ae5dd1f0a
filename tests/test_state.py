"""State between operations and steps (contract section 2): assembly, resolvers,
removed keys, JSON safety, isolation."""

from __future__ import annotations

import copy
import datetime as dt
import gc
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import pytest

import statefn
from statefn._state import PROMOTED_BYTES, decode

if TYPE_CHECKING:
    from conftest import EventLog, RecordList

State = dict[str, Any]


def capture(into: list[State]) -> Callable[[State], State]:
    """An operation that keeps a deep copy of the state it receives."""

    def op(state: State) -> State:
        into.append(copy.deepcopy(state))
        return state

    return op


def one_step(*operations: Callable[..., Any], **step: Any) -> dict[str, Any]:
    return {"workflow": {"steps": [{"id": "a", "expression": list(operations), **step}]}}


# Assembly


def test_configuration_is_credentials_then_input_then_step() -> None:
    seen: list[State] = []
    plan = one_step(capture(seen), configuration={"c": "step", "d": "step"})
    plan["workflow"]["credentials"] = {"a": "cred", "b": "cred", "c": "cred"}
    statefn.run(plan, {"data": {}, "configuration": {"b": "input", "c": "input"}})
    assert seen[0]["configuration"] == {"a": "cred", "b": "input", "c": "step", "d": "step"}


def test_data_is_step_default_overlaid_by_input() -> None:
    seen: list[State] = []
    plan = one_step(capture(seen), state={"data": {"x": "default", "y": "default"}})
    statefn.run(plan, {"data": {"y": "input", "z": "input"}})
    assert seen[0]["data"] == {"x": "default", "y": "input", "z": "input"}


@pytest.mark.parametrize("data", [[1, 2], "text", 7, None], ids=["list", "str", "int", "none"])
def test_non_dict_input_data_passes_as_it_is(data: Any) -> None:
    seen: list[State] = []
    plan = one_step(capture(seen), state={"data": {"x": "default"}})
    statefn.run(plan, {"data": data})
    assert seen[0]["data"] == data


def test_other_keys_take_the_input_over_the_step_default() -> None:
    seen: list[State] = []
    plan = one_step(capture(seen), state={"cursor": "default", "other": "default"})
    statefn.run(plan, {"data": {}, "cursor": "input"})
    assert seen[0]["cursor"] == "input"
    assert seen[0]["other"] == "default"


def test_errors_and_references_carry_to_the_next_step() -> None:
    seen: list[State] = []

    def fail(state: State) -> State:
        raise KeyError("x")

    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [lambda s: {**s, "references": [{"r": 1}]}],
                    "next": "b",
                },
                {"id": "b", "expression": [fail], "next": {"c": "always"}},
                {"id": "c", "expression": [capture(seen)]},
            ]
        }
    }
    statefn.run(plan)
    assert seen[0]["references"] == [{"r": 1}]
    assert seen[0]["errors"]["b"]["message"] == "KeyError: 'x'"


def test_default_input_state() -> None:
    seen: list[State] = []
    statefn.run(one_step(capture(seen)))
    assert seen[0] == {"data": {}, "configuration": {}}


# Resolvers


def test_step_state_id_is_resolved_by_a_sync_resolver() -> None:
    seen: list[State] = []
    asked: list[str] = []

    def resolve_state(state_id: str) -> State:
        asked.append(state_id)
        return {"data": {"from": "resolver"}, "extra": 1}

    statefn.run(one_step(capture(seen), state="st-1"), resolve_state=resolve_state)
    assert asked == ["st-1"]
    assert seen[0]["data"] == {"from": "resolver"}
    assert seen[0]["extra"] == 1


def test_step_state_id_is_resolved_by_an_async_resolver() -> None:
    seen: list[State] = []

    async def resolve_state(state_id: str) -> State:
        return {"data": {"id": state_id}}

    statefn.run(one_step(capture(seen), state="st-2"), resolve_state=resolve_state)
    assert seen[0]["data"] == {"id": "st-2"}


def test_configuration_id_is_resolved_by_a_sync_resolver() -> None:
    seen: list[State] = []
    plan = one_step(capture(seen), configuration="cred-1")
    statefn.run(plan, resolve_credential=lambda cred_id: {"token": f"t-{cred_id}"})
    assert seen[0]["configuration"] == {"token": "t-cred-1"}


def test_configuration_id_is_resolved_by_an_async_resolver() -> None:
    seen: list[State] = []

    async def resolve_credential(cred_id: str) -> State:
        return {"token": f"t-{cred_id}"}

    plan = one_step(capture(seen), configuration="cred-2")
    plan["workflow"]["credentials"] = {"base": "from-workflow"}
    statefn.run(plan, resolve_credential=resolve_credential)
    assert seen[0]["configuration"] == {"base": "from-workflow", "token": "t-cred-2"}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_input_state_id_is_resolved_and_sends_load_state(events: EventLog, is_async: bool) -> None:
    seen: list[State] = []

    def sync_resolver(state_id: str) -> State:
        return {"data": {"loaded": state_id}}

    async def async_resolver(state_id: str) -> State:
        return sync_resolver(state_id)

    resolver = async_resolver if is_async else sync_resolver
    statefn.run(one_step(capture(seen)), "in-1", resolve_state=resolver, on_event=events)
    assert seen[0]["data"] == {"loaded": "in-1"}
    [load] = events.of("load-state")
    assert set(load) == {"state_id", "duration_ms"}
    assert load["state_id"] == "in-1"
    assert events.names().index("load-state") < events.names().index("job-start")


@pytest.mark.parametrize(
    ("step", "resolver"),
    [({"configuration": "cred-1"}, "resolve_credential"), ({"state": "st-1"}, "resolve_state")],
    ids=["credential", "state"],
)
def test_id_without_its_resolver_is_an_input_error(step: dict[str, Any], resolver: str) -> None:
    calls: list[State] = []
    with pytest.raises(statefn.InputError) as caught:
        statefn.run(one_step(capture(calls), **step))
    assert resolver in caught.value.message
    assert calls == []


def test_resolver_that_fails_is_a_statefn_error() -> None:
    def unknown(cred_id: str) -> State:
        raise LookupError(f"no credential {cred_id}")

    with pytest.raises(statefn.StatefnError) as caught:
        statefn.run(one_step(lambda s: s, configuration="cred-9"), resolve_credential=unknown)
    assert "cred-9" in caught.value.message


# Removed keys


def test_configuration_is_removed_from_output_by_default() -> None:
    result = statefn.run(one_step(lambda s: s, configuration={"key": "secret-value"}))
    assert result == {"data": {}}


def test_empty_state_props_to_remove_keeps_configuration() -> None:
    plan = one_step(lambda s: s, configuration={"key": "secret-value"})
    result = statefn.run(plan, state_props_to_remove=[])
    assert result == {"data": {}, "configuration": {"key": "secret-value"}}


def test_state_props_to_remove_replaces_the_default() -> None:
    plan = one_step(lambda s: {**s, "scratch": 1}, configuration={"key": "value"})
    result = statefn.run(plan, state_props_to_remove=["scratch"])
    assert result == {"data": {}, "configuration": {"key": "value"}}


def test_state_props_to_remove_none_means_the_default() -> None:
    plan = one_step(lambda s: {**s, "x": 1}, configuration={"key": "secret-value"})
    assert statefn.run(plan, state_props_to_remove=None) == {"data": {}, "x": 1}


def test_configuration_is_removed_between_steps() -> None:
    seen: list[State] = []
    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [lambda s: s],
                    "configuration": {"k": "a-only"},
                    "next": "b",
                },
                {"id": "b", "expression": [capture(seen)]},
            ]
        }
    }
    statefn.run(plan)
    assert seen[0].get("configuration", {}) == {}


# JSON safety


def test_tuples_and_dates_are_made_json_safe() -> None:
    def produce(state: State) -> State:
        return {
            "data": {
                "pair": (1, (2, 3)),
                "when": dt.datetime(2024, 1, 2, 3, 4, 5),
                "day": dt.date(2024, 1, 2),
                "at": dt.time(3, 4, 5),
                "nested": [{"t": (4,)}],
            }
        }

    result = statefn.run(one_step(produce))
    assert result == {
        "data": {
            "pair": [1, [2, 3]],
            "when": "2024-01-02T03:04:05",
            "day": "2024-01-02",
            "at": "03:04:05",
            "nested": [{"t": [4]}],
        }
    }


def _circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


class Opaque:
    pass


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        b"bytes",
        print,
        lambda: None,
        math.nan,
        math.inf,
        {1: "int key"},
        _circular(),
        Opaque(),
    ],
    ids=["set", "bytes", "builtin", "function", "nan", "inf", "int-key", "circular", "object"],
)
def test_value_json_cannot_hold_fails_the_step_with_its_path(value: Any) -> None:
    def produce(state: State) -> State:
        return {"data": {"rows": [{}, {}, {}, {"when": value}]}}

    result = statefn.run(one_step(produce))
    record = result["errors"]["a"]
    assert record["name"] == "RuntimeError"
    assert record["severity"] == "fail"
    assert record["subtype"] == "TypeError"
    assert "state.data.rows[3].when" in record["message"]


def test_unsafe_value_in_a_top_level_key_names_its_path() -> None:
    result = statefn.run(one_step(lambda s: {"data": {}, "tags": {"a"}}))
    record = result["errors"]["a"]
    assert record["subtype"] == "TypeError"
    assert "state.tags" in record["message"]


def test_workflow_goes_on_after_an_unsafe_value() -> None:
    seen: list[State] = []
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: {"data": {"s": {1}}}], "next": {"b": True}},
                {"id": "b", "expression": [capture(seen)]},
            ]
        }
    }
    result = statefn.run(plan)
    assert seen[0]["errors"]["a"]["subtype"] == "TypeError"
    assert result["errors"]["a"]["name"] == "RuntimeError"


# What operations return


def test_operation_returning_none_hands_an_empty_dict_on_with_a_warning(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log
    seen: list[State] = []

    def forgets(state: State) -> None:
        return None

    result = statefn.run(one_step(forgets, capture(seen)), logger=logger)
    assert seen == [{}]
    assert result == {}
    assert records.messages(logging.WARNING)


def test_operation_returning_a_dict_logs_no_warning(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log
    statefn.run(one_step(lambda s: s), logger=logger)
    assert records.messages(logging.WARNING) == []


def test_operation_returning_a_non_dict_fails_naming_it() -> None:
    def returns_number(state: State) -> int:
        return 42

    result = statefn.run(one_step(returns_number))
    record = result["errors"]["a"]
    assert record["name"] == "RuntimeError"
    assert record["severity"] == "fail"
    assert record["subtype"] == "TypeError"
    assert "returns_number" in record["message"]
    assert "int" in record["message"] or "42" in record["message"]


def test_job_operation_returning_a_non_dict_is_named_as_the_job_writes_it() -> None:
    result = statefn.run("total = 1\n\nfn(lambda state: total)\n")
    record = result["errors"]["job-1"]
    assert record["message"] == (
        "TypeError: operation 1 (fn(lambda state: total), line 3) returned int, "
        "not a state dict"
    )
    assert record["pos"] == {"line": 3, "column": 1, "src": "fn(lambda state: total)"}


def test_job_operation_returning_none_is_named_as_the_job_writes_it(
    runtime_log: tuple[logging.Logger, RecordList],
) -> None:
    logger, records = runtime_log
    # Not the last operation: a last one returning None means the step made no state.
    statefn.run("fn(lambda state: None)\nfn(lambda state: state)\n", logger=logger)
    assert records.messages(logging.WARNING) == [
        "Operation 1 (fn(lambda state: None), line 1) returned None: passing an empty state {} on"
    ]


# Isolation


def test_immutable_state_gives_each_operation_its_own_copy() -> None:
    kept: list[State] = []

    def first(state: State) -> State:
        new = {"data": {"x": "original", "items": [1]}}
        kept.append(new)
        return new

    def second(state: State) -> State:
        state["data"]["x"] = "changed"
        state["data"]["items"].append(2)
        return state

    result = statefn.run(one_step(first, second), immutable_state=True)
    assert result == {"data": {"x": "changed", "items": [1, 2]}}
    assert kept[0] == {"data": {"x": "original", "items": [1]}}


def test_run_changes_neither_the_plan_nor_the_input_state() -> None:
    def mutate(state: State) -> State:
        state["data"]["added"] = True
        state["data"]["list"].append("op")
        state["configuration"]["k"] = "changed"
        state["default"].append("op")
        return state

    plan = one_step(
        mutate,
        configuration={"k": "plan"},
        state={"data": {"d": 1}, "default": ["plan"]},
    )
    plan["workflow"]["credentials"] = {"c": "cred"}
    state = {"data": {"list": ["input"]}, "configuration": {"i": "input"}}
    plan_before = copy.deepcopy(plan)
    state_before = copy.deepcopy(state)
    statefn.run(plan, state)
    assert plan == plan_before
    assert state == state_before


def _nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["x"] = {}
        node = node["x"]
    return root


def test_state_nested_deeper_than_orjson_allows_still_passes() -> None:
    result = statefn.run([lambda s: {**s, "data": _nested(300)}])
    depth, node = 0, result["data"]
    while node:
        node, depth = node["x"], depth + 1
    assert depth == 300


def test_state_nested_too_deeply_for_json_fails_the_step() -> None:
    result = statefn.run([lambda s: {**s, "data": _nested(5000)}])
    record = result["errors"]["job-1"]
    assert record["name"] == "RuntimeError"
    assert record["message"] == "TypeError: state is nested too deeply to be JSON"


# Decoding


def _in_young_generations(value: object) -> bool:
    return any(held is value for generation in (0, 1) for held in gc.get_objects(generation))


def test_a_large_decoded_state_skips_the_young_generations() -> None:
    encoded = orjson.dumps({"rows": [{"n": i, "tags": ["a", "b"]} for i in range(40_000)]})
    assert len(encoded) >= PROMOTED_BYTES
    value = decode(encoded)
    assert not _in_young_generations(value)
    assert not _in_young_generations(value["rows"][-1]["tags"])
    assert gc.get_count()[0] < 100
    assert value["rows"][-1] == {"n": 39_999, "tags": ["a", "b"]}


def test_a_small_decoded_state_is_left_to_the_collector() -> None:
    value = decode(orjson.dumps({"rows": [{"n": 1}]}))
    assert _in_young_generations(value)


def test_decoding_keeps_the_collector_as_it_was() -> None:
    encoded = orjson.dumps({"rows": list(range(300_000))})
    assert gc.isenabled()
    decode(encoded)
    assert gc.isenabled()
    gc.disable()
    try:
        decode(encoded)
        assert not gc.isenabled()
    finally:
        gc.enable()
