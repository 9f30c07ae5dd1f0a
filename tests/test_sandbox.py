"""The sandbox: standard-library views, guards, built-ins, output, edge conditions, ``S``."""

from __future__ import annotations

import ast
import copy

import pytest

from statefn import CompileError, SecurityError
from statefn._jobscope import (
    JobGuards,
    JobLogger,
    ListSink,
    job_builtins,
    module_view,
)
from statefn._lazy import S, StatePath
from statefn._sandbox import ALLOWED_MODULES, compile_expression, restrict, split_lines

# -- standard-library views ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALLOWED_MODULES))
def test_module_view_has_no_submodules_or_private_names(name: str) -> None:
    view = module_view(name)
    assert dir(view)
    for attr in dir(view):
        assert not attr.startswith("_")
        assert type(getattr(view, attr)).__name__ != "module"


def test_module_view_works_like_the_module() -> None:
    json = module_view("json")
    assert json.loads(json.dumps({"a": [1]})) == {"a": [1]}


@pytest.mark.parametrize(
    ("module", "attr"),
    [
        ("json", "decoder"),
        ("uuid", "os"),
        ("re", "enum"),
        ("collections", "abc"),
        ("string", "Formatter"),
        ("time", "sleep"),
        ("time", "clock_settime"),
        ("uuid", "getnode"),
        ("zoneinfo", "reset_tzpath"),
    ],
)
def test_module_view_hides_submodules_and_outside_reaching_attributes(
    module: str, attr: str
) -> None:
    with pytest.raises(AttributeError, match=f"module '{module}' has no attribute '{attr}'"):
        getattr(module_view(module), attr)


def test_module_view_says_the_sandbox_removed_a_hidden_attribute() -> None:
    with pytest.raises(AttributeError) as caught:
        module_view("time").sleep  # noqa: B018
    assert str(caught.value) == (
        "module 'time' has no attribute 'sleep': the sandbox removes it from jobs"
    )


def test_module_view_is_read_only() -> None:
    view = module_view("math")
    with pytest.raises(SecurityError, match="setting attribute 'pi' of module 'math'"):
        view.pi = 3  # type: ignore[misc]
    with pytest.raises(SecurityError, match="deleting attribute 'pi' of module 'math'"):
        del view.pi
    assert view.pi == pytest.approx(3.14159, rel=1e-5)


def test_module_view_freezes_shared_containers() -> None:
    assert isinstance(module_view("hashlib").algorithms_available, frozenset)


# -- attribute writes ----------------------------------------------------------------------


def test_guard_allows_writes_on_classes_the_job_defined_and_their_instances() -> None:
    guards = JobGuards([])
    box = guards.build_class(lambda: None, "Box")
    instance = box()
    assert guards.write(instance, "x") is instance
    assert guards.write(box, "y") is box
    assert guards.violations == []


def test_guard_refuses_writes_on_other_objects_and_records_them() -> None:
    violations: list[SecurityError] = []
    guards = JobGuards(violations)
    with pytest.raises(SecurityError) as caught:
        guards.write(len, "x")
    assert caught.value.message == (
        "setting attribute 'x' of function 'len' is not allowed: job code may only set "
        "attributes of objects whose class it defines"
    )
    assert violations == [caught.value]


def test_classes_of_another_load_are_not_writable() -> None:
    box = JobGuards([]).build_class(lambda: None, "Box")
    with pytest.raises(SecurityError):
        JobGuards([]).write(box(), "x")


def test_type_gives_the_type_of_one_value_only() -> None:
    guards = JobGuards([])
    assert guards.type_of(1) is int
    with pytest.raises(SecurityError, match="type\\(\\) with three arguments"):
        guards.type_of("X", (), {})


def test_type_never_hands_out_a_metaclass() -> None:
    with pytest.raises(SecurityError, match="type\\(\\) of a class is not allowed"):
        JobGuards([]).type_of(int)


def test_a_class_cannot_derive_from_a_metaclass() -> None:
    guards = JobGuards([])
    with pytest.raises(SecurityError, match="deriving from a metaclass"):
        guards.build_class(lambda: None, "Meta", type)
    assert len(guards.violations) == 1


def test_match_class_guard_checks_the_names_of_match_args() -> None:
    class Frameish:
        __match_args__ = ("real", "f_back")

    class Plain:
        __match_args__ = ("real",)

    guards = JobGuards([])
    assert guards.match_class(Plain) is Plain
    assert guards.match_class(int) is int
    with pytest.raises(SecurityError, match="attribute 'f_back' is not allowed"):
        guards.match_class(Frameish)


