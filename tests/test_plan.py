"""Plan validation (contract section 1): everything is rejected before any step runs."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

import statefn

State = dict[str, Any]


def recorder() -> tuple[list[str], Callable[[State], State]]:
    """An operation that notes each call, and the list it notes into."""
    calls: list[str] = []

    def op(state: State) -> State:
        calls.append("called")
        return state

    return calls, op


def two_steps(**a_keys: Any) -> dict[str, Any]:
    """A plan a -> b whose step ``a`` holds ``a_keys`` on top of an identity operation."""
    return {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [lambda s: s], "next": {"b": True}, **a_keys},
                {"id": "b", "expression": [lambda s: s]},
            ]
        }
    }


def rejected(plan: Any) -> str:
    """The message of the ValidationError that ``validate_plan`` raises for ``plan``."""
    with pytest.raises(statefn.ValidationError) as caught:
        statefn.validate_plan(plan)
    assert caught.value.name == "ValidationError"
    assert caught.value.severity == "crash"
    return caught.value.message


def test_unknown_start_in_options_is_rejected() -> None:
    plan = two_steps()
    plan["options"] = {"start": "nowhere"}
    assert rejected(plan) == "Could not find start job: nowhere"


def test_unknown_start_in_workflow_is_rejected() -> None:
    plan = two_steps()
    plan["workflow"]["start"] = "nowhere"
    assert rejected(plan) == "Could not find start job: nowhere"


@pytest.mark.parametrize(
    "edge",
    [True, False, "always", {"condition": "always", "disabled": True}, {"label": "x"}],
    ids=["true", "false", "condition", "disabled", "no-condition"],
)
def test_edge_to_unknown_step_is_rejected_whatever_the_edge(edge: Any) -> None:
    plan = two_steps(next={"b": True, "ghost": edge})
    assert rejected(plan) == "Cannot find job: ghost (in the next of step a)"


def test_string_next_to_unknown_step_is_rejected() -> None:
    plan = two_steps(next="ghost")
    assert rejected(plan) == "Cannot find job: ghost (in the next of step a)"


def test_two_step_cycle_is_rejected() -> None:
    plan = two_steps()
    plan["workflow"]["steps"][1]["next"] = {"a": True}
    assert rejected(plan).startswith("Circular dependency: ")


def test_cycle_through_string_next_is_rejected() -> None:
    plan = two_steps(next="b")
    plan["workflow"]["steps"][1]["next"] = "a"
    assert rejected(plan).startswith("Circular dependency: ")


def test_self_loop_is_rejected() -> None:
    plan = two_steps(next={"a": "state['data'] == {}"})
    assert rejected(plan).startswith("Circular dependency: ")


def test_cycle_through_a_conditional_edge_is_rejected() -> None:
    plan = two_steps()
    plan["workflow"]["steps"][1]["next"] = {"a": "on_job_failure"}
    assert rejected(plan).startswith("Circular dependency: ")


@pytest.mark.parametrize(
    "back_edge", [False, {"condition": "always", "disabled": True}], ids=["false", "disabled"]
)
def test_edges_that_can_never_be_followed_do_not_make_a_cycle(back_edge: Any) -> None:
    calls_b, op_b = recorder()
    plan = two_steps()
    plan["workflow"]["steps"][1] = {"id": "b", "expression": [op_b], "next": {"a": back_edge}}
    statefn.validate_plan(plan)
    assert statefn.run(plan) == {"data": {}}
    assert calls_b == ["called"]


def test_duplicate_ids_are_rejected() -> None:
    plan = two_steps()
    plan["workflow"]["steps"].append({"id": "b", "expression": [lambda s: s]})
    message = rejected(plan)
    assert re.search("duplicate", message, re.IGNORECASE)
    assert "b" in message


def test_generated_id_colliding_with_an_explicit_id_is_a_duplicate() -> None:
    plan = {
        "workflow": {
            "steps": [
                {"expression": [lambda s: s]},
                {"id": "job-1", "expression": [lambda s: s]},
            ]
        }
    }
    message = rejected(plan)
    assert re.search("duplicate", message, re.IGNORECASE)
    assert "job-1" in message


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p["workflow"]["steps"][1].update(next=5), "workflow.steps[1].next"),
        (lambda p: p["workflow"]["steps"][0].update(expression=5), "workflow.steps[0].expression"),
        (lambda p: p["workflow"]["steps"][1].update(id=7), "workflow.steps[1].id"),
        (
            lambda p: p["workflow"]["steps"][0].update(configuration=[1]),
            "workflow.steps[0].configuration",
        ),
        (lambda p: p["workflow"]["steps"][0].update(state=3), "workflow.steps[0].state"),
        (lambda p: p["workflow"].update(steps={"a": 1}), "workflow.steps"),
        (lambda p: p.update(options={"timeout": "soon"}), "options.timeout"),
        (lambda p: p["workflow"].update(credentials=5), "workflow.credentials"),
    ],
    ids=["next", "expression", "id", "configuration", "state", "steps", "timeout", "credentials"],
)
def test_wrong_type_is_rejected_with_the_path_of_the_field(
    mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    plan = two_steps()
    mutate(plan)
    assert path in rejected(plan)


def step_a(**keys: Any) -> Callable[[dict[str, Any]], None]:
    """A change to the plan that sets ``keys`` on step ``a``."""
    return lambda plan: plan["workflow"]["steps"][0].update(keys)


def workflow_keys(**keys: Any) -> Callable[[dict[str, Any]], None]:
    return lambda plan: plan["workflow"].update(keys)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (workflow_keys(steps=[5, {"id": "b"}]), "workflow.steps[0]"),
        (step_a(next={"b": 5}), "workflow.steps[0].next.b"),
        (step_a(next=["b"]), "workflow.steps[0].next"),
        (step_a(next={"b": {"condition": 5}}), "workflow.steps[0].next.b.condition"),
        (step_a(next={"b": {"condition": "always", "disabled": "y"}}), "next.b.disabled"),
        (step_a(next={"b": {"condition": "always", "label": 5}}), "next.b.label"),
        (step_a(retry="often"), "workflow.steps[0].retry"),
        (step_a(retry={"attempts": "x"}), "workflow.steps[0].retry.attempts"),
        (step_a(adaptors="common"), "workflow.steps[0].adaptors"),
        (step_a(adaptors=[5]), "workflow.steps[0].adaptors[0]"),
        (step_a(adaptor=5), "workflow.steps[0].adaptor"),
        (step_a(name=5), "workflow.steps[0].name"),
        (step_a(linker="x"), "workflow.steps[0].linker"),
        (workflow_keys(globals=5), "workflow.globals"),
        (workflow_keys(start=5), "workflow.start"),
        (lambda p: p.update(options="x"), "options"),
        (lambda p: p.update(options={"concurrency": "x"}), "options.concurrency"),
        (lambda p: p.update(workflow="x"), "workflow"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_wrong_type_anywhere_in_the_plan_names_its_path(
    mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    plan = two_steps()
    mutate(plan)
    assert path in rejected(plan)


@pytest.mark.parametrize(
    "condition",
    ["state['data'] ==", "__import__('os').getcwd()", "open('/etc/passwd')"],
    ids=["syntax", "dunder", "forbidden-builtin"],
)
def test_edge_condition_that_does_not_compile_is_rejected(condition: str) -> None:
    plan = two_steps(next={"b": condition})
    message = rejected(plan)
    assert message.startswith("Failed to compile edge condition a->b (")
    assert message.endswith(")")


def test_edge_condition_in_an_edge_object_is_compiled_too() -> None:
    plan = two_steps(next={"b": {"condition": "state[", "label": "broken"}})
    assert rejected(plan).startswith("Failed to compile edge condition a->b (")


def test_every_bad_edge_condition_is_named_in_one_error() -> None:
    plan = two_steps(next={"b": "state[", "c": "1 +"})
    plan["workflow"]["steps"].append(
        {"id": "c", "expression": "fn(lambda s: s)", "next": {"b": "%"}}
    )
    with pytest.raises(statefn.ValidationError) as caught:
        statefn.validate_plan(plan)
    lines = caught.value.message.split("\n")
    assert [line.split(" (")[0] for line in lines] == [
        "Failed to compile edge condition a->b",
        "Failed to compile edge condition a->c",
        "Failed to compile edge condition c->b",
    ]
    assert [p["path"] for p in caught.value.details["problems"]] == [
        "a.next.b",
        "a.next.c",
        "c.next.b",
    ]


INVALID_PLANS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("unknown-start", lambda p: p.update(options={"start": "nowhere"})),
    ("unknown-target", lambda p: p["workflow"]["steps"][0].update(next={"ghost": False})),
    ("cycle", lambda p: p["workflow"]["steps"][1].update(next="a")),
    ("duplicate", lambda p: p["workflow"]["steps"][1].update(id="a")),
    ("wrong-type", lambda p: p["workflow"]["steps"][1].update(next=5)),
    ("bad-condition", lambda p: p["workflow"]["steps"][0].update(next={"b": "state["})),
]


@pytest.mark.parametrize("mutate", [m for _, m in INVALID_PLANS], ids=[i for i, _ in INVALID_PLANS])
def test_invalid_plan_runs_nothing(mutate: Callable[[dict[str, Any]], None]) -> None:
    calls, op = recorder()
    plan = two_steps()
    plan["workflow"]["steps"][0]["expression"] = [op]
    mutate(plan)
    with pytest.raises(statefn.ValidationError):
        statefn.run(plan)
    assert calls == []


def test_invalid_plan_sends_no_step_event() -> None:
    received: list[str] = []
    plan = two_steps(next="ghost")
    with pytest.raises(statefn.ValidationError):
        statefn.run(plan, on_event=lambda name, payload: received.append(name))
    assert not {"init-start", "job-start", "job-complete", "job-error"} & set(received)


def test_jobs_is_an_alias_of_steps() -> None:
    calls, op = recorder()
    plan = {"workflow": {"jobs": [{"id": "only", "expression": [op]}]}}
    normalised = statefn.validate_plan(plan)
    assert [step["id"] for step in normalised["workflow"]["steps"]] == ["only"]
    assert statefn.run(plan) == {"data": {}}
    assert calls == ["called"]


def test_adaptor_is_an_alias_of_adaptors() -> None:
    plan = {"workflow": {"steps": [{"id": "a", "adaptor": "common", "expression": [lambda s: s]}]}}
    normalised = statefn.validate_plan(plan)
    assert normalised["workflow"]["steps"][0]["adaptors"] == ["common"]


def test_adaptor_alias_is_linked_at_run_time() -> None:
    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "adaptor": "no_such_adaptor_anywhere",
                    "expression": "fn(lambda state: state)",
                }
            ]
        }
    }
    with pytest.raises(statefn.AdaptorImportError) as caught:
        statefn.run(plan)
    assert caught.value.name == "ImportError"
    assert "no_such_adaptor_anywhere" in caught.value.message


def test_missing_ids_are_generated_counting_only_steps_without_id() -> None:
    plan = {
        "workflow": {
            "steps": [
                {"expression": [lambda s: s], "next": "middle"},
                {"id": "middle", "expression": [lambda s: s], "next": {"job-2": True}},
                {"expression": [lambda s: s]},
            ]
        }
    }
    normalised = statefn.validate_plan(plan)
    assert [step["id"] for step in normalised["workflow"]["steps"]] == ["job-1", "middle", "job-2"]
    started: list[str] = []
    statefn.run(
        plan,
        on_event=lambda name, payload: (
            started.append(payload["job_id"]) if name == "job-start" else None
        ),
    )
    assert started == ["job-1", "middle", "job-2"]


def test_validate_plan_returns_the_normalised_plan_without_changing_the_input() -> None:
    plan = {
        "workflow": {
            "jobs": [
                {"adaptor": "common", "expression": "fn(lambda state: state)", "next": "b"},
                {"id": "b", "expression": "fn(lambda state: state)"},
            ]
        }
    }
    before = copy.deepcopy(plan)
    normalised = statefn.validate_plan(plan)
    assert plan == before
    steps = normalised["workflow"]["steps"]
    assert [step["id"] for step in steps] == ["job-1", "b"]
    assert steps[0]["adaptors"] == ["common"]


def test_valid_plan_passes_validation() -> None:
    plan = two_steps(next={"b": {"condition": "state['data'] == {}", "label": "empty"}})
    plan["options"] = {"start": "a", "end": "b", "timeout": 1000}
    normalised = statefn.validate_plan(plan)
    assert [step["id"] for step in normalised["workflow"]["steps"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("step", "workflow.steps[0].expresion: unknown key; did you mean 'expression'?"),
        ("edge", "workflow.steps[0].next.b.conditon: unknown key; did you mean 'condition'?"),
        ("retry", "workflow.steps[0].retry.attempt: unknown key; did you mean 'attempts'?"),
        ("linker", "workflow.steps[0].linker.http.pth: unknown key; did you mean 'path'?"),
        ("workflow", "workflow.stepz: unknown key; did you mean 'steps'?"),
        ("options", "options.timout: unknown key; did you mean 'timeout'?"),
        ("plan", "plan.workflw: unknown key; did you mean 'workflow'?"),
    ],
)
def test_unknown_key_is_rejected_with_its_path_and_the_closest_key(
    where: str, expected: str
) -> None:
    plan = two_steps()
    step = plan["workflow"]["steps"][0]
    typo: dict[str, Callable[[], None]] = {
        "step": lambda: step.update(expresion="fn(lambda state: state)"),
        "edge": lambda: step.update(next={"b": {"conditon": "True"}}),
        "retry": lambda: step.update(retry={"attempt": 2}),
        "linker": lambda: step.update(linker={"http": {"pth": "./http"}}),
        "workflow": lambda: plan["workflow"].update(stepz=[]),
        "options": lambda: plan.update(options={"timout": 100}),
        "plan": lambda: plan.update(workflw={}),
    }
    typo[where]()
    assert rejected(plan) == expected


def test_unknown_key_without_a_close_one_lists_the_known_keys() -> None:
    plan = two_steps()
    plan["options"] = {"colour": "red"}
    assert rejected(plan) == (
        "options.colour: unknown key (known keys: start, end, timeout, concurrency)"
    )


def test_every_unknown_key_is_reported_at_once() -> None:
    plan = two_steps(expresion="x", nxt="b")
    plan["optons"] = {}
    assert rejected(plan).splitlines() == [
        "plan.optons: unknown key; did you mean 'options'?",
        "workflow.steps[0].expresion: unknown key; did you mean 'expression'?",
        "workflow.steps[0].nxt: unknown key; did you mean 'next'?",
    ]


def test_keys_beginning_with_x_dash_are_the_users_own() -> None:
    plan = two_steps(**{"x-owner": "team a", "next": {"b": {"condition": True, "x-note": 1}}})
    plan["x-source"] = "generated"
    plan["workflow"]["x-ui"] = {"layout": "grid"}
    plan["options"] = {"x-priority": 1}
    assert statefn.run(plan, {"data": {"n": 1}}) == {"data": {"n": 1}}


def test_misspelt_steps_key_is_named_not_reported_as_missing_steps() -> None:
    plan = {"workflow": {"stepz": [{"expression": "fn(lambda state: state)"}]}}
    assert rejected(plan) == "workflow.stepz: unknown key; did you mean 'steps'?"


def test_workflow_without_steps_says_they_are_missing() -> None:
    assert rejected({"workflow": {"name": "empty"}}) == (
        "workflow.steps is missing: a workflow needs a list of steps"
    )


def test_edge_to_unknown_step_suggests_the_closest_step() -> None:
    plan = two_steps(next="bb")
    assert rejected(plan) == "Cannot find job: bb (in the next of step a); did you mean 'b'?"


def test_trigger_with_a_state_is_rejected() -> None:
    plan = two_steps()
    plan["workflow"]["steps"][0] = {"id": "a", "state": {"data": {"n": 1}}, "next": "b"}
    assert rejected(plan) == (
        "workflow.steps[0].state: a trigger (a step without expression) takes no state; "
        "give it to the step the trigger leads to, or pass it as the input state"
    )
