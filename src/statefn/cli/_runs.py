"""``statefn runs``: read the run ledger: list runs, show one, print its logs or a state.

This module builds its parser at start-up but imports the ledger only when a ``runs``
command runs, so other commands do not pay for it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TextIO

from ._choices import COMMAND_SUMMARIES
from ._exits import CliError, ExitCode

if TYPE_CHECKING:
    from statefn.ledger import Ledger, RunRecord

    from ._logs import CliLogs

__all__ = ["add_runs_parser", "print_logs", "runs_command"]

_RUNS_EXAMPLES = """\
examples:
  statefn runs list --ledger runs.db                   the newest 20 runs
  export STATEFN_LEDGER=postgresql://db.internal/statefn
  statefn runs list --reason fail --workflow nightly    failed runs of one workflow
  statefn runs show 3f2a                                one run (a unique start of its id)
  statefn runs logs 3f2a --follow                       its log lines, until it ends
  statefn runs state 3f2a clean --input                 the state step clean started from
"""

_EXIT_CODES = """\
exit codes: 0 done; 2 no ledger given; 3 the ledger cannot be read, or the run, step or
state asked for is not there
"""

_REASONS = "success, fail, crash, kill, exception, cancel, lost; or queued, started"
_ID_WIDTH = 8
_POLL_S = 0.25


def add_runs_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
) -> None:
    """Add ``runs list|show|logs|state`` to ``commands``; ``common`` are the shared options."""
    ledger = argparse.ArgumentParser(add_help=False)
    # Suppressed default: given before or after the action, the value is not overwritten.
    ledger.add_argument(
        "--ledger", metavar="URL", default=argparse.SUPPRESS,
        help="the run ledger: sqlite:///runs.db, a file path, or postgresql://USER@HOST/DB "
        "(default: $STATEFN_LEDGER)",
    )  # fmt: skip
    parents = [*common, ledger]
    runs = commands.add_parser(
        "runs", help=COMMAND_SUMMARIES["runs"],
        description="Read the run ledger that statefn run --ledger and the engine write: "
        "runs newest first, one run's steps, its log lines and its states.",
        epilog=_RUNS_EXAMPLES + "\n" + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=parents,
    )  # fmt: skip
    actions = runs.add_subparsers(dest="runs_action", metavar="ACTION", required=True)
    for name, summary, examples, add_arguments in _ACTION_PARSERS:
        action = actions.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".",
            epilog=f"examples:\n{examples}\n{_EXIT_CODES}",
            formatter_class=argparse.RawDescriptionHelpFormatter, parents=parents,
        )  # fmt: skip
        add_arguments(action)


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar="R", help=f"only runs with this status ({_REASONS})")
    parser.add_argument("--workflow", metavar="W", help="only runs of the workflow named W")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (20)")
    parser.add_argument("--json", action="store_true", help="print a JSON array of runs")


def _run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run id, or a unique start of one")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    _run_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the run and its steps as JSON")


def _logs_arguments(parser: argparse.ArgumentParser) -> None:
    _run_argument(parser)
    parser.add_argument(
        "--follow", action="store_true", help="keep printing new lines until the run ends"
    )


def _state_arguments(parser: argparse.ArgumentParser) -> None:
    _run_argument(parser)
    parser.add_argument(
        "step", nargs="?", metavar="STEP", help="a step id, or a step run key such as z-1"
    )
    parser.add_argument(
        "--input", action="store_true", help="the state the run or step started from"
    )


# Each action: its name, what it does, its examples, and its own arguments.
_ACTION_PARSERS: list[tuple[str, str, str, Callable[[argparse.ArgumentParser], None]]] = [
    (
        "list", "list runs, newest first: id, workflow, reason, started, duration",
        "  statefn runs list --ledger runs.db\n"
        "  statefn runs list --reason fail --limit 5\n"
        "  statefn runs list --workflow nightly --json | jq '.[0].run_id'\n",
        _list_arguments,
    ),
    (
        "show", "show one run: its steps in order, with reason, duration and error",
        "  statefn runs show 3f2a\n  statefn runs show 3f2a --json\n",
        _show_arguments,
    ),
    (
        "logs", "print a run's log lines (with --follow, until the run ends)",
        "  statefn runs logs 3f2a\n  statefn runs logs 3f2a --follow\n",
        _logs_arguments,
    ),
    (
        "state", "print a run's final state, or a step's output (or input) state, as JSON",
        "  statefn runs state 3f2a                  the final state\n"
        "  statefn runs state 3f2a clean            the output of step clean\n"
        "  statefn runs state 3f2a clean-2 --input  the input of its second run\n",
        _state_arguments,
    ),
]  # fmt: skip


def runs_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Run ``statefn runs ACTION`` against the ledger of ``--ledger`` or ``$STATEFN_LEDGER``."""
    url = getattr(args, "ledger", None) or os.environ.get("STATEFN_LEDGER")
    if not url:
        raise CliError("No ledger given: pass --ledger URL or set STATEFN_LEDGER", ExitCode.USAGE)
    from statefn import ledger
    from statefn._errors import LedgerError

    action: Callable[[Ledger, argparse.Namespace], None] = _ACTIONS[args.runs_action]
    try:
        with ledger.open(url, create=False) as book:
            action(book, args)
    except LedgerError as error:
        raise CliError(error.message + (f"\n  fix: {error.fix}" if error.fix else "")) from None
    return ExitCode.OK


