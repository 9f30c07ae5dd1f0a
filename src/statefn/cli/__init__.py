"""The ``statefn`` command line: run workflows and jobs on your machine.

``main`` parses the arguments, runs one command and returns the exit code (see
``ExitCode``). Each command lives in its own module, imported only when it runs, so that
``statefn --help`` or a small run starts quickly.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Iterable, Sequence

from ._choices import COMMAND_SUMMARIES, LOG_LEVEL_NAMES, SANITIZE_MODES
from ._choices import positive_int as _positive_int
from ._exits import CliError, ExitCode

TYPE_CHECKING = False  # typing's, without importing typing: see statefn/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from ._logs import CliLogs
    from ._plans import AdaptorSpec

__all__ = ["ExitCode", "build_parser", "console", "main"]

_DESCRIPTION = """\
Run workflows of Python jobs that pass JSON state from step to step.

The usual loop: edit a job, run the workflow, look at the output, then re-run from the
step that failed:

  statefn run workflow.yaml --cache-steps      keep every step's output
  statefn run workflow.yaml --start transform   re-run from one step, with cached input
"""

_EXIT_CODES = """\
exit codes: 0 success; 1 a step failed (its error is in state["errors"]); 2 usage error;
3 invalid input (file, plan, job source, step, credential); 4 run aborted; 130 interrupted
"""

_RUN_EXAMPLES = """\
examples:
  statefn run workflow.yaml                      run a workflow; final state to stdout
  statefn run job.py -a http -s input.json       run one job with the http adaptor
  statefn run workflow.json -o out.json --cache-steps
  statefn run workflow.json --only clean         one step, input from the step cache
  statefn run job.py -a http=../my-adaptor       use an adaptor from a local folder
  cat state.json | statefn run job.py -s -       input state from stdin
  statefn run workflow.yaml --isolate --memory-limit 200 --run-timeout 60000
  statefn run workflow.yaml --ledger runs.db     record it; then: statefn runs show ID
"""

_COMPILE_EXAMPLES = """\
examples:
  statefn compile job.py -a http                 list the operations of a job
  statefn compile workflow.yaml                  every job of a workflow
"""

_VALIDATE_EXAMPLES = """\
examples:
  statefn validate workflow.yaml                 check the plan and compile every job
"""

_REPO_EXAMPLES = """\
examples:
  statefn repo install http@1.0.0                from the package index (statefn-adaptor-http)
  statefn repo install ./my-adaptor              a local project, or a .whl file
  statefn repo list                              what is installed
  statefn repo clean http                        remove every version of http
  statefn repo dir                               where the repo is
"""

_DOCS_EXAMPLES = """\
examples:
  statefn docs common                            every operation of common
  statefn docs common each                       the documentation of one operation
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors suggest the command, flag or value the user meant."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        flags = [
            extra.split("=", 1)[0] for extra in extras if extra.startswith("-") and extra != "-"
        ]
        if flags:
            # Compared without their dashes, which every flag shares.
            known = {
                option.lstrip("-"): option
                for action in self._actions
                for option in action.option_strings
            }
            match = _closest(flags[0].lstrip("-"), known)
            hint = f"; did you mean {known[match]!r}?" if match else ""
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed, extras

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            match = _closest(str(value), [str(choice) for choice in action.choices])
            hint = f"; did you mean {match!r}?" if match else ""
            choices = ", ".join(map(str, action.choices))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}{hint} (choose from {choices})"
            )


def _closest(word: str, choices: Iterable[str]) -> str | None:
    from statefn._suggest import closest

    return closest(word, choices)


def _common_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("output")
    group.add_argument(
        "--log", choices=LOG_LEVEL_NAMES, default="info", metavar="LEVEL", type=str.lower,
        help="how much to log on stderr: none, error, warn, info (default), debug",
    )  # fmt: skip
    group.add_argument("--log-json", action="store_true", help="log JSON objects, one a line")
    group.add_argument(
        "--debug", action="store_true", help="show tracebacks of errors (for bug reports)"
    )
    return options


def _repo_option() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--repo-dir", metavar="DIR",
        help="the adaptor repo (default: $STATEFN_REPO_DIR, else ~/.statefn/repo)",
    )  # fmt: skip
    return options


