"""Conformance with the OpenFn runtime's own test suite.

Each test translates one test of OpenFn's ``packages/runtime/test/`` (repository
``OpenFn/kit``): the comment above it names the source file and the test's title, then
``same`` (statefn behaves as OpenFn does; JavaScript idioms become Python ones) or
``differs: <row>`` (statefn differs on purpose; the row of "Differences from OpenFn" in
``docs/runtime.md`` says how and why, and the test asserts statefn's behaviour).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import statefn
from statefn._errors import AdaptorImportError
from statefn._linker import Linker, purge
from statefn._state import assemble, copy_state

if TYPE_CHECKING:
    from conftest import EventLog, RecordList

State = dict[str, Any]
Log = tuple[logging.Logger, "RecordList"]

FIXTURES = Path(__file__).parent / "fixtures" / "adaptors"
LANGUAGE_TEST = FIXTURES / "language_test"
X_ADAPTOR = {"modules": {"x": {"path": str(LANGUAGE_TEST)}}}


@pytest.fixture(autouse=True)
def fresh_linker_cache() -> Iterator[None]:
    """Adaptors with module-level state start fresh in every test."""
    purge()
    yield
    purge()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """OpenFn's test/__repo__: one adaptor in two versions (``greet`` stands for
    ``ultimate-answer``: 1.0.0 greets "from v1", 2.0.0 "from v2")."""
    repo = tmp_path / "repo"
    for version, package in (("1.0.0", "greet_v1"), ("2.0.0", "greet_v2")):
        entry = repo / f"greet@{version}"
        shutil.copytree(FIXTURES / package, entry / package)
        manifest = {"name": "greet", "version": version, "package": package, "source": "test"}
        (entry / "statefn-adaptor.json").write_text(json.dumps(manifest))
    return repo


def plan_of(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {"workflow": {"steps": list(steps)}}
    if options:
        plan["options"] = options
    return plan


def setting(**values: Any) -> str:
    """Job source of one operation that sets ``values`` in ``state["data"]``."""
    return f"fn(lambda s: {{**s, 'data': {{**s['data'], **{values!r}}}}})"


def adding(key: str = "x", amount: int = 1) -> str:
    """Job source of one operation that adds ``amount`` to ``state["data"][key]``."""
    return f"@fn\ndef add(s):\n    s['data'][{key!r}] += {amount}\n    return s\n"


IDENTITY = "fn(lambda s: s)"


def crash_of(plan: Any, state: Any = None, **options: Any) -> statefn.StatefnError:
    with pytest.raises(statefn.StatefnError) as caught:
        statefn.run(plan, state, **options)
    return caught.value


# -- runtime.test.ts -----------------------------------------------------------------------


# runtime.test.ts: "run simple expression" -- same
def test_runtime_run_simple_expression() -> None:
    result = statefn.run(setting(done=True))
    assert result["data"]["done"] is True


# runtime.test.ts: "run a simple workflow" -- same
def test_runtime_run_a_simple_workflow() -> None:
    result = statefn.run(plan_of({"expression": "fn(lambda s: {'data': {'done': True}})"}))
    assert result["data"]["done"] is True


# runtime.test.ts: "run a workflow with global config" -- same
def test_runtime_run_a_workflow_with_global_config() -> None:
    plan = plan_of({"expression": "fn(lambda s: s['configuration'])"})
    plan["workflow"]["credentials"] = {"collection_token": "j.w.t"}
    assert statefn.run(plan) == {"collection_token": "j.w.t"}


# runtime.test.ts: "run a workflow and notify major events" -- same
def test_runtime_run_a_workflow_and_notify_major_events(events: EventLog) -> None:
    statefn.run(plan_of({"expression": IDENTITY}), {}, on_event=events)
    for name in ("init-start", "init-complete", "job-start", "job-complete"):
        assert len(events.of(name)) == 1


# runtime.test.ts: "notify job error even after fail" -- same
def test_runtime_notify_job_error_even_after_fail(events: EventLog) -> None:
    plan = plan_of({"id": "a", "expression": "fn(lambda s: s.get('err')['z'])"})
    statefn.run(plan, {}, on_event=events)
    [payload] = events.of("job-error")
    assert payload["job_id"] == "a"
    assert payload["duration_ms"] >= 0
    assert payload["error"]["name"] == "RuntimeError"
    assert payload["error"]["subtype"] == "TypeError"
    assert "'NoneType' object is not subscriptable" in payload["error"]["message"]


# runtime.test.ts: "notify job error even after crash" -- differs: Python exceptions
def test_runtime_notify_job_error_even_after_crash(events: EventLog) -> None:
    plan = plan_of({"id": "a", "expression": "fn(lambda _: s)"})
    with pytest.raises(statefn.RuntimeCrash):
        statefn.run(plan, {}, on_event=events)
    [payload] = events.of("job-error")
    assert payload["job_id"] == "a"
    assert payload["duration_ms"] >= 0
    assert payload["error"]["name"] == "RuntimeCrash"
    assert payload["error"]["subtype"] == "NameError"
    assert payload["error"]["message"] == "NameError: name 's' is not defined"


# runtime.test.ts: "resolve a credential" -- same
def test_runtime_resolve_a_credential() -> None:
    plan = plan_of({"expression": IDENTITY, "configuration": "ccc"})

    async def resolve(credential_id: str) -> State:
        return {"password": "password1"}

    result = statefn.run(plan, {}, state_props_to_remove=[], resolve_credential=resolve)
    assert result["configuration"] == {"password": "password1"}


# runtime.test.ts: "resolve initial state" -- same
def test_runtime_resolve_initial_state() -> None:
    plan = plan_of({"expression": IDENTITY, "state": "abc"})

    async def resolve(state_id: str) -> State:
        return {"data": {"foo": "bar"}}

    assert statefn.run(plan, {}, resolve_state=resolve)["data"] == {"foo": "bar"}


# runtime.test.ts: "run a workflow with two jobs and call callbacks" -- same
def test_runtime_run_a_workflow_with_two_jobs_and_call_callbacks(events: EventLog) -> None:
    plan = plan_of(
        {"id": "a", "expression": IDENTITY, "next": {"b": True}},
        {"id": "b", "expression": IDENTITY},
    )
    statefn.run(plan, {}, on_event=events)
    for name in ("init-start", "init-complete", "job-start", "job-complete"):
        assert len(events.of(name)) == 2


def _branching(leaf_next: str | None = None) -> dict[str, Any]:
    count = "@fn\ndef count(s):\n    s['data']['count'] += 1\n    s['data'][{0!r}] = True\n    return s\n"
    b: dict[str, Any] = {"id": "b", "expression": count.format("b")}
    c: dict[str, Any] = {"id": "c", "expression": count.format("c")}
    steps = [{"expression": count.format("a"), "next": {"b": True, "c": True}}, b, c]
    if leaf_next:
        b["next"] = c["next"] = {leaf_next: True}
        steps.append({"id": leaf_next, "expression": IDENTITY})
    return plan_of(*steps)


# runtime.test.ts: "run a workflow with state and parallel branching" -- same
def test_runtime_run_a_workflow_with_state_and_parallel_branching() -> None:
    assert statefn.run(_branching(), {"data": {"count": 0}}) == {
        "b": {"data": {"count": 2, "a": True, "b": True}},
        "c": {"data": {"count": 2, "a": True, "c": True}},
    }


# runtime.test.ts: "run a workflow with a leaf step called multiple times" -- same
def test_runtime_run_a_workflow_with_a_leaf_step_called_multiple_times() -> None:
    assert statefn.run(_branching("z"), {"data": {"count": 0}}) == {
        "z": {"data": {"count": 2, "a": True, "b": True}},
        "z-1": {"data": {"count": 2, "a": True, "c": True}},
    }


# runtime.test.ts: "run a workflow with state and conditional branching" -- same
def test_runtime_run_a_workflow_with_state_and_conditional_branching() -> None:
    plan = plan_of(
        {
            "expression": setting(a=True),
            "next": {
                "b": {"condition": "state['data']['count'] > 0"},
                "c": {"condition": "state['data']['count'] == 0"},
            },
        },
        {"id": "b", "expression": setting(b=True)},
        {"id": "c", "expression": setting(c=True)},
    )
    first = statefn.run(plan, {"data": {"count": 10}})
    assert first["data"] == {"count": 10, "a": True, "b": True}
    second = statefn.run(plan, {"data": {"count": 0}})
    assert second["data"] == {"count": 0, "a": True, "c": True}


def _abc(expressions: tuple[str, str, str], **options: Any) -> dict[str, Any]:
    a, b, c = expressions
    return plan_of(
        {"id": "a", "expression": a, "next": {"b": True}},
        {"id": "b", "expression": b, "next": {"c": True}},
        {"id": "c", "expression": c},
        **options,
    )


# runtime.test.ts: "run a workflow with initial state (data key) and optional start" -- same
def test_runtime_run_a_workflow_with_initial_state_and_optional_start() -> None:
    plan = _abc((adding("count"),) * 3, start="b")
    assert statefn.run(plan, {"data": {"count": 10}})["data"]["count"] == 12


# runtime.test.ts: "run a workflow with an end" -- same
def test_runtime_run_a_workflow_with_an_end() -> None:
    plan = _abc((setting(a=1), setting(b=1), setting(c=1)), end="b")
    assert statefn.run(plan, {}) == {"data": {"a": 1, "b": 1}}


# runtime.test.ts: "run a workflow with a start and end" -- same
def test_runtime_run_a_workflow_with_a_start_and_end() -> None:
    plan = _abc((setting(a=1), setting(b=1), setting(c=1)), start="b", end="b")
    assert statefn.run(plan, {}) == {"data": {"b": 1}}


# runtime.test.ts: "run a workflow with a trigger node" -- same
def test_runtime_run_a_workflow_with_a_trigger_node() -> None:
    plan = plan_of(
        {"next": {"b": {"condition": "state['data']['age'] > 18 "}}},
        {"id": "b", "expression": setting(done=True)},
    )
    assert statefn.run(plan, {"data": {"age": 28}})["data"]["done"] is True


# runtime.test.ts: "prefer initial state to inline state" -- same
def test_runtime_prefer_initial_state_to_inline_state() -> None:
    plan = plan_of({"state": {"data": {"x": 20, "y": 20}}, "expression": IDENTITY})
    result = statefn.run(plan, {"data": {"x": 40}})
    assert result["data"] == {"x": 40, "y": 20}


# runtime.test.ts: "Allow a job to return undefined" -- same
def test_runtime_allow_a_job_to_return_undefined() -> None:
    assert statefn.run(plan_of({"expression": "fn(lambda s: None)"})) is None


# runtime.test.ts: "log errors, write to state, and continue" -- differs: error positions; log
# lines
def test_runtime_log_errors_write_to_state_and_continue(runtime_log: Log) -> None:
    logger, records = runtime_log
    plan = plan_of(
        {"id": "a", "expression": "@fn\ndef f(s):\n    raise Exception('test')\n", "next": "b"},
        {"id": "b", "expression": "fn(lambda s: {**s, 'x': 1})"},
    )
    result = statefn.run(plan, {}, logger=logger)
    assert result["x"] == 1
    assert result["errors"]["a"] == {
        "source": "runtime",
        "name": "JobError",
        "severity": "fail",
        "message": "test",
        "pos": {"line": 3, "column": 5, "src": "    raise Exception('test')"},
    }
    assert any(m.startswith("Step a failed at line 3: JobError: test") for m in records.messages())


# runtime.test.ts: "log job code to the job logger" -- same
def test_runtime_log_job_code_to_the_job_logger(job_log: Log) -> None:
    logger, records = job_log
    plan = plan_of(
        {"id": "a", "expression": "@fn\ndef f(s):\n    console.log('hi')\n    return s\n"}
    )
    statefn.run(plan, {}, job_logger=logger)
    [record] = records.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == "hi"


# runtime.test.ts: "log and serialize an error to the job logger" -- differs: job log lines are
# text
def test_runtime_log_and_serialize_an_error_to_the_job_logger(job_log: Log) -> None:
    logger, records = job_log
    source = "@fn\ndef f(s):\n    console.log(Exception('hi'))\n    return s\n"
    statefn.run(plan_of({"id": "a", "expression": source}), {}, job_logger=logger)
    [record] = records.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == "hi"
    assert "Traceback" not in record.getMessage()


# runtime.test.ts: "error reports can be overwritten" -- same
def test_runtime_error_reports_can_be_overwritten() -> None:
    plan = plan_of(
        {"id": "a", "expression": "@fn\ndef f(s):\n    raise Exception('test')\n", "next": "b"},
        {"id": "b", "expression": "fn(lambda s: {'errors': 22})"},
    )
    assert statefn.run(plan, {})["errors"] == 22


# runtime.test.ts: "stuff written to state before an error is preserved" -- same
def test_runtime_stuff_written_to_state_before_an_error_is_preserved() -> None:
    source = "@fn\ndef f(s):\n    s['x'] = 1\n    raise Exception('test')\n"
    plan = plan_of({"id": "a", "state": {"data": {"x": 0}}, "expression": source})
    assert statefn.run(plan, {})["x"] == 1


# runtime.test.ts: "data can be an array (expression)" -- same
def test_runtime_data_can_be_an_array_expression() -> None:
    assert statefn.run("fn(lambda s: {'data': [1, 2, 3]})", {})["data"] == [1, 2, 3]


# runtime.test.ts: "data can be an array (workflow)" -- same
def test_runtime_data_can_be_an_array_workflow() -> None:
    plan = plan_of(
        {"id": "a", "expression": "fn(lambda s: {'data': [1, 2, 3]})", "next": "b"},
        {"id": "b", "expression": IDENTITY},
    )
    assert statefn.run(plan, {})["data"] == [1, 2, 3]


# runtime.test.ts: "import from a module" -- same
def test_runtime_import_from_a_module() -> None:
    source = "from x import x\nfn(lambda s: {'data': x})\n"
    assert statefn.run(source, {}, linker=X_ADAPTOR)["data"] == "test"


# runtime.test.ts: "inject globals" -- same
def test_runtime_inject_globals() -> None:
    result = statefn.run("fn(lambda s: {**s, 'data': {'x': x}})", {}, globals={"x": 90210})
    assert result["data"]["x"] == 90210


# runtime.test.ts: "injected globals can't override special functions" -- same (issue 11,
# item 5: refused with an InputError naming the clash)
def test_runtime_injected_globals_cant_override_special_functions() -> None:
    def panic(*args: Any) -> None:
        raise Exception("illegal override")

    clashing = {"console": panic, "print": panic, "int": panic, "float": panic, "len": panic}
    error = crash_of("fn(lambda s: s)", {}, globals=clashing)
    assert error.name == "InputError"
    assert error.details == {"option": "globals", "names": sorted(clashing)}


# runtime.test.ts: "run from an adaptor" -- same
def test_runtime_run_from_an_adaptor() -> None:
    result = statefn.run("from x import call\ncall(lambda s: 22)\n", {}, linker=X_ADAPTOR)
    assert result == {"data": 22}


# runtime.test.ts: "run a workflow using the repo and load the default version" -- same
def test_runtime_run_a_workflow_using_the_repo_and_load_the_default_version(repo: Path) -> None:
    source = "from greet import hello\nfn(lambda s: {'data': hello('x')})\n"
    result = statefn.run(plan_of({"id": "a", "expression": source}), {}, linker={"repo": repo})
    assert result == {"data": "hello x from v2"}


# runtime.test.ts: "run a workflow using the repo using a specific version" -- same
def test_runtime_run_a_workflow_using_the_repo_using_a_specific_version(repo: Path) -> None:
    source = "from greet import hello\nfn(lambda s: {'data': hello('x')})\n"
    linker = {"repo": repo, "modules": {"greet": {"version": "1.0.0"}}}
    result = statefn.run(plan_of({"id": "a", "expression": source}), {}, linker=linker)
    assert result == {"data": "hello x from v1"}


# runtime.test.ts: "run a workflow using the repo with multiple versions of the same adaptor"
# -- same (issue 11, item 1)
def test_runtime_run_a_workflow_using_the_repo_with_multiple_versions(repo: Path) -> None:
    source = (
        "import greet\nfn(lambda s: {{**s, 'data': {{**s['data'], {0!r}: greet.hello('x')}}}})\n"
    )
    plan = plan_of(
        {"id": "a", "expression": source.format("a"), "adaptors": ["greet@1.0.0"], "next": "b"},
        {"id": "b", "expression": source.format("b"), "adaptors": ["greet@2.0.0"]},
    )
    assert statefn.run(plan, {}, linker={"repo": repo}) == {
        "data": {"a": "hello x from v1", "b": "hello x from v2"}
    }


# runtime.test.ts: "run from an adaptor with error" -- same
def test_runtime_run_from_an_adaptor_with_error() -> None:
    result = statefn.run("from x import call\ncall('22')\n", {}, linker=X_ADAPTOR)
    assert result["errors"]["job-1"]["name"] == "AdaptorError"


FAIL_ON_ERR = "@fn\ndef f(s):\n    if s.get('err'):\n        raise Exception('e')\n    return s\n"


# runtime.test.ts: "run a workflow with special on_job_success condition" -- same
def test_runtime_run_a_workflow_with_special_on_job_success_condition() -> None:
    plan = plan_of(
        {"expression": FAIL_ON_ERR, "next": {"b": {"condition": "on_job_success"}}},
        {"id": "b", "expression": setting(b=True)},
    )
    assert statefn.run(plan, {})["data"]["b"] is True
    assert "b" not in statefn.run(plan, {"err": True})["data"]


# runtime.test.ts: "run a workflow with special on_job_failure condition" -- same
def test_runtime_run_a_workflow_with_special_on_job_failure_condition() -> None:
    plan = plan_of(
        {"expression": FAIL_ON_ERR, "next": {"b": {"condition": "on_job_failure"}}},
        {"id": "b", "expression": setting(b=True)},
    )
    assert "b" not in statefn.run(plan, {})["data"]
    assert statefn.run(plan, {"err": True})["data"]["b"] is True


BLAH = "from blah import call\ncall('22')\n"


# runtime.test.ts: "accept a whitelist as a regex" -- differs: error messages; common is always
# linked
def test_runtime_accept_a_whitelist_as_a_regex() -> None:
    error = crash_of(BLAH, {}, linker={"whitelist": [re.compile("^@opennfn"), "common"]})
    assert (error.name, error.severity) == ("ImportError", "crash")
    assert error.message == 'Adaptor "blah" is not on the whitelist'


# runtime.test.ts: "accept a whitelist as a string" -- differs: error messages; common is always
# linked
def test_runtime_accept_a_whitelist_as_a_string() -> None:
    error = crash_of(BLAH, {}, linker={"whitelist": ["/^@opennfn/", "common"]})
    assert (error.name, error.severity) == ("ImportError", "crash")
    assert error.message == 'Adaptor "blah" is not on the whitelist'


LARGE = "fn(lambda s: {**s, 'data': {**s['data'], 'large': 'z' * 1024}})"


# runtime.test.ts: "do not enforce state size limit if state is small enough" -- same
def test_runtime_do_not_enforce_state_size_limit_if_state_is_small_enough() -> None:
    assert len(statefn.run(plan_of({"expression": LARGE}), {})["data"]["large"]) == 1024


# runtime.test.ts: "enforce state size limit from runtime option" -- same
def test_runtime_enforce_state_size_limit_from_runtime_option() -> None:
    error = crash_of(plan_of({"expression": LARGE}), {}, state_limit_mb=1 / 1024)
    assert error.name == "StateTooLargeError"
    assert error.message.startswith("State exceeds the limit")


# -- execute/plan.test.ts ------------------------------------------------------------------


def job(step_id: str = "job1", expression: str = IDENTITY, **keys: Any) -> dict[str, Any]:
    """OpenFn's createJob: a step with an id and an identity expression by default."""
    return {"id": step_id, "expression": expression, **keys}


