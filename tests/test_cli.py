"""The command line, run as a real process (``python -m statefn``) in a temporary folder."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
FIXTURES = Path(__file__).parent / "fixtures" / "adaptors"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def statefn(tmp_path: Path) -> Run:
    """Run ``python -m statefn ARGS`` in ``tmp_path`` with an empty adaptor repo."""
    env = {**os.environ, "STATEFN_REPO_DIR": str(tmp_path / "repo"), "PIP_NO_INDEX": "1"}

    def run(*args: str, stdin: str | None = None, cwd: Path = tmp_path) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "statefn", *args],
            cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip

    return run


def write(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def chain_plan(tmp_path: Path, name: str | None = "chain") -> Path:
    """a -> b -> c, each appending its id to data.seen."""
    steps = [
        {
            "id": step_id,
            "name": f"Step {step_id.upper()}",
            "expression": f"fn(lambda state: {{**state, 'data': {{'seen': state['data'].get('seen', []) + ['{step_id}']}}}})",
            **({"next": following} if following else {}),
        }
        for step_id, following in (("a", "b"), ("b", "c"), ("c", None))
    ]
    workflow: dict[str, Any] = {"steps": steps}
    if name:
        workflow["name"] = name
    return write(tmp_path / "chain.json", {"workflow": workflow})


def output(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- run: input and output ------------------------------------------------------------------


def test_run_job_prints_final_state_to_stdout(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: {**state, 'data': {'n': 1}})\n")
    result = statefn("run", "job.py")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"data": {"n": 1}}


def test_run_writes_final_state_to_output_file(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: {**state, 'data': {'n': 2}})\n")
    result = statefn("run", "job.py", "-o", "out/final.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert output(tmp_path / "out" / "final.json") == {"data": {"n": 2}}
    assert "Wrote the final state to out/final.json" in result.stderr


def test_run_reads_input_state_from_stdin(statefn: Run, tmp_path: Path) -> None:
    write(
        tmp_path / "job.py",
        "fn(lambda state: {**state, 'data': {'twice': state['data']['x'] * 2}})\n",
    )
    result = statefn("run", "job.py", "-s", "-", "-o", "out.json", stdin='{"data": {"x": 21}}')
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json")["data"] == {"twice": 42}


def test_run_reads_yaml_state_file(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: {**state, 'data': {'got': state['data']['x']}})\n")
    write(tmp_path / "state.yaml", "data:\n  x: from yaml\n")
    result = statefn("run", "job.py", "-s", "state.yaml", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json")["data"] == {"got": "from yaml"}


def test_yaml_workflow_reads_job_state_and_configuration_files_beside_the_plan(
    statefn: Run, tmp_path: Path
) -> None:
    folder = tmp_path / "project"
    write(
        folder / "jobs" / "greet.py",
        "fn(lambda state: {**state, 'data': {'hi': state['data']['who'], 'cfg': state['configuration']['region']}})\n",
    )
    write(folder / "input.json", {"data": {"who": "Ada"}})
    write(folder / "config.yaml", "region: eu-west\n")
    write(
        folder / "workflow.yaml",
        "workflow:\n  steps:\n    - id: greet\n      expression: ./jobs/greet.py\n"
        "      state: ./input.json\n      configuration: ./config.yaml\n",
    )
    # Run from another folder: the paths are relative to the plan, not to the caller.
    result = statefn("run", "project/workflow.yaml", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json")["data"] == {"hi": "Ada", "cfg": "eu-west"}


def test_bare_workflow_object_is_run_as_a_plan(statefn: Run, tmp_path: Path) -> None:
    write(
        tmp_path / "flow.json", {"steps": [{"id": "x", "expression": "fn(lambda s: {'data': 7})"}]}
    )
    result = statefn("run", "flow.json", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json") == {"data": 7}


def test_quickstart_example_prints_a_summary(statefn: Run, tmp_path: Path) -> None:
    example = shutil.copytree(QUICKSTART, tmp_path / "quickstart")
    result = statefn("run", str(example / "workflow.yaml"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["data"]
    assert summary["patients"] == 7
    assert summary["by_district"] == {"East": 1, "North": 3, "South": 1, "West": 2}
    assert [row["id"] for row in summary["rejected"]] == ["p-004", "p-005", "p-008"]
    assert "[job clean] kept 7 rows, rejected 3" in result.stderr
    assert "[job review] row p-005 needs fixing: missing age" in result.stderr


def test_quickstart_with_a_broken_job_exits_1_pointing_at_the_line(
    statefn: Run, tmp_path: Path
) -> None:
    example = shutil.copytree(QUICKSTART, tmp_path / "quickstart")
    clean = example / "clean.py"
    clean.write_text(clean.read_text().replace('row["name"]', 'row["nmae"]'), encoding="utf-8")
    result = statefn("run", "quickstart/workflow.yaml", "-o", "out.json")
    assert result.returncode == 1
    assert (
        "quickstart/clean.py:13:56: RuntimeError in step clean: KeyError: 'nmae'" in result.stderr
    )
    assert "[cli review] started" not in result.stderr
    assert output(tmp_path / "out.json")["errors"]["clean"]["message"] == "KeyError: 'nmae'"


def test_adaptor_path_spec_links_a_local_adaptor(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: {**state, 'data': shout('hey')})\n")
    result = statefn("run", "job.py", "-a", f"single={FIXTURES / 'single.py'}", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json")["data"] == "HEY"


def test_adaptor_path_that_does_not_exist_is_invalid_input(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda s: s)\n")
    result = statefn("run", "job.py", "-a", "greet=./nowhere")
    assert result.returncode == 3
    assert f"Adaptor greet: path not found: {tmp_path / 'nowhere'}" in result.stderr


def test_unknown_adaptor_aborts_the_run(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda s: s)\n")
    result = statefn("run", "job.py", "-a", "nosuch@1.0.0")
    assert result.returncode == 4
    assert 'Adaptor "nosuch@1.0.0" was not found' in result.stderr
    assert "fix: Run: statefn repo install nosuch@1.0.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_workflow_adaptor_version_override_applies_to_every_step(
    statefn: Run, tmp_path: Path
) -> None:
    write(
        tmp_path / "flow.json",
        {"workflow": {"steps": [{"id": "x", "adaptors": ["greet@2.0.0"], "expression": "fn(lambda s: {'data': hello('Bo')})"}]}},
    )  # fmt: skip
    result = statefn(
        "run", "flow.json", "-a", f"greet@1.0.0={FIXTURES / 'greet_v1'}", "-o", "o.json"
    )
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "o.json")["data"] == "hello Bo from v1"


def test_immutable_gives_each_operation_its_own_copy(statefn: Run, tmp_path: Path) -> None:
    write(
        tmp_path / "job.py",
        "seen = []\n"
        "fn(lambda state: seen.append(state) or state)\n"
        "fn(lambda state: state['data'].update(x=2) or state)\n"
        "fn(lambda state: {'data': {'first': seen[0]['data'].get('x')}})\n",
    )
    shared = statefn("run", "job.py", "-o", "shared.json")
    copied = statefn("run", "job.py", "--immutable", "-o", "copied.json")
    assert shared.returncode == copied.returncode == 0, shared.stderr + copied.stderr
    assert output(tmp_path / "shared.json")["data"] == {"first": 2}
    assert output(tmp_path / "copied.json")["data"] == {"first": None}


def test_concurrency_runs_branches_with_the_same_result(statefn: Run, tmp_path: Path) -> None:
    write(
        tmp_path / "flow.json",
        {"workflow": {"steps": [
            {"id": "root", "next": {"left": True, "right": True}},
            {"id": "left", "expression": "fn(lambda s: {'data': 'L'})"},
            {"id": "right", "expression": "fn(lambda s: {'data': 'R'})"},
        ]}},
    )  # fmt: skip
    result = statefn("run", "flow.json", "--concurrency", "2", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json") == {"left": {"data": "L"}, "right": {"data": "R"}}


def test_timeout_flag_aborts_a_step_that_runs_too_long(statefn: Run, tmp_path: Path) -> None:
    write(
        tmp_path / "job.py", "fn(lambda state: [n for n in itertools.count()])\nimport itertools\n"
    )
    result = statefn("run", "job.py", "--timeout", "200")
    assert result.returncode == 4
    assert "Job took longer than 200ms to complete" in result.stderr


# --- run: errors and exit codes ---------------------------------------------------------------


def test_failed_step_exits_1_and_points_at_the_line(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda s: s)\nfn(lambda state: state['data']['missing'])\n")
    result = statefn("run", "job.py", "-o", "out.json")
    assert result.returncode == 1
    errors = output(tmp_path / "out.json")["errors"]
    assert errors["job"]["name"] == "RuntimeError"
    assert errors["job"]["message"] == "KeyError: 'missing'"
    assert "job.py:2:" in result.stderr
    assert "RuntimeError in step job: KeyError: 'missing'" in result.stderr
    assert "fn(lambda state: state['data']['missing'])" in result.stderr
    assert "Finished with errors: 1 step failed (job)" in result.stderr
    # The runtime's own line about the failure would repeat the diagnostic.
    assert "[runtime job]" not in result.stderr
    assert "Traceback" not in result.stderr


def test_crash_error_aborts_with_exit_4(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: undefined_name)\n")
    result = statefn("run", "job.py")
    assert result.returncode == 4
    assert "RuntimeCrash in step job" in result.stderr
    assert "undefined_name" in result.stderr
    assert "Run aborted: RuntimeCrash (severity crash)" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        ([], 4, "job.py:1:18: RuntimeCrash in step job: NameError: name 'undefined_name'"),
        (["--ledger", "sqlite:///no-such-dir/r.db"], 3, "LedgerError: The run ledger sqlite:///no-such-dir/r.db could not be opened"),
        (["-s", "missing.json"], 3, "File not found: missing.json"),
    ],
    ids=["crash", "bad-ledger", "missing-file"],
)  # fmt: skip
def test_log_none_still_shows_the_error_that_ends_the_command(
    statefn: Run, tmp_path: Path, flags: list[str], code: int, message: str
) -> None:
    write(tmp_path / "job.py", "fn(lambda state: undefined_name)\n")
    result = statefn("run", "job.py", "--log", "none", *flags)
    assert result.returncode == code
    assert result.stderr.startswith(message)
    json_lines = statefn("run", "job.py", "--log", "none", "--log-json", *flags)
    (line,) = map(json.loads, json_lines.stderr.splitlines())
    assert (line["level"], line["message"].startswith(message)) == ("error", True)


def test_debug_shows_the_traceback(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: undefined_name)\n")
    result = statefn("run", "job.py", "--debug")
    assert result.returncode == 4
    assert "Traceback" in result.stderr


def test_compile_error_in_a_run_is_invalid_input(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda s: s)\nimport os\n")
    result = statefn("run", "job.py")
    assert result.returncode == 3
    assert "job.py:2:1: CompileError in step job:" in result.stderr
    assert "\n    import os\n    ^" in result.stderr


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({}, ["run", "missing.json"], "File not found: missing.json"),
        ({"bad.json": '{"workflow": {"steps": [}'}, ["run", "bad.json"], "bad.json:1:25: invalid JSON:"),
        ({"bad.yaml": "workflow:\n  steps: [a\n"}, ["run", "bad.yaml"], "bad.yaml:3:1: invalid YAML:"),
        ({"list.json": "[1, 2]"}, ["run", "list.json"], "list.json: expected a plan (an object with a workflow), found list"),
        ({"job.py": "fn(lambda s: s)\n"}, ["run", "job.py", "-s", "nope.json"], "File not found: nope.json"),
        ({"flow.json": '{"steps": [{"id": "a", "expression": "./gone.py"}]}'}, ["run", "flow.json"], "File not found: gone.py"),
        ({"flow.json": '{"steps": [{"id": "a", "next": "zzz"}]}'}, ["run", "flow.json"], "Invalid plan flow.json: Cannot find job: zzz"),
    ],
)  # fmt: skip
def test_bad_input_exits_3_with_a_message(
    statefn: Run, tmp_path: Path, files: dict[str, str], args: list[str], message: str
) -> None:
    for name, content in files.items():
        write(tmp_path / name, content)
    result = statefn(*args)
    assert result.returncode == 3
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "x.json", "--bogus"], "unrecognized arguments: --bogus"),
        (["run"], "the following arguments are required: PATH"),
        (["run", "x.json", "--start", "a", "--only", "b"], "not allowed with argument --start"),
        (["run", "x.json", "--concurrency", "0"], "expected a number above 0, got 0"),
        (["run", "x.json", "--log", "loud"], "invalid choice: 'loud'"),
        (["run", "x.json", "-a", "bad name"], "invalid adaptor 'bad name'"),
        (
            ["run", "x.json", "--run-timeout", "500"],
            "--run-timeout needs --isolate (limits are enforced on an engine worker process): statefn run x.json --isolate --run-timeout 500",
        ),
        (
            ["run", "x.json", "--memory-limit", "100", "--ledger", "runs.db"],
            "--memory-limit needs --isolate",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2(statefn: Run, args: list[str], message: str) -> None:
    result = statefn(*args)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    "extra",
    [[], ["--timeout", "60000"], ["--concurrency", "2"]],
    ids=["inline", "on-a-worker", "concurrent"],
)
def test_keyboard_interrupt_exits_130(tmp_path: Path, extra: list[str]) -> None:
    write(
        tmp_path / "job.py",
        "import itertools\nfn(lambda state: [0 for n in itertools.count() if n < 0])\n",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "statefn", "run", "job.py", *extra],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    assert "started" in process.stderr.readline()
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Interrupted" in stderr


# --- run: credentials and logs ------------------------------------------------------------------


CREDENTIAL_JOB = "fn(lambda state: print('token is', state['configuration']['token']) or {'data': len(state['configuration']['token'])})\n"


def credential_plan(tmp_path: Path, credential: str = "main") -> None:
    write(tmp_path / "job.py", CREDENTIAL_JOB)
    write(
        tmp_path / "flow.yaml",
        f"workflow:\n  steps:\n    - id: use\n      expression: ./job.py\n      configuration: {credential}\n",
    )
    write(tmp_path / "creds.yaml", "main:\n  token: s3cr3t-v4lue\n")


def test_credentials_file_resolves_configuration_and_masks_it(statefn: Run, tmp_path: Path) -> None:
    credential_plan(tmp_path)
    result = statefn("run", "flow.yaml", "--credentials", "creds.yaml", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json") == {"data": 12}
    assert "[job use] token is ***" in result.stderr
    assert "s3cr3t" not in result.stderr


def test_credentials_are_masked_in_json_logs(statefn: Run, tmp_path: Path) -> None:
    credential_plan(tmp_path)
    result = statefn(
        "run",
        "flow.yaml",
        "--credentials",
        "creds.yaml",
        "--log-json",
        "--log",
        "debug",
        "-o",
        "o.json",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert {
        "level": "info",
        "name": "job",
        "message": "token is ***",
        "job_id": "use",
    }.items() <= next(line for line in lines if line["name"] == "job").items()
    assert "s3cr3t" not in result.stderr


def test_unknown_credential_fails_before_the_run(statefn: Run, tmp_path: Path) -> None:
    credential_plan(tmp_path, credential="other")
    result = statefn("run", "flow.yaml", "--credentials", "creds.yaml")
    assert result.returncode == 3
    assert (
        "Unknown credential:\n  step use: 'other'\nThe credentials file defines: main"
        in result.stderr
    )
    assert "started" not in result.stderr


def test_credential_id_without_credentials_file_is_invalid_input(
    statefn: Run, tmp_path: Path
) -> None:
    credential_plan(tmp_path)
    result = statefn("run", "flow.yaml")
    assert result.returncode == 3
    assert "Pass --credentials FILE" in result.stderr


def test_json_logs_are_one_object_a_line(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "--log-json", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert all({"level", "name", "message", "time"} <= set(line) for line in lines)
    started = [line["job_id"] for line in lines if line["message"] == "started"]
    assert started == ["a", "b", "c"]
    assert {line["name"] for line in lines} == {"cli"}


def test_log_none_prints_nothing(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: print('hello') or state)\n")
    result = statefn("run", "job.py", "--log", "none", "-o", "out.json")
    assert result.returncode == 0
    assert result.stderr == ""


def test_log_warn_hides_progress_and_job_output(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "log('quiet')\nfn(lambda state: state)\n")
    result = statefn("run", "job.py", "--log", "warn", "-o", "out.json")
    assert result.returncode == 0
    assert "started" not in result.stderr
    assert "quiet" not in result.stderr


def test_plain_progress_names_each_step_with_its_outcome(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "-o", "out.json")
    lines = result.stderr.splitlines()
    assert lines[0] == "[cli a] started"
    assert lines[1].startswith("[cli a] completed in ")
    assert lines[-2].startswith("[cli] Finished in ")


def on_terminal(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``statefn ARGS`` with its stderr on a terminal: its exit code and what it wrote."""
    controller, terminal = pty.openpty()
    result = subprocess.run(
        [sys.executable, "-m", "statefn", *args],
        cwd=cwd, stderr=terminal, stdout=subprocess.PIPE, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    os.close(terminal)
    seen = b""
    try:
        while chunk := os.read(controller, 4096):
            seen += chunk
    except OSError:
        pass
    os.close(controller)
    return result.returncode, seen.decode()


def test_terminal_progress_shows_marks_and_durations(tmp_path: Path) -> None:
    chain_plan(tmp_path)
    code, text = on_terminal(tmp_path, "run", "chain.json", "-o", "out.json")
    assert code == 0
    assert "▸\x1b[0m a" in text
    assert "✔\x1b[0m c" in text


@pytest.mark.parametrize(
    ("mode", "shown"),
    [
        ("none", 'output state: {"data":{"seen":["a"]}}'),
        ("summarize", "output state: (object with keys data)"),
        ("obfuscate", "output state: [object]"),
        ("remove", None),
    ],
)
def test_sanitize_decides_how_states_appear_in_debug_logs(
    statefn: Run, tmp_path: Path, mode: str, shown: str | None
) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "--log", "debug", "--sanitize", mode, "-o", "o.json")
    assert result.returncode == 0, result.stderr
    if shown is None:
        assert "output state" not in result.stderr
    else:
        assert f"[cli a] {shown}" in result.stderr