def _list(book: Ledger, args: argparse.Namespace) -> None:
    from statefn.ledger import STATUSES

    if args.reason is not None and args.reason not in STATUSES:
        raise CliError(f"--reason must be one of: {_REASONS}", ExitCode.USAGE)
    if args.limit < 1:
        raise CliError(f"--limit must be a number above 0, not {args.limit}", ExitCode.USAGE)
    runs = book.runs(reason=args.reason, workflow=args.workflow, limit=args.limit)
    if args.json:
        # Runs are listed without their steps (runs show has them), not with "steps": [].
        _print_json([{k: v for k, v in run.to_dict().items() if k != "steps"} for run in runs])
        return
    if not runs:
        print(f"No runs{' match' if args.reason or args.workflow else ''} in {book.url}")
        return
    width = _unique_width([run.run_id for run in runs])
    rows = [
        [
            run.run_id[:width],
            run.workflow or "-",
            run.status,
            _when(run.started_at),
            _duration(run.duration_ms),
        ]
        for run in runs
    ]
    print(_table(["RUN", "WORKFLOW", "REASON", "STARTED", "DURATION"], rows))


def _show(book: Ledger, args: argparse.Namespace) -> None:
    run = book.run(book.find_run(args.run))
    if args.json:
        _print_json(run.to_dict())
        return
    facts = [
        ("run", run.run_id),
        ("workflow", f"{run.workflow or '-'}" + (f" (plan {run.plan_id})" if run.plan_id else "")),
        ("reason", run.status),
        ("submitted", _when(run.submitted_at)),
        ("started", _when(run.started_at)),
        ("finished", _when(run.finished_at)),
        ("duration", _duration(run.duration_ms)),
    ]
    if run.error:
        facts.append(("error", _error_text(run.error)))
    if run.state_withheld:
        facts.append(("state", f"not stored: {run.state_withheld}"))
    print("\n".join(f"{name:<10} {value}" for name, value in facts))
    if not run.steps:
        print("\nNo steps recorded.")
        return
    # A step with no end in a run that ended: its engine died with it (the run is lost).
    unended = "running" if run.reason is None else "unfinished"
    rows = [
        [str(step.seq), step.key, step.step_id, step.reason or unended,
         _duration(step.duration_ms), _error_text(step.error) if step.error else ""]
        for step in run.steps
    ]  # fmt: skip
    print("\n" + _table(["#", "KEY", "STEP", "REASON", "DURATION", "ERROR"], rows))