# execute/plan.test.ts: "throw for a circular job" -- same
def test_plan_throw_for_a_circular_job() -> None:
    plan = plan_of(job(next={"job2": True}), job("job2", next={"job1": True}))
    error = crash_of(plan, {})
    assert re.search("circular dependency", error.message, re.I)


# execute/plan.test.ts: "throw for a plan which references an undefined job" -- same
def test_plan_throw_for_a_plan_which_references_an_undefined_job() -> None:
    error = crash_of(plan_of(job(next={"job3": True})), {})
    assert re.search("cannot find job", error.message, re.I)


# execute/plan.test.ts: "throw for an illegal edge condition" -- same
def test_plan_throw_for_an_illegal_edge_condition() -> None:
    plan = plan_of(job(next={"job2": {"condition": "!!!"}}), job("job2"))
    error = crash_of(plan, {})
    assert re.search("failed to compile edge condition job1->job2", error.message, re.I)


# execute/plan.test.ts: "execute a one-job execution plan with inline state" -- differs: operations
# return state dicts
def test_plan_execute_a_one_job_execution_plan_with_inline_state() -> None:
    plan = plan_of(job(expression="fn(lambda s: s['data']['x'])", state={"data": {"x": 22}}))
    record = statefn.run(plan, {})["errors"]["job1"]
    assert (record["name"], record["subtype"]) == ("RuntimeError", "TypeError")
    assert "returned int, not a state dict" in record["message"]


# execute/plan.test.ts: "execute a one-job execution plan with initial state" -- differs:
# operations return state dicts
def test_plan_execute_a_one_job_execution_plan_with_initial_state() -> None:
    plan = plan_of(job(expression="fn(lambda s: {'data': s['data']['x']})"))
    assert statefn.run(plan, {"data": {"x": 33}}) == {"data": 33}


# execute/plan.test.ts: "lazy load initial state" -- same
def test_plan_lazy_load_initial_state() -> None:
    states = {"s1": {"data": {"result": 42}}}
    assert statefn.run(plan_of(job()), "s1", resolve_state=states.get) == states["s1"]


# execute/plan.test.ts: "execute a one-job execution plan and notify init-start and
# init-complete" -- same
def test_plan_notify_init_start_and_init_complete(events: EventLog) -> None:
    statefn.run(plan_of(job()), {"data": {"x": 33}}, on_event=events)
    assert len(events.of("init-start")) == 1
    [complete] = events.of("init-complete")
    assert complete["duration_ms"] >= 0


DONE = "fn(lambda s: {'data': {'done': True}})"


# execute/plan.test.ts: 'execute a job with a simple truthy "precondition" or "trigger node"'
# -- same
def test_plan_execute_a_job_with_a_simple_truthy_precondition() -> None:
    plan = plan_of(job(next={"job": {"condition": "True"}}), job("job", DONE))
    assert statefn.run(plan, {})["data"]["done"] is True


# execute/plan.test.ts: 'do not execute a job with a simple falsy "precondition" or
# "trigger node"' -- same
def test_plan_do_not_execute_a_job_with_a_simple_falsy_precondition() -> None:
    plan = plan_of(job(next={"job": {"condition": "False"}}), job("job", DONE))
    assert "done" not in statefn.run(plan, {})["data"]


# execute/plan.test.ts: 'execute a job with a valid "precondition" or "trigger node"' -- same
def test_plan_execute_a_job_with_a_valid_precondition() -> None:
    plan = plan_of({"id": "a", "next": {"job": {"condition": "True"}}}, job("job", DONE))
    assert statefn.run(plan, {"data": {"x": 10}})["data"]["done"] is True


# execute/plan.test.ts: "merge initial and inline state" -- same
def test_plan_merge_initial_and_inline_state() -> None:
    plan = plan_of(job(state={"data": {"y": 11}}))
    assert statefn.run(plan, {"data": {"x": 33}})["data"] == {"x": 33, "y": 11}


# execute/plan.test.ts: "Initial state overrides inline data" -- same
def test_plan_initial_state_overrides_inline_data() -> None:
    plan = plan_of(job(state={"data": {"x": 11}}))
    assert statefn.run(plan, {"data": {"x": 34}})["data"]["x"] == 34


# execute/plan.test.ts: "Previous state overrides inline data" -- same
def test_plan_previous_state_overrides_inline_data() -> None:
    plan = plan_of(
        job(state={"data": {"x": 5}}, next={"job2": True}),
        job("job2", adding(), state={"data": {"x": 88}}),
    )
    assert statefn.run(plan, {})["data"]["x"] == 6


def checking(*conditions: str, then: str = "return s") -> str:
    """Job source of one operation that raises unless every condition holds."""
    checks = "".join(
        f"    if not ({c}):\n        raise Exception('ASSERT FAIL')\n" for c in conditions
    )
    return f"@fn\ndef check(s):\n{checks}    {then}\n"


# execute/plan.test.ts: "steps only receive state from upstream steps" -- same
def test_plan_steps_only_receive_state_from_upstream_steps() -> None:
    one_each = ("s['data']['x'] == 1", "s['data']['y'] == 1")
    plan = plan_of(
        job("start", state={"data": {"x": 1, "y": 1}}, next={"x-a": True, "y-a": True}),
        job("x-a", checking(*one_each) + adding("x"), next={"x-b": True}),
        job("x-b", checking("s['data']['x'] == 2", "s['data']['y'] == 1")),
        job("y-a", checking(*one_each) + adding("y"), next={"y-b": True}),
        job("y-b", checking("s['data']['x'] == 1", "s['data']['y'] == 2")),
    )
    assert statefn.run(plan, {}) == {
        "x-b": {"data": {"x": 2, "y": 1}},
        "y-b": {"data": {"x": 1, "y": 2}},
    }


# execute/plan.test.ts: "all state is passed through successive jobs" -- same
def test_plan_all_state_is_passed_through_successive_jobs() -> None:
    first = "fn(lambda s: {'data': {}, 'references': [], 'x': 22, 'y': 33})"
    plan = plan_of(
        job(expression=first, next={"job2": True}),
        job("job2", checking("s['x']", "s['y']", "'references' in s")),
    )
    assert statefn.run(plan, {}) == {"data": {}, "references": [], "x": 22, "y": 33}


def _diamond(x_expression: str = IDENTITY, *after_x: dict[str, Any]) -> dict[str, Any]:
    return plan_of(
        job("start", next={"a": True, "b": True}),
        job("a", "fn(lambda s: {**s, 'a': True})", next={"x": True}),
        job("b", "fn(lambda s: {**s, 'b': True})", next={"x": True}),
        job("x", x_expression, **({"next": {"y": True}} if after_x else {})),
        *after_x,
    )


# execute/plan.test.ts: "execute the same step twice" -- same
def test_plan_execute_the_same_step_twice(events: EventLog) -> None:
    statefn.run(_diamond(), {}, on_event=events)
    assert [p["job_id"] for p in events.of("job-start")].count("x") == 2


# execute/plan.test.ts: "A step executing twice should have two different inputs" -- same
def test_plan_a_step_executing_twice_should_have_two_different_inputs() -> None:
    x = checking("not (s.get('a') and s.get('b'))")
    result = statefn.run(_diamond(x), {})
    assert set(result) == {"x", "x-1"}
    assert all("errors" not in state for state in result.values())