def _adaptor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a", "--adaptor", action="append", default=[], type=_adaptor_spec,
        metavar="SPEC",
        help="an adaptor for a .py job: NAME, NAME@VERSION or NAME=PATH (a local folder); "
        "on a workflow, NAME@VERSION overrides that adaptor's version and NAME=PATH its "
        "location in every step (repeatable)",
    )  # fmt: skip


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run", help=COMMAND_SUMMARIES["run"],
        description="Run a workflow or a single job. Logs go to stderr; the final state to "
        "stdout as JSON, or to the file given with -o.",
        epilog=_RUN_EXAMPLES + "\n" + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(), _repo_option()],
    )  # fmt: skip
    run.add_argument("path", metavar="PATH", help="a workflow (.json, .yaml) or a job (.py)")
    _adaptor_option(run)
    run.add_argument(
        "-s", "--state", metavar="FILE", help="input state, JSON or YAML (- reads stdin)"
    )
    run.add_argument("-o", "--output", metavar="FILE", help="write the final state to FILE")
    steps = run.add_argument_group("choosing steps (an id, or a unique part of an id or name)")
    only_or_start = steps.add_mutually_exclusive_group()
    only_or_start.add_argument("--start", metavar="STEP", help="start from STEP")
    only_or_start.add_argument("--only", metavar="STEP", help="run STEP alone")
    steps.add_argument("--end", metavar="STEP", help="stop after STEP")
    steps.add_argument(
        "--cache-steps", action="store_true",
        help="write each step's output to .statefn-cache/<workflow>/<step>.json beside the "
        "plan; --start and --only without -s read their input from there",
    )  # fmt: skip
    behaviour = run.add_argument_group("run options")
    behaviour.add_argument(
        "--timeout", type=_positive_int, metavar="MS", help="timeout of each step"
    )
    behaviour.add_argument(
        "--credentials", metavar="FILE",
        help="JSON or YAML map of credential id to configuration, for steps whose "
        "configuration is a credential id",
    )  # fmt: skip
    behaviour.add_argument(
        "--sanitize", choices=SANITIZE_MODES, default="none",
        help="how state objects appear in logs: none (default), obfuscate, remove, summarize",
    )  # fmt: skip
    behaviour.add_argument(
        "--immutable", action="store_true", help="give each operation its own copy of state"
    )
    behaviour.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="how many branches may run at once"
    )
    engine = run.add_argument_group("isolation and recording (see docs/engine.md)")
    engine.add_argument(
        "--isolate", action="store_true",
        help="run in a separate worker process that the engine kills at its limits",
    )  # fmt: skip
    run.set_defaults(isolate_limits={})
    engine.add_argument(
        "--memory-limit", type=_positive_int, metavar="MB", default=500, action=_IsolateLimit,
        help="with --isolate: stop the run with OOMError above MB of memory (default 500)",
    )  # fmt: skip
    engine.add_argument(
        "--run-timeout", type=_positive_int, metavar="MS", action=_IsolateLimit,
        help="with --isolate: kill the whole run after MS milliseconds (default: no limit)",
    )  # fmt: skip
    engine.add_argument(
        "--ledger", metavar="URL",
        help="also record the run in this ledger (sqlite:///runs.db, a file path or "
        "postgresql://...; default: $STATEFN_LEDGER) and print its id",
    )  # fmt: skip