# -- built-ins and output ------------------------------------------------------------------


def test_job_builtins_leave_out_the_dangerous_ones() -> None:
    names = job_builtins(JobGuards([]), ListSink())
    for name in ["open", "eval", "exec", "compile", "getattr", "vars", "__import__", "input"]:
        assert name not in names
    assert "KeyboardInterrupt" not in names
    assert names["ValueError"] is ValueError
    assert names["len"] is len


def test_print_goes_to_the_job_log_with_sep_and_end() -> None:
    sink = ListSink()
    printer = job_builtins(JobGuards([]), sink)["print"]
    printer("a", 1, None)
    printer("a", "b", sep="-", end="!")
    printer()
    assert sink.lines == [("info", "a 1 None"), ("info", "a-b!"), ("info", "")]


def test_console_logs_at_levels() -> None:
    sink = ListSink()
    console = JobLogger(sink)
    console.log("l", 1)
    console.debug("d")
    console.info("i")
    console.warn("w")
    console.warning("w2")
    console.error("e", "f", sep="+")
    assert sink.lines == [
        ("info", "l 1"),
        ("debug", "d"),
        ("info", "i"),
        ("warn", "w"),
        ("warn", "w2"),
        ("error", "e+f"),
    ]


# -- the policy pass -----------------------------------------------------------------------


def test_policy_rejects_node_types_outside_the_allow_list() -> None:
    tree = ast.parse("x = 1")
    tree.body.append(ast.Interactive(body=[]))  # not a node job code can contain
    problems = restrict(tree, split_lines("x = 1"), frozenset())
    assert [p.message for p in problems] == ["Interactive syntax is not allowed in job code"]


def test_global_and_nonlocal_are_allowed() -> None:
    source = "n = 0\ndef f():\n    global n\n    def g():\n        nonlocal m\n    m = 1\n"
    assert restrict(ast.parse(source), split_lines(source), frozenset()) == []


# -- edge conditions -----------------------------------------------------------------------


def test_expression_evaluates_with_the_given_names() -> None:
    condition = compile_expression("len(state['data']) > 0", "<edge a->b>")
    assert condition.evaluate({"state": {"data": [1]}}) is True
    assert condition.evaluate({"state": {"data": []}}) is False


def test_expression_follows_the_job_rules() -> None:
    with pytest.raises(CompileError) as caught:
        compile_expression("state.__class__ and open('x')", "<edge a->b>")
    assert [p.message for p in caught.value.problems] == [
        "attribute '__class__' is not allowed: attributes beginning with '_' are reserved",
        "'open' is not allowed in job code",
    ]


def test_expression_must_be_one_expression() -> None:
    with pytest.raises(CompileError, match="SyntaxError"):
        compile_expression("x = 1", "<edge a->b>")


def test_expression_guards_format_at_run_time() -> None:
    condition = compile_expression("state['t'].format(1) == ''", "<edge a->b>")
    with pytest.raises(SecurityError):
        condition.evaluate({"state": {"t": "{0.real}"}})


def test_expression_has_no_print() -> None:
    with pytest.raises(NameError):
        compile_expression("print(1)", "<edge a->b>").evaluate({})


def test_expression_keeps_its_source_and_filename() -> None:
    condition = compile_expression(" upstream_step_id == 'a' ", "<edge a->b>")
    assert (condition.source, condition.filename) == (" upstream_step_id == 'a' ", "<edge a->b>")
    assert condition.evaluate({"upstream_step_id": "a"}) is True


# -- lazy state references -----------------------------------------------------------------


def test_state_path_reads_keys_and_indexes() -> None:
    state = {"data": {"items": [{"id": 7}], "my key": 1}}
    assert S.data.items[0].id(state) == 7
    assert S.data["my key"](state) == 1
    assert S(state) is state


def test_state_path_has_a_readable_repr() -> None:
    assert repr(S.data.items[0].id) == "S.data.items[0].id"
    assert repr(S.data["my key"]["class"]["_id"]) == "S.data['my key']['class']['_id']"
    assert repr(S) == "S"


def test_state_path_is_an_immutable_value() -> None:
    path = S.data.id
    assert path == S.data.id
    assert hash(path) == hash(S.data.id)
    assert copy.deepcopy(path) == path
    with pytest.raises(AttributeError):
        path.other = 1  # type: ignore[misc]


def test_state_path_does_not_answer_private_names() -> None:
    with pytest.raises(AttributeError):
        S.data._private  # noqa: B018
    assert isinstance(S.data, StatePath)