KEYS = "fn(lambda s: {'keys': sorted(s)})"


# execute/plan.test.ts: "Return multiple results for leaf step that executes multiple times"
# -- same
def test_plan_return_multiple_results_for_leaf_step_that_executes_multiple_times() -> None:
    assert statefn.run(_diamond(KEYS), {}) == {
        "x": {"keys": ["a", "configuration", "data"]},
        "x-1": {"keys": ["b", "configuration", "data"]},
    }


# execute/plan.test.ts: "Downstream nodes get executed multiple times" -- same
def test_plan_downstream_nodes_get_executed_multiple_times(events: EventLog) -> None:
    plan = _diamond("fn(lambda s: {**s, 'x': True})", job("y", KEYS))
    result = statefn.run(plan, {}, on_event=events)
    assert [p["job_id"] for p in events.of("job-start")].count("y") == 2
    assert result == {
        "y": {"keys": ["a", "configuration", "data", "x"]},
        "y-1": {"keys": ["b", "configuration", "data", "x"]},
    }


# execute/plan.test.ts: "execute edge based on state in the condition" -- same
def test_plan_execute_edge_based_on_state_in_the_condition() -> None:
    plan = plan_of(
        job(
            expression=setting(x=10),
            state={},
            next={"job2": {"condition": "state['data']['x'] == 10"}},
        ),
        job("job2", "fn(lambda s: {'data': {'y': 20}})"),
    )
    assert statefn.run(plan, {})["data"]["y"] == 20


# execute/plan.test.ts: "skip edge based on state in the condition " -- same
def test_plan_skip_edge_based_on_state_in_the_condition() -> None:
    plan = plan_of(
        job(expression=setting(x=10), state={}, next={"job2": {"condition": "False"}}),
        job("job2", "fn(lambda s: {'y': 20})"),
    )
    assert statefn.run(plan, {})["data"]["x"] == 10


# execute/plan.test.ts: "do not traverse a disabled edge" -- same
def test_plan_do_not_traverse_a_disabled_edge() -> None:
    plan = plan_of(
        job(expression=setting(x=10), next={"job2": {"disabled": True, "condition": "True"}}),
        job("job2", "fn(lambda s: {'data': {'x': 20}})"),
    )
    assert statefn.run(plan, {})["data"]["x"] == 10


# execute/plan.test.ts: "execute a two-job execution plan" -- same
def test_plan_execute_a_two_job_execution_plan() -> None:
    plan = plan_of(job(expression=adding(), next={"job2": True}), job("job2", adding()))
    assert statefn.run(plan, {"data": {"x": 0}})["data"]["x"] == 2


# execute/plan.test.ts: "only execute one job in a two-job execution plan" -- same
def test_plan_only_execute_one_job_in_a_two_job_execution_plan() -> None:
    plan = plan_of(job(expression=adding(), next={"job2": False}), job("job2", adding()))
    assert statefn.run(plan, {"data": {"x": 0}})["data"]["x"] == 1


def _result_of(value: int) -> str:
    return f"fn(lambda s: {{'data': {{'result': {value}}}}})"


# execute/plan.test.ts: "execute a two-job execution plan with an option start" -- same
def test_plan_execute_a_two_job_execution_plan_with_an_option_start() -> None:
    plan = plan_of(
        job(expression=_result_of(11)),
        job("job2", _result_of(1), next={"job1": True}),
        start="job2",
    )
    assert statefn.run(plan, {})["data"]["result"] == 11


# execute/plan.test.ts: "execute a two-job execution plan with a custom start" -- same
def test_plan_execute_a_two_job_execution_plan_with_a_custom_start() -> None:
    plan = plan_of(job(expression=_result_of(11)), job("job2", _result_of(1), next={"job1": True}))
    plan["workflow"]["start"] = "job2"
    assert statefn.run(plan, {})["data"]["result"] == 11


# execute/plan.test.ts: "Return when there are no more edges" -- same
def test_plan_return_when_there_are_no_more_edges() -> None:
    plan = plan_of(job(expression=adding()), job("job2", adding()), start="job1")
    assert statefn.run(plan, {"data": {"x": 0}})["data"]["x"] == 1


# execute/plan.test.ts: "execute a 5 job execution plan" -- same
def test_plan_execute_a_5_job_execution_plan() -> None:
    steps = [job(str(i), adding(), next={str(i + 1): True} if i < 5 else None) for i in range(1, 6)]
    assert statefn.run(plan_of(*steps, start="1"), {"data": {"x": 0}})["data"]["x"] == 5


# execute/plan.test.ts: 'execute multiple steps in "parallel"' -- same
def test_plan_execute_multiple_steps_in_parallel() -> None:
    plan = plan_of(
        job("start", next={"a": True, "b": True, "c": True}),
        *(job(step_id, adding()) for step_id in "abc"),
        start="start",
    )
    assert statefn.run(plan, {"data": {"x": 0}}) == {
        step_id: {"data": {"x": 1}} for step_id in "abc"
    }


# execute/plan.test.ts: "ignore leaf nodes with no result" -- same (issue 11, item 2)
def test_plan_ignore_leaf_nodes_with_no_result() -> None:
    plan = plan_of(
        job("start", next={"a": True, "b": True, "c": True}),
        job("a", adding()),
        job("b", "fn(lambda s: None)"),
        job("c", "fn(lambda s: None)"),
        start="start",
    )
    assert statefn.run(plan, {"data": {"x": 0}}) == {"data": {"x": 1}}


def _marks(key: str, unless: str) -> str:
    return checking(
        f"not s['data'].get({unless!r})", then=f"s['data'][{key!r}] = True\n    return s"
    )


# execute/plan.test.ts: 'isolate state in "parallel" execution' -- same
def test_plan_isolate_state_in_parallel_execution() -> None:
    plan = plan_of(
        job("start", next={"b": True, "c": True}),
        job("b", _marks("b", "c")),
        job("c", _marks("c", "b")),
        start="start",
    )
    result = statefn.run(plan, {"data": {"x": 0}})
    assert all("errors" not in state for state in result.values())


# execute/plan.test.ts: 'isolate state in "parallel" execution with deeper trees' -- same
def test_plan_isolate_state_in_parallel_execution_with_deeper_trees() -> None:
    plan = plan_of(
        job("start", next={"c": True, "b": True}),
        job("c2", _marks("c", "b")),
        job("b", _marks("b", "c"), next={"b2": True}),
        job("c", _marks("c", "b"), next={"c2": True}),
        job("b2", _marks("b", "c")),
        start="start",
    )
    result = statefn.run(plan, {"data": {"x": 0}})
    assert set(result) == {"b2", "c2"}
    assert all("errors" not in state for state in result.values())


# execute/plan.test.ts: '"parallel" execution with multiple leaves should write multiple
# results to state' -- same
def test_plan_parallel_execution_with_multiple_leaves_writes_multiple_results() -> None:
    plan = plan_of(
        job("start", next={"job-b": True, "job-c": True}),
        job("job-b", setting(b=True)),
        job("job-c", setting(c=True)),
    )
    assert statefn.run(plan, {}) == {
        "job-b": {"data": {"b": True}},
        "job-c": {"data": {"c": True}},
    }


RAISE_E = "@fn\ndef f(s):\n    raise Exception('e')\n"


# execute/plan.test.ts: "return an error in state" -- same
def test_plan_return_an_error_in_state() -> None:
    result = statefn.run(plan_of(job("a", RAISE_E, state={})), {})
    assert result["errors"]["a"]["message"] == "e"


# execute/plan.test.ts: "handle non-standard error objects" -- differs: only exceptions are raised;
# error positions
def test_plan_handle_non_standard_error_objects() -> None:
    source = "@fn\ndef f(s):\n    raise Exception('wibble')\n"
    record = statefn.run(plan_of(job("a", source, state={})), {})["errors"]["a"]
    assert {key: record[key] for key in ("source", "name", "severity", "message")} == {
        "source": "runtime",
        "name": "JobError",
        "severity": "fail",
        "message": "wibble",
    }
    assert record["pos"]["line"] == 3


# execute/plan.test.ts: "keep executing after an error" -- same
def test_plan_keep_executing_after_an_error() -> None:
    plan = plan_of(
        job("a", RAISE_E + "fn(lambda s: {**s, 'x': 20})\n", state={}, next={"b": True}),
        job("b", "fn(lambda s: {'y': 20})"),
    )
    result = statefn.run(plan, {})
    assert result["y"] == 20
    assert "x" not in result


# execute/plan.test.ts: "simple on-error handler" -- same
def test_plan_simple_on_error_handler() -> None:
    plan = plan_of(
        job(
            expression=RAISE_E,
            state={},
            next={"job2": {"condition": "'errors' in state"}, "job3": "'errors' not in state"},
        ),
        job("job2", "fn(lambda s: {'y': 20})"),
        job("job3", "fn(lambda s: {'x': 20})"),
    )
    assert statefn.run(plan, {}) == {"y": 20}


# execute/plan.test.ts: "log appropriately on error" -- differs: log lines
def test_plan_log_appropriately_on_error(runtime_log: Log) -> None:
    logger, records = runtime_log
    source = "@fn\ndef f(s):\n    raise Exception('eee')\n"
    statefn.run(plan_of(job(expression=source, state={})), {}, logger=logger)
    [line] = records.messages(logging.ERROR)
    assert line.startswith("Step job1 failed at line 3: JobError: eee")


# execute/plan.test.ts: "steps do not share a local scope" -- differs: Python exceptions
def test_plan_steps_do_not_share_a_local_scope() -> None:
    plan = plan_of(
        job(expression="x = 10\nfn(lambda s: s)\n", next={"b": True}),
        job("b", "fn(lambda s: {**s, 'data': {'x': x}})"),
    )
    error = crash_of(plan, {})
    assert (error.name, error.message) == ("RuntimeCrash", "NameError: name 'x' is not defined")


# execute/plan.test.ts: "steps do not share a global scope" -- differs: Python exceptions
def test_plan_steps_do_not_share_a_global_scope() -> None:
    plan = plan_of(
        job(
            expression="@fn\ndef f(s):\n    global x\n    x = 10\n    return s\n", next={"b": True}
        ),
        job("b", "fn(lambda s: {**s, 'data': {'x': x}})"),
    )
    error = crash_of(plan, {})
    assert (error.name, error.message) == ("RuntimeCrash", "NameError: name 'x' is not defined")


# execute/plan.test.ts: "steps do not share a globalThis object" -- differs: compiled before the
# run
def test_plan_steps_do_not_share_a_globalthis_object() -> None:
    plan = plan_of(job(expression="fn(lambda s: globals().update(x=10) or s)"))
    error = crash_of(plan, {})
    assert error.name == "CompileError"
    assert error.message == "line 1, column 14: 'globals' is not allowed in job code"


CIRCULAR = "@fn\ndef f(s):\n    a = {}\n    a['b'] = {'a': a}\n    s['data'] = a\n    return s\n"


# execute/plan.test.ts: "steps can write circular references to state without blowing up
# downstream" -- differs: state is JSON
def test_plan_steps_can_write_circular_references_to_state() -> None:
    plan = plan_of(job(expression=CIRCULAR, next={"b": True}), job("b", IDENTITY))
    result = statefn.run(plan, {})
    json.dumps(result)
    record = result["errors"]["job1"]
    assert (record["name"], record["subtype"]) == ("RuntimeError", "TypeError")
    assert "state.data.b.a" in record["message"]
    assert result["data"] == {}


# execute/plan.test.ts: "steps cannot pass circular references to each other" -- differs: state is
# JSON
def test_plan_steps_cannot_pass_circular_references_to_each_other() -> None:
    plan = plan_of(
        job(expression=CIRCULAR.replace("s['data'] = a", "s['data']['ref'] = a"), next="b"),
        job("b", "fn(lambda s: {**s, 'answer': s.get('data', {}).get('ref')})"),
    )
    result = statefn.run(plan, {})
    json.dumps(result)
    assert result["answer"] is None
    assert "state.data.ref.b.a" in result["errors"]["job1"]["message"]


FUNCTION_IN_DATA = "fn(lambda s: {**s, 'data': {'x': lambda: 22}})"


# execute/plan.test.ts: "steps can write functions to state without blowing up downstream" --
# differs: state is JSON
def test_plan_steps_can_write_functions_to_state() -> None:
    plan = plan_of(job(expression=FUNCTION_IN_DATA, next={"b": True}), job("b", IDENTITY))
    result = statefn.run(plan, {})
    json.dumps(result)
    assert result["data"] == {}
    assert "state.data.x" in result["errors"]["job1"]["message"]


# execute/plan.test.ts: "steps cannot pass functions to each other" -- differs: state is JSON
def test_plan_steps_cannot_pass_functions_to_each_other() -> None:
    plan = plan_of(
        job(expression=FUNCTION_IN_DATA, next={"b": True}),
        job("b", "fn(lambda s: s['data']['x']() and s)"),
    )
    result = statefn.run(plan, {})
    assert result["errors"]["job1"]["subtype"] == "TypeError"
    assert result["errors"]["b"]["message"] == "KeyError: 'x'"


# execute/plan.test.ts: "Plans log step ids for each job start and end" -- differs: log lines
def test_plan_plans_log_step_ids_for_each_job_start_and_end(runtime_log: Log) -> None:
    logger, records = runtime_log
    statefn.run(plan_of(job("a")), {}, logger=logger)
    messages = records.messages()
    assert "Starting step a" in messages
    assert any(re.fullmatch(r"Completed step a in [\d.]+ms", m) for m in messages)


