"""The command line as a new user meets it: messages in the user's words, suggestions for
typos, flags that do what their help says (issue 12). Every test runs the real command."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import distributed_cluster as cluster
import test_cli
from test_cli import Run, on_terminal, write

statefn = test_cli.statefn  # the fixture that runs the real command

FAILING_JOB = "def divide(state):\n    return 1 / 0\n\nfn(divide)\n"


def test_debug_shows_the_traceback_behind_a_step_error(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "bad.py", FAILING_JOB)
    result = statefn("run", "bad.py", "--debug")
    assert result.returncode == 1
    assert "[runtime bad] Traceback of step bad\nTraceback (most recent call last):" in (
        result.stderr
    )
    assert "line 2, in divide\nZeroDivisionError: division by zero" in result.stderr
    assert "During handling" not in result.stderr


def test_without_debug_no_traceback_is_shown(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "bad.py", FAILING_JOB)
    result = statefn("run", "bad.py")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_log_level_is_case_insensitive(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: state)\n")
    for level in ("INFO", "Warn", "DEBUG"):
        result = statefn("run", "job.py", "--log", level)
        assert result.returncode == 0, result.stderr
    assert "Finished in" in statefn("run", "job.py", "--log", "INFO").stderr
    assert statefn("run", "job.py", "--log", "WARN").stderr == ""


def terminal_output(tmp_path: Path, env: dict[str, str]) -> str:
    """What ``statefn run job.py`` writes to a terminal."""
    write(tmp_path / "job.py", "fn(lambda state: state)\n")
    code, text = on_terminal(tmp_path, "run", "job.py", "-o", "out.json", env=env)
    assert code == 0
    return text


def test_no_color_turns_colour_off_on_a_terminal(tmp_path: Path) -> None:
    text = terminal_output(tmp_path, {"NO_COLOR": "1"})
    assert "✔ job" in text
    assert "\x1b[" not in text


def test_colour_is_on_on_a_terminal_without_no_color(tmp_path: Path) -> None:
    text = terminal_output(tmp_path, {"NO_COLOR": ""})
    assert "\x1b[32m✔\x1b[0m job" in text


def test_misspelt_command_suggests_the_command(statefn: Run) -> None:
    result = statefn("rn", "job.py")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "statefn: error: argument COMMAND: invalid choice: 'rn'; did you mean 'run'? "
        "(choose from run, compile, validate, repo, docs, runs, serve, worker, submit, test)\n"
    )


def test_misspelt_flag_suggests_the_flag(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: state)\n")
    result = statefn("run", "job.py", "--outptu", "out.json")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "statefn run: error: unrecognized arguments: --outptu out.json; did you mean '--output'?\n"
    )


def test_misspelt_flag_before_the_command_is_named_as_such(statefn: Run) -> None:
    result = statefn("--verison")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "statefn: error: unrecognized arguments: --verison; did you mean '--version'?\n"
    )


def test_options_before_the_command_are_shown_after_it(statefn: Run) -> None:
    result = statefn("--log", "debug", "run", "job.py")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "statefn: error: options go after the command: statefn run --log debug job.py\n"
    )


def test_missing_command_is_a_usage_error(statefn: Run) -> None:
    result = statefn()
    assert result.returncode == 2
    assert result.stderr.endswith("statefn: error: the following arguments are required: COMMAND\n")


def test_misspelt_choice_suggests_the_value(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: state)\n")
    result = statefn("run", "job.py", "--log", "infoo")
    assert result.returncode == 2
    assert "argument --log: invalid choice: 'infoo'; did you mean 'info'?" in result.stderr


def test_misspelt_step_suggests_the_step(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "flow.json", {"steps": [{"id": "summarize", "expression": "fn(lambda s: s)"}]})
    result = statefn("run", "flow.json", "--only", "sumary")
    assert result.returncode == 3
    assert result.stderr == (
        "--only 'sumary' matches no step. Did you mean 'summarize'? The steps are:\n  summarize\n"
    )


def test_misspelt_adaptor_suggests_the_adaptor(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: state)\n")
    result = statefn("run", "job.py", "-a", "htp")
    assert result.returncode == 4
    assert (
        f'Adaptor "htp" was not found in the repo {tmp_path / "repo"} or the installed '
        "packages; did you mean 'http'?\n"
        "  fix: Run: statefn repo install htp, or give its folder (linker.modules.htp.path; "
        "on the command line, -a htp=PATH)"
    ) in result.stderr


def test_plan_of_an_unsupported_type_says_so(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "plan.txt", '{"steps": []}')
    result = statefn("run", "plan.txt")
    assert result.returncode == 3
    assert result.stderr == "plan.txt: unsupported file type (.json, .yaml, .yml, .py)\n"


def test_every_unknown_plan_key_is_listed_by_validate(statefn: Run, tmp_path: Path) -> None:
    steps = [{"id": "a", "expresion": "fn(lambda s: s)", "nxt": "b"}, {"id": "b"}]
    write(tmp_path / "flow.json", {"stepz": [], "steps": steps})
    result = statefn("validate", "flow.json")
    assert result.returncode == 3
    assert result.stderr == (
        "Invalid plan flow.json:\n"
        "  workflow.stepz: unknown key; did you mean 'steps'?\n"
        "  workflow.steps[0].expresion: unknown key; did you mean 'expression'?\n"
        "  workflow.steps[0].nxt: unknown key; did you mean 'next'?\n"
    )


def test_misspelt_steps_key_is_named(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "flow.yaml", "workflow:\n  stepz:\n    - expression: 'fn(lambda s: s)'\n")
    result = statefn("run", "flow.yaml")
    assert result.returncode == 3
    assert result.stderr == (
        "Invalid plan flow.yaml: workflow.stepz: unknown key; did you mean 'steps'?\n"
    )


def test_validate_counts_triggers_apart_from_compiled_jobs(statefn: Run, tmp_path: Path) -> None:
    steps = [{"id": "start", "next": "work"}, {"id": "work", "expression": "fn(lambda s: s)"}]
    write(tmp_path / "flow.json", {"steps": steps})
    result = statefn("validate", "flow.json")
    assert result.returncode == 0
    assert result.stdout == (
        "flow.json: valid (2 steps: 1 job compiled (work), 1 trigger (start))\n"
    )


def test_compile_finds_a_top_level_print_without_running(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: state)\nprint('done')\n")
    result = statefn("compile", "job.py")
    assert result.returncode == 3
    assert result.stderr.startswith(
        "job.py:2:1: this top-level expression makes the result of the built-in print(), "
        "not an operation"
    )


def test_unwritable_output_is_found_before_the_run(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: state)\n")
    write(tmp_path / "taken", "a file, not a folder")
    result = statefn("run", "job.py", "-o", "taken/out.json")
    assert result.returncode == 3
    assert result.stderr == "Cannot write the output to taken/out.json: taken is not a folder\n"
    folder = statefn("run", "job.py", "-o", ".")
    assert folder.returncode == 3
    assert folder.stderr == "Cannot write the output to .: it is a folder\n"


def test_adaptor_project_folder_is_accepted(statefn: Run, tmp_path: Path) -> None:
    project = test_cli.FIXTURES / "greet-project"
    write(tmp_path / "job.py", "fn(lambda state: {'data': {'text': hello('Ada')}})\n")
    result = statefn("run", "job.py", "-a", f"greet={project}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"]["text"] == "hello Ada from the project"
    docs = statefn("docs", f"greet={project}")
    assert docs.returncode == 0
    assert "  hello(name: str) -> str\n" in docs.stdout


def test_docs_and_run_agree_on_a_path_that_is_no_adaptor(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: state)\n")
    (tmp_path / "empty").mkdir()
    expected = (
        f"Adaptor http: {tmp_path / 'empty'} is not an adaptor: give its package folder "
        "(holding __init__.py), its module file (.py) or its project folder (holding "
        "pyproject.toml and one package)\n"
    )
    for args in (("run", "job.py", "-a", "http=./empty"), ("docs", "http=./empty")):
        result = statefn(*args)
        assert (result.returncode, result.stderr) == (3, expected)


def test_repo_install_help_describes_its_arguments(statefn: Run) -> None:
    result = statefn("repo", "install", "--help")
    assert result.returncode == 0
    assert "SPEC            NAME@VERSION (the distribution statefn-adaptor-NAME" in result.stdout


def test_docs_lists_operations_then_helpers_and_no_classes(statefn: Run) -> None:
    result = statefn("docs", "http")
    assert result.returncode == 0
    listing = result.stdout.split("\noperations:\n", 1)[1]
    assert "BodyStream" not in result.stdout
    operations, helpers = listing.split("\nhelpers:\n")
    assert "  get(path: Lazy[str]" in operations
    assert "  page_number(" in helpers
    assert "  page_number(" not in operations


def test_docs_wraps_long_signatures_under_the_open_parenthesis(statefn: Run) -> None:
    result = statefn("docs", "http")
    lines = result.stdout.split("\noperations:\n", 1)[1].splitlines()
    start = lines.index(next(line for line in lines if line.startswith("  get(")))
    signature = lines[start : start + 7]
    assert signature[1].startswith("      headers: ")  # under the first parameter
    assert signature[-1].endswith(" -> Operation")
    assert max(len(line) for line in signature) <= 88


MODULES_AFTER = """
import sys
from statefn.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_runtime(flag: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER, flag], capture_output=True, text=True, timeout=60
    )
    imported = set(result.stdout.splitlines()[-1].split())  # after what the flag printed
    heavy = {"asyncio", "logging", "orjson", "pathlib", "concurrent.futures", "statefn._api",
             "statefn._compile", "statefn._execute", "statefn.cli._logs", "statefn.cli._plans",
             "statefn.cli._runs", "statefn.cli._serve", "statefn.cli._distributed", "typing"}  # fmt: skip
    assert "statefn.cli" in imported
    assert heavy & imported == set()