class _IsolateLimit(argparse.Action):
    """A limit of ``--isolate``'s worker: stored, and noted in ``isolate_limits`` (flag to
    value), since ``run`` refuses a limit given without ``--isolate``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.isolate_limits = {**namespace.isolate_limits, self.option_strings[0]: values}


def _add_checks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compile_ = commands.add_parser(
        "compile", help=COMMAND_SUMMARIES["compile"],
        description="Compile a job (.py) or every job of a workflow without running anything: "
        "print each operation with its line, or the problems as PATH:LINE:COLUMN: message.",
        epilog=_COMPILE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(), _repo_option()],
    )  # fmt: skip
    compile_.add_argument("path", metavar="PATH", help="a job (.py) or a workflow (.json, .yaml)")
    _adaptor_option(compile_)
    validate = commands.add_parser(
        "validate", help=COMMAND_SUMMARIES["validate"],
        description="Validate a plan (steps, edges, conditions, options) and compile the job "
        "of each step. Nothing runs.",
        epilog=_VALIDATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(), _repo_option()],
    )  # fmt: skip
    validate.add_argument("path", metavar="PATH", help="a workflow (.json, .yaml) or a job (.py)")
    _adaptor_option(validate)


def _add_repo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = [_common_options(), _repo_option()]
    repo = commands.add_parser(
        "repo", help=COMMAND_SUMMARIES["repo"],
        description="Manage the adaptor repo, where installed adaptors live side by side, "
        "one folder per name@version.",
        epilog=_REPO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=common,
    )  # fmt: skip
    actions = repo.add_subparsers(dest="repo_action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install",
        parents=common,
        help="install adaptors: NAME@VERSION, a project folder or a wheel",
        description="Install adaptors into the repo, each as its own NAME@VERSION folder.",
    )
    install.add_argument(
        "specs", nargs="+", metavar="SPEC",
        help="NAME@VERSION (the distribution statefn-adaptor-NAME from the package index), "
        "a local project folder (holding pyproject.toml) or a wheel file (.whl)",
    )  # fmt: skip
    actions.add_parser(
        "list", parents=common, help="list the installed adaptors",
        description="List the installed adaptors: NAME@VERSION and folder, one a line.",
    )  # fmt: skip
    clean = actions.add_parser(
        "clean", parents=common, help="remove every adaptor, or those matching SPEC",
        description="Remove adaptors from the repo: every one, or those matching SPEC.",
    )  # fmt: skip
    clean.add_argument(
        "spec", nargs="?", metavar="SPEC", help="NAME (every version) or NAME@VERSION"
    )
    actions.add_parser(
        "dir", parents=common, help="print the repo folder",
        description="Print the repo folder (--repo-dir, else $STATEFN_REPO_DIR, else "
        "~/.statefn/repo).",
    )  # fmt: skip


def _add_docs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    docs = commands.add_parser(
        "docs", help=COMMAND_SUMMARIES["docs"],
        description="Show the operations an adaptor exports with their signatures, or the "
        "documentation of one operation. The adaptor is found as a run would find it.",
        epilog=_DOCS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(), _repo_option()],
    )  # fmt: skip
    docs.add_argument(
        "adaptor", metavar="ADAPTOR", type=_adaptor_spec,
        help="NAME, NAME@VERSION or NAME=PATH (a local folder)",
    )  # fmt: skip
    docs.add_argument(
        "operation", nargs="?", metavar="OPERATION",
        help="an operation of the adaptor: show its documentation instead of the list",
    )  # fmt: skip


def _add_runs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._runs import add_runs_parser

    add_runs_parser(commands, [_common_options()])


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._serve import add_serve_parser

    add_serve_parser(commands, [_common_options(), _repo_option()])


def _add_distributed(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._distributed import add_distributed_parsers

    add_distributed_parsers(commands, [_common_options()], _repo_option())


def _add_test(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands.add_parser(
        "test", help=COMMAND_SUMMARIES["test"],
        description="Run a small built-in workflow and print its result: a check that "
        "statefn works on this machine.",
        parents=[_common_options()],
    )  # fmt: skip


# Each function adds the parsers of the commands it names, in the order --help lists them.
_COMMANDS: tuple[
    tuple[tuple[str, ...], Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]],
    ...,
] = (
    (("run",), _add_run),
    (("compile", "validate"), _add_checks),
    (("repo",), _add_repo),
    (("docs",), _add_docs),
    (("runs",), _add_runs),
    (("serve",), _add_serve),
    (("worker", "submit"), _add_distributed),
    (("test",), _add_test),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every command, or of ``command`` alone (a command's parser
    takes longer to build than a small run takes to compile its job)."""
    parser, commands = _top_parser()
    for names, add in _COMMANDS:
        if command is None or command in names:
            add(commands)
    return parser


def _summary_parser() -> argparse.ArgumentParser:
    """The parser ``statefn --help``, ``--version`` and a missing or misspelt command need:
    every command by name and summary, none of their arguments (building them all would
    take longer than starting the interpreter)."""
    parser, commands = _top_parser()
    for name, summary in COMMAND_SUMMARIES.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[Any]]:
    """The parser of ``statefn`` itself, and the action its commands are added to."""
    parser = _Parser(
        prog="statefn", description=_DESCRIPTION, epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action=_VersionAction)
    # Not required here: an unknown flag before the command is reported as such (main
    # reports a missing command). Every subparser is a _Parser, as its parent is.
    return parser, parser.add_subparsers(dest="command", metavar="COMMAND")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    return _main(argv)