# execute/plan.test.ts: "Plans log step names for each job start and end" -- differs: log lines
def test_plan_plans_log_step_names_for_each_job_start_and_end(runtime_log: Log) -> None:
    logger, records = runtime_log
    statefn.run(plan_of(job("a", name="do-the-thing")), {}, logger=logger)
    messages = records.messages()
    assert "Starting step do-the-thing (a)" in messages
    assert any(re.fullmatch(r"Completed step do-the-thing \(a\) in [\d.]+ms", m) for m in messages)


GLOBALS = "x = 10\n\ndef set_x(value):\n    global x\n    x = value\n\ndef get_x():\n    return x\n"
SET_AND_GET = "@fn\ndef a(s):\n    set_x(20)\n    return {'data': {'x1': get_x()}}\n"
GET_AGAIN = "fn(lambda s: {'data': {**s['data'], 'x2': get_x()}})\n"


# execute/plan.test.ts: "global functions should be scoped per step or job code" -- differs:
# workflow.globals runs once per run
def test_plan_global_functions_should_be_scoped_per_step() -> None:
    plan = plan_of(
        job("a", SET_AND_GET, name="do-a", next={"b": True}), job("b", GET_AGAIN, name="do-b")
    )
    plan["workflow"]["globals"] = GLOBALS
    assert statefn.run(plan, {})["data"] == {"x1": 20, "x2": 20}


# execute/plan.test.ts: "global function scope should be shared between operations" -- same
def test_plan_global_function_scope_should_be_shared_between_operations() -> None:
    plan = plan_of(job("a", SET_AND_GET + GET_AGAIN, name="do-a"))
    plan["workflow"]["globals"] = GLOBALS
    assert statefn.run(plan, {})["data"] == {"x1": 20, "x2": 20}


# -- execute/step.test.ts ------------------------------------------------------------------


def identity(state: State) -> State:
    return state


def throw_e(state: State) -> State:
    raise Exception("e")


def step_plan(step: dict[str, Any], *targets: str) -> dict[str, Any]:
    """A plan with ``step`` first and an identity step for each id its edges name."""
    return plan_of(step, *({"id": target, "expression": [identity]} for target in targets))


# execute/step.test.ts: "resolve and return next for a simple step" -- same
def test_step_resolve_and_return_next_for_a_simple_step(events: EventLog) -> None:
    plan = step_plan(
        {"id": "j", "expression": [identity], "next": {"k": True, "a": False}}, "k", "a"
    )
    statefn.run(plan, {"data": {}, "configuration": {}}, on_event=events)
    [complete, _] = events.of("job-complete")
    assert complete["state"] == {"data": {}}
    assert complete["next"] == ["k"]


# execute/step.test.ts: "resolve and return next for a trigger-style step" -- same
def test_step_resolve_and_return_next_for_a_trigger_style_step(events: EventLog) -> None:
    plan = step_plan({"id": "j", "next": {"k": True, "a": False}}, "k", "a")
    result = statefn.run(plan, {"data": {}, "configuration": {}}, on_event=events)
    assert [p["job_id"] for p in events.of("job-start")] == ["k"]
    assert result == {"data": {}}


# execute/step.test.ts: "resolve and return next for a failed step" -- same
def test_step_resolve_and_return_next_for_a_failed_step(events: EventLog) -> None:
    plan = step_plan(
        {"id": "j", "expression": [throw_e], "next": {"k": True, "a": False}}, "k", "a"
    )
    statefn.run(plan, {"data": {}, "configuration": {}}, on_event=events)
    [failed] = events.of("job-error")
    assert {k: v for k, v in failed["state"].items() if k != "errors"} == {"data": {}}
    assert failed["next"] == ["k"]


# execute/step.test.ts: "notify job-start" -- same
def test_step_notify_job_start(events: EventLog) -> None:
    statefn.run(step_plan({"id": "j", "expression": [identity]}), on_event=events)
    assert events.of("job-start") == [{"job_id": "j"}]


# execute/step.test.ts: "don't notify job-start for trigger-style steps" -- same
def test_step_dont_notify_job_start_for_trigger_style_steps(events: EventLog) -> None:
    statefn.run(step_plan({"id": "j"}), on_event=events)
    assert events.of("job-start") == []


# execute/step.test.ts: "notify job-complete with no next" -- same
def test_step_notify_job_complete_with_no_next(events: EventLog) -> None:
    statefn.run(step_plan({"id": "j", "expression": [identity]}), on_event=events)
    [payload] = events.of("job-complete")
    assert payload["state"] == {"data": {}}
    assert payload["next"] == []
    assert 0 <= payload["duration_ms"] < 100
    assert set(payload["mem"]) >= {"job", "system"}
    assert payload["job_id"] == "j"


# execute/step.test.ts: "notify job-complete with two nexts" -- same
def test_step_notify_job_complete_with_two_nexts(events: EventLog) -> None:
    plan = step_plan(
        {"id": "j", "expression": [identity], "next": {"b": True, "c": True}}, "b", "c"
    )
    statefn.run(plan, on_event=events)
    payload = events.of("job-complete")[0]
    assert (payload["job_id"], payload["next"]) == ("j", ["b", "c"])
    assert 0 <= payload["duration_ms"] < 100


# execute/step.test.ts: "don't notify job-complete for trigger-style steps" -- same
def test_step_dont_notify_job_complete_for_trigger_style_steps(events: EventLog) -> None:
    statefn.run(step_plan({"id": "j"}), on_event=events)
    assert events.of("job-complete") == []


# execute/step.test.ts: "notify job-complete should publish serializable state" -- differs: state
# is JSON
def test_step_notify_job_complete_should_publish_serializable_state(events: EventLog) -> None:
    plan = step_plan({"id": "j", "expression": [lambda s: {"x": asyncio.Event(), "y": 22}]})
    statefn.run(plan, on_event=events)
    [payload] = events.of("job-error")
    json.dumps(payload)
    assert payload["state"] == {"y": 22, "errors": {"j": payload["error"]}}
    assert payload["error"]["message"].startswith("TypeError: state.x is a")


# execute/step.test.ts: "notify job-error for a fail" -- same
def test_step_notify_job_error_for_a_fail(events: EventLog) -> None:
    plan = step_plan({"id": "j", "expression": [throw_e], "next": {"b": True}}, "b")
    statefn.run(plan, on_event=events)
    [payload] = events.of("job-error")
    assert payload["state"]["errors"]["j"] == payload["error"]
    assert (payload["error"]["message"], payload["error"]["name"]) == ("e", "JobError")
    assert payload["error"]["severity"] == "fail"
    assert payload["next"] == ["b"]
    assert 0 <= payload["duration_ms"] < 100
    assert payload["job_id"] == "j"


# execute/step.test.ts: "log duration of execution" -- differs: log lines
def test_step_log_duration_of_execution(runtime_log: Log) -> None:
    logger, records = runtime_log
    statefn.run(step_plan({"id": "y", "expression": [identity]}), logger=logger)
    assert any(re.fullmatch(r"Completed step y in \d\d?(\.\d+)?ms", m) for m in records.messages())


# execute/step.test.ts: "log memory usage" -- differs: log lines
def test_step_log_memory_usage(events: EventLog) -> None:
    statefn.run(step_plan({"id": "z", "expression": [identity]}), on_event=events)
    [payload] = events.of("job-complete")
    assert payload["mem"]["system"] > 0


# execute/step.test.ts: "log memory usage with profiler and peak" -- differs: log lines
def test_step_log_memory_usage_with_profiler_and_peak(events: EventLog) -> None:
    async def wait(state: State) -> State:
        await asyncio.sleep(0.01)
        return state

    statefn.run(step_plan({"id": "z", "expression": [wait]}), on_event=events, profile=True)
    [payload] = events.of("job-complete")
    assert set(payload["mem"]) == {"job", "system", "peak"}


def returns_nothing(state: State) -> None:
    return None


# execute/step.test.ts: "warn if a non-leaf step does not return state" -- same
def test_step_warn_if_a_non_leaf_step_does_not_return_state(runtime_log: Log) -> None:
    logger, records = runtime_log
    plan = step_plan({"id": "k", "expression": [returns_nothing], "next": {"l": True}}, "l")
    statefn.run(plan, logger=logger)
    assert any("did not return a state object" in m for m in records.messages(logging.WARNING))


# execute/step.test.ts: "do not warn if a leaf step does not return state" -- same
def test_step_do_not_warn_if_a_leaf_step_does_not_return_state(runtime_log: Log) -> None:
    logger, records = runtime_log
    statefn.run(step_plan({"id": "k", "expression": [returns_nothing]}), logger=logger)
    assert records.messages(logging.WARNING) == []


# execute/step.test.ts: "do not warn a non-leaf step does not return state and there was an
# error" -- same
def test_step_do_not_warn_a_non_leaf_step_with_an_error(runtime_log: Log) -> None:
    logger, records = runtime_log
    plan = step_plan({"id": "k", "expression": [throw_e], "next": {"l": True}}, "l")
    statefn.run(plan, logger=logger)
    assert [r for r in records.records if r.levelno == logging.WARNING] == []


# execute/step.test.ts: "output state should be serializable" -- differs: state is JSON
def test_step_output_state_should_be_serializable() -> None:
    async def keep(state: State) -> State:
        circular: dict[str, Any] = {}
        circular["self"] = circular
        state["data"] = {"circular": circular, "fn": identity}
        return state

    result = statefn.run(step_plan({"id": "k", "expression": [keep]}))
    json.dumps(result)
    assert "circular reference" in result["errors"]["k"]["message"]
    assert "data" not in result


# execute/step.test.ts: "configuration is removed from the result by default" -- same
def test_step_configuration_is_removed_from_the_result_by_default() -> None:
    result = statefn.run(step_plan({"id": "k", "expression": [identity]}), {"configuration": {}})
    assert result == {"data": {}}


# execute/step.test.ts: "statePropsToRemove removes multiple props from state" -- same
def test_step_state_props_to_remove_removes_multiple_props_from_state() -> None:
    plan = step_plan({"id": "k", "expression": [identity]})
    result = statefn.run(plan, {"x": 1, "y": 1, "z": 1}, state_props_to_remove=["x", "y"])
    assert result == {"data": {}, "z": 1, "configuration": {}}


# execute/step.test.ts: "statePropsToRemove logs to debug when a prop is removed" -- differs: log
# lines
def test_step_state_props_to_remove_logs_to_debug_when_a_prop_is_removed(runtime_log: Log) -> None:
    logger, records = runtime_log
    plan = step_plan({"id": "k", "expression": [identity]})
    result = statefn.run(plan, {"x": 1, "y": 1, "z": 1}, state_props_to_remove=["x"], logger=logger)
    assert result == {"data": {}, "y": 1, "z": 1, "configuration": {}}
    assert not any("Removing keys" in m for m in records.messages())


# execute/step.test.ts: "no props are removed from state if an empty array is passed to
# statePropsToRemove" -- same
def test_step_no_props_are_removed_if_an_empty_list_is_passed() -> None:
    plan = step_plan({"id": "k", "expression": [identity]})
    result = statefn.run(plan, {"x": 1, "configuration": 1}, state_props_to_remove=[])
    assert result == {"x": 1, "configuration": {}, "data": {}}


# execute/step.test.ts: "no props are removed from state if a falsy value is passed to
# statePropsToRemove" -- same (issue 11, item 6: None means the default)
def test_step_none_state_props_to_remove_means_the_default() -> None:
    plan = step_plan({"id": "k", "expression": [identity]})
    result = statefn.run(plan, {"x": 1, "configuration": 1}, state_props_to_remove=None)
    assert result == {"x": 1, "data": {}}


# execute/step.test.ts: "config is removed from the result" -- same
def test_step_config_is_removed_from_the_result() -> None:
    plan = step_plan({"id": "k", "expression": [identity]})
    assert statefn.run(plan, {"configuration": {}}) == {"data": {}}


# execute/step.test.ts: "output state is returned verbatim, apart from config" -- same
def test_step_output_state_is_returned_verbatim_apart_from_config() -> None:
    output = {"data": {}, "references": [], "configuration": {}, "x": True}

    async def replace(state: State) -> State:
        return dict(output)

    result = statefn.run(step_plan({"id": "k", "expression": [replace]}), {})
    assert result == {"data": {}, "references": [], "x": True}


# -- execute/expression.test.ts ------------------------------------------------------------


def set_x(value: int) -> Callable[[State], State]:
    def op(state: State) -> State:
        state["data"]["x"] = value
        return state

    return op


def add_x(amount: int) -> Callable[[State], State]:
    def op(state: State) -> State:
        state["data"]["x"] += amount
        return state

    return op


def times_x(factor: int) -> Callable[[State], State]:
    def op(state: State) -> State:
        state["data"]["x"] *= factor
        return state

    return op


# execute/expression.test.ts: "run a live no-op job with one operation" -- same
def test_expression_run_a_live_no_op_job_with_one_operation() -> None:
    assert statefn.run([identity], {"data": {}, "configuration": {}}) == {"data": {}}


# execute/expression.test.ts: "use global function defined in functions" -- same
def test_expression_use_global_function_defined_in_functions() -> None:
    source = "fn(lambda s: {**s, 'data': {**s['data'], 'pr': prefixer(s['data']['name'])}})"
    plan = plan_of({"expression": source})
    plan["workflow"]["globals"] = "def prefixer(w):\n    return 'welcome ' + w\n"
    assert statefn.run(plan, {"data": {"name": "john"}})["data"]["pr"] == "welcome john"


# execute/expression.test.ts: "run a stringified no-op job with one operation" -- same
def test_expression_run_a_stringified_no_op_job_with_one_operation() -> None:
    assert statefn.run(IDENTITY, {"data": {}, "configuration": {}}) == {"data": {}}


