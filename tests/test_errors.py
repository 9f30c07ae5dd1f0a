"""Errors (contract section 4): classification of what job code raises, the records written
to state, and the errors ``run`` raises."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import statefn

if TYPE_CHECKING:
    from conftest import EventLog

State = dict[str, Any]

RECORD_KEYS = {"source", "name", "severity", "message"}
OPTIONAL_KEYS = {"subtype", "details", "pos", "fix"}


def raising(error: BaseException) -> Callable[[State], State]:
    def op(state: State) -> State:
        raise error

    return op


def noting(ran: list[str], name: str) -> Callable[[State], State]:
    """An operation that appends ``name`` to ``ran``."""

    def op(state: State) -> State:
        ran.append(name)
        return state

    return op


def run_one(operation: Callable[..., Any], **options: Any) -> Any:
    plan = {"workflow": {"steps": [{"id": "a", "expression": [operation]}]}}
    return statefn.run(plan, **options)


def assert_record_shape(record: dict[str, Any]) -> None:
    assert RECORD_KEYS <= set(record) <= RECORD_KEYS | OPTIONAL_KEYS
    assert record["source"] == "runtime"
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (KeyError("x"), "KeyError: 'x'"),
        (TypeError("bad type"), "TypeError: bad type"),
        (ValueError("bad value"), "ValueError: bad value"),
        (IndexError("list index out of range"), "IndexError: list index out of range"),
        (AttributeError("no attr"), "AttributeError: no attr"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
        (OverflowError("too big"), "OverflowError: too big"),
        (LookupError("not found"), "LookupError: not found"),
        (ArithmeticError("sum"), "ArithmeticError: sum"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "",
)
def test_lookup_type_value_and_arithmetic_errors_are_runtime_errors(
    error: BaseException, message: str
) -> None:
    record = run_one(raising(error))["errors"]["a"]
    assert_record_shape(record)
    assert record["name"] == "RuntimeError"
    assert record["severity"] == "fail"
    assert record["subtype"] == type(error).__name__
    assert record["message"] == message


def test_error_raised_by_python_itself_is_classified_by_its_class() -> None:
    def divide(state: State) -> State:
        return {"data": {"ratio": 1 / len(state["data"])}}

    record = run_one(divide)["errors"]["a"]
    assert record["name"] == "RuntimeError"
    assert record["subtype"] == "ZeroDivisionError"
    assert record["message"] == "ZeroDivisionError: division by zero"


def test_exact_record_for_a_key_error() -> None:
    def lookup(state: State) -> State:
        return state["data"]["x"]  # type: ignore[no-any-return]

    record = run_one(lookup)["errors"]["a"]
    extra = {key: record[key] for key in set(record) - RECORD_KEYS - {"subtype"}}
    assert {k: v for k, v in record.items() if k not in extra} == {
        "source": "runtime",
        "name": "RuntimeError",
        "severity": "fail",
        "message": "KeyError: 'x'",
        "subtype": "KeyError",
    }
    assert set(extra) <= OPTIONAL_KEYS
    assert all(value is not None for value in extra.values())


@pytest.mark.parametrize(
    "error",
    [
        NameError("name 'x' is not defined"),
        RecursionError("maximum recursion depth exceeded"),
        MemoryError("out of memory"),
        SyntaxError("invalid syntax"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_name_recursion_memory_and_syntax_errors_crash_the_run(
    events: EventLog, error: BaseException
) -> None:
    with pytest.raises(statefn.RuntimeCrash) as caught:
        run_one(raising(error), on_event=events)
    crash = caught.value
    assert isinstance(crash, statefn.StatefnError)
    assert crash.name == "RuntimeCrash"
    assert crash.severity == "crash"
    assert crash.step_id == "a"
    assert crash.subtype == type(error).__name__
    assert crash.message.startswith(f"{type(error).__name__}: ")
    record = crash.to_dict()
    assert_record_shape(record)
    assert record["name"] == "RuntimeCrash"
    assert record["severity"] == "crash"
    assert record["subtype"] == type(error).__name__
    assert events.of("job-error")[0]["error"] == record


def test_real_name_error_is_a_crash() -> None:
    def undefined(state: State) -> State:
        return not_defined_anywhere  # type: ignore[name-defined,no-any-return]  # noqa: F821

    with pytest.raises(statefn.RuntimeCrash) as caught:
        run_one(undefined)
    assert caught.value.message == "NameError: name 'not_defined_anywhere' is not defined"


def test_real_recursion_error_is_a_crash() -> None:
    def recurse(state: State) -> State:
        return recurse(state)

    with pytest.raises(statefn.RuntimeCrash) as caught:
        run_one(recurse)
    assert caught.value.subtype == "RecursionError"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (Exception("x"), "x"),
        (RuntimeError("runtime trouble"), "runtime trouble"),
        (OSError("disk"), "disk"),
    ],
    ids=["Exception", "RuntimeError", "OSError"],
)
def test_other_exceptions_are_job_errors(error: BaseException, message: str) -> None:
    record = run_one(raising(error))["errors"]["a"]
    assert_record_shape(record)
    assert record["name"] == "JobError"
    assert record["severity"] == "fail"
    assert record["message"] == message


def test_custom_exception_class_is_a_job_error() -> None:
    class PatientNotFound(Exception):
        pass

    record = run_one(raising(PatientNotFound("no patient 7")))["errors"]["a"]
    assert record["name"] == "JobError"
    assert record["message"] == "no patient 7"


@pytest.mark.parametrize("code", [0, 3, "bye"])
def test_system_exit_is_a_job_error_and_never_exits(code: Any) -> None:
    def leave(state: State) -> State:
        sys.exit(code)

    record = run_one(leave)["errors"]["a"]
    assert record["name"] == "JobError"
    assert record["severity"] == "fail"


def test_keyboard_interrupt_stops_the_run() -> None:
    ran: list[str] = []
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [raising(KeyboardInterrupt())], "next": {"b": True}},
                {"id": "b", "expression": [noting(ran, "b")]},
            ]
        }
    }
    with pytest.raises(KeyboardInterrupt):
        statefn.run(plan)
    assert ran == []


def test_fail_error_is_recorded_and_the_workflow_goes_on(events: EventLog) -> None:
    ran: list[str] = []
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [raising(ValueError("v"))], "next": {"b": True}},
                {"id": "b", "expression": [noting(ran, "b")]},
            ]
        }
    }
    result = statefn.run(plan, on_event=events)
    assert ran == ["b"]
    assert result["errors"]["a"]["message"] == "ValueError: v"
    [error_event] = events.of("job-error")
    assert error_event["job_id"] == "a"
    assert error_event["error"] == result["errors"]["a"]


def test_later_operations_of_a_failed_step_do_not_run() -> None:
    ran: list[str] = []
    plan = {
        "workflow": {
            "steps": [
                {
                    "id": "a",
                    "expression": [raising(ValueError("v")), noting(ran, "after")],
                }
            ]
        }
    }
    statefn.run(plan)
    assert ran == []


def test_errors_of_several_steps_are_kept_side_by_side() -> None:
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": [raising(KeyError("k"))], "next": {"b": "always"}},
                {"id": "b", "expression": [raising(Exception("e"))]},
            ]
        }
    }
    errors = statefn.run(plan)["errors"]
    assert set(errors) == {"a", "b"}
    assert errors["a"]["name"] == "RuntimeError"
    assert errors["b"]["name"] == "JobError"


def test_async_operation_errors_are_classified_too() -> None:
    async def fails(state: State) -> State:
        raise IndexError("gone")

    record = run_one(fails)["errors"]["a"]
    assert record["name"] == "RuntimeError"
    assert record["subtype"] == "IndexError"
    assert record["message"] == "IndexError: gone"


LANGUAGE_TEST = Path(__file__).parent / "fixtures" / "adaptors" / "language_test"


def run_with_language_test(source: str) -> dict[str, Any]:
    """The error record of step ``job-1`` running ``source`` with the adaptor ``x``."""
    result = statefn.run(source, linker={"modules": {"x": {"path": str(LANGUAGE_TEST)}}})
    record: dict[str, Any] = result["errors"]["job-1"]
    return record


def test_adaptor_error_from_an_operation_points_at_the_job_line_that_made_it() -> None:
    record = run_with_language_test("from x import err\n\nerr()\n")
    assert record == {
        "source": "runtime",
        "name": "AdaptorError",
        "severity": "fail",
        "message": "adaptor err",
        "subtype": "CodedError",
        "details": {"code": 1234, "message": "adaptor err"},
        "pos": {"line": 3, "column": 1, "src": "err()"},
    }


def test_adaptor_error_inside_job_code_points_at_the_calling_line() -> None:
    source = "from x import err\n\n@fn\nasync def f(state):\n    return await err()(state)\n"
    record = run_with_language_test(source)
    assert record["message"] == "adaptor err"
    assert record["details"] == {"code": 1234, "message": "adaptor err"}
    assert record["pos"] == {"line": 5, "column": 12, "src": "    return await err()(state)"}


@pytest.mark.parametrize(
    ("cls", "name", "severity"),
    [
        (statefn.ValidationError, "ValidationError", "crash"),
        (statefn.CompileError, "CompileError", "crash"),
        (statefn.JobRuntimeError, "RuntimeError", "fail"),
        (statefn.RuntimeCrash, "RuntimeCrash", "crash"),
        (statefn.JobError, "JobError", "fail"),
        (statefn.AdaptorError, "AdaptorError", "fail"),
        (statefn.AdaptorImportError, "ImportError", "crash"),
        (statefn.SecurityError, "SecurityError", "kill"),
        (statefn.StepTimeoutError, "TimeoutError", "kill"),
        (statefn.StateTooLargeError, "StateTooLargeError", "kill"),
        (statefn.EdgeConditionError, "EdgeConditionError", "crash"),
        (statefn.InputError, "InputError", "crash"),
    ],
)
def test_each_error_type_has_its_type_string_and_severity(
    cls: type[statefn.StatefnError], name: str, severity: str
) -> None:
    assert issubclass(cls, statefn.StatefnError)
    assert cls.name == name
    assert cls.severity == severity


def test_raised_error_carries_its_record() -> None:
    with pytest.raises(statefn.StatefnError) as caught:
        run_one(raising(NameError("name 'y' is not defined")))
    error = caught.value
    assert error.to_dict() == {
        "source": "runtime",
        "name": "RuntimeCrash",
        "severity": "crash",
        "message": "NameError: name 'y' is not defined",
        "subtype": "NameError",
        **{k: v for k, v in error.to_dict().items() if k in {"details", "pos", "fix"}},
    }


def test_input_error_is_a_statefn_error() -> None:
    with pytest.raises(statefn.StatefnError) as caught:
        run_one(lambda s: s, timeout_ms="soon")
    assert isinstance(caught.value, statefn.InputError)
    assert caught.value.to_dict()["name"] == "InputError"


def test_record_of_an_error_in_job_source_has_its_position() -> None:
    source = "x = 1\nfn(lambda state: state)\nfn(lambda state: state['data']['missing'])\n"
    record = statefn.run(source)["errors"]["job-1"]
    assert_record_shape(record)
    assert record["name"] == "RuntimeError"
    assert record["message"] == "KeyError: 'missing'"
    assert record["pos"]["line"] == 3
    assert record["pos"]["src"] == "fn(lambda state: state['data']['missing'])"


def test_standard_library_error_inside_an_operation_is_a_job_runtime_error() -> None:
    def parse(state: State) -> State:
        return {"data": json.loads("not json")}

    record = run_one(parse)["errors"]["a"]
    assert record["name"] == "RuntimeError"
    assert record["subtype"] == "JSONDecodeError"
    assert record["message"].startswith("JSONDecodeError: Expecting value")


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise ValueError("cannot print me")


def test_exception_whose_str_raises_is_still_a_job_error() -> None:
    def raise_unprintable(state: State) -> State:
        raise UnprintableError()

    plan = {"workflow": {"steps": [{"id": "a", "expression": [raise_unprintable]}]}}
    record = statefn.run(plan)["errors"]["a"]
    assert record["name"] == "JobError"
    assert record["severity"] == "fail"
    assert record["message"] == "UnprintableError()"
