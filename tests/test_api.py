"""The public surface (contract section 2): exports, the forms a plan may take, options."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import statefn
from statefn.adaptor import run_resource

if TYPE_CHECKING:
    from conftest import EventLog

State = dict[str, Any]

SRC = Path(statefn.__file__).parent


def one_step() -> dict[str, Any]:
    return {"workflow": {"steps": [{"id": "a", "expression": [lambda s: s]}]}}


def test_all_is_sorted() -> None:
    assert statefn.__all__ == sorted(statefn.__all__)


def test_all_is_complete() -> None:
    public = {
        name
        for name in dir(statefn)
        if not name.startswith("_")
        and not inspect.ismodule(getattr(statefn, name))
        and name != "annotations"
    }
    assert set(statefn.__all__) == public


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in statefn.__all__:
        value = getattr(statefn, name)
        assert value.__doc__, name


def test_exported_errors_derive_from_statefn_error() -> None:
    errors = [
        getattr(statefn, name) for name in statefn.__all__ if name.endswith(("Error", "Crash"))
    ]
    assert errors
    for cls in errors:
        assert issubclass(cls, statefn.StatefnError)


# The forms of a plan


def test_plan_may_be_a_list_of_operations(events: EventLog) -> None:
    async def second(state: State) -> State:
        return {**state, "data": {**state["data"], "second": True}}

    result = statefn.run([lambda s: {**s, "data": {"first": True}}, second], on_event=events)
    assert result == {"data": {"first": True, "second": True}}
    assert {p["job_id"] for p in events.of("job-start")} == {"job-1"}


def test_plan_may_be_job_source(events: EventLog) -> None:
    result = statefn.run(
        "fn(lambda state: {**state, 'data': {'n': 1}})", {"data": {}}, on_event=events
    )
    assert result == {"data": {"n": 1}}
    assert [p["job_id"] for p in events.of("job-start")] == ["job-1"]


def test_default_step_id_names_the_single_step(events: EventLog) -> None:
    statefn.run([lambda s: s], default_step_id="only", on_event=events)
    assert [p["job_id"] for p in events.of("job-start")] == ["only"]


def test_run_async_gives_the_same_result_as_run() -> None:
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: {"data": {"n": 1}}], "next": "b"},
                {"id": "b", "expression": [lambda s: {"data": {"n": s["data"]["n"] + 1}}]},
            ]
        }
    }
    assert asyncio.run(statefn.run_async(plan)) == statefn.run(plan) == {"data": {"n": 2}}


def test_run_async_works_inside_a_running_loop() -> None:
    async def main() -> Any:
        return await statefn.run_async(one_step(), {"data": {"x": 1}})

    assert asyncio.run(main()) == {"data": {"x": 1}}


INLINE_PROBE = """
import sys
import statefn
result = statefn.run(sys.argv[1], **({"timeout_ms": 5000} if sys.argv[2] == "timeout" else {}))
print(result["data"], "asyncio" in sys.modules)
"""


@pytest.mark.parametrize(
    ("options", "loop"), [("none", False), ("timeout", True)], ids=["inline", "with-a-timeout"]
)
def test_run_without_workers_runs_inline_without_asyncio(options: str, loop: bool) -> None:
    """A run with no timeout, one step at a time, needs no event loop (see _scheduler)."""
    job = "fn(lambda s: {**s, 'data': {'n': 1}})"
    done = subprocess.run(
        [sys.executable, "-c", INLINE_PROBE, job, options],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["{'n':", "1}", str(loop)]


def test_async_operations_of_an_inline_run_share_a_loop_whose_resources_close_after_it() -> None:
    closed: list[object] = []

    class Resource:
        async def aclose(self) -> None:
            closed.append(self)

    seen: list[tuple[asyncio.AbstractEventLoop, object]] = []

    async def operation(state: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        seen.append((asyncio.get_running_loop(), run_resource("resource", Resource)))
        return {**state, "n": len(seen)}

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [operation, operation], "next": "b"},
                {"id": "b", "expression": [operation]},
            ]
        }
    }
    assert statefn.run(plan)["n"] == 3
    assert seen[0] == seen[1] == seen[2]
    assert closed == [seen[0][1]]
    assert seen[0][0].is_closed()


def test_an_async_event_handler_and_resolver_work_in_an_inline_run() -> None:
    names: list[str] = []

    async def handler(name: str, payload: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        names.append(name)

    async def resolve(key: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"data": {"from": key}}

    result = statefn.run(one_step(), "input-1", on_event=handler, resolve_state=resolve)
    assert result == {"data": {"from": "input-1"}}
    assert names[0] == "workflow-start" and names[-1] == "workflow-complete"


def test_input_state_is_passed_to_the_first_step() -> None:
    assert statefn.run(one_step(), {"data": {"x": 1}, "other": [1]}) == {
        "data": {"x": 1},
        "other": [1],
    }


# Bad input


@pytest.mark.parametrize(
    "options",
    [
        {"timeout_ms": "x"},
        {"timeout_ms": -5},
        {"no_such_option": 1},
        {"concurrency": 0},
        {"concurrency": "two"},
        {"state_limit_mb": "big"},
        {"on_event": "not callable"},
        {"logger": "not a logger"},
        {"job_logger": 5},
        {"state_props_to_remove": "configuration"},
        {"immutable_state": "yes"},
        {"profile": "yes"},
        {"globals": ["not", "a", "dict"]},
        {"resolve_state": 5},
        {"resolve_credential": 5},
        {"default_step_id": 5},
        {"linker": "not a dict"},
        {"event_states": "lazy"},
    ],
    ids=lambda options: next(iter(options)),
)
def test_bad_option_is_an_input_error(options: dict[str, Any]) -> None:
    with pytest.raises(statefn.InputError) as caught:
        statefn.run(one_step(), **options)
    assert caught.value.name == "InputError"
    assert caught.value.severity == "crash"
    assert next(iter(options)) in caught.value.message


def test_event_states_json_hands_each_steps_state_over_as_its_json(events: EventLog) -> None:
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: {"data": {"n": 1}}], "next": "b"},
                {"id": "b", "expression": [lambda s: {"data": {"n": s["data"]["n"] + 1}}]},
            ]
        }
    }
    result = statefn.run(plan, on_event=events, event_states="json")
    assert result == {"data": {"n": 2}}
    states = [payload["state"] for payload in events.of("job-complete")]
    assert states == [b'{"data":{"n":1}}', b'{"data":{"n":2}}']


def test_event_states_copy_is_the_default(events: EventLog) -> None:
    statefn.run(one_step(), {"data": {"n": 1}}, on_event=events)
    assert events.of("job-complete")[0]["state"] == {"data": {"n": 1}}


def test_unknown_option_is_an_input_error_not_a_type_error() -> None:
    with pytest.raises(statefn.InputError) as caught:
        statefn.run(one_step(), tiemout_ms=100)
    assert "tiemout_ms" in caught.value.message


@pytest.mark.parametrize("plan", [42, 3.5, None, b"bytes", {1, 2}], ids=repr)
def test_plan_of_the_wrong_type_is_rejected_naming_the_problem(plan: Any) -> None:
    with pytest.raises((statefn.InputError, statefn.ValidationError)) as caught:
        statefn.run(plan)
    assert "plan" in caught.value.message.lower()
    assert type(plan).__name__ in caught.value.message


@pytest.mark.parametrize("state", [42, [1, 2], b"x"], ids=repr)
def test_state_of_the_wrong_type_is_an_input_error(state: Any) -> None:
    with pytest.raises(statefn.InputError) as caught:
        statefn.run(one_step(), state)
    assert "state" in caught.value.message.lower()


def test_state_id_without_resolver_is_an_input_error() -> None:
    with pytest.raises(statefn.InputError) as caught:
        statefn.run(one_step(), "some-id")
    assert "resolve_state" in caught.value.message


def test_plan_dict_without_workflow_is_a_validation_error() -> None:
    with pytest.raises(statefn.ValidationError) as caught:
        statefn.run({"steps": []})
    assert "workflow" in caught.value.message


def test_workflow_without_steps_is_a_validation_error() -> None:
    with pytest.raises(statefn.ValidationError) as caught:
        statefn.run({"workflow": {"steps": []}})
    assert "steps" in caught.value.message


def test_expression_list_with_a_non_callable_is_a_validation_error() -> None:
    plan = {"workflow": {"steps": [{"id": "a", "expression": [lambda s: s, 5]}]}}
    with pytest.raises(statefn.ValidationError) as caught:
        statefn.run(plan)
    assert "workflow.steps[0].expression" in caught.value.message


def test_globals_option_names_are_visible_to_job_code() -> None:
    result = statefn.run(
        "fn(lambda state: {'data': {'v': double(21)}})", globals={"double": lambda x: x * 2}
    )
    assert result == {"data": {"v": 42}}


def test_workflow_globals_are_visible_to_every_step() -> None:
    plan = {
        "workflow": {
            "globals": "def triple(x):\n    return x * 3\n",
            "steps": [
                {"id": "a", "expression": "fn(lambda state: {'data': {'v': triple(2)}})"},
            ],
        }
    }
    assert statefn.run(plan) == {"data": {"v": 6}}


def test_validate_plan_accepts_the_short_forms_run_accepts() -> None:
    for plan in ("fn(lambda state: state)", [lambda s: s]):
        normalised = statefn.validate_plan(plan)
        assert [step["id"] for step in normalised["workflow"]["steps"]] == ["job-1"]


def test_list_plan_with_a_non_callable_names_the_item() -> None:
    with pytest.raises(statefn.ValidationError) as caught:
        statefn.run([lambda s: s, 5])
    assert "expression[1] must be an operation" in caught.value.message


@pytest.mark.parametrize("name", ["int", "float", "print", "len", "ValueError", "S", "console"])
def test_globals_cannot_replace_names_job_code_relies_on(name: str) -> None:
    with pytest.raises(statefn.InputError) as caught:
        statefn.run("fn(lambda s: {'n': int('4')})", globals={"x": 1, name: lambda *a: 0})
    assert caught.value.message.endswith(f"job code relies on: {name}")
    assert caught.value.details == {"option": "globals", "names": [name]}


def test_globals_add_names_beside_the_built_ins() -> None:
    assert statefn.run("fn(lambda s: {'n': int(x)})", globals={"x": "4"}) == {"n": 4}
