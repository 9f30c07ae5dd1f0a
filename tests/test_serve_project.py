"""The project folder of ``statefn serve``: which files are workflows, their names, errors,
triggers, and reloading when files change."""

from __future__ import annotations

import json
import os
from pathlib import Path

from statefn.serve import Project, Trigger

FLOW = {
    "workflow": {
        "name": "orders",
        "steps": [
            {"id": "hook", "webhook": True, "cron": "0 * * * *", "next": "work"},
            {"id": "work", "expression": "./work.py"},
        ],
    }
}


def write(path: Path, text: str) -> None:
    """Write ``text`` with a modification time unlike the file's last (polling sees it)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def project(tmp_path: Path) -> Project:
    write(tmp_path / "orders.json", json.dumps(FLOW))
    write(tmp_path / "work.py", "fn(lambda state: state)\n")
    write(tmp_path / "state.json", json.dumps({"data": {"n": 1}}))
    return Project(tmp_path)


def test_workflow_files_are_found_and_other_data_files_left_alone(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / ".hidden").mkdir()
    write(tmp_path / "nested" / "bare.yaml", "steps:\n  - id: only\n    expression: fn(lambda s: s)\n")
    write(tmp_path / ".hidden" / "skipped.json", json.dumps(FLOW))
    found = project(tmp_path)
    assert [(w.name, w.file.as_posix()) for w in found.workflows] == [
        ("bare", "nested/bare.yaml"),
        ("orders", "orders.json"),
    ]
    orders = found.get("orders")
    assert orders is not None and orders.valid
    assert orders.triggers == [Trigger("hook", webhook=True, cron="0 * * * *")]
    assert orders.steps[1]["expression"] == "fn(lambda state: state)\n"  # the job file, read in


def test_a_changed_job_file_is_picked_up(tmp_path: Path) -> None:
    found = project(tmp_path)
    assert not found.refresh()  # nothing changed
    write(tmp_path / "work.py", "fn(lambda state: {**state, 'changed': True})\n")
    assert found.refresh()
    orders = found.get("orders")
    assert orders is not None
    assert "changed" in orders.run_plan()["workflow"]["steps"][1]["expression"]


def test_a_file_that_stops_validating_keeps_its_name_and_pauses_its_triggers(
    tmp_path: Path,
) -> None:
    found = project(tmp_path)
    write(tmp_path / "orders.json", '{"workflow": {"name": "orders", "steps": [')
    found.refresh()
    broken = found.get("orders")
    assert broken is not None and not broken.valid
    assert broken.triggers == []
    assert broken.errors[0].startswith("orders.json:1:")  # where the JSON broke


def test_a_job_that_does_not_compile_is_an_error_with_its_file_and_line(tmp_path: Path) -> None:
    found = project(tmp_path)
    write(tmp_path / "work.py", "fn(lambda state:\n")
    found.refresh()
    orders = found.get("orders")
    assert orders is not None and not orders.valid
    assert orders.errors[0].startswith("work.py:1:")


def test_two_files_with_one_name_the_second_is_an_error(tmp_path: Path) -> None:
    found = project(tmp_path)
    write(tmp_path / "z-copy.json", json.dumps(FLOW))
    found.refresh()
    copy = found.get("z-copy.json")
    assert copy is not None and not copy.valid
    assert copy.errors == [
        "the name 'orders' is taken by orders.json: give this workflow another workflow.name"
    ]


def test_a_removed_file_is_no_longer_served(tmp_path: Path) -> None:
    found = project(tmp_path)
    (tmp_path / "orders.json").unlink()
    assert found.refresh()
    assert found.workflows == []


def test_the_run_plan_is_named_after_the_workflow_and_starts_where_asked(tmp_path: Path) -> None:
    write(tmp_path / "unnamed.json", json.dumps({"workflow": {"steps": FLOW["workflow"]["steps"]}}))
    write(tmp_path / "work.py", "fn(lambda state: state)\n")
    workflow = Project(tmp_path).get("unnamed")
    assert workflow is not None
    plan = workflow.run_plan("work")
    assert plan["workflow"]["name"] == "unnamed"
    assert plan["options"] == {"start": "work"}
    assert workflow.run_plan("work") is plan  # made once per start step