# --- choosing steps and the step cache ------------------------------------------------------------


def test_cache_steps_writes_each_step_output(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "--cache-steps", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    cache = tmp_path / ".statefn-cache" / "chain"
    assert sorted(p.name for p in cache.iterdir()) == ["a.json", "b.json", "c.json"]
    assert output(cache / "b.json") == {"data": {"seen": ["a", "b"]}}


def test_cache_is_named_after_the_plan_file_without_a_workflow_name(
    statefn: Run, tmp_path: Path
) -> None:
    chain_plan(tmp_path, name=None)
    statefn("run", "chain.json", "--cache-steps", "-o", "out.json")
    assert (tmp_path / ".statefn-cache" / "chain" / "c.json").is_file()


def test_cache_is_cleared_when_a_full_run_starts(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    stale = write(tmp_path / ".statefn-cache" / "chain" / "old.json", "{}")
    statefn("run", "chain.json", "--cache-steps", "-o", "out.json")
    assert not stale.exists()


def test_only_runs_one_step_with_its_cached_input(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    statefn("run", "chain.json", "--cache-steps", "-o", "out.json")
    cached_c = tmp_path / ".statefn-cache" / "chain" / "c.json"
    cached_c.unlink()
    result = statefn("run", "chain.json", "--only", "b", "--cache-steps", "-o", "only.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "only.json") == {"data": {"seen": ["a", "b"]}}
    assert (
        f"Input of b: the cached output in {Path('.statefn-cache/chain/a.json')}" in result.stderr
    )
    assert "[cli c] started" not in result.stderr
    # Only the step that ran was rewritten; the others were kept.
    assert (tmp_path / ".statefn-cache" / "chain" / "a.json").is_file()
    assert not cached_c.exists()


def test_start_by_part_of_a_name_runs_to_the_end(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    statefn("run", "chain.json", "--cache-steps", "-o", "out.json")
    result = statefn("run", "chain.json", "--start", "step b", "-o", "rerun.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "rerun.json") == {"data": {"seen": ["a", "b", "c"]}}
    assert "[cli a] started" not in result.stderr


def test_start_with_state_file_does_not_need_the_cache(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    write(tmp_path / "in.json", {"data": {"seen": ["x"]}})
    result = statefn("run", "chain.json", "--start", "c", "-s", "in.json", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json") == {"data": {"seen": ["x", "c"]}}


def test_start_without_cached_input_is_invalid_input(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "--start", "c")
    assert result.returncode == 3
    assert (
        "No cached input for step c: none of its upstream steps has cached output" in result.stderr
    )
    assert str(Path(".statefn-cache/chain/b.json")) in result.stderr


def test_end_stops_after_the_step(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "--end", "B", "-o", "out.json")
    assert result.returncode == 0, result.stderr
    assert output(tmp_path / "out.json") == {"data": {"seen": ["a", "b"]}}


def test_ambiguous_step_lists_the_candidates(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "--only", "step")
    assert result.returncode == 3
    assert (
        "--only 'step' matches several steps:\n  a (Step A)\n  b (Step B)\n  c (Step C)"
        in result.stderr
    )


def test_unknown_step_lists_the_steps(statefn: Run, tmp_path: Path) -> None:
    chain_plan(tmp_path)
    result = statefn("run", "chain.json", "--end", "zz")
    assert result.returncode == 3
    assert "--end 'zz' matches no step. The steps are:\n  a (Step A)" in result.stderr


# --- compile and validate ------------------------------------------------------------------------


def test_compile_lists_operations_with_their_lines(statefn: Run, tmp_path: Path) -> None:
    write(
        tmp_path / "job.py",
        '"""A job."""\nfn(lambda s: s)\n\n@fn\ndef double(state):\n    return state\n',
    )
    result = statefn("compile", "job.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "job.py: 2 operations"
    assert lines[1].split()[:3] == ["1", "line", "2"]
    assert lines[2].split()[:3] == ["2", "line", "4"]


def test_compile_prints_every_problem_with_a_caret(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "import os\nfn(lambda s: s.__class__)\n")
    result = statefn("compile", "job.py")
    assert result.returncode == 3
    assert result.stderr.startswith("job.py:1:1: ")
    assert "\n    import os\n    ^\n" in result.stderr
    assert "job.py:2:" in result.stderr


def test_compile_error_in_a_workflow_names_the_plan_and_step(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "flow.json", {"steps": [{"id": "bad", "expression": "x = 1\neval('1')"}]})
    result = statefn("compile", "flow.json")
    assert result.returncode == 3
    assert "flow.json#bad:2:1: " in result.stderr


def test_validate_accepts_the_quickstart(statefn: Run) -> None:
    result = statefn("validate", str(QUICKSTART / "workflow.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid (4 steps: 4 jobs compiled (load, clean, review, summarize))" in result.stdout


def test_validate_reports_each_step_that_does_not_compile(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "a.py", "open('x')\n")
    write(
        tmp_path / "flow.yaml",
        "steps:\n  - id: one\n    expression: ./a.py\n    next: two\n  - id: two\n    expression: 'exec(1)'\n",
    )
    result = statefn("validate", "flow.yaml")
    assert result.returncode == 3
    assert "a.py:1:1: " in result.stderr
    assert "flow.yaml#two:1:1: " in result.stderr
    assert "the job of one, two does not compile" in result.stderr


def test_validate_loads_each_step_adaptor_as_a_run_would(statefn: Run, tmp_path: Path) -> None:
    write(
        tmp_path / "flow.json",
        {"steps": [{"id": "hi", "adaptors": ["greet"], "expression": "fn(lambda s: s)"}]},
    )
    missing = statefn("validate", "flow.json")
    assert missing.returncode == 3
    assert 'flow.json#hi: ImportError: Adaptor "greet" was not found' in missing.stderr
    assert "the adaptors of hi cannot be loaded" in missing.stderr
    linked = statefn("validate", "flow.json", "-a", f"greet={FIXTURES / 'greet_v1'}")
    assert linked.returncode == 0, linked.stderr


def test_validate_rejects_a_circular_plan(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "flow.json", {"steps": [{"id": "a", "next": "b"}, {"id": "b", "next": "a"}]})
    result = statefn("validate", "flow.json")
    assert result.returncode == 3
    assert "Invalid plan flow.json: Circular dependency" in result.stderr


# --- repo, docs, test, help ----------------------------------------------------------------------


def test_repo_dir_follows_the_flag_then_the_environment(statefn: Run, tmp_path: Path) -> None:
    assert statefn("repo", "dir").stdout.strip() == str(tmp_path / "repo")
    assert statefn("repo", "dir", "--repo-dir", "elsewhere").stdout.strip() == "elsewhere"


def test_repo_install_list_and_clean_a_local_project(statefn: Run, tmp_path: Path) -> None:
    project = shutil.copytree(FIXTURES / "greet-project", tmp_path / "greet-project")
    installed = statefn("repo", "install", str(project))
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith("installed greet@1.0.0\t")
    listed = statefn("repo", "list")
    assert listed.stdout.startswith("greet@1.0.0\t")
    write(tmp_path / "job.py", "fn(lambda state: {'data': hello('Ann')})\n")
    ran = statefn("run", "job.py", "-a", "greet@1.0.0", "-o", "out.json")
    assert ran.returncode == 0, ran.stderr
    assert "Ann" in output(tmp_path / "out.json")["data"]
    cleaned = statefn("repo", "clean", "greet")
    assert cleaned.stdout == "removed greet@1.0.0\n"
    assert statefn("repo", "list").stdout == ""


def test_repo_install_of_a_missing_project_exits_3(statefn: Run) -> None:
    result = statefn("repo", "install", "./nowhere")
    assert result.returncode == 3
    assert "Cannot install ./nowhere: no such project directory or wheel file" in result.stderr


def test_docs_lists_operations_with_signatures(statefn: Run) -> None:
    result = statefn("docs", "common")
    assert result.returncode == 0, result.stderr
    assert "  each(source" in result.stdout
    assert "  fn(func" in result.stdout


def test_docs_shows_one_operation(statefn: Run) -> None:
    result = statefn("docs", "common", "parse_csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("common.parse_csv(text_or_file")
    assert "Parse CSV into rows" in result.stdout


def test_docs_of_a_path_adaptor(statefn: Run) -> None:
    result = statefn("docs", f"single={FIXTURES / 'single.py'}")
    assert result.returncode == 0, result.stderr
    assert "  shout(text: str) -> str" in result.stdout


def test_docs_suggests_close_operation_names(statefn: Run) -> None:
    result = statefn("docs", "common", "eachh")
    assert result.returncode == 3
    assert "has no operation 'eachh'. Did you mean: each?" in result.stderr


def test_docs_of_an_unknown_adaptor_exits_3(statefn: Run) -> None:
    result = statefn("docs", "nosuch")
    assert result.returncode == 3
    assert 'Adaptor "nosuch" was not found' in result.stderr


def test_selftest_runs_the_builtin_workflow(statefn: Run) -> None:
    result = statefn("test")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"] == {"total": 10}
    assert "the total is 10" in result.stderr


@pytest.mark.parametrize("command", ["run", "compile", "validate", "repo", "docs"])
def test_help_of_each_command_has_examples(statefn: Run, command: str) -> None:
    result = statefn(command, "--help")
    assert result.returncode == 0
    assert "examples:\n  statefn " + command in result.stdout


def test_version_is_printed(statefn: Run) -> None:
    result = statefn("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("statefn ")