# execute/expression.test.ts: "run a live no-op job with @openfn/language-common.fn" -- same
def test_expression_run_a_live_no_op_job_with_common_fn() -> None:
    from statefn.adaptors.common import fn

    assert statefn.run([fn(identity)], {"data": {}, "configuration": {}}) == {"data": {}}


# execute/expression.test.ts: "jobs can handle a promise" -- same
def test_expression_jobs_can_handle_a_promise() -> None:
    async def op(state: State) -> State:
        return state

    assert statefn.run([op], {"data": {}, "configuration": {}}) == {"data": {}}


# execute/expression.test.ts: "operations run in series" -- same
def test_expression_operations_run_in_series() -> None:
    assert statefn.run([set_x(2), add_x(2), times_x(3)], {"data": {}})["data"]["x"] == 12


# execute/expression.test.ts: "async operations run in series" -- same
def test_expression_async_operations_run_in_series() -> None:
    async def later(state: State) -> State:
        await asyncio.sleep(0.01)
        state["data"]["x"] += 2
        return state

    assert statefn.run([set_x(2), later, times_x(3)], {"data": {}})["data"]["x"] == 12


# execute/expression.test.ts: "jobs return null-state instead of undefined or null" -- same
def test_expression_jobs_return_null_state_instead_of_undefined_or_null() -> None:
    assert statefn.run([returns_nothing], {"data": {}, "configuration": {}}) is None


# execute/expression.test.ts: "warn when an operation does not return state" -- differs: log lines
def test_expression_warn_when_an_operation_does_not_return_state(runtime_log: Log) -> None:
    logger, records = runtime_log

    def set_a(state: State) -> State:
        state["data"] = {"a": "a"}
        return state

    result = statefn.run([identity, returns_nothing, set_a], {"data": {}}, logger=logger)
    assert result == {"data": {"a": "a"}}
    [warning] = records.messages(logging.WARNING)
    assert warning == "Operation 2 (returns_nothing) returned None: passing an empty state {} on"


# execute/expression.test.ts: "jobs can mutate the original state" -- differs: run never changes
# its input
def test_expression_jobs_can_mutate_the_original_state() -> None:
    state = {"data": {"x": 1}}
    result = statefn.run([set_x(2)], state, immutable_state=False)
    assert state["data"]["x"] == 1
    assert result["data"]["x"] == 2


# execute/expression.test.ts: "jobs do not mutate the original state" -- same
def test_expression_jobs_do_not_mutate_the_original_state() -> None:
    state = {"data": {"x": 1}}
    result = statefn.run([set_x(2)], state, immutable_state=True)
    assert state["data"]["x"] == 1
    assert result["data"]["x"] == 2


# execute/expression.test.ts: "forwards a logger to the console object inside a job" -- same
def test_expression_forwards_a_logger_to_the_console_object_inside_a_job(job_log: Log) -> None:
    logger, records = job_log
    statefn.run("@fn\ndef f(s):\n    console.log('x')\n    return s\n", job_logger=logger)
    [record] = records.records
    assert (record.levelno, record.getMessage()) == (logging.INFO, "x")


# execute/expression.test.ts: "calls execute if exported from a job" -- differs: no execute export
def test_expression_calls_execute_if_exported_from_a_job(job_log: Log) -> None:
    logger, records = job_log
    source = "def execute(*operations):\n    console.log('x')\n    return lambda s: {}\n"
    assert statefn.run(source, {"configuration": {}, "data": {}}, job_logger=logger) == {"data": {}}
    assert records.records == []


# execute/expression.test.ts: "handles a promise returned by an operation" -- same
def test_expression_handles_a_promise_returned_by_an_operation() -> None:
    def op(state: State) -> Any:
        future = asyncio.get_running_loop().create_future()
        future.set_result(state)
        return future

    assert statefn.run([op], {"data": {"x": 1}})["data"]["x"] == 1


# execute/expression.test.ts: "handles a promise returned by an operation with .then()" -- same
def test_expression_handles_a_promise_returned_by_an_operation_with_then() -> None:
    async def op(state: State) -> State:
        async def first() -> State:
            return state

        await first()
        return {"data": {"x": 2}}

    assert statefn.run([op], {"data": {"x": 1}})["data"]["x"] == 2


# execute/expression.test.ts: "handles a promise returned by an operation with .catch()" --
# same
def test_expression_handles_a_promise_returned_by_an_operation_with_catch() -> None:
    async def op(state: State) -> State:
        async def fails() -> State:
            raise Exception("err")

        try:
            return await fails()
        except Exception:
            return {"data": {"x": 3}}

    assert statefn.run([op], {"data": {"x": 1}})["data"]["x"] == 3


# execute/expression.test.ts: "Throws after custom timeout" -- same
def test_expression_throws_after_custom_timeout() -> None:
    async def slow(state: State) -> State:
        await asyncio.sleep(0.1)
        return state

    plan = plan_of({"expression": [slow]}, timeout=10)
    error = crash_of(plan, {"data": {}})
    assert (error.name, error.message) == ("TimeoutError", "Job took longer than 10ms to complete")


# execute/expression.test.ts: "Operations log on start and end" -- differs: log lines
def test_expression_operations_log_on_start_and_end(runtime_log: Log) -> None:
    logger, records = runtime_log
    statefn.run([identity], {"data": {}}, logger=logger)
    assert not any("operation" in m.lower() for m in records.messages())


def linker_modules(run: dict[str, Any] | None, step: dict[str, Any] | None) -> dict[str, Any]:
    return Linker(run).with_overrides(step).modules


# execute/expression.test.ts: "mergeLinkerOptions: use linker options only" -- same
def test_expression_merge_linker_options_use_linker_options_only() -> None:
    modules = {"x": {"path": "a/b/c", "version": "1.0.0"}}
    assert linker_modules(modules, None) == modules


# execute/expression.test.ts: "mergeLinkerOptions: use override options only" -- same
def test_expression_merge_linker_options_use_override_options_only() -> None:
    modules = {"x": {"path": "a/b/c", "version": "1.0.0"}}
    assert linker_modules(None, modules) == modules


# execute/expression.test.ts: "mergeLinkerOptions: override path and value" -- same
def test_expression_merge_linker_options_override_path_and_value() -> None:
    override = {"x": {"path": "x/y/z", "version": "2.0.0"}}
    assert linker_modules({"x": {"path": "a/b/c", "version": "1.0.0"}}, override) == override


# execute/expression.test.ts: "mergeLinkerOptions: override path only" -- differs: step linker
# entries replace the run's
def test_expression_merge_linker_options_override_path_only() -> None:
    modules = linker_modules({"x": {"path": "a/b/c", "version": "1.0.0"}}, {"x": {"path": "x/y/z"}})
    assert modules == {"x": {"path": "x/y/z"}}


# execute/expression.test.ts: "mergeLinkerOptions: override version only" -- differs: step linker
# entries replace the run's
def test_expression_merge_linker_options_override_version_only() -> None:
    run = {"x": {"path": "a/b/c", "version": "1.0.0"}}
    assert linker_modules(run, {"x": {"version": "2.0.0"}}) == {"x": {"version": "2.0.0"}}


# execute/expression.test.ts: "mergeLinkerOptions: merge multiple adaptors" -- same
def test_expression_merge_linker_options_merge_multiple_adaptors() -> None:
    run = {"x": {"path": "a/b/c", "version": "1.0.0"}}
    step = {"y": {"path": "x/y/z", "version": "2.0.0"}}
    assert linker_modules(run, step) == {**run, **step}


# -- execute/compile-plan.test.ts ----------------------------------------------------------


def normal(plan: dict[str, Any]) -> dict[str, Any]:
    return statefn.validate_plan(plan)


def steps_of(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in normal(plan)["workflow"]["steps"]}


TEST_PLAN = plan_of(
    {"id": "a", "expression": "x", "name": "a", "next": {"b": True}},
    {"id": "b", "expression": "y"},
    start="a",
)


def with_edge(edge: Any) -> dict[str, Any]:
    return plan_of(
        {"id": "a", "expression": IDENTITY, "next": {"b": edge}},
        {"id": "b", "expression": setting(b=True)},
        start="a",
    )


def followed(edge: Any, state: State | None = None) -> bool:
    """Whether the edge a->b of ``with_edge(edge)`` is followed when a leaves ``state``."""
    plan = with_edge(edge)
    plan["workflow"]["steps"][0]["expression"] = [lambda s: state if state is not None else s]
    result = statefn.run(plan, {"data": {}})
    return bool(result and result.get("data", {}).get("b"))


# execute/compile-plan.test.ts: "should preserve global credentials " -- same
def test_compile_plan_should_preserve_global_credentials() -> None:
    plan = plan_of({"id": "a", "expression": "a"})
    plan["workflow"]["credentials"] = {"collections_token": "j.w.t."}
    assert normal(plan)["workflow"]["credentials"] == {"collections_token": "j.w.t."}


# execute/compile-plan.test.ts: "should preserve the start option" -- same
def test_compile_plan_should_preserve_the_start_option() -> None:
    assert normal(plan_of({"id": "a", "expression": "a"}, start="a"))["options"]["start"] == "a"


# execute/compile-plan.test.ts: "should prefer use workflow.start" -- same
def test_compile_plan_should_prefer_workflow_start() -> None:
    plan = plan_of({"id": "a", "expression": "a"}, {"id": "b", "expression": "b"})
    plan["workflow"]["start"] = "b"
    assert normal(plan)["options"]["start"] == "b"


# execute/compile-plan.test.ts: "should prefer use options.start to workflow.start" -- same
def test_compile_plan_should_prefer_options_start_to_workflow_start() -> None:
    plan = plan_of({"id": "a", "expression": "a"}, {"id": "b", "expression": "b"}, start="a")
    plan["workflow"]["start"] = "b"
    assert normal(plan)["options"]["start"] == "a"


# execute/compile-plan.test.ts: "should default start to the first node" -- same
def test_compile_plan_should_default_start_to_the_first_node() -> None:
    plan = plan_of({"id": "a", "expression": "a"}, {"id": "b", "expression": "b"})
    assert normal(plan)["options"]["start"] == "a"


# execute/compile-plan.test.ts: "should preserve arbitrary options" -- differs: unknown keys and
# wrong types
def test_compile_plan_should_preserve_arbitrary_options() -> None:
    plan = plan_of({"id": "a", "expression": "a"})
    plan["options"] = {"x-a": 1, "x-z": 2}
    assert normal(plan)["options"] == {"start": "a"}


# execute/compile-plan.test.ts: "should convert steps to an object" -- differs: normal form
def test_compile_plan_should_convert_steps_to_an_object() -> None:
    steps = normal(TEST_PLAN)["workflow"]["steps"]
    assert steps[0] == {
        "id": "a",
        "name": "a",
        "expression": "x",
        "next": {"b": {"condition": True}},
    }
    assert steps[1] == {"id": "b", "expression": "y"}


def upstream_of(plan: dict[str, Any]) -> dict[str, list[str]]:
    """Each step's upstream steps, read from the normal form (statefn keeps no 'previous')."""
    steps = normal(plan)["workflow"]["steps"]
    upstream: dict[str, list[str]] = {step["id"]: [] for step in steps}
    for step in steps:
        for target in step.get("next", {}):
            upstream[target].append(step["id"])
    return upstream


# execute/compile-plan.test.ts: "should set previous job with 2 steps" -- differs: normal form
def test_compile_plan_should_set_previous_job_with_2_steps() -> None:
    plan = plan_of(
        {"id": "a", "expression": "x", "next": {"b": True}}, {"id": "b", "expression": "y"}
    )
    assert "previous" not in steps_of(plan)["b"]
    assert upstream_of(plan) == {"a": [], "b": ["a"]}


# execute/compile-plan.test.ts: "should set previous job with 2 steps and shorthand syntax" --
# differs: normal form
def test_compile_plan_should_set_previous_job_with_2_steps_and_shorthand_syntax() -> None:
    plan = plan_of({"id": "a", "expression": "x", "next": "b"}, {"id": "b", "expression": "y"})
    assert upstream_of(plan) == {"a": [], "b": ["a"]}


# execute/compile-plan.test.ts: "should set previous job with 2 steps and no start" -- differs:
# normal form
def test_compile_plan_should_set_previous_job_with_2_steps_and_no_start() -> None:
    plan = plan_of(
        {"id": "a", "expression": "x", "next": {"b": True}}, {"id": "b", "expression": "y"}
    )
    assert normal(plan)["options"]["start"] == "a"
    assert upstream_of(plan) == {"a": [], "b": ["a"]}


# execute/compile-plan.test.ts: "should set previous job with 3 steps" -- differs: normal form
def test_compile_plan_should_set_previous_job_with_3_steps() -> None:
    plan = plan_of(
        {"id": "a", "expression": "x", "next": {"b": True}},
        {"id": "b", "expression": "y", "next": {"c": True}},
        {"id": "c", "expression": "z"},
    )
    assert upstream_of(plan) == {"a": [], "b": ["a"], "c": ["b"]}


# execute/compile-plan.test.ts: "should set previous job with 3 steps and shorthand syntax" --
# differs: normal form
def test_compile_plan_should_set_previous_job_with_3_steps_and_shorthand_syntax() -> None:
    plan = plan_of(
        {"id": "c", "expression": "z"},
        {"id": "a", "expression": "x", "next": "b"},
        {"id": "b", "expression": "y", "next": "c"},
    )
    assert upstream_of(plan) == {"c": ["b"], "a": [], "b": ["a"]}