def test_help_without_a_command_is_the_full_parsers_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`statefn --help` lists the commands from their summaries alone, without building their
    parsers; what it prints is what the parser of every command prints."""
    from statefn.cli import build_parser, main

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == build_parser().format_help()


def test_run_of_a_json_plan_imports_only_what_it_uses(tmp_path: Path) -> None:
    write(tmp_path / "plan.json", {"steps": [{"id": "a", "expression": "fn(lambda s: s)"}]})
    result = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER, "run", "plan.json", "--log", "none"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    imported = set(result.stdout.splitlines()[-1].split())
    assert "statefn._execute" in imported
    unused = {"importlib.metadata", "yaml", "httpx", "jsonschema", "statefn.adaptors.http",
              "asyncio", "concurrent.futures", "statefn._worker", "subprocess", "hashlib",
              "decimal"}  # fmt: skip
    assert unused & imported == set()


def test_dataclasses_of_a_run_have_docstrings_of_their_own(tmp_path: Path) -> None:
    """A dataclass without a docstring gets one made with ``inspect.signature`` when its
    module is imported, which every run would pay for at start-up."""
    write(tmp_path / "plan.json", {"steps": [{"id": "a", "expression": "fn(lambda s: s)"}]})
    result = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER, "run", "plan.json", "--log", "none"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    imported = result.stdout.splitlines()[-1].split()
    modules = [importlib.import_module(name) for name in imported if name.startswith("statefn")]
    undocumented = [
        f"{module.__name__}.{name}"
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == module.__name__
        and (value.__doc__ or "").startswith(f"{name}(")
    ]
    assert "statefn._plan" in imported and undocumented == []


@pytest.mark.parametrize(
    "command",
    ["run", "compile", "validate", "repo", "docs", "runs", "serve", "worker", "submit", "test"],
)
def test_parser_of_one_command_is_that_command_of_the_whole_parser(command: str) -> None:
    """`statefn run ...` builds the parser of run alone (with the commands added with it,
    as compile with validate): its help is the full parser's."""
    from statefn.cli import build_parser

    def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return dict(action.choices)

    alone, every = commands(build_parser(command)), commands(build_parser())
    assert command in alone and len(alone) <= 2 and len(every) == 10
    assert alone[command].format_help() == every[command].format_help()