def console() -> int:
    """The ``statefn`` command (``python -m statefn``, the installed script): ``main`` in a
    process that ends with it."""
    # Starting up makes many objects that live as long as the process (the parser, the
    # command's modules; for run, the runtime's) and hardly any garbage: the collector
    # sleeps until the command's modules are imported, then leaves what they made out of
    # its passes (about 6 ms of a one-step run). Not in main: called in-process, freezing
    # would keep the caller's garbage forever.
    gc.disable()
    code = _main(None, started=_started)
    # On its way out the interpreter collects garbage over every object of the modules a
    # run imported (about 8 ms after a one-step run, more than compiling its job); the
    # operating system frees them at once. Frozen, they are left to it. Objects still alive
    # at exit may then skip ``__del__``, which Python never promised at exit anyway;
    # ``atexit`` handlers and the flushing of stdout and stderr are unchanged.
    gc.freeze()
    return code


def _started() -> None:
    gc.freeze()
    gc.enable()


def _main(argv: Sequence[str] | None, started: Callable[[], None] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    # `statefn run ...` builds the parser of run alone; anything else (no command, a flag
    # first, a misspelt command) ends in the top level's help, version or error, for which
    # the commands' names and summaries are enough.
    named = arguments[0] if arguments else None
    known = named in COMMAND_SUMMARIES
    parser = build_parser(named) if known else _summary_parser()
    later = next((word for word in arguments if word in COMMAND_SUMMARIES), None)
    flag_first = named is not None and named.startswith("-")
    if flag_first and later is not None and named not in ("-h", "--help", "--version"):
        # `statefn --log debug run job.py`: the options belong to the command.
        rest = list(arguments)
        rest.remove(later)
        parser.error(f"options go after the command: statefn {later} {' '.join(rest)}")
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.error("the following arguments are required: COMMAND")
    from ._logs import CliLogs

    logs = CliLogs(sys.stderr, args.log, json_lines=args.log_json, tracebacks=args.debug)
    try:
        command = _command(args.command)
        if started is not None:
            started()
        return int(command(args, logs))
    except CliError as error:
        logs.fatal(error.message)
        return int(error.code)
    except BrokenPipeError:
        # The reader stopped reading (`statefn docs http | head`): not an error. Point
        # stdout at nothing so that the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
    except KeyboardInterrupt:
        logs.fatal("Interrupted")
        return int(ExitCode.INTERRUPTED)
    except Exception as error:
        # A bug in statefn, not in the user's input: say so, keep the traceback for --debug.
        if args.debug:
            logs.cli.error("Internal error", exc_info=error)
        hint = "" if args.debug else " (run again with --debug to see the traceback)"
        logs.fatal(f"Internal error: {type(error).__name__}: {error}{hint}")
        return int(ExitCode.ABORTED)


def _command(name: str) -> Callable[[argparse.Namespace, CliLogs], ExitCode]:
    """The function of command ``name``; its module is imported now, not before."""
    if name == "run":
        from ._run import run_command

        return run_command
    if name in ("compile", "validate"):
        from ._check import compile_command, validate_command

        return compile_command if name == "compile" else validate_command
    if name == "repo":
        from ._repo import repo_command

        return repo_command
    if name == "docs":
        from ._docs import docs_command

        return docs_command
    if name == "runs":
        from ._runs import runs_command

        return runs_command
    if name == "serve":
        from ._serve import serve_command

        return serve_command
    if name in ("worker", "submit"):
        from ._distributed import submit_command, worker_command

        return worker_command if name == "worker" else submit_command
    from ._selftest import selftest_command

    return selftest_command


def _adaptor_spec(text: str) -> AdaptorSpec:
    """``-a``'s type; the module that parses it is imported only once a command runs."""
    from ._plans import parse_adaptor_spec

    return parse_adaptor_spec(text)


class _VersionAction(argparse.Action):
    """``--version``: the version pyproject.toml is built from, read without package metadata
    (looking that up costs more than starting the interpreter)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from statefn._version import __version__

        print(f"statefn {__version__}")
        parser.exit()