# execute/compile-plan.test.ts: "should auto generate ids for steps" -- same
def test_compile_plan_should_auto_generate_ids_for_steps() -> None:
    ids = list(steps_of(plan_of({"expression": "x"}, {"expression": "y"})))
    assert len(set(ids)) == 2 and all(ids)


# execute/compile-plan.test.ts: "should convert steps to an object with auto ids" -- same
def test_compile_plan_should_convert_steps_to_an_object_with_auto_ids() -> None:
    assert list(steps_of(plan_of({"expression": "x"}, {"expression": "y"}))) == ["job-1", "job-2"]


# execute/compile-plan.test.ts: "should reset job ids for each call" -- same
def test_compile_plan_should_reset_job_ids_for_each_call() -> None:
    plan = plan_of({"expression": "x"})
    assert steps_of(plan)["job-1"]["expression"] == "x"
    assert steps_of(plan)["job-1"]["expression"] == "x"


# execute/compile-plan.test.ts: "should write adaptor versions" -- differs: normal form
def test_compile_plan_should_write_adaptor_versions() -> None:
    plan = plan_of(
        {"id": "x", "expression": ".", "adaptors": ["x@1.0"]},
        {"id": "y", "expression": ".", "adaptors": ["y@1.0"]},
    )
    steps = steps_of(plan)
    assert (steps["x"]["adaptors"], steps["y"]["adaptors"]) == (["x@1.0"], ["y@1.0"])
    assert "linker" not in steps["x"]


# execute/compile-plan.test.ts: "should preserve linker options" -- same
def test_compile_plan_should_preserve_linker_options() -> None:
    plan = plan_of(
        {"id": "x", "expression": ".", "adaptor": "x@1.0", "linker": {"x": {"path": "a/b/c"}}}
    )
    assert steps_of(plan)["x"]["linker"] == {"x": {"path": "a/b/c"}}


# execute/compile-plan.test.ts: "should set the start to steps[0]" -- same
def test_compile_plan_should_set_the_start_to_the_first_step() -> None:
    plan = plan_of(*({"id": i, "expression": i} for i in "abc"))
    assert normal(plan)["options"]["start"] == "a"


# execute/compile-plan.test.ts: "should not override the start" -- same
def test_compile_plan_should_not_override_the_start() -> None:
    plan = plan_of(*({"id": i, "expression": i} for i in "abc"), start="c")
    assert normal(plan)["options"]["start"] == "c"


# execute/compile-plan.test.ts: "should compile a shorthand edge" -- differs: normal form
def test_compile_plan_should_compile_a_shorthand_edge() -> None:
    plan = plan_of({"id": "a", "expression": "x", "next": "y"}, {"id": "y", "expression": "y"})
    assert steps_of(plan)["a"]["next"] == {"y": {"condition": True}}


# execute/compile-plan.test.ts: "should not recompile a functional edge" -- same (issue 11,
# item 9)
def test_compile_plan_should_not_recompile_a_functional_edge() -> None:
    condition = lambda state: True  # noqa: E731
    assert steps_of(with_edge({"condition": condition}))["a"]["next"]["b"]["condition"] is condition
    assert followed({"condition": condition})


# execute/compile-plan.test.ts: "should compile a truthy edge" -- same
def test_compile_plan_should_compile_a_truthy_edge() -> None:
    assert followed({"condition": "True"})


# execute/compile-plan.test.ts: "should compile a string edge" -- same
def test_compile_plan_should_compile_a_string_edge() -> None:
    assert followed("True")


# execute/compile-plan.test.ts: "should compile a falsy edge" -- same
def test_compile_plan_should_compile_a_falsy_edge() -> None:
    assert not followed({"condition": "False"})


# execute/compile-plan.test.ts: "should compile an edge with special string: on_job_success
# (and return true)" -- same
def test_compile_plan_on_job_success_returns_true() -> None:
    assert followed({"condition": "on_job_success"}, {"data": {}, "errors": {}})


# execute/compile-plan.test.ts: "should compile an edge with special string: on_job_success
# (and return false)" -- same (issue 11, item 3)
def test_compile_plan_on_job_success_returns_false() -> None:
    assert not followed({"condition": "on_job_success"}, {"data": {}, "errors": {"a": {}}})


# execute/compile-plan.test.ts: "should compile an edge with special string: on_job_failure
# (and return true)" -- same (issue 11, item 3)
def test_compile_plan_on_job_failure_returns_true() -> None:
    assert followed({"condition": "on_job_failure"}, {"data": {}, "errors": {"a": {}}})


# execute/compile-plan.test.ts: "should compile an edge with special string: on_job_failure
# (and return false)" -- same
def test_compile_plan_on_job_failure_returns_false() -> None:
    assert not followed({"condition": "on_job_failure"}, {"data": {}, "errors": {}})


# execute/compile-plan.test.ts: "should compile an edge with special string: always" -- same
def test_compile_plan_always() -> None:
    assert followed({"condition": "always"}, {"data": {}, "errors": {"a": {}}})


# execute/compile-plan.test.ts: "should compile an edge with arithmetic" -- same
def test_compile_plan_should_compile_an_edge_with_arithmetic() -> None:
    assert followed({"condition": "1 + 1"})


# execute/compile-plan.test.ts: "should compile an edge which uses state" -- same
def test_compile_plan_should_compile_an_edge_which_uses_state() -> None:
    assert followed({"condition": "'error' not in state"})


@pytest.mark.parametrize(
    ("title", "condition", "name"),
    [
        ("condition cannot require", "require('axios')", "require"),
        ("condition cannot access process", "process.exit()", "process"),
        ("condition cannot access process #2", "(lambda: process.exit())()", "process"),
    ],
)
# execute/compile-plan.test.ts: "condition cannot require", "condition cannot access process",
# "condition cannot access process #2" -- same (three tests)
def test_compile_plan_condition_cannot_reach_the_host(
    title: str, condition: str, name: str
) -> None:
    error = crash_of(with_edge({"condition": condition}), {"data": {}})
    assert error.name == "EdgeConditionError"
    assert error.message.endswith(f"NameError: name '{name}' is not defined")


# execute/compile-plan.test.ts: "condition cannot eval" -- differs: compiled before the run
def test_compile_plan_condition_cannot_eval() -> None:
    error = crash_of(with_edge({"condition": "eval('process.exit()')"}), {"data": {}})
    assert error.name == "ValidationError"
    assert "'eval' is not allowed" in error.message


# execute/compile-plan.test.ts: "throw for a syntax error on a job edge" -- same
def test_compile_plan_throw_for_a_syntax_error_on_a_job_edge() -> None:
    error = crash_of(with_edge({"condition": "@£^!!"}), {})
    assert re.search("failed to compile(.*)a->b", error.message, re.I)


# execute/compile-plan.test.ts: "globals should be undefined if no globals are passed" -- same
def test_compile_plan_globals_should_be_undefined_if_no_globals_are_passed() -> None:
    assert "globals" not in normal(plan_of({"expression": "x"}, {"expression": "y"}))["workflow"]


# execute/compile-plan.test.ts: "globals should be undefined if non-string is passed" -- differs:
# unknown keys and wrong types
def test_compile_plan_globals_should_be_undefined_if_non_string_is_passed() -> None:
    plan = plan_of({"expression": "x"})
    plan["workflow"]["globals"] = {"some": "val"}
    error = crash_of(plan, {})
    assert error.name == "ValidationError"
    assert "workflow.globals" in error.message


# execute/compile-plan.test.ts: "global functions should perform no transformation inline
# code" -- same
def test_compile_plan_global_functions_should_perform_no_transformation() -> None:
    plan = plan_of({"expression": "x"}, {"expression": "y"})
    plan["workflow"]["globals"] = "def cleaner(name):\n    return name.replace('a', 'b')\n"
    assert normal(plan)["workflow"]["globals"] == plan["workflow"]["globals"]


# execute/compile-plan.test.ts: "throw for multiple errors" -- same (issue 11, item 7)
def test_compile_plan_throw_for_multiple_errors() -> None:
    plan = plan_of(
        {"id": "a", "expression": "x", "next": {"b": {"condition": "@£^!!"}, "c": "@£^!!"}},
        {"id": "b", "expression": "y"},
        {"id": "c", "expression": "z"},
    )
    error = crash_of(plan, {})
    assert len(error.message.split("\n")) == 2


# -- util/validate-plan.test.ts ------------------------------------------------------------


def chain(*steps: tuple[str, dict[str, bool] | None]) -> dict[str, Any]:
    return plan_of(*({"id": i, "expression": ".", "next": n} for i, n in steps))


# util/validate-plan.test.ts: "builds a simple model" -- same
def test_validate_plan_builds_a_simple_model() -> None:
    assert upstream_of(chain(("a", {"b": True}), ("b", None))) == {"a": [], "b": ["a"]}


# util/validate-plan.test.ts: "builds a more complex model" -- differs: normal form
def test_validate_plan_builds_a_more_complex_model() -> None:
    error = crash_of(chain(("a", {"b": True}), ("b", {"c": True, "a": True}), ("c", None)), {})
    assert error.message == "Circular dependency: a -> b -> a"


# util/validate-plan.test.ts: "throws for a circular dependency" -- differs: error messages
def test_validate_plan_throws_for_a_circular_dependency() -> None:
    error = crash_of(chain(("a", {"b": True}), ("b", {"a": True})), {})
    assert error.message == "Circular dependency: a -> b -> a"


# util/validate-plan.test.ts: "throws for an indirect circular dependency" -- differs: error
# messages
def test_validate_plan_throws_for_an_indirect_circular_dependency() -> None:
    error = crash_of(chain(("a", {"b": True}), ("b", {"c": True}), ("c", {"a": True})), {})
    assert error.message == "Circular dependency: a -> b -> c -> a"


# util/validate-plan.test.ts: "allows for a multiple inputs" -- same
def test_validate_plan_allows_for_multiple_inputs() -> None:
    plan = chain(("a", {"b": True, "c": True}), ("b", {"z": True}), ("c", {"z": True}), ("z", None))
    assert upstream_of(plan)["z"] == ["b", "c"]


# util/validate-plan.test.ts: "throws for a an unknown job" -- differs: error messages
def test_validate_plan_throws_for_an_unknown_job() -> None:
    message = crash_of(chain(("next", {"z": True})), {}).message
    assert message == "Cannot find job: z (in the next of step next)"


# util/validate-plan.test.ts: "throws for a an unknown job with shorthand syntax" -- differs:
# error messages
def test_validate_plan_throws_for_an_unknown_job_with_shorthand_syntax() -> None:
    message = crash_of(plan_of({"next": "z", "expression": "."}), {}).message
    assert message == "Cannot find job: z (in the next of step job-1)"


# util/validate-plan.test.ts: "throws for invalid string start" -- same
def test_validate_plan_throws_for_invalid_string_start() -> None:
    error = crash_of(plan_of({"id": "a", "expression": "."}, start="z"), {})
    assert error.message == "Could not find start job: z"


# -- errors.test.ts ------------------------------------------------------------------------


def record_of(source: str, step_id: str = "job-1", **options: Any) -> dict[str, Any]:
    record: dict[str, Any] = statefn.run(source, {}, **options)["errors"][step_id]
    return record


# errors.test.ts: "extractPosition: basic test" -- same (positions come from the traceback)
def test_errors_extract_position_basic() -> None:
    assert record_of("fn(lambda s: s['x'])")["pos"] == {
        "line": 1,
        "column": 14,
        "src": "fn(lambda s: s['x'])",
    }


# errors.test.ts: "extractPosition: find errors which aren't on line 1" -- same
def test_errors_extract_position_find_errors_which_arent_on_line_1() -> None:
    source = "import json\n\n@fn\ndef f(s):\n    return s['x']\n"
    assert record_of(source)["pos"] == {"line": 5, "column": 12, "src": "    return s['x']"}


# errors.test.ts: "extractPosition: only include vm frames" -- same (library frames skipped)
def test_errors_extract_position_only_include_job_frames() -> None:
    record = record_of("import json\nfn(lambda s: json.loads('{'))\n")
    assert record["subtype"] == "JSONDecodeError"
    assert record["pos"]["line"] == 2


# errors.test.ts: "extractPosition: return undefined if there's no position" -- same
def test_errors_extract_position_return_undefined_if_no_position() -> None:
    record = statefn.run([lambda s: s["x"]], {})["errors"]["job-1"]
    assert "pos" not in record


# errors.test.ts: "extractStackTrace: basic test" -- differs: error positions
def test_errors_extract_stack_trace_basic() -> None:
    error = crash_of("@fn\ndef f(s):\n    return z\n", {})
    assert "stack" not in error.to_dict()
    assert error.pos == {"line": 3, "column": 12, "src": "    return z"}


# errors.test.ts: 'crash on invalid operation (the iconic "fn is not a function" error)' --
# differs: compiled before the run
def test_errors_crash_on_invalid_operation() -> None:
    error = crash_of(plan_of({"id": "a", "expression": "print('x')"}, timeout=1), {})
    assert (error.name, error.severity) == ("CompileError", "crash")
    assert error.message.startswith(
        "line 1, column 1: this top-level expression makes the result of the built-in print(), "
        "not an operation"
    )


# errors.test.ts: "crash on timeout" -- same
def test_errors_crash_on_timeout() -> None:
    async def forever(state: State) -> State:
        await asyncio.Event().wait()
        return state

    error = crash_of(plan_of({"id": "a", "expression": [forever]}, timeout=1), {})
    assert (error.severity, error.message) == ("kill", "Job took longer than 1ms to complete")


