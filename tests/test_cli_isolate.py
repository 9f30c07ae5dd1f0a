"""``statefn run --isolate`` and ``--ledger``: the same output and exit codes as a plain run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statefn.cli import main

pytestmark = pytest.mark.timeout(90)


def write_job(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(source)
    return path


def test_cli_run_ledger_prints_the_id_and_runs_show_finds_it(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = write_job(tmp_path, "fn(lambda state: {**state, 'done': True})\n")
    assert main(["run", str(job), "--ledger", ledger_url]) == 0
    err = capsys.readouterr().err
    run_id = err.split("Recording run ", 1)[1].split()[0]
    assert main(["runs", "show", run_id[:8], "--ledger", ledger_url]) == 0
    assert "success" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--log", "none"], ["--log", "warn", "--isolate"]])
def test_cli_run_ledger_prints_the_id_whatever_the_log_level(
    flags: list[str], ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = write_job(tmp_path, "fn(lambda state: state)\n")
    assert main(["run", str(job), "--ledger", ledger_url, *flags]) == 0
    [line] = capsys.readouterr().err.splitlines()
    run_id = line.split("Recording run ", 1)[1].split()[0]
    assert main(["runs", "show", run_id, "--ledger", ledger_url]) == 0


DEEP_JOB = """\
def deep(state):
    top = inner = []
    for _ in range(300):
        inner.append([])
        inner = inner[0]
    return {"data": top}
fn(deep)
"""


@pytest.mark.parametrize("flags", [[], ["--isolate"]], ids=["in-process", "isolated"])
def test_states_nested_too_deep_for_json_output_are_clear_errors(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"data": ' + "[" * 300 + "]" * 300 + "}")
    job = write_job(tmp_path, "fn(lambda state: state)\n")
    assert main(["run", str(job), "-s", str(deep), *flags]) == 3
    assert f"{deep}: the state is nested 301 levels deep; at most 252 levels" in (
        capsys.readouterr().err
    )
    made = write_job(tmp_path, DEEP_JOB)
    assert main(["run", str(made), *flags]) == 4  # the run itself succeeded
    assert capsys.readouterr().err.rstrip().endswith(
        "The final state cannot be written as JSON (Recursion limit reached): a job made it "
        "nest more than 254 levels of arrays and objects"
    )


def test_cli_run_ledger_names_an_unnamed_workflow_after_its_file(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "nightly.json"
    plan.write_text(
        json.dumps({"workflow": {"steps": [{"id": "a", "expression": "fn(lambda s: s)"}]}})
    )
    job = write_job(tmp_path, "fn(lambda s: s)\n")
    assert main(["run", str(plan), "--ledger", ledger_url]) == 0
    assert main(["run", str(job), "--ledger", ledger_url, "--isolate"]) == 0
    capsys.readouterr()
    for workflow in ("nightly", "job"):
        assert main(["runs", "list", "--workflow", workflow, "--json", "--ledger", ledger_url]) == 0
        assert [run["workflow"] for run in json.loads(capsys.readouterr().out)] == [workflow]


@pytest.mark.parametrize(
    ("source", "flags", "code", "message"),
    [
        ("fn(lambda s: s)\n", [], 0, ""),
        ("fn(lambda s: 1 / 0)\n", [], 1, "ZeroDivisionError"),
        ("fn(lambda s: sum(x for x in range(10 ** 12)))\n", ["--run-timeout", "300"], 4,
         "Run took longer than 300 ms"),
        ("fn(lambda s: {**s, 'x': 'a' * (20 * 1024 ** 3)})\n", ["--memory-limit", "200"], 4,
         "Run exceeded the memory limit of 200 MB"),
        ("fn(lambda s: undefined)\n", [], 4, "NameError"),
        ("import os\n", [], 3, "CompileError"),
    ],
    ids=["success", "fail", "timeout", "oom", "crash", "compile-error"],
)  # fmt: skip
def test_cli_isolate_exit_codes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    flags: list[str],
    code: int,
    message: str,
) -> None:
    job = write_job(tmp_path, source)
    assert main(["run", str(job), "--isolate", *flags]) == code
    assert message in capsys.readouterr().err


def test_cli_run_with_a_bad_ledger_is_exit_3_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = write_job(tmp_path, "fn(lambda s: s)\n")
    url = "postgresql://statefn:hunter2@127.0.0.1:1/nowhere"
    assert main(["run", str(job), "--ledger", url]) == 3
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "127.0.0.1:1" in err


def test_cli_isolate_writes_the_step_cache(tmp_path: Path) -> None:
    plan = tmp_path / "workflow.json"
    plan.write_text(
        json.dumps(
            {
                "workflow": {
                    "name": "cached",
                    "steps": [{"id": "a", "expression": "fn(lambda s: {**s, 'a': 1})"}],
                }
            }
        )
    )
    assert (
        main(["run", str(plan), "--isolate", "--cache-steps", "-o", str(tmp_path / "o.json")]) == 0
    )
    cached = json.loads((tmp_path / ".statefn-cache" / "cached" / "a.json").read_text())
    assert cached["a"] == 1
