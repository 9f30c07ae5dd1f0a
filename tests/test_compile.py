"""The job compiler: operations, load-time rules, diagnostics, globals, caching."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import Any

import pytest

import statefn
from statefn import AdaptorImportError, CompileError, SecurityError
from statefn._compile import (
    JOB_FILENAME_PREFIX,
    CompiledJob,
    JobEnvironment,
    compile_globals,
    compile_job,
    load_globals,
    load_job,
)
from statefn._jobscope import ListSink
from statefn.adaptor import operation
from statefn.cli import main


@operation
def fn(func: Any) -> Any:
    return func


@operation
def set_key(key: str, value: Any) -> Any:
    def run(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, key: value(state) if callable(value) else value}

    return run


@operation
def when(condition: bool) -> Any:
    def decorate(func: Any) -> Any:
        return lambda state: func(state) if condition else state

    return decorate


class FakeAdaptor:
    """What ``import_adaptor`` returns: an object whose attributes are the exports."""

    def __init__(self, **exports: Any) -> None:
        vars(self).update(exports)


def environment(**names: Any) -> JobEnvironment:
    adaptors = {"fake": FakeAdaptor(set_key=set_key)}

    def import_adaptor(name: str) -> Any:
        if name not in adaptors:
            raise AdaptorImportError(f"adaptor '{name}' not found")
        return adaptors[name]

    return JobEnvironment(
        names={"fn": fn, "set_key": set_key, "when": when, **names},
        import_adaptor=import_adaptor,
        console=ListSink(),
        step_id="job",
    )


def run_job(source: str, state: dict[str, Any] | None = None, **names: Any) -> dict[str, Any]:
    result: dict[str, Any] = state or {}
    for op in load_job(compile_job(source), environment(**names)):
        result = op(result)
    return result


def test_top_level_expressions_run_as_operations_in_source_order() -> None:
    source = "set_key('a', 1)\nfn(lambda s: {**s, 'b': s['a'] + 1})\nset_key('c', 3)"
    assert run_job(source) == {"a": 1, "b": 2, "c": 3}


def test_compiled_job_lists_each_operation_with_index_line_and_source() -> None:
    source = '"""Doc."""\nx = 1\nset_key("a", x)\n\n@fn\ndef double(state):\n    return state\n'
    job = compile_job(source)
    assert [op.to_dict() for op in job.operations] == [
        {"index": 0, "line": 3, "source": 'set_key("a", x)'},
        {"index": 1, "line": 5, "source": "@fn\ndef double(state):\n    return state"},
    ]


def test_multiline_operation_source_spans_its_lines() -> None:
    job = compile_job("fn(\n    lambda s: s\n)\n")
    assert job.operations[0].source == "fn(\n    lambda s: s\n)"


def test_lone_string_literal_is_not_an_operation() -> None:
    job = compile_job('"""A job that does nothing."""\n"another note"\n')
    assert job.operations == []
    assert load_job(job, environment()) == []


NOT_AN_OPERATION = (
    "this top-level expression makes {what}, not an operation: each top-level expression "
    "must make an operation, such as fn(lambda state: state); to compute a value once, "
    "assign it to a name; to print or log as the job runs, do it inside an operation"
)


def test_top_level_value_that_is_not_callable_is_a_compile_error_naming_its_line() -> None:
    with pytest.raises(CompileError) as caught:
        load_job(compile_job("total = 2\nset_key('a', 1)\n  \ntotal\n"), environment())
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.src) == (4, 1, "total")
    assert problem.message == NOT_AN_OPERATION.format(what="a value of type 'int'")


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("print('loaded')", "the result of the built-in print()"),
        ("len([1, 2])", "the result of the built-in len()"),
        ("1 + 1", "a computed value"),
        ("not (2 > 1)", "a computed value"),
        ("42", "a value of type 'int'"),
        ("[fn(lambda state: state)]", "a list"),
        ("f'{1}'", "a string"),
    ],
)
def test_top_level_expression_that_cannot_be_an_operation_fails_to_compile(
    source: str, what: str
) -> None:
    with pytest.raises(CompileError) as caught:
        compile_job(f"fn(lambda state: state)\n{source}\n")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.src) == (2, 1, source)
    assert problem.message == NOT_AN_OPERATION.format(what=what)


def test_built_in_name_the_job_rebinds_may_make_an_operation() -> None:
    job = compile_job("def len(value):\n    return fn(lambda state: state)\nlen(1)\n")
    assert [operation.source for operation in job.operations] == ["len(1)"]


def test_uncalled_operation_factory_is_a_compile_error() -> None:
    with pytest.raises(CompileError) as caught:
        load_job(compile_job("fn"), environment())
    assert caught.value.problems[0].message == ("'fn' makes operations: call it, e.g. fn(...)")


def test_def_decorated_with_a_factory_is_an_operation_at_its_place() -> None:
    source = (
        "set_key('order', [])\n"
        "@fn\n"
        "def second(state):\n"
        "    return {**state, 'order': state['order'] + ['def']}\n"
        "fn(lambda s: {**s, 'order': s['order'] + ['after']})\n"
    )
    assert run_job(source) == {"order": ["def", "after"]}


def test_def_decorated_with_a_call_of_a_factory_is_an_operation() -> None:
    source = (
        "@when(True)\ndef yes(state):\n    return {**state, 'yes': 1}\n"
        "@when(False)\ndef no(state):\n    return {**state, 'no': 1}\n"
    )
    assert run_job(source) == {"yes": 1}


def test_def_with_a_plain_decorator_is_an_ordinary_function() -> None:
    source = (
        "def twice(f):\n    return lambda x: f(f(x))\n"
        "@twice\ndef inc(x):\n    return x + 1\n"
        "fn(lambda s: {**s, 'n': inc(0)})\n"
    )
    job = compile_job(source)
    assert len(load_job(job, environment())) == 1
    assert run_job(source) == {"n": 2}


def test_async_def_with_a_factory_is_an_async_operation() -> None:
    ops = load_job(
        compile_job("@fn\nasync def slow(state):\n    return {**state, 'done': True}"),
        environment(),
    )
    assert asyncio.run(ops[0]({})) == {"done": True}


def test_other_top_level_statements_run_once_at_load() -> None:
    env = environment()
    source = (
        "for word in ['loading']:\n    print(word)\nfn(lambda s: s)\nif True:\n    print('loaded')"
    )
    ops = load_job(compile_job(source), env)
    assert len(ops) == 1
    assert env.console.lines == [("info", "loading"), ("info", "loaded")]  # type: ignore[attr-defined]


def test_module_variables_of_one_load_are_not_seen_by_another() -> None:
    source = (
        "counter = [0]\n@fn\ndef count(state):\n    counter[0] += 1\n    return {'n': counter[0]}\n"
    )
    job = compile_job(source)
    first = load_job(job, environment())
    second = load_job(job, environment())
    assert first[0]({}) == {"n": 1}
    assert first[0]({}) == {"n": 2}
    assert second[0]({}) == {"n": 1}


def test_environment_names_are_free_names_of_the_job() -> None:
    assert run_job("fn(lambda s: {**s, 'x': base + 1})", base=41) == {"x": 42}


def test_lazy_state_reference_is_in_scope() -> None:
    state = {"data": {"items": [{"id": 7}]}}
    assert run_job("set_key('id', S.data.items[0].id)", state)["id"] == 7


def test_import_of_an_adaptor_goes_through_the_environment() -> None:
    assert run_job("import fake\nfake.set_key('a', 1)") == {"a": 1}
    assert run_job("from fake import set_key as put\nput('b', 2)") == {"b": 2}


def test_missing_name_from_an_adaptor_is_an_import_error() -> None:
    with pytest.raises(AdaptorImportError, match="cannot import name 'nothing' from 'fake'"):
        load_job(compile_job("from fake import nothing"), environment())


def test_allowed_standard_library_modules_are_importable() -> None:
    source = (
        "import json, math\nfrom datetime import date\nimport hashlib as h\n"
        "fn(lambda s: {**s, 'x': json.dumps([math.floor(2.5), date(2020, 1, 2).isoformat(),"
        " h.sha1(b'').hexdigest()[:4]])})"
    )
    assert run_job(source) == {"x": '[2, "2020-01-02", "da39"]'}


def test_standard_library_name_is_importable_when_declared_as_adaptor() -> None:
    job = compile_job("import email\nemail.send()", ["email@1.0.0"])
    assert job.adaptors == ("email@1.0.0",)
    with pytest.raises(CompileError, match="import of 'email' is not allowed"):
        compile_job("import email\nemail.send()")


def test_installed_adaptor_with_a_standard_library_name_is_importable() -> None:
    assert compile_job("import http\nhttp.get('/x')").operations[0].line == 2


def test_every_problem_is_listed_in_one_compile_error_with_positions() -> None:
    source = "a = _x\nb = eval\nc = 'x'.__len__\n"
    with pytest.raises(CompileError) as caught:
        compile_job(source)
    error = caught.value
    assert [(p.line, p.column, p.src) for p in error.problems] == [
        (1, 5, "a = _x"),
        (2, 5, "b = eval"),
        (3, 9, "c = 'x'.__len__"),
    ]
    assert error.pos == {"line": 1, "column": 5, "src": "a = _x"}
    assert error.message.startswith("3 problems: line 1, column 5: name '_x' is not allowed")


def test_a_job_with_thousands_of_problems_lists_the_first_fifty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "x = [" + ",".join(["_a"] * 3000) + "]\n"  # one line of 15 kB, 3000 problems
    with pytest.raises(CompileError) as caught:
        compile_job(source)
    error = caught.value
    assert len(error.problems) == CompileError.PROBLEMS_KEPT == 50
    assert error.message.startswith("3000 problems: line 1, column 6: name '_a' is not allowed")
    assert error.message.endswith("; and 2950 more")
    assert error.details is not None and error.details["problems_not_listed"] == 2950
    (tmp_path / "many.py").write_text(source)
    assert main(["compile", str(tmp_path / "many.py")]) == 3
    report = capsys.readouterr().err
    assert report.rstrip().endswith("... and 2950 more problems")
    assert len(report) < 20_000  # each problem shows a window of its line, not all 15 kB
    assert "\n    x = [_a,_a," in report and "\n    …" in report


def test_columns_count_characters_not_bytes() -> None:
    with pytest.raises(CompileError) as caught:
        compile_job("x = 'é' + y.__class__")
    assert caught.value.problems[0].column == 13


def test_syntax_error_is_a_compile_error_with_its_position() -> None:
    with pytest.raises(CompileError) as caught:
        compile_job("fn(lambda s: s)\nfn(lambda s: )\n")
    (problem,) = caught.value.problems
    assert (problem.line, problem.message) == (2, "SyntaxError: invalid syntax")


def test_code_that_parses_but_cannot_compile_is_a_compile_error() -> None:
    with pytest.raises(CompileError) as caught:
        compile_job("x = 1\nreturn x\n")
    (problem,) = caught.value.problems
    assert (problem.line, problem.message) == (2, "SyntaxError: 'return' outside function")


def test_filename_marks_job_frames_and_is_unique_per_source() -> None:
    first, second = compile_job("fn(lambda s: s)"), compile_job("fn(lambda s: {})")
    assert first.filename.startswith(JOB_FILENAME_PREFIX)
    assert first.filename != second.filename
    assert first.filename == compile_job("fn(lambda s: s)").filename


def test_second_compile_of_the_same_source_is_served_from_the_cache() -> None:
    source = "fn(lambda s: {'cached': True})"
    assert compile_job(source) is compile_job(source)


def test_line_numbers_of_job_frames_are_those_of_the_source() -> None:
    source = "x = 1\n\n@fn\ndef boom(state):\n    y = 2\n    return state['missing']\n"
    job = compile_job(source)
    (op,) = load_job(job, environment())
    with pytest.raises(KeyError) as caught:
        op({})
    frames = [f for f in traceback.extract_tb(caught.tb) if f.filename == job.filename]
    assert [f.lineno for f in frames] == [6]
    assert job.source_lines[5] == "    return state['missing']"


def test_compiled_job_to_dict_is_json_friendly() -> None:
    job = compile_job("set_key('a', 1)", ["fake@1.0.0"])
    assert isinstance(job, CompiledJob)
    assert job.to_dict() == {
        "filename": job.filename,
        "adaptors": ["fake@1.0.0"],
        "operations": [{"index": 0, "line": 1, "source": "set_key('a', 1)"}],
    }


def test_security_error_caught_by_the_job_is_still_raised_at_load() -> None:
    env = environment()
    with pytest.raises(SecurityError, match="setting attribute 'x' of type 'int'"):
        load_job(compile_job("try:\n    int.x = 1\nexcept Exception:\n    pass"), env)
    assert len(env.violations) == 1


def test_security_error_caught_inside_an_operation_is_kept_for_the_runner() -> None:
    source = "@fn\ndef sneaky(state):\n    try:\n        fn.x = 1\n    except Exception:\n        pass\n    return state\n"
    env = environment()
    (op,) = load_job(compile_job(source), env)
    assert op({}) == {}
    assert [error.message.split(":")[0] for error in env.violations] == [
        "setting attribute 'x' of function 'fn' is not allowed"
    ]


def test_globals_return_the_names_they_define_not_those_they_were_given() -> None:
    source = "RATE = 2\ndef scale(x):\n    return x * RATE\nprint('globals loaded')\n"
    env = environment()
    names = load_globals(compile_globals(source), env)
    assert sorted(names) == ["RATE", "scale"]
    assert names["scale"](3) == 6
    assert env.console.lines == [("info", "globals loaded")]  # type: ignore[attr-defined]


def test_globals_follow_the_job_rules() -> None:
    with pytest.raises(CompileError, match="'open' is not allowed in job code"):
        compile_globals("f = open")


def test_globals_frames_are_recognised_as_job_frames() -> None:
    assert compile_globals("X = 1").filename.startswith(JOB_FILENAME_PREFIX)


def test_globals_names_are_usable_in_a_job() -> None:
    names = load_globals(compile_globals("def greet(n):\n    return 'hi ' + n\n"), environment())
    assert run_job("fn(lambda s: {'g': greet('ann')})", **names) == {"g": "hi ann"}


COUNTS_CALLS = """
calls = []
secret = 42

@fn
def record(state):
    calls.append(1)
    return {**state, "data": {**state["data"], "calls": state["data"].get("calls", []) + [len(calls)]}}
"""

PEEKS = """
@fn
def peek(state):
    try:
        seen = secret
    except NameError:
        seen = None
    return {**state, "seen": seen}
"""


def test_module_level_variables_are_fresh_for_each_step_and_each_run() -> None:
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": COUNTS_CALLS, "next": "b"},
                {"id": "b", "expression": COUNTS_CALLS, "next": "c"},
                {"id": "c", "expression": PEEKS},
            ]
        }
    }
    first = statefn.run(plan)
    second = statefn.run(plan)
    # Each step's job mutated a list of its own: neither the other step nor the earlier run
    # left anything in it, and the third job cannot see the others' names.
    assert first["data"]["calls"] == [1, 1]
    assert second["data"]["calls"] == [1, 1]
    assert first["seen"] is None