# errors.test.ts: "crash on runtime error with SyntaxError" -- differs: compiled before the run
def test_errors_crash_on_runtime_error_with_syntax_error() -> None:
    error = crash_of("fn(lambda s: ~@]2q1j)", {})
    assert (error.name, error.severity) == ("CompileError", "crash")
    assert error.message.startswith("line 1, column ")


# errors.test.ts: "crash on runtime error with ReferenceError" -- differs: Python exceptions
def test_errors_crash_on_runtime_error_with_reference_error() -> None:
    error = crash_of("fn(lambda s: x)", {})
    assert (error.severity, error.subtype) == ("crash", "NameError")
    assert error.message == "NameError: name 'x' is not defined"
    assert error.pos == {"line": 1, "column": 14, "src": "fn(lambda s: x)"}


# errors.test.ts: "maps positions in a compiled ReferenceError" -- same (no compile step:
# positions are in the source as written)
def test_errors_maps_positions_in_a_reference_error() -> None:
    source = "def call(f):\n    return f()\n\n\nx = call(lambda: z)\n"
    error = crash_of(source, {})
    assert error.subtype == "NameError"
    assert error.pos == {"line": 5, "column": 18, "src": "x = call(lambda: z)"}


# errors.test.ts: "crash on eval with SecurityError" -- differs: compiled before the run
def test_errors_crash_on_eval_with_security_error() -> None:
    error = crash_of("fn(lambda s: eval('1'))", {})
    assert (error.name, error.severity) == ("CompileError", "crash")
    assert error.message == "line 1, column 14: 'eval' is not allowed in job code"


# errors.test.ts: "crash on edge condition error with EdgeConditionError" -- differs: error
# messages
def test_errors_crash_on_edge_condition_error() -> None:
    plan = plan_of(
        {"id": "a", "expression": IDENTITY, "next": {"b": {"condition": "wibble"}}},
        {"id": "b", "expression": IDENTITY},
    )
    error = crash_of(plan, {})
    assert (error.name, error.severity) == ("EdgeConditionError", "crash")
    assert error.message == "Edge condition a->b raised NameError: name 'wibble' is not defined"


# errors.test.ts: "crash on import error: module path provided" -- differs: error messages
def test_errors_crash_on_import_error() -> None:
    error = crash_of("import blah\nfn(lambda s: blah)\n", {})
    assert (error.name, error.severity) == ("ImportError", "crash")
    assert error.message.startswith('Adaptor "blah" was not found')


# errors.test.ts: "crash on blacklisted module" -- differs: error messages; common is always linked
def test_errors_crash_on_blacklisted_module() -> None:
    linker = {"whitelist": [re.compile("^@opennfn"), "common"]}
    error = crash_of("import blah\nfn(lambda s: blah)\n", {}, linker=linker)
    assert (error.severity, error.message) == ("crash", 'Adaptor "blah" is not on the whitelist')


# errors.test.ts: "fail on runtime TypeError" -- same
def test_errors_fail_on_runtime_type_error() -> None:
    assert record_of("fn(lambda s: s.get('x')['y'])") == {
        "message": "TypeError: 'NoneType' object is not subscriptable",
        "name": "RuntimeError",
        "subtype": "TypeError",
        "severity": "fail",
        "source": "runtime",
        "pos": {"line": 1, "column": 14, "src": "fn(lambda s: s.get('x')['y'])"},
    }


# errors.test.ts: "fail on runtime error with RangeError" -- differs: Python exceptions
def test_errors_fail_on_runtime_error_with_range_error() -> None:
    record = record_of("import math\nfn(lambda s: math.sqrt(-1))\n")
    assert (record["name"], record["subtype"]) == ("RuntimeError", "ValueError")
    assert record["message"] == "ValueError: math domain error"
    assert record["pos"]["line"] == 2


# errors.test.ts: "fail on user error with new Error()" -- differs: error positions
def test_errors_fail_on_user_error_with_new_error() -> None:
    record = record_of("@fn\ndef f(s):\n    raise Exception('abort')\n")
    assert record == {
        "message": "abort",
        "name": "JobError",
        "severity": "fail",
        "source": "runtime",
        "pos": {"line": 3, "column": 5, "src": "    raise Exception('abort')"},
    }


# errors.test.ts: 'fail on user error with throw "abort"' -- differs: only exceptions are raised
def test_errors_fail_on_user_error_with_throw_a_string() -> None:
    record = record_of("@fn\ndef f(s):\n    raise 'abort'\n")
    assert (record["name"], record["subtype"]) == ("RuntimeError", "TypeError")
    assert record["message"] == "TypeError: exceptions must derive from BaseException"


# errors.test.ts: "fail on adaptor error and map to the top operation" -- differs: AdaptorError
# records
def test_errors_fail_on_adaptor_error_and_map_to_the_top_operation() -> None:
    assert record_of("from x import err\n\nerr()\n", linker=X_ADAPTOR) == {
        "details": {"code": 1234, "message": "adaptor err"},
        "message": "adaptor err",
        "name": "AdaptorError",
        "subtype": "CodedError",
        "source": "runtime",
        "severity": "fail",
        "pos": {"line": 3, "column": 1, "src": "err()"},
    }


# errors.test.ts: "fail on nested adaptor error and map to a position in the vm" -- same
# (issue 11, item 4)
def test_errors_fail_on_nested_adaptor_error_and_map_to_a_position() -> None:
    source = (
        "from x import err\n\n@fn\nasync def f(state):\n    try:\n"
        "        await err()(state)\n    except Exception as e:\n        raise e\n"
    )
    record = record_of(source, "src", linker=X_ADAPTOR, default_step_id="src")
    assert (record["name"], record["message"]) == ("AdaptorError", "adaptor err")
    assert record["details"] == {"code": 1234, "message": "adaptor err"}
    assert record["pos"] == {"line": 6, "column": 9, "src": "        await err()(state)"}


# errors.test.ts: "adaptor error with no stack trace will be a user error" -- differs: only
# exceptions are raised
def test_errors_adaptor_error_with_no_stack_trace() -> None:
    record = record_of("from x import err2\nfn(lambda s: err2())\n", linker=X_ADAPTOR)
    assert (record["name"], record["message"]) == ("AdaptorError", "adaptor err")


# errors.test.ts: "AdaptorError: don't include pos if an operation is passed" -- differs:
# AdaptorError records
def test_errors_adaptor_error_pos_when_an_operation_is_passed() -> None:
    record = record_of("from x import err\nerr()\n", linker=X_ADAPTOR)
    assert record["pos"] == {"line": 2, "column": 1, "src": "err()"}


# errors.test.ts: "AdaptorError: if no operation, extract position from stack" -- same
def test_errors_adaptor_error_if_no_operation_extract_position_from_stack() -> None:
    source = "from x import err2\n\n@fn\ndef f(s):\n    return err2()\n"
    assert record_of(source, linker=X_ADAPTOR)["pos"] == {
        "line": 5,
        "column": 12,
        "src": "    return err2()",
    }


# errors.test.ts: "AdaptorError: ensure that error objects are safely serialised" -- same
def test_errors_adaptor_error_objects_are_safely_serialised() -> None:
    record = record_of("from x import axios\naxios()\n", linker=X_ADAPTOR)
    assert record["details"] == {"message": "e", "name": "AxiosError"}


TYPE_ERROR_ON_3 = "def call(f):\n    return f()\n\n\nx = call(lambda: None)\nfn(lambda s: x.y)\n"


# errors.test.ts: "maps positions for an error on a workflow" -- same
def test_errors_maps_positions_for_an_error_on_a_workflow() -> None:
    result = statefn.run(plan_of({"id": "x", "expression": TYPE_ERROR_ON_3}), {})
    record = result["errors"]["x"]
    assert (record["severity"], record["subtype"]) == ("fail", "AttributeError")
    assert record["pos"]["line"] == 6


# errors.test.ts: "maps positions for an error on a workflow with a step name" -- same
def test_errors_maps_positions_for_an_error_on_a_workflow_with_a_step_name() -> None:
    result = statefn.run(plan_of({"id": "x", "name": "x", "expression": TYPE_ERROR_ON_3}), {})
    assert result["errors"]["x"]["pos"] == {"line": 6, "column": 14, "src": "fn(lambda s: x.y)"}


# -- security.test.ts ----------------------------------------------------------------------


SECRET_STATE = {"data": {}, "configuration": {"password": "secret"}}


# security.test.ts: "config should be scrubbed from the result state by default" -- same
def test_security_config_should_be_scrubbed_by_default() -> None:
    result = statefn.run(IDENTITY, SECRET_STATE)
    assert result == {"data": {}}


# security.test.ts: "config should be scrubbed from the result state" -- same
def test_security_config_should_be_scrubbed_from_the_result_state() -> None:
    result = statefn.run(IDENTITY, SECRET_STATE, state_props_to_remove=None)
    assert result["data"] == {} and "configuration" not in result


# security.test.ts: "config should be scrubbed from the result state after error" -- same
def test_security_config_should_be_scrubbed_after_error() -> None:
    result = statefn.run("@fn\ndef f(s):\n    raise Exception('err')\n", SECRET_STATE)
    assert result["errors"] and result["data"] == {} and "configuration" not in result


HOST_VALUE = 42


# security.test.ts: "jobs should not have access to global scope" -- differs: Python exceptions
def test_security_jobs_should_not_have_access_to_global_scope() -> None:
    error = crash_of("fn(lambda s: {'x': HOST_VALUE, 'y': 'some-val'})", {})
    assert error.message == "NameError: name 'HOST_VALUE' is not defined"


# security.test.ts: "jobs should be able to read global state" -- differs: no global state
def test_security_jobs_should_be_able_to_read_global_state() -> None:
    error = crash_of("fn(lambda s: state['data']['x'])", {"data": {"x": 42}})
    assert error.message == "NameError: name 'state' is not defined"


# security.test.ts: "jobs should be able to mutate global state" -- differs: no global state
def test_security_jobs_should_be_able_to_mutate_global_state() -> None:
    error = crash_of("@fn\ndef f(s):\n    state['x'] = 22\n    return s\n", {"data": {"x": 42}})
    assert error.message == "NameError: name 'state' is not defined"


# security.test.ts: "jobs should each run in their own context" -- same
def test_security_jobs_should_each_run_in_their_own_context() -> None:
    first = "@fn\ndef f(s):\n    global x\n    x = 1\n    return {'x': x}\n"
    statefn.run(first)
    assert statefn.run(first) == {"x": 1}
    error = crash_of("fn(lambda s: {'x': x})", {})
    assert error.message == "NameError: name 'x' is not defined"


# security.test.ts: "jobs should not have a process object" -- differs: Python exceptions
def test_security_jobs_should_not_have_a_process_object() -> None:
    error = crash_of("fn(lambda s: process.pid)", {})
    assert (error.name, error.message) == (
        "RuntimeCrash",
        "NameError: name 'process' is not defined",
    )


# security.test.ts: "jobs should not be able to pass a string to setTimeout" -- differs: compiled
# before the run
def test_security_jobs_should_not_be_able_to_pass_a_string_to_set_timeout() -> None:
    error = crash_of("import asyncio\nfn(lambda s: asyncio.sleep('hacking ur scriptz'))\n", {})
    assert error.name == "CompileError"
    assert error.message.startswith("line 1, column 1: import of 'asyncio' is not allowed")


@pytest.mark.parametrize(
    ("title", "source", "problem"),
    [
        ("code generation is disallowed (new Function)", "compile('x', 'f', 'eval')", "'compile'"),
        (
            "code generation is disallowed (constructor)",
            "().__class__.__base__.__subclasses__()",
            "'__class__'",
        ),
        ("code generation is disallowed (eval)", "eval('print(1)')", "'eval'"),
        ("eval is disallowed even if obfuscated", "getattr(s, 'ev' + 'al')", "'getattr'"),
    ],
)
# security.test.ts: "code generation is disallowed (new Function)", "code generation is disallowed
# (constructor)", "code generation is disallowed (eval)", "eval is disallowed even if obfuscated"
# -- differs: compiled before the run (four tests)
def test_security_code_generation_is_disallowed(title: str, source: str, problem: str) -> None:
    error = crash_of(f"fn(lambda s: {source})", {})
    assert (error.name, error.severity) == ("CompileError", "crash")
    assert problem in error.message


# security.test.ts: "jobs should be able to use sensible timeouts" -- same
def test_security_jobs_should_be_able_to_use_sensible_timeouts() -> None:
    async def wait(state: State) -> State:
        await asyncio.sleep(0.001)
        return {"data": 22}

    assert statefn.run([wait]) == {"data": 22}


# security.test.ts: "jobs in workflow cannot share data through globals (issue #213)" -- differs:
# objects job code did not make are read-only
def test_security_jobs_in_workflow_cannot_share_data_through_globals() -> None:
    plan = plan_of(
        {
            "id": "a",
            "expression": "@fn\ndef f(s):\n    console.x = 10\n    return s\n",
            "next": "b",
        },
        {"id": "b", "expression": "fn(lambda s: {**s, 'data': {'x': console.x}})"},
    )
    error = crash_of(plan, {})
    assert (error.name, error.severity, error.step_id) == ("SecurityError", "kill", "a")
    assert error.message.startswith("setting attribute 'x' of a 'JobLogger' object is not allowed")


# -- util/assemble-state.test.ts -----------------------------------------------------------


def assembled(
    initial: State | None,
    configuration: State | None = None,
    default: State | None = None,
    credentials: State | None = None,
) -> State:
    return assemble(initial or {}, default, configuration, credentials, copy_state)


# util/assemble-state.test.ts: "with no arguments, returns a basic state object" -- same
def test_assemble_state_with_no_arguments_returns_a_basic_state_object() -> None:
    assert assembled(None) == {"configuration": {}, "data": {}}