def _logs(book: Ledger, args: argparse.Namespace) -> None:
    print_logs(book, book.find_run(args.run), follow=args.follow)


def print_logs(book: Ledger, run_id: str, *, follow: bool, stream: TextIO | None = None) -> None:
    """Print the run's log lines to ``stream`` (stdout); with ``follow``, until it ends."""
    out = stream or sys.stdout
    after = 0
    while True:
        # Whether it had ended is read before the lines: every line written before the end
        # is then printed before following stops.
        ended = book.run(run_id).reason is not None
        for line in book.logs(run_id, after=after):
            step = f" [{line.step_id}]" if line.step_id else ""
            print(f"{_when(line.time, precise=True)}{step} {line.level}: {line.message}", file=out)
            after = line.seq
        out.flush()
        if ended or not follow:
            return
        time.sleep(_POLL_S)


def _state(book: Ledger, args: argparse.Namespace) -> None:
    run = book.run(book.find_run(args.run))
    key = None if args.step is None else _step_key(run, args.step)
    which: Literal["input", "output"] = "input" if args.input else "output"
    state = book.state(run.run_id, key, which=which)
    if state is None:
        raise CliError(_no_state(run, key, which))
    _print_json(state)


def _no_state(run: RunRecord, key: str | None, which: str) -> str:
    """Why the run (or its step run ``key``) has no ``which`` state, and where to look."""
    step = next((record for record in run.steps if record.key == key), None)
    what = f"Step run {key} of run {run.run_id}" if step else f"Run {run.run_id}"
    if which == "input":
        return f"{what} recorded no input state"
    kind = "output" if step else "final"
    # A step run that never ended has none because its run ended (lost, crash), or not yet.
    reason = step.reason if step and step.reason else run.reason
    if reason is None:
        return (
            f"{what} has not finished: its {kind} state is recorded when it ends (follow it "
            f"with statefn runs logs {run.run_id} --follow)"
        )
    message = f"{what} recorded no {kind} state (it ended with {reason})"
    if step is None and run.steps:
        keys = ", ".join(record.key for record in run.steps)
        message += (
            f": look at a step's state with statefn runs state {run.run_id} STEP (its step "
            f"runs: {keys})"
        )
    return message


_ACTIONS: dict[str, Callable[[Ledger, argparse.Namespace], None]] = {
    "list": _list,
    "show": _show,
    "logs": _logs,
    "state": _state,
}


def _step_key(run: RunRecord, step: str) -> str:
    """The key of the step run ``step`` names: a key itself, or a step id that ran once."""
    keys = [record.key for record in run.steps]
    if step in keys:
        return step
    matching = [record.key for record in run.steps if record.step_id == step]
    if len(matching) == 1:
        return matching[0]
    if matching:
        raise CliError(
            f"Step {step} ran {len(matching)} times in run {run.run_id}: give one of the keys "
            f"{', '.join(matching)}"
        )
    raise CliError(
        f"Run {run.run_id} has no step {step!r}; its step runs are: {', '.join(keys) or 'none'}"
    )


def _unique_width(ids: Sequence[str]) -> int:
    """The shortest prefix length, from 8, that still tells the listed ids apart."""
    width = _ID_WIDTH
    while width < max(map(len, ids)) and len({run_id[:width] for run_id in ids}) < len(ids):
        width += 1
    return width


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in [headers, *rows]) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def _when(moment: str | None, *, precise: bool = False) -> str:
    """A ledger time (ISO 8601, UTC) as ``2026-01-31 09:00:00`` (with milliseconds if
    ``precise``)."""
    if moment is None:
        return "-"
    return moment[: 23 if precise else 19].replace("T", " ")


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.3g} ms" if ms < 10 else f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


def _error_text(error: dict[str, Any]) -> str:
    return f"{error.get('name', 'Error')}: {error.get('message', '')}"


def _print_json(value: Any) -> None:
    import orjson

    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())
