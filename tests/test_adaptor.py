"""The adaptor kit (``statefn.adaptor``) and an adaptor project installed into a repo."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from statefn import adaptor
from statefn.adaptor import (
    AdaptorError,
    adaptor_error,
    compose_next_state,
    is_operation_factory,
    json_safe,
    log_line,
    operation,
    resolve,
    run_resource,
    step_console,
)

EXAMPLE = Path(__file__).parent.parent / "examples" / "adaptor-greet"


class RecordingConsole:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, message: str, values: tuple[object, ...] = ()) -> None:
        self.lines.append((level, message))


def test_kit_all_is_sorted_and_every_name_is_documented() -> None:
    assert adaptor.__all__ == sorted(adaptor.__all__)
    for name in adaptor.__all__:
        assert hasattr(adaptor, name), name
    for name in ("operation", "resolve", "compose_next_state", "adaptor_error", "log_line"):
        assert getattr(adaptor, name).__doc__, name


def test_operation_marks_a_factory_and_keeps_its_name_and_doc() -> None:
    @operation
    def double(path: str) -> Any:
        """Double the value at path."""
        return lambda state: {**state, path: state[path] * 2}

    assert is_operation_factory(double)
    assert double.__name__ == "double"
    assert double.__doc__ == "Double the value at path."
    assert double("n")({"n": 2}) == {"n": 4}
    assert not is_operation_factory(lambda: None)
    assert not is_operation_factory("operation")


def test_resolve_calls_lazy_values_inside_lists_and_dicts() -> None:
    state = {"data": {"id": 7, "tags": ["a"]}}
    value = {"id": lambda s: s["data"]["id"], "more": [1, (lambda s: s["data"]["tags"], "x")]}
    assert resolve(value, state) == {"id": 7, "more": [1, [["a"], "x"]]}
    assert resolve("plain", state) == "plain"


def test_resolve_returns_new_containers() -> None:
    original = {"a": [1, 2]}
    resolved = resolve(original, {})
    resolved["a"].append(3)
    assert original == {"a": [1, 2]}


def test_compose_next_state_moves_data_to_references_without_mutating() -> None:
    state = {"data": {"page": 1}, "references": [{"page": 0}], "cursor": 3}
    assert compose_next_state(state, [1, 2]) == {
        "data": [1, 2],
        "references": [{"page": 0}, {"page": 1}],
        "cursor": 3,
    }
    assert state == {"data": {"page": 1}, "references": [{"page": 0}], "cursor": 3}
    assert compose_next_state({}, "x") == {"data": "x", "references": []}


def test_json_safe_keeps_json_and_describes_the_rest() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    value = {"b": b"ok", 1: (1, 2), "set": {3}, "nan": float("nan"), "loop": loop, "n": None}
    assert json_safe(value) == {
        "b": "ok",
        "1": [1, 2],
        "set": "{3}",
        "nan": "nan",
        "loop": [1, "[Circular]"],
        "n": None,
    }


def test_json_safe_repeats_a_shared_value_that_is_not_circular() -> None:
    shared = {"x": 1}
    assert json_safe([shared, shared]) == [{"x": 1}, {"x": 1}]


def test_adaptor_error_carries_json_safe_details_and_fix() -> None:
    error = adaptor_error("Not found", fix="Check the id", status=404, body=b"missing")
    assert isinstance(error, AdaptorError)
    assert error.to_dict() == {
        "source": "runtime",
        "name": "AdaptorError",
        "severity": "fail",
        "message": "Not found",
        "details": {"status": 404, "body": "missing"},
        "fix": "Check the id",
    }
    assert adaptor_error("plain").details is None


def test_log_line_writes_to_the_step_console_when_set() -> None:
    console = RecordingConsole()
    token = step_console.set(console)
    try:
        log_line("warn", "careful")
    finally:
        step_console.reset(token)
    assert console.lines == [("warn", "careful")]


def test_log_line_falls_back_to_the_job_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="statefn.job"):
        log_line("error", "broken")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("statefn.job", logging.ERROR, "broken")
    ]


def test_step_console_follows_the_context_into_async_operations() -> None:
    console = RecordingConsole()

    async def step() -> None:
        step_console.set(console)
        await asyncio.to_thread(log_line, "info", "from a thread")

    asyncio.run(step())
    assert console.lines == [("info", "from a thread")]
    assert step_console.get() is None


def test_run_resource_outside_a_run_makes_a_new_object_each_time() -> None:
    assert run_resource("k", list) is not run_resource("k", list)


# An adaptor project installed into a repo


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    # Build with the venv's setuptools and wheel, and never reach a package index.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")


@pytest.fixture
def greet_repo(tmp_path: Path, offline_pip: None) -> Path:
    from statefn._repo import install

    # A copy: building writes build/ and *.egg-info next to the sources.
    project = shutil.copytree(EXAMPLE, tmp_path / "adaptor-greet")
    repo = tmp_path / "repo"
    entry = install(str(project), repo)
    assert (entry.name, entry.version) == ("greet", "0.1.0")
    return repo


def test_example_adaptor_installs_and_links_from_the_repo(greet_repo: Path) -> None:
    from statefn._linker import Linker

    linked = Linker(repo=greet_repo).load("greet@0.1.0")
    assert (linked.name, linked.version, linked.source) == ("greet", "0.1.0", "repo")
    assert list(linked.exports) == ["greet"]
    greet = linked.exports["greet"]
    assert is_operation_factory(greet)
    assert greet("Ada")({"data": {}})["data"] == {"greeting": "Hello, Ada!"}


def test_example_adaptor_runs_in_a_workflow_from_the_repo(greet_repo: Path) -> None:
    import statefn

    events: list[tuple[str, dict[str, Any]]] = []
    plan = {
        "workflow": {
            "steps": [
                {"id": "hello", "adaptors": ["greet@0.1.0"], "expression": "greet(S.data.name)"}
            ]
        }
    }
    result = statefn.run(
        plan,
        {"data": {"name": "Ada"}},
        linker={"repo": str(greet_repo)},
        on_event=lambda name, payload: events.append((name, payload)),
    )
    assert result["data"] == {"greeting": "Hello, Ada!"}
    assert [p["message"] for name, p in events if name == "log"] == ["Hello, Ada!"]