# util/assemble-state.test.ts: "includes initial state" -- same
def test_assemble_state_includes_initial_state() -> None:
    assert assembled({"x": 22}) == {"x": 22, "configuration": {}, "data": {}}


# util/assemble-state.test.ts: "merges default and initial data objects" -- same
def test_assemble_state_merges_default_and_initial_data_objects() -> None:
    result = assembled({"data": {"x": 1}}, default={"data": {"y": 1}})
    assert result == {"configuration": {}, "data": {"x": 1, "y": 1}}


# util/assemble-state.test.ts: "Initial data is prioritised over default data" -- same
def test_assemble_state_initial_data_is_prioritised_over_default_data() -> None:
    result = assembled({"data": {"x": 1}}, default={"data": {"x": 2}})
    assert result == {"configuration": {}, "data": {"x": 1}}


# util/assemble-state.test.ts: "Initial data does not have to be an object" -- same
def test_assemble_state_initial_data_does_not_have_to_be_an_object() -> None:
    assert assembled({"data": [1]}, default={"data": {}}) == {"configuration": {}, "data": [1]}


# util/assemble-state.test.ts: "merges default and initial config objects" -- same
def test_assemble_state_merges_default_and_initial_config_objects() -> None:
    result = assembled({"configuration": {"x": 1}}, {"y": 1})
    assert result == {"configuration": {"x": 1, "y": 1}, "data": {}}


# util/assemble-state.test.ts: "configuration overrides initialState.configuration" -- same
def test_assemble_state_configuration_overrides_initial_configuration() -> None:
    assert assembled({"configuration": {"x": 1}}, {"x": 2}) == {
        "configuration": {"x": 2},
        "data": {},
    }


# util/assemble-state.test.ts: "initialState.configuration is preserved" -- same
def test_assemble_state_initial_configuration_is_preserved() -> None:
    assert assembled({"configuration": {"x": 1}}) == {"configuration": {"x": 1}, "data": {}}


# util/assemble-state.test.ts: "global credentials should be added" -- same
def test_assemble_state_global_credentials_should_be_added() -> None:
    result = assembled({}, credentials={"collection_token": "j.w.t"})
    assert result == {"configuration": {"collection_token": "j.w.t"}, "data": {}}


# util/assemble-state.test.ts: "global credentials should be merged in" -- same
def test_assemble_state_global_credentials_should_be_merged_in() -> None:
    result = assembled({"configuration": {"x": 1}}, {"x": 2}, credentials={"collection_token": "j"})
    assert result == {"configuration": {"x": 2, "collection_token": "j"}, "data": {}}


# util/assemble-state.test.ts: "local credentials should override global credentials" -- same
def test_assemble_state_local_credentials_should_override_global_credentials() -> None:
    result = assembled(
        {"configuration": {}}, {"collection_token": "x.y.z"}, credentials={"collection_token": "j"}
    )
    assert result == {"configuration": {"collection_token": "x.y.z"}, "data": {}}


# util/assemble-state.test.ts: "local credentials should override global credentials but
# still preserve intial credentials" -- same
def test_assemble_state_local_credentials_override_but_preserve_initial() -> None:
    result = assembled(
        {"configuration": {"x": 1}},
        {"collection_token": "x.y.z"},
        credentials={"collection_token": "j"},
    )
    assert result == {"configuration": {"x": 1, "collection_token": "x.y.z"}, "data": {}}


# -- util/ensure-state-size.test.ts --------------------------------------------------------


def sized(state: State, limit_mb: float) -> Any:
    """Run one step that leaves ``state`` (built fresh by the operation) under the limit."""
    return statefn.run([lambda s: state], {}, state_limit_mb=limit_mb)


KB = "z" * 1024


# util/ensure-state-size.test.ts: "do not throw for limit 0kb" -- same (issue 11, item 6)
def test_ensure_state_size_do_not_throw_for_limit_0() -> None:
    assert sized({"data": KB}, 0) == {"data": KB}


# util/ensure-state-size.test.ts: "throw for limit 1kb, payload 1kb" -- same (issue 11, item 8)
def test_ensure_state_size_throw_for_limit_1kb_payload_1kb() -> None:
    with pytest.raises(statefn.StateTooLargeError) as caught:
        sized({"data": KB}, 1 / 1024)
    assert caught.value.message == "State exceeds the limit of 0.0009765625mb"


# util/ensure-state-size.test.ts: "ok for limit 2kb, payload 1kb" -- same
def test_ensure_state_size_ok_for_limit_2kb_payload_1kb() -> None:
    assert sized({"data": KB}, 2 / 1024) == {"data": KB}


# util/ensure-state-size.test.ts: "allow circular references" -- differs: state is JSON
def test_ensure_state_size_allow_circular_references() -> None:
    state: State = {"data": "test"}
    state["self"] = state
    result = sized(state, 2 / 1024)
    assert "state.self is a circular reference" in result["errors"]["job-1"]["message"]


# util/ensure-state-size.test.ts: "allow circular references 2" -- same (a shared value that
# is not circular is repeated)
def test_ensure_state_size_allow_shared_values() -> None:
    items = [{"id": 1}, {"id": 2}, {"id": 3}]
    assert sized({"data": items, "arr": items}, 2 / 1024) == {"data": items, "arr": items}


def unsafe_value(value: Any) -> str:
    """The error message of a step that leaves ``value`` in its state."""
    message: str = sized({"data": "test", "value": value}, 2 / 1024)["errors"]["job-1"]["message"]
    return message


# util/ensure-state-size.test.ts: "handle promise in state" -- differs: state is JSON
def test_ensure_state_size_handle_promise_in_state() -> None:
    assert unsafe_value(asyncio.Event()).startswith("TypeError: state.value is a")


# util/ensure-state-size.test.ts: "handle function in state" -- differs: state is JSON
def test_ensure_state_size_handle_function_in_state() -> None:
    assert (
        unsafe_value(lambda: "hello")
        == "TypeError: state.value is a function, which JSON cannot hold"
    )


# util/ensure-state-size.test.ts: "handle undefined in state" -- same
def test_ensure_state_size_handle_none_in_state() -> None:
    assert sized({"data": "test", "undef": None}, 2 / 1024) == {"data": "test", "undef": None}


# util/ensure-state-size.test.ts: "handle symbol in state" -- differs: state is JSON
def test_ensure_state_size_handle_symbol_in_state() -> None:
    assert unsafe_value(object()).startswith("TypeError: state.value is a")


# util/ensure-state-size.test.ts: "handle BigInt in state" -- same
def test_ensure_state_size_handle_big_integers_in_state() -> None:
    assert sized({"data": "test", "big": 123456789**3}, 2 / 1024)["big"] == 123456789**3


# util/ensure-state-size.test.ts: "handle Date in state" -- same (an ISO 8601 string)
def test_ensure_state_size_handle_date_in_state() -> None:
    result = sized({"data": "test", "date": datetime(2024, 1, 1)}, 2 / 1024)
    assert result["date"] == "2024-01-01T00:00:00"


# util/ensure-state-size.test.ts: "handle RegExp in state" -- differs: state is JSON
def test_ensure_state_size_handle_regexp_in_state() -> None:
    assert unsafe_value(re.compile("test", re.I)).startswith("TypeError: state.value is a")


# util/ensure-state-size.test.ts: "handle Map in state" -- same (a dict)
def test_ensure_state_size_handle_map_in_state() -> None:
    assert sized({"data": "test", "map": {"key": "value"}}, 2 / 1024)["map"] == {"key": "value"}


# util/ensure-state-size.test.ts: "handle Set in state" -- differs: state is JSON
def test_ensure_state_size_handle_set_in_state() -> None:
    assert unsafe_value({1, 2, 3}).startswith("TypeError: state.value is a set")


# -- util/regex.test.ts --------------------------------------------------------------------


def admits(entry: str, name: str) -> bool:
    """Whether a linker with the whitelist ``[entry]`` admits the name ``name``."""
    try:
        Linker(whitelist=[entry])._check_whitelist(name)
    except AdaptorImportError:
        return False
    return True


# util/regex.test.ts: "parse abc" -- differs: plain whitelist strings match whole names
def test_regex_parse_abc() -> None:
    assert admits("abc", "abc")
    assert not admits("abc", "123abc123")
    assert not admits("abc", "a b c")


# util/regex.test.ts: "parse /abc/" -- same (issue 11, item 10)
def test_regex_parse_slash_abc() -> None:
    assert admits("/abc/", "abc")
    assert admits("/abc/", "123abc123")
    assert not admits("/abc/", "a b c")


# util/regex.test.ts: "parse /abc/ig" -- same (issue 11, item 10)
def test_regex_parse_slash_abc_with_flags() -> None:
    assert admits("/abc/ig", "ABC")
    assert admits("/abc/ig", "123abc123")
    assert not admits("/abc/ig", "a b c")


# util/regex.test.ts: "parse a/b/c" -- differs: plain whitelist strings match whole names
def test_regex_parse_a_b_c() -> None:
    assert admits("a/b/c", "a/b/c")
    assert not admits("a/b/c", "123a/b/c123")
    assert not admits("a/b/c", "abc")


# util/regex.test.ts: "parse /a/b/c/i" -- same (issue 11, item 10)
def test_regex_parse_slash_a_b_c_with_flags() -> None:
    assert admits("/a/b/c/i", "a/B/c")
    assert admits("/a/b/c/i", "123a/b/c123")
    assert not admits("/a/b/c/i", "abc")


# -- modules/linker.test.ts ----------------------------------------------------------------


COUNTER = FIXTURES / "counter.py"


# modules/linker.test.ts: "load a simple test module from a path" -- same
def test_linker_load_a_simple_test_module_from_a_path() -> None:
    linked = Linker({"counter": {"path": str(COUNTER)}}).load("counter")
    assert linked.exports["number"] == 20


# modules/linker.test.ts: "load a fancy test module from a path" -- same
def test_linker_load_a_fancy_test_module_from_a_path() -> None:
    linked = Linker({"counter": {"path": str(COUNTER)}}).load("counter")
    assert linked.exports["get_number"]() == 20


# modules/linker.test.ts: "load a fancy test module with dependencies from a path" -- same
def test_linker_load_a_module_with_dependencies_from_a_path() -> None:
    linked = Linker({"greet": {"path": str(FIXTURES / "greet_v1")}}).load("greet")
    assert linked.exports["hello"]("x") == "hello x from v1"


# modules/linker.test.ts: "loads a specific module version from the repo" -- same
def test_linker_loads_a_specific_module_version_from_the_repo(repo: Path) -> None:
    linked = Linker(repo=repo).load("greet@1.0.0")
    assert (linked.version, linked.exports["hello"]("x")) == ("1.0.0", "hello x from v1")


# modules/linker.test.ts: "loads the latest available module from the repo" -- same
def test_linker_loads_the_latest_available_module_from_the_repo(repo: Path) -> None:
    assert Linker(repo=repo).load("greet").exports["hello"]("x") == "hello x from v2"


# modules/linker.test.ts: "loads a module from a path" -- same
def test_linker_loads_a_module_from_a_path() -> None:
    modules = {"greet": {"path": str(LANGUAGE_TEST), "version": "0.0.1"}}
    assert Linker(modules).load("greet").exports["x"] == "test"


# modules/linker.test.ts: "imports with a cacheKey" -- same
def test_linker_imports_with_a_cache_key(repo: Path) -> None:
    assert Linker(repo=repo, cache_key="abc").load("greet").version == "2.0.0"


# modules/linker.test.ts: "modules will be cached by default" -- same
def test_linker_modules_will_be_cached_by_default() -> None:
    modules = {"counter": {"path": str(COUNTER)}}
    first = Linker(modules).load("counter")
    assert first.exports["get_number"]() == 20
    assert first.exports["increment"]() == 21
    assert Linker(modules).load("counter").exports["get_number"]() == 21


# modules/linker.test.ts: "cachekey busts the module cache" -- same
def test_linker_cache_key_busts_the_module_cache() -> None:
    modules = {"counter": {"path": str(COUNTER)}}
    first = Linker(modules, cache_key="a").load("counter")
    assert first.exports["increment"]() == 21
    assert Linker(modules, cache_key="b").load("counter").exports["get_number"]() == 20


# modules/linker.test.ts: "throw if a non-whitelisted value is passed" -- same
def test_linker_throw_if_a_non_whitelisted_value_is_passed(repo: Path) -> None:
    with pytest.raises(AdaptorImportError, match="not on the whitelist"):
        Linker(repo=repo, whitelist=[re.compile("^@openfn/")]).load("i-heart-hacking")


# modules/linker.test.ts: "does not throw if an exact whitelisted value is passed" -- same
def test_linker_does_not_throw_if_an_exact_whitelisted_value_is_passed(repo: Path) -> None:
    assert Linker(repo=repo, whitelist=[re.compile("^greet$")]).load("greet").name == "greet"


# modules/linker.test.ts: "does not throw if a partial whitelisted value is passed" -- same
# (issue 11, item 10)
def test_linker_does_not_throw_if_a_partial_whitelisted_value_is_passed(repo: Path) -> None:
    assert Linker(repo=repo, whitelist=[re.compile("^gre")]).load("greet").name == "greet"


# modules/linker.test.ts: "Throws if it can't find a module" -- differs: error messages
def test_linker_throws_if_it_cant_find_a_module(repo: Path) -> None:
    with pytest.raises(AdaptorImportError) as caught:
        Linker(repo=repo).load("err")
    assert caught.value.name == "ImportError"
    assert caught.value.message.startswith('Adaptor "err" was not found in the repo')