def test_jobs_of_the_command_run_with_the_garbage_collector_on(
    statefn: Run, tmp_path: Path
) -> None:
    """The command collects no garbage while it starts: it is on again before jobs run."""
    write(tmp_path / "probe.py", '__all__ = ["collecting"]\nimport gc\n\n'
          'def collecting(state):\n    return {**state, "data": gc.isenabled()}\n')  # fmt: skip
    write(tmp_path / "job.py", "collecting\n")
    result = statefn("run", "job.py", "-a", f"probe={tmp_path / 'probe.py'}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"] is True


def test_docs_error_example_is_what_the_quick_start_prints(statefn: Run, tmp_path: Path) -> None:
    docs = (test_cli.ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    example = docs.split("the line and a caret:\n\n```\n", 1)[1].split("```", 1)[0]
    shutil.copytree(test_cli.QUICKSTART, tmp_path / "examples" / "quickstart")
    clean = tmp_path / "examples" / "quickstart" / "clean.py"
    clean.write_text(clean.read_text().replace('row["name"]', 'row["nmae"]'))
    result = statefn("run", "examples/quickstart/workflow.yaml", "-o", "out.json")
    assert result.returncode == 1
    assert example in result.stderr


def test_only_takes_the_cached_file_the_quick_start_names(statefn: Run, tmp_path: Path) -> None:
    readme = (test_cli.QUICKSTART / "README.md").read_text(encoding="utf-8")
    assert "here\n`.statefn-cache/quickstart/clean.json`" in readme
    shutil.copytree(test_cli.QUICKSTART, tmp_path / "quickstart")
    assert (
        statefn("run", "quickstart/workflow.yaml", "--cache-steps", "-o", "a.json").returncode == 0
    )
    result = statefn("run", "quickstart/workflow.yaml", "--only", "summ", "-o", "b.json")
    assert result.returncode == 0
    cached = Path("quickstart/.statefn-cache/quickstart/clean.json")
    assert f"Input of summarize: the cached output in {cached}" in result.stderr


def test_name_an_installed_adaptor_exports_says_which_adaptor_to_add(
    statefn: Run, tmp_path: Path
) -> None:
    write(tmp_path / "job.py", "get('https://example.org')\n")
    result = statefn("run", "job.py")
    assert result.returncode == 4
    assert (
        "job.py:1:1: RuntimeCrash in step job: NameError: name 'get' is not defined\n"
        "    get('https://example.org')\n"
        "    ^\n"
        "  fix: get is an operation of the adaptor http: add the adaptor to the step "
        '(-a http for a job, "adaptors": ["http"] in a plan)\n'
    ) in result.stderr


def test_name_no_adaptor_exports_gets_no_adaptor_hint(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: no_such_name)\n")
    result = statefn("run", "job.py")
    assert result.returncode == 4
    assert "NameError: name 'no_such_name' is not defined" in result.stderr
    assert "fix:" not in result.stderr


def test_attribute_the_sandbox_removed_says_so(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "import time\nfn(lambda state: time.sleep(1) or state)\n")
    result = statefn("run", "job.py", "-o", "out.json")
    assert result.returncode == 1
    assert (
        "RuntimeError in step job: AttributeError: module 'time' has no attribute 'sleep': "
        "the sandbox removes it from jobs"
    ) in result.stderr


def test_operation_that_returns_no_state_is_named_as_written(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "total = 1\n\nfn(lambda state: total)\n")
    result = statefn("run", "job.py", "-o", "out.json")
    assert result.returncode == 1
    assert "<locals>" not in result.stderr
    assert (
        "job.py:3:1: RuntimeError in step job: TypeError: operation 1 "
        "(fn(lambda state: total), line 3) returned int, not a state dict\n"
        "    fn(lambda state: total)\n"
        "    ^\n"
    ) in result.stderr


SHOWS_OBJECTS = (
    "fn(lambda state: print('rows', [1, 2, 3], {'a': 1}) or state)\n"
    "log('state:', S.data)\n"
    "fn(lambda state: console.warn({'x': 1}) or state)\n"
)


@pytest.mark.parametrize(
    ("mode", "lines"),
    [
        ("none", ["rows [1, 2, 3] {'a': 1}", 'state: {"k":1}', "warn: {'x': 1}"]),
        (
            "summarize",
            [
                "rows (array with 3 items) (object with keys a)",
                "state: (object with keys k)",
                "warn: (object with keys x)",
            ],
        ),
        ("obfuscate", ["rows [array] [object]", "state: [object]", "warn: [object]"]),
        ("remove", ["rows", "state:", "warn:"]),
    ],
)
def test_sanitize_shapes_objects_a_job_prints_or_logs(
    statefn: Run, tmp_path: Path, mode: str, lines: list[str]
) -> None:
    write(tmp_path / "job.py", SHOWS_OBJECTS)
    write(tmp_path / "in.json", {"data": {"k": 1}})
    result = statefn("run", "job.py", "-s", "in.json", "--sanitize", mode, "-o", "out.json")
    assert result.returncode == 0, result.stderr
    shown = [line.removeprefix("[job job] ").rstrip() for line in result.stderr.splitlines()]
    assert [line for line in shown if line in lines] == lines


def test_step_cache_keeps_json_bytes_as_they_are_and_encodes_decoded_states(
    tmp_path: Path,
) -> None:
    from statefn.cli._cache import StepCache

    cache = StepCache(tmp_path)
    assert cache.write("a", b'{"data":{"n":1}}').read_bytes() == b'{"data":{"n":1}}'
    assert json.loads(cache.write("b", {"data": {"n": 2}}).read_text()) == {"data": {"n": 2}}


def test_debug_log_shows_each_steps_output_state(statefn: Run, tmp_path: Path) -> None:
    write(tmp_path / "job.py", "fn(lambda state: {'data': {'n': 1}})\n")
    result = statefn("run", "job.py", "--log", "debug", "-o", "out.json")
    assert result.returncode == 0
    assert '[cli job] output state: {"data":{"n":1}}' in result.stderr


# statefn submit --wait, against RabbitMQ, PostgreSQL and two workers of this module's own.
rabbit_broker = cluster.rabbit_broker_fixture
module_queue = cluster.queue_fixture
worker_pool = cluster.pool_fixture


@pytest.mark.parametrize(
    ("expression", "code", "shown"),
    [
        ("fn(lambda s: 1 / 0)", 1, [
            "flow.json#x:1:14: RuntimeError in step x: ZeroDivisionError: division by zero",
            "    fn(lambda s: 1 / 0)",
            "ended with fail: 1 step failed (x)",
        ]),
        ("fn(lambda s: [0] * 10**9)", 4, [
            "OOMError in step x: ",
            "ended with kill: OOMError (severity kill)",
        ]),
    ],
    ids=["fail", "kill"],
)  # fmt: skip
def test_submit_wait_shows_why_the_run_did_not_succeed(
    pool: cluster.WorkerPool, broker: str, postgres_database: str, queue: str,
    tmp_path: Path, expression: str, code: int, shown: list[str],
) -> None:  # fmt: skip
    write(tmp_path / "flow.json", {"workflow": {"steps": [{"id": "x", "expression": expression}]}})
    done = subprocess.run(
        [*cluster.STATEFN, "submit", "flow.json", "--broker", broker, "--ledger",
         postgres_database, "--queue", queue, "--wait"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    run_id = done.stdout.splitlines()[0]
    shown[-1] = f"Run {run_id} {shown[-1]}"
    assert [line for line in shown if line in done.stderr] == shown, done.stderr
